//! Cron from the outside: `cromflag cron run` and `cromflag cron runs` run to
//! their end on a data directory no host holds, manifests with reports, and
//! the report route for platforms without cron (`POST /admin/reports/run`).

use std::path::{Path, PathBuf};
use std::process::Output;

/// Runs `cromflag <args>` to its end, with the tests' shared compile cache.
pub fn cromflag<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    cromflag_with_env(args, &[])
}

/// `cromflag` with extra environment variables.
pub fn cromflag_with_env<I, S>(args: I, env: &[(&str, &str)]) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    std::process::Command::new(crate::cromflag_bin())
        .args(args)
        .envs(env.iter().copied())
        .env(
            "CROMFLAG_CACHE_DIR",
            crate::repo_root().join("target/test-compile-cache"),
        )
        .env("RUST_LOG", "info")
        .output()
        .expect("running cromflag")
}

/// `cromflag cron run <component> --at <at>`: the run record it prints, and
/// whether it exited successfully.
pub fn run(
    manifest: &Path,
    data_dir: &Path,
    component: &str,
    at: &str,
) -> (serde_json::Value, bool) {
    let output = cromflag([
        "cron".as_ref(),
        "run".as_ref(),
        component.as_ref(),
        "--at".as_ref(),
        at.as_ref(),
        "--manifest".as_ref(),
        manifest.as_os_str(),
        "--data-dir".as_ref(),
        data_dir.as_os_str(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let record = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "cron run printed no record ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (record, output.status.success())
}

/// `cromflag cron runs [--trigger <trigger>]`: every run record in the store
/// of `manifest`'s application, oldest tick first.
pub fn runs(manifest: &Path, data_dir: &Path, trigger: Option<&str>) -> Vec<serde_json::Value> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "cron".into(),
        "runs".into(),
        "--manifest".into(),
        manifest.into(),
        "--data-dir".into(),
        data_dir.into(),
    ];
    if let Some(trigger) = trigger {
        args.extend(["--trigger".into(), trigger.into()]);
    }
    let output = cromflag(&args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// A report component's manifest entry: `[component.<id>]` on report.wasm with
/// `variables`, and its catch-up policy when given.
pub fn report_component(id: &str, variables: &[(&str, &str)], catch_up: Option<&str>) -> String {
    component_entry(id, "report", variables, catch_up)
}

/// `[component.<id>]` on the built component `wasm`, with variables and catch-up.
pub fn component_entry(
    id: &str,
    wasm: &str,
    variables: &[(&str, &str)],
    catch_up: Option<&str>,
) -> String {
    let mut text = format!(
        "[component.{id}]\nsource = {:?}\n",
        crate::component(wasm).display().to_string()
    );
    if !variables.is_empty() {
        text.push_str(&format!("[component.{id}.variables]\n"));
        for (name, value) in variables {
            text.push_str(&format!("{name} = {value:?}\n"));
        }
    }
    if let Some(policy) = catch_up {
        text.push_str(&format!(
            "[component.{id}.tool.cromflag]\ncron_catch_up = {policy:?}\n"
        ));
    }
    text
}

/// Writes `dir/spin.toml` with the insert and fetch routes, and `rest` (cron
/// triggers and components) after them.
pub fn manifest(dir: &Path, rest: &str) -> PathBuf {
    let text = format!(
        "spin_manifest_version = 2\n[application]\nname = \"cron-test\"\n\
         [[trigger.http]]\nroute = \"/insert/...\"\ncomponent = \"insert\"\n\
         [[trigger.http]]\nroute = \"/fetch/...\"\ncomponent = \"fetch\"\n\
         [[trigger.http]]\nroute = \"/reports/...\"\ncomponent = \"fetch\"\n\
         {rest}\n{}{}",
        component_entry("insert", "insert", &[], None),
        component_entry("fetch", "fetch", &[], None),
    );
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The run records of `trigger` that a running `host` serves at
/// `/fetch/_cron_runs` (a route `manifest` writes): what `cromflag cron runs`
/// reads once no host holds the data directory.
pub fn served_runs(host: &crate::Host, trigger: &str) -> Vec<serde_json::Value> {
    let answer = crate::get(&host.url("/fetch/_cron_runs"));
    match answer.status {
        // No run recorded yet: the collection does not exist.
        404 => Vec::new(),
        200 => answer
            .json()
            .as_array()
            .expect("fetch answers an array")
            .iter()
            .filter(|run| run["trigger"] == trigger)
            .cloned()
            .collect(),
        other => panic!("/fetch/_cron_runs: {other} {}", answer.text()),
    }
}

/// Waits until `trigger` has at least `count` run records with `status`
/// (60 s at most), and returns them.
pub fn wait_for_runs(
    host: &crate::Host,
    trigger: &str,
    status: &str,
    count: usize,
) -> Vec<serde_json::Value> {
    crate::wait_until(&format!("{count} `{status}` runs of {trigger}"), || {
        let runs: Vec<_> = served_runs(host, trigger)
            .into_iter()
            .filter(|run| run["status"] == status)
            .collect();
        (runs.len() >= count).then_some(runs)
    })
}

/// `POST /admin/reports/run?<query>` (one report tick over HTTP, for
/// platforms without cron) with an optional `Authorization` header value.
pub fn run_reports(host: &crate::Host, query: &str, authorization: Option<&str>) -> crate::Answer {
    crate::access::call(
        "POST",
        &host.url(&format!("/admin/reports/run?{query}")),
        authorization,
        b"",
    )
}

/// The control token a running host left in its data directory (what
/// `cromflag devices` uses): an admin credential of the host's own.
pub fn control_token(data_dir: &Path) -> String {
    let text = std::fs::read_to_string(data_dir.join("control.json")).unwrap();
    let control: serde_json::Value = serde_json::from_str(&text).unwrap();
    control["token"].as_str().unwrap().to_owned()
}
