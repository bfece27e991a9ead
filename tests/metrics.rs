//! `GET /metrics`: parsed as Prometheus parses it (prometheus-parse), its
//! counters move by exactly what was ingested over HTTP and MQTT, accepted
//! and rejected; it needs a read token where tokens are required.

use cromflag_tests::access::{bearer, call, cli, token_of};
use cromflag_tests::mqtt::Publisher;
use cromflag_tests::{get, insert_sample, post, repo_root, wait_for_rows, wait_until, Host};
use prometheus_parse::{Scrape, Value};
use serde_json::json;
use std::io::BufRead;
use tempfile::TempDir;

/// The host's metrics, parsed.
fn scrape(host: &Host) -> Scrape {
    let answer = get(&host.url("/metrics"));
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(
        answer
            .content_type
            .starts_with("application/openmetrics-text"),
        "{}",
        answer.content_type
    );
    let text = answer.text();
    assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    Scrape::parse(text.as_bytes().lines()).expect("Prometheus text")
}

/// The value of the sample `metric{labels}`, 0 when it has no sample yet
/// (a counter with those labels was never moved).
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found = scrape.samples.iter().find(|sample| {
        sample.metric == metric
            && labels
                .iter()
                .all(|(name, value)| sample.labels.get(name) == Some(value))
    });
    match found.map(|sample| &sample.value) {
        None => 0.0,
        Some(Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)) => *v,
        Some(other) => panic!("{metric} is not a number: {other:?}"),
    }
}

#[test]
fn after_one_sample_insert_six_rows_came_over_http() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    let stored = insert_sample(&host);
    assert_eq!(stored.status, 200, "{}", stored.text());
    let text = get(&host.url("/metrics")).text();
    assert!(
        text.lines()
            .any(|line| line == r#"cromflag_ingest_rows_total{transport="http"} 6"#),
        "{text}"
    );
}

#[test]
fn counters_move_by_exactly_what_was_ingested() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    let before = scrape(&host);

    // Over HTTP: the sample (6 rows), then a body that is no JSON.
    assert_eq!(insert_sample(&host).status, 200);
    let refused = post(
        &host.url("/insert/sample"),
        "application/json",
        b"{not json",
    );
    assert_eq!(refused.status, 400, "{}", refused.text());
    // Over MQTT: a document of 2 rows, then a payload that is no document.
    let mut publisher = Publisher::connect(host.mqtt_port, "metrics-publisher");
    let two_rows = json!({
        "deviceinfo": { "deviceid": "m1" },
        "tsdata": [ { "timestamp": 1, "v": 1 }, { "timestamp": 2, "v": 2 } ],
    });
    publisher.publish("devices/m1/telemetry", 1, two_rows.to_string().into_bytes());
    publisher.publish("devices/m1/telemetry", 1, b"not a document".to_vec());
    wait_for_rows(&host, "m1", 2);
    wait_for_rows(&host, "_rejected", 1);

    let after = scrape(&host);
    let moved = |metric: &str, labels: &[(&str, &str)]| {
        value(&after, metric, labels) - value(&before, metric, labels)
    };
    let rows = "cromflag_ingest_rows_total";
    assert_eq!(moved(rows, &[("transport", "http")]), 6.0);
    assert_eq!(moved(rows, &[("transport", "mqtt")]), 2.0);
    let messages = "cromflag_ingest_messages_total";
    for (transport, outcome, count) in [
        ("http", "stored", 1.0),
        ("http", "rejected", 1.0),
        ("http", "failed", 0.0),
        ("mqtt", "stored", 1.0),
        ("mqtt", "rejected", 1.0),
    ] {
        assert_eq!(
            moved(messages, &[("transport", transport), ("outcome", outcome)]),
            count,
            "{transport} {outcome}"
        );
    }
    // The two inserts, by route and status class; the fetches that waited
    // for the rows under theirs.
    let requests = "cromflag_http_request_duration_seconds_count";
    assert_eq!(
        moved(requests, &[("route", "/insert/..."), ("status", "2xx")]),
        1.0
    );
    assert_eq!(
        moved(requests, &[("route", "/insert/..."), ("status", "4xx")]),
        1.0
    );
    assert!(moved(requests, &[("route", "/fetch/..."), ("status", "2xx")]) >= 2.0);
    // Three writes at least (HTTP, MQTT, the dead letter), each committed.
    assert!(moved("cromflag_store_commit_batch_size_count", &[]) >= 3.0);
    assert!(moved("cromflag_store_commit_duration_seconds_count", &[]) >= 3.0);
    // Nothing is left in flight or alive once all was answered, and the
    // publisher's connection is open.
    assert_eq!(value(&after, "cromflag_mqtt_inflight", &[]), 0.0);
    assert_eq!(value(&after, "cromflag_mqtt_connections", &[]), 1.0);
    wait_until("no instance alive", || {
        (value(&scrape(&host), "cromflag_component_instances", &[]) == 0.0).then_some(())
    });
    assert_eq!(value(&after, "cromflag_store_errors_total", &[]), 0.0);
}

#[test]
fn metrics_need_a_read_token_where_tokens_are_required() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let host = Host::start_with_env(
        &repo_root().join("spin.toml"),
        &data,
        &[],
        &[("SPIN_VARIABLE_ACCESS", "required")],
    );
    assert_eq!(get(&host.url("/metrics")).status, 401);
    let reader = token_of(&cli(&data, &["readers", "add", "prometheus"], &[]));
    let answer = call("GET", &host.url("/metrics"), Some(&bearer(&reader)), b"");
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(answer
        .text()
        .contains("# TYPE cromflag_component_instances gauge"));
}
