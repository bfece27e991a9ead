//! Retention on both backends: after a pass, rows older than their
//! retention are gone from fetch, reports and the store (on GridDB, from the
//! WebAPI too); newer rows, and devices kept longer, stay; ingest goes on
//! while a pass deletes.

use cromflag_tests::access::call;
use cromflag_tests::mqtt::Publisher;
use cromflag_tests::{
    fetch_rows, get, insert_sample, post, repo_manifest_with, repo_root, wait_until, Host,
};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tempfile::TempDir;

const ADMIN: &str = "Bearer retention-admin";
const DAY: i64 = 86_400_000;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The repository's manifest with its sources made absolute, and `short`
/// kept five days by the manifest's own per-device table.
fn manifest(dir: &Path) -> PathBuf {
    repo_manifest_with(
        dir,
        "[application.tool.cromflag.device_retention]\nshort = \"5d\"\n",
    )
}

/// What every host of these tests keeps how long.
fn retention_env() -> Vec<(&'static str, String)> {
    vec![
        ("SPIN_VARIABLE_ADMIN_TOKEN", "retention-admin".into()),
        ("SPIN_VARIABLE_RETENTION", "30d".into()),
        ("SPIN_VARIABLE_RETENTION_MESSAGES", "3s".into()),
        ("SPIN_VARIABLE_RETENTION_REJECTED", "3s".into()),
        ("SPIN_VARIABLE_RETENTION_CRON_RUNS", "30d".into()),
        ("SPIN_VARIABLE_RETENTION_REPORTS", "365d".into()),
    ]
}

/// `device`'s document with one row at each of `times` (ms).
fn rows_at(device: &str, times: &[i64]) -> Vec<u8> {
    let rows: Vec<Value> = times
        .iter()
        .map(|ts| json!({ "timestamp": ts, "temperature": 20.5 }))
        .collect();
    serde_json::to_vec(&json!({ "deviceinfo": { "deviceid": device }, "tsdata": rows })).unwrap()
}

fn insert(host: &Host, device: &str, times: &[i64]) {
    let answer = post(
        &host.url(&format!("/insert/{device}")),
        "application/json",
        &rows_at(device, times),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
}

/// The timestamps (ms) of `device`'s rows, as fetch answers them.
fn times(host: &Host, device: &str) -> Vec<i64> {
    fetch_rows(host, device)
        .unwrap_or_default()
        .iter()
        .map(|row| row["timestamp"].as_i64().unwrap())
        .collect()
}

fn admin(host: &Host, method: &str, path: &str) -> Value {
    let answer = call(method, &host.url(path), Some(ADMIN), b"");
    assert_eq!(answer.status, 200, "{method} {path}: {}", answer.text());
    answer.json()
}

/// The scenario both backends run, on a host started with `retention_env`
/// and `manifest`: returns what the pass deleted.
fn expire_on(host: &Host) -> Value {
    let now = now_ms();
    insert(
        host,
        "old",
        &[now - 40 * DAY, now - 39 * DAY, now - 10 * DAY],
    );
    insert(host, "keeper", &[now - 40 * DAY, now - 10 * DAY]);
    insert(host, "short", &[now - 10 * DAY, now - 3_600_000]);
    // The sample's rows are of 2020: its daily report, and the run that
    // wrote it, are older than their retentions too.
    assert_eq!(insert_sample(host).status, 200);
    let run = admin(
        host,
        "POST",
        "/admin/cron/run?component=daily-report&at=2020-02-19T00:05:00Z",
    );
    assert_eq!(run["status"], "ok", "{run}");
    let before = get(&host.url("/reports?kind=daily")).json();
    assert_eq!(
        before["count"], 4,
        "a report per device before the pass: {before}"
    );
    // `keeper` is kept for ever, whatever `retention` says.
    let kept = admin(host, "PUT", "/admin/retention/devices/keeper?keep=forever");
    assert_eq!(kept, json!({ "device": "keeper", "keep": "forever" }));
    let policy = admin(host, "GET", "/admin/retention");
    assert_eq!(policy["telemetry"], "30days");
    assert_eq!(policy["devices"], json!({ "short": "5days" }));
    assert_eq!(policy["overrides"], json!({ "keeper": "forever" }));

    // A dead letter, as old as the messages.
    let mut publisher = Publisher::connect(host.mqtt_port, "retention-publisher");
    publisher.publish("devices/old/telemetry", 1, b"not a document".to_vec());
    assert_eq!(fetch_rows(host, "_rejected").unwrap().len(), 1);

    // Every message so far is past `retention_messages` (3 s), and the dead
    // letter past `retention_rejected`; one more message is not.
    std::thread::sleep(Duration::from_millis(3500));
    insert(host, "fresh", &[now]);
    let deleted = admin(host, "POST", "/admin/retention/run");

    assert_eq!(times(host, "old"), [now - 10 * DAY]);
    assert_eq!(times(host, "keeper"), [now - 40 * DAY, now - 10 * DAY]);
    assert_eq!(times(host, "short"), [now - 3_600_000]);
    assert_eq!(times(host, "fresh"), [now]);
    assert_eq!(times(host, "sample"), Vec::<i64>::new());
    let messages = fetch_rows(host, "messages").unwrap();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["device"], "fresh");
    assert_eq!(fetch_rows(host, "_cron_runs").unwrap(), Vec::<Value>::new());
    assert_eq!(fetch_rows(host, "_rejected").unwrap(), Vec::<Value>::new());
    assert_eq!(get(&host.url("/reports?kind=daily")).json()["count"], 0);
    // A day's report over the expired rows has nothing left to report.
    let rerun = admin(
        host,
        "POST",
        "/admin/cron/run?component=daily-report&at=2020-02-19T00:05:00Z",
    );
    assert_eq!(rerun["status"], "ok", "{rerun}");
    let report = get(&host.url("/reports/daily-sample-2020-02-18")).json();
    assert_eq!(report["body"]["rows"], 0, "{report}");

    // Back to the manifest's and the default's: `keeper`'s old row goes.
    let cleared = admin(host, "DELETE", "/admin/retention/devices/keeper");
    assert_eq!(cleared, json!({ "device": "keeper", "cleared": true }));
    admin(host, "POST", "/admin/retention/run");
    assert_eq!(times(host, "keeper"), [now - 10 * DAY]);
    deleted
}

