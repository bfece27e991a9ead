//! Credentials in tests: `cromflag devices|readers` run as a user runs them,
//! and HTTP requests that carry an Authorization header.

use crate::{answer, path_segment, repo_root, sample_of, Answer, Host};
use std::path::Path;
use std::time::Duration;

/// Runs `cromflag <args> --manifest spin.toml --data-dir <data>` (with `env`)
/// and returns its stdout; panics with its stderr if it fails.
pub fn cli(data: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let manifest = repo_root().join("spin.toml");
    let mut all: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    all.extend([
        "--manifest".as_ref(),
        manifest.as_os_str(),
        "--data-dir".as_ref(),
        data.as_os_str(),
    ]);
    let output = crate::cron::cromflag_with_env(all, env);
    assert!(
        output.status.success(),
        "cromflag {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The token `devices add|rotate` or `readers add` printed: its last line.
pub fn token_of(output: &str) -> String {
    output.lines().last().unwrap().trim().to_owned()
}

/// A request with an optional Authorization header value and a JSON body
/// (none when empty).
pub fn call(method: &str, url: &str, authorization: Option<&str>, body: &[u8]) -> Answer {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let mut request = agent
        .request(method, url)
        .set("Content-Type", "application/json");
    if let Some(value) = authorization {
        request = request.set("Authorization", value);
    }
    answer(if body.is_empty() {
        request.call()
    } else {
        request.send_bytes(body)
    })
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `POST /insert/<device>` of the sample as `device`, with `authorization`.
pub fn insert_as(host: &Host, device: &str, authorization: Option<&str>) -> Answer {
    let url = host.url(&format!("/insert/{}", path_segment(device)));
    call("POST", &url, authorization, &sample_of(device))
}
