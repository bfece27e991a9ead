//! What the integration tests share: starting the real `cromflag` binary on an
//! ephemeral port with its own data directory, plain HTTP calls to it, and a
//! real MQTT broker and publisher.
//!
//! Nothing here sleeps a fixed time to let something happen: tests wait on
//! what they can observe, with a deadline (`wait_until`, `wait_for_rows`,
//! `cron::wait_for_runs`). Every listener binds port 0 and reports the port
//! it got (the host in its log; the brokers that cannot, see `ports`).
//! Waiting on a log line (`Host::wait_for_log`) is kept for what only the
//! log shows.
//!
//! The binary is the one `cargo build` put beside the test executable
//! (`target/<profile>/cromflag`); `.ci/run` builds it before the tests run.

pub mod access;
pub mod cron;
pub mod fleet;
pub mod grafana;
pub mod mosquitto;
pub mod mqtt;
pub mod ports;
pub mod rumqttd;
pub mod sse;
pub mod wasmtime;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The sample payload of the original stack.
pub fn sample_payload() -> Vec<u8> {
    std::fs::read(repo_root().join("tests/fixtures/sample-insert.json")).unwrap()
}

/// Writes `dir/spin.toml`: an application named `name` with `triggers` (TOML
/// text) and a `[component.<id>]` for each of `components`, built by
/// host/build.rs. Ids are kebab-case, as Spin wants them; the built file
/// is named as cargo names it, with `_` for `-`.
pub fn write_manifest(dir: &Path, name: &str, triggers: &str, components: &[&str]) -> PathBuf {
    let mut text =
        format!("spin_manifest_version = 2\n[application]\nname = \"{name}\"\n{triggers}\n");
    for id in components {
        text.push_str(&format!(
            "[component.{id}]\nsource = \"{}\"\n",
            component(&id.replace('-', "_")).display()
        ));
    }
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The repository's `spin.toml` written to `dir` with its sources made
/// absolute and `extra` (TOML: rules, per-device tables) appended.
pub fn repo_manifest_with(dir: &Path, extra: &str) -> PathBuf {
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("spin.toml"))
        .unwrap()
        .replace("\"target/", &format!("\"{}/target/", root.display()));
    let path = dir.join("spin.toml");
    std::fs::write(&path, format!("{text}\n{extra}")).unwrap();
    path
}

/// A component built by host/build.rs.
pub fn component(name: &str) -> PathBuf {
    repo_root().join(format!(
        "target/components/wasm32-wasip2/component/{name}.wasm"
    ))
}

