//! A store that cannot grow (`--max-store-bytes`: SQLite's `max_page_count`,
//! as a full disk behaves): inserts answer a 503 that says so and leave
//! nothing behind, MQTT messages stay unacknowledged, and both go through by
//! themselves once deletes have made room.

use cromflag_tests::access::call;
use cromflag_tests::mqtt::Publisher;
use cromflag_tests::{fetch_rows, post, repo_root, wait_for_rows, Host};
use serde_json::{json, Value};
use std::time::Duration;
use tempfile::TempDir;

const DAY: i64 = 86_400_000;

/// `device`'s document of `n` rows, one a second from `start` (ms), each
/// carrying some text so that a few documents fill a small store.
fn document(device: &str, start: i64, n: i64) -> Vec<u8> {
    let rows: Vec<Value> = (0..n)
        .map(|i| json!({ "timestamp": start + i * 1000, "note": format!("{i:0>200}") }))
        .collect();
    serde_json::to_vec(&json!({ "deviceinfo": { "deviceid": device }, "tsdata": rows })).unwrap()
}

#[test]
fn a_full_store_refuses_writes_whole_and_recovers_once_rows_are_deleted() {
    let dir = TempDir::new().unwrap();
    let host = Host::start_with_env(
        &repo_root().join("spin.toml"),
        &dir.path().join("data"),
        &["--max-store-bytes", "2000000"],
        &[
            ("SPIN_VARIABLE_ADMIN_TOKEN", "full-admin"),
            ("SPIN_VARIABLE_RETENTION", "30d"),
        ],
    );
    // Old rows until the store is full: each document whole or not at all.
    let old = chrono::Utc::now().timestamp_millis() - 60 * DAY;
    let mut stored = 0;
    let refused = loop {
        let body = document("filler", old + stored * 1000, 500);
        let answer = post(&host.url("/insert/filler"), "application/json", &body);
        match answer.status {
            200 => stored += 500,
            _ => break answer,
        }
        assert!(stored < 100_000, "2 MB never filled up");
    };
    assert_eq!(refused.status, 503, "{}", refused.text());
    let error = refused.json();
    assert_eq!(error["error"], "store unavailable", "{error}");
    assert!(
        error["detail"]
            .as_str()
            .unwrap()
            .contains("the store is full"),
        "{error}"
    );
    let rows = |device: &str| fetch_rows(&host, device).map_or(0, |rows| rows.len());
    assert_eq!(
        rows("filler") as i64,
        stored,
        "the refused document left no row"
    );

    // An MQTT message meanwhile is kept unacknowledged, and retried.
    let mut publisher = Publisher::connect(host.mqtt_port, "full-publisher");
    publisher.send("devices/late/telemetry", 1, document("late", old, 300));
    assert!(
        publisher.wait_acked(1, Duration::from_secs(3)).is_none(),
        "a message is acknowledged only once stored"
    );
    assert_eq!(rows("late"), 0);

    // Retention deletes the old rows: room again, without a restart.
    let pass = call(
        "POST",
        &host.url("/admin/retention/run"),
        Some("Bearer full-admin"),
        b"",
    );
    assert_eq!(pass.status, 200, "{}", pass.text());
    assert_eq!(pass.json()["telemetry"].as_i64().unwrap(), stored);
    publisher
        .wait_acked(1, Duration::from_secs(30))
        .expect("the kept message goes through once there is room");
    // Its rows are 60 days old too, but it arrived after the pass.
    assert_eq!(wait_for_rows(&host, "late", 300).len(), 300);
    let now = chrono::Utc::now().timestamp_millis();
    let answer = post(
        &host.url("/insert/fresh"),
        "application/json",
        &document("fresh", now, 100),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(rows("fresh"), 100);
}