#[test]
fn the_embedded_store_expires_rows_older_than_their_retention() {
    let dir = TempDir::new().unwrap();
    let env = retention_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let host = Host::start_with_env(&manifest(dir.path()), &dir.path().join("data"), &[], &env);
    let deleted = expire_on(&host);
    assert_eq!(
        deleted,
        json!({
            // old 2, short 1, sample 6.
            "telemetry": 9,
            // every message but fresh's: old, keeper, short, sample.
            "messages": 4,
            "rejected": 1,
            "cron_runs": 1,
            "reports": 4,
        })
    );
    let metrics = get(&host.url("/metrics")).text();
    assert!(
        metrics.contains(r#"cromflag_retention_deleted_rows_total{container_kind="device"} 10"#),
        "{metrics}"
    );
}

/// Host A keeps its data in host B through B's WebAPI: A's pass deletes
/// with `DELETE containers/{c}/rows`, and B no longer has the rows.
#[test]
fn over_the_webapi_the_host_deletes_expired_rows_itself() {
    let dir = TempDir::new().unwrap();
    let b = Host::start_with_env(
        &repo_root().join("spin.toml"),
        &dir.path().join("b"),
        &["--webapi", "127.0.0.1:0"],
        &[],
    );
    let port = b.webapi_addr.unwrap().port();
    let mut env = retention_env();
    env.extend([
        ("SPIN_VARIABLE_STORE", "griddb".into()),
        (
            "SPIN_VARIABLE_GRIDDB_URL",
            format!("http://127.0.0.1:{port}/griddb"),
        ),
    ]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = Host::start_with_env(&manifest(dir.path()), &dir.path().join("a"), &[], &env);
    let deleted = expire_on(&a);
    // The WebAPI answers 204 whatever the keys: A counts the keys it sent.
    assert_eq!(deleted["telemetry"], 9);
    assert_eq!(deleted["messages"], 4);
    assert_eq!(deleted["rejected"], 1);
    // B, read directly, has what A's fetches saw.
    let now = now_ms();
    let old = times(&b, "old");
    assert_eq!(old.len(), 1);
    assert!(old[0] > now - 11 * DAY);
    assert_eq!(times(&b, "sample"), Vec::<i64>::new());
    assert_eq!(fetch_rows(&b, "messages").unwrap().len(), 1);
}

/// A pass deleting a large backlog while devices keep sending: every
/// insert is answered 200 and stored, and the backlog is gone.
#[test]
fn ingest_goes_on_while_a_pass_deletes_and_the_timer_runs_passes() {
    let dir = TempDir::new().unwrap();
    let mut env = retention_env();
    env.push(("SPIN_VARIABLE_RETENTION_INTERVAL", "1s".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let host = Host::start_with_env(&manifest(dir.path()), &dir.path().join("data"), &[], &env);
    // 20,000 expired rows, in documents of 1,000 (the timer may already be
    // deleting the first while the last arrive).
    let start = now_ms() - 60 * DAY;
    for chunk in 0..20 {
        let times: Vec<i64> = (0..1000)
            .map(|i| start + (chunk * 1000 + i) * 1000)
            .collect();
        insert(&host, "backlog", &times);
    }
    let url = host.url("/insert/live");
    let writer = std::thread::spawn(move || {
        let base = now_ms();
        for i in 0..300 {
            let answer = post(&url, "application/json", &rows_at("live", &[base + i]));
            assert_eq!(answer.status, 200, "{}", answer.text());
        }
        base
    });
    // The timer's passes (every second) run while the writer writes.
    let base = writer.join().unwrap();
    wait_until("the backlog is deleted by the timer's passes", || {
        times(&host, "backlog").is_empty().then_some(())
    });
    let live = times(&host, "live");
    assert_eq!(live, (0..300).map(|i| base + i).collect::<Vec<_>>());
}