pub fn cromflag_bin() -> PathBuf {
    // target/<profile>/deps/<test> → target/<profile>/cromflag
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("cromflag");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build` first (.ci/run does)",
        bin.display()
    );
    bin
}

/// A running `cromflag up`; killed when dropped.
pub struct Host {
    child: Child,
    pub addr: SocketAddr,
    /// The port of this host's MQTT device endpoint (`--mqtt-broker`).
    pub mqtt_port: u16,
    /// The address of the WebAPI this host serves (`--webapi`), if it does.
    pub webapi_addr: Option<SocketAddr>,
    log: Arc<Mutex<String>>,
}

impl Host {
    /// A host on the repository's manifest whose devices turn inactive, and
    /// raise an inactivity alarm, after 2 s without a document.
    pub fn start_inactive_after_2s(data_dir: &Path) -> Host {
        Host::start_with_env(
            &repo_root().join("spin.toml"),
            data_dir,
            &[],
            &[("SPIN_VARIABLE_INACTIVITY_TIMEOUT", "2s")],
        )
    }

    /// Starts the repository's `spin.toml` on `data_dir`.
    pub fn start(data_dir: &Path) -> Host {
        Host::start_with(&repo_root().join("spin.toml"), data_dir, &[])
    }

    pub fn start_with(manifest: &Path, data_dir: &Path, extra: &[&str]) -> Host {
        Host::start_with_env(manifest, data_dir, extra, &[])
    }

    /// Starts a host with extra arguments and environment variables (such as
    /// `SPIN_VARIABLE_*` overrides). With a relative `manifest` the host runs
    /// in the data directory's parent, as a user runs `cromflag up` in a project.
    pub fn start_with_env(
        manifest: &Path,
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Host {
        let mut command = Command::new(cromflag_bin());
        // A relative manifest is relative to where the host runs: its directory.
        if manifest.is_relative() {
            command.current_dir(data_dir.parent().unwrap());
        }
        let mut child = command
            .arg("up")
            .arg("--manifest")
            .arg(manifest)
            .arg("--data-dir")
            .arg(data_dir)
            // Compiled code is shared between tests: each compiles nothing twice.
            .arg("--cache-dir")
            .arg(repo_root().join("target/test-compile-cache"))
            // Loopback, unless the test listens elsewhere itself.
            .args(if extra.contains(&"--listen") {
                &[][..]
            } else {
                &["--listen", "127.0.0.1:0"][..]
            })
            // Hosts run side by side: each binds its MQTT endpoint to a port the
            // kernel picks (port 0), read back from its log, as the HTTP one.
            .args(if extra.contains(&"--mqtt-broker") {
                &[][..]
            } else {
                &["--mqtt-broker", "127.0.0.1:0"][..]
            })
            .args(extra)
            .envs(env.iter().copied())
            .env(
                "RUST_LOG",
                std::env::var("CROMFLAG_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting cromflag");
        let log = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        // Keep draining stderr for the host's whole life, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            // The endpoints' lines come first: the HTTP listener starts last.
            let mut mqtt_addr: Option<SocketAddr> = None;
            let mut webapi_addr: Option<SocketAddr> = None;
            let address_after = |line: &str, prefix: &str| {
                let rest = line.split(prefix).nth(1)?;
                // The address ends at a space, or at the WebAPI's `/griddb`.
                let addr = rest.split(|c: char| c.is_whitespace() || c == '/').next()?;
                addr.parse::<SocketAddr>().ok()
            };
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = address_after(&line, "MQTT endpoint on mqtt://") {
                    mqtt_addr = Some(addr);
                }
                if let Some(addr) = address_after(&line, "WebAPI serving at http://") {
                    webapi_addr = Some(addr);
                }
                if line.contains("listening on http://") {
                    let http_addr = address_after(&line, "listening on http://");
                    let _ = addr_tx.send(http_addr.map(|http| (http, mqtt_addr, webapi_addr)));
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(180))
            .ok()
            .flatten();
        let Some((addr, mqtt_addr, webapi_addr)) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cromflag did not start:\n{}", log.lock().unwrap());
        };
        Host {
            child,
            addr,
            // 0: this host has no MQTT endpoint (`--mqtt-broker off`, or a broker).
            mqtt_port: mqtt_addr.map_or(0, |a| a.port()),
            webapi_addr,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The base URL (ending in `/griddb`) of the WebAPI this host serves when
    /// started with `--webapi`.
    pub fn webapi_url(&self) -> String {
        let addr = self.webapi_addr.expect("this host serves no WebAPI");
        format!("http://{addr}/griddb")
    }

    /// `POST …/tql` on the WebAPI this host serves, with one statement on
    /// `container`, as admin: the status and body it answers.
    pub fn webapi_tql(&self, container: &str, stmt: &str) -> (u16, serde_json::Value) {
        webapi_tql(&self.webapi_url(), container, stmt)
    }

    /// What the host has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log holds `needle` at least `count` times.
    ///
    /// Only for what nothing but the log shows: that the host subscribed to
    /// an external broker, that a change was refused or a reload removed
    /// something, that a store failure kept a message unacked. Wherever
    /// stored rows, run records (`cron::served_runs`) or an HTTP answer
    /// change, wait on those instead (`wait_for_rows`, `wait_until`).
    pub fn wait_for_log(&self, needle: &str, count: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while self.log().matches(needle).count() < count {
            assert!(
                std::time::Instant::now() < deadline,
                "no {count}× `{needle}` in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// The process id, to signal it.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the host and waits until it is gone.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `admin:admin`, the `webapi_*` defaults of `spin.toml`.
pub const WEBAPI_ADMIN: &str = "Basic YWRtaW46YWRtaW4=";

/// `POST <root>/v2/defaultCluster/dbs/public/tql` (`root` ending in
/// `/griddb`) with one statement on `container`, as admin: the status and
/// body the WebAPI answers.
pub fn webapi_tql(root: &str, container: &str, stmt: &str) -> (u16, serde_json::Value) {
    let url = format!("{root}/v2/defaultCluster/dbs/public/tql");
    let body = serde_json::json!([{"name": container, "stmt": stmt, "columns": null}]);
    let response = ureq::post(&url)
        .set("Authorization", WEBAPI_ADMIN)
        .set("Content-Type", "application/json; charset=UTF-8")
        .send_string(&body.to_string());
    match response {
        Ok(r) => (
            r.status(),
            serde_json::from_str(&r.into_string().unwrap()).unwrap(),
        ),
        Err(ureq::Error::Status(status, r)) => (
            status,
            serde_json::from_str(&r.into_string().unwrap()).unwrap(),
        ),
        Err(e) => panic!("tql {stmt}: {e}"),
    }
}

/// An HTTP answer: status, content type and body.
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    /// Every header, names lower-case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }

    /// Every value of the header `name` (lower case), in order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build()
}

pub(crate) fn answer(result: Result<ureq::Response, ureq::Error>) -> Answer {
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("request failed: {e}"),
    };
    let status = response.status();
    let content_type = response
        .header("content-type")
        .unwrap_or_default()
        .to_owned();
    let headers = response
        .headers_names()
        .into_iter()
        .filter_map(|name| {
            let value = response.header(&name)?.to_owned();
            Some((name.to_ascii_lowercase(), value))
        })
        .collect();
    let mut body = Vec::new();
    response.into_reader().read_to_end(&mut body).unwrap();
    Answer {
        status,
        content_type,
        headers,
        body,
    }
}

pub fn post(url: &str, content_type: &str, body: &[u8]) -> Answer {
    answer(
        agent()
            .post(url)
            .set("Content-Type", content_type)
            .send_bytes(body),
    )
}

/// Posts `body` with chunked transfer encoding: no Content-Length up front.
pub fn post_chunked(url: &str, content_type: &str, body: &[u8]) -> Answer {
    answer(
        agent()
            .post(url)
            .set("Content-Type", content_type)
            .send(std::io::Cursor::new(body.to_vec())),
    )
}

pub fn get(url: &str) -> Answer {
    answer(agent().get(url).call())
}

/// GETs `url` with an `Accept` header.
pub fn get_accepting(url: &str, accept: &str) -> Answer {
    answer(agent().get(url).set("Accept", accept).call())
}

/// Polls `check` every 50 ms until it returns `Some` (60 s at most).
pub fn wait_until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn request(method: &str, url: &str) -> Answer {
    answer(agent().request(method, url).call())
}

/// Posts the sample payload to `/insert/sample`, as the original article's curl does.
pub fn insert_sample(host: &Host) -> Answer {
    post(
        &host.url("/insert/sample"),
        "application/json",
        &sample_payload(),
    )
}

/// `id` as one URL path segment: every character but `A-Za-z0-9-._~`
/// percent-encoded (UTF-8), as the page's `encodeURIComponent` does.
pub fn path_segment(id: &str) -> String {
    const KEPT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(id, KEPT).to_string()
}

/// Posts the sample payload as device `id` (its `deviceid` changed) to
/// `/insert/<id>`, the id percent-encoded.
pub fn insert_sample_as(host: &Host, id: &str) -> Answer {
    post(
        &host.url(&format!("/insert/{}", path_segment(id))),
        "application/json",
        &sample_of(id),
    )
}

/// The sample document with `id` for its `deviceinfo.deviceid`.
pub fn sample_of(id: &str) -> Vec<u8> {
    let mut doc: serde_json::Value = serde_json::from_slice(&sample_payload()).unwrap();
    doc["deviceinfo"]["deviceid"] = serde_json::json!(id);
    doc.to_string().into_bytes()
}

/// The rows `GET /fetch/<device>` returns, or `None` when the device is unknown (404).
pub fn fetch_rows(host: &Host, device: &str) -> Option<Vec<serde_json::Value>> {
    let answer = get(&host.url(&format!("/fetch/{}", path_segment(device))));
    match answer.status {
        404 => None,
        200 => Some(
            answer
                .json()
                .as_array()
                .cloned()
                .expect("fetch answers an array"),
        ),
        other => panic!("fetch {device}: {other} {}", answer.text()),
    }
}

/// Polls `GET /fetch/<device>` until it has at least `count` rows (60 s at most).
pub fn wait_for_rows(host: &Host, device: &str, count: usize) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let rows = fetch_rows(host, device).unwrap_or_default();
        if rows.len() >= count {
            return rows;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{device} has {} of {count} rows; host log:\n{}",
            rows.len(),
            host.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

use std::io::Read as _;

/// Device `id`'s row of `/fetch/devices` once its health (`last_seen`,
/// `active`) is known: the host writes last-seen times once a second after
/// a commit. Within 10 s.
pub fn device_once_seen(host: &Host, id: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let path = format!("/fetch/devices?search={}", path_segment(id));
        let listed = get(&host.url(&path)).json();
        let row = listed.as_array().and_then(|rows| {
            rows.iter()
                .find(|r| r["deviceid"] == id && !r["last_seen"].is_null())
        });
        if let Some(row) = row {
            return row.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id}'s health never listed: {listed}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs the browser test of the built-in page (`tests/browser/ui-test.mjs`,
/// headless Chromium driven by Playwright from `ui/`) against `host`, with
/// `env` (tokens, when the host requires them), saving its screenshot to
/// `screenshot`; fails with the script's output and the host's log.
pub fn run_page_test(host: &Host, screenshot: &Path, env: &[(&str, &str)]) {
    run_browser_script("ui-test.mjs", host, screenshot, env);
}

/// Runs `tests/browser/<script>` (`node <script> <host url> <screenshot>`)
/// against `host`, with `env`; fails with its output and the host's log.
pub fn run_browser_script(script: &str, host: &Host, screenshot: &Path, env: &[(&str, &str)]) {
    let output = Command::new("node")
        .arg(repo_root().join("tests/browser").join(script))
        .arg(host.url(""))
        .arg(screenshot)
        .envs(env.iter().copied())
        .current_dir(repo_root())
        .output()
        .expect("running node (./scripts/test installs what it needs)");
    assert!(
        output.status.success(),
        "the browser test failed:\n{}\n{}\nhost log:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        host.log()
    );
}
