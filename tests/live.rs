//! The built-in page and live streams: `GET /` serves the page, `/stream/<device>`
//! pushes rows committed after a client connected (from HTTP and MQTT), a slow
//! client is dropped with an event, and the page works in a real browser:
//! charts, the device picker, device health and open alarms.

use cromflag_tests::mqtt::Publisher;
use cromflag_tests::sse::Stream;
use cromflag_tests::{
    get, insert_sample, insert_sample_as, post, repo_root, run_browser_script, run_page_test,
    sample_payload, Host,
};
use serde_json::{json, Value};
use std::io::Read;
use tempfile::TempDir;

fn sample_rows() -> Vec<Value> {
    let doc: Value = serde_json::from_slice(&sample_payload()).unwrap();
    doc["tsdata"].as_array().unwrap().clone()
}

#[test]
fn the_page_is_served_with_its_bundle() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    for path in ["/", "/ui"] {
        let page = get(&host.url(path));
        assert_eq!(page.status, 200);
        assert!(page.content_type.starts_with("text/html"));
        assert!(page.text().contains("/ui/app.js"), "{}", page.text());
    }
    // Before any insert the page's device list is empty, not missing.
    let devices = get(&host.url("/fetch/devices"));
    assert_eq!((devices.status, devices.text().as_str()), (200, "[]"));
    let script = get(&host.url("/ui/app.js"));
    assert_eq!(script.status, 200);
    assert!(script.content_type.starts_with("text/javascript"));
    // uPlot is in the bundle: nothing is fetched from elsewhere.
    assert!(script.text().contains("uplot"), "no uPlot in the bundle");
    assert!(
        !script.text().contains("https://cdn"),
        "the page must not need a CDN"
    );
    assert_eq!(get(&host.url("/ui/app.css")).status, 200);
}

/// `/stream/<device>` takes any device id, percent-encoded as the page sends
/// it, and hears that device only: not the one differing by case.
#[test]
fn a_stream_follows_a_device_by_its_id() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    let mut unicode = Stream::open(&host, "capteur-été");
    let mut upper = Stream::open(&host, "Sensor1");
    for id in ["sensor1", "capteur-été", "Sensor1"] {
        assert_eq!(insert_sample_as(&host, id).status, 200, "{id}");
    }
    for stream in [&mut unicode, &mut upper] {
        let (name, data) = stream.next_event();
        assert_eq!(name, "rows");
        let rows: Value = serde_json::from_str(&data).unwrap();
        assert_eq!(rows.as_array().unwrap(), &sample_rows());
    }
    // `Sensor1`'s stream skipped `sensor1`'s batch: its next batch is its own.
    for (id, ts, v) in [("sensor1", 7, 1), ("Sensor1", 8, 2)] {
        let doc =
            json!({ "deviceinfo": { "deviceid": id }, "tsdata": [{ "timestamp": ts, "v": v }] });
        let url = host.url(&format!("/insert/{id}"));
        let answer = post(&url, "application/json", doc.to_string().as_bytes());
        assert_eq!(answer.status, 200, "{id}: {}", answer.text());
    }
    let (name, data) = upper.next_event();
    assert_eq!(name, "rows");
    let rows: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(
        (&rows[0]["timestamp"], &rows[0]["v"]),
        (&json!(8), &json!(2))
    );
    let refused = get(&host.url("/stream/a%23b"));
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert_eq!(refused.json()["error"], "invalid device id");
}

#[test]
fn a_stream_receives_rows_committed_after_it_connected() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    let mut first = Stream::open(&host, "sample");
    let mut second = Stream::open(&host, "sample");
    let mut other = Stream::open(&host, "other");

    assert_eq!(insert_sample(&host).status, 200);
    for stream in [&mut first, &mut second] {
        let (name, data) = stream.next_event();
        assert_eq!(name, "rows");
        let rows: Value = serde_json::from_str(&data).unwrap();
        assert_eq!(rows.as_array().unwrap(), &sample_rows());
    }

    // MQTT ingestion streams the same way.
    let mut publisher = Publisher::connect(host.mqtt_port, "live-test");
    let doc = json!({ "deviceinfo": {}, "tsdata": [{ "timestamp": 1600000000000i64, "temperature": 70.5 }] });
    publisher.publish("devices/sample/telemetry", 1, doc.to_string().into_bytes());
    let (name, data) = first.next_event();
    assert_eq!(name, "rows");
    let rows: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(rows[0]["timestamp"], json!(1600000000000i64));
    assert_eq!(rows[0]["temperature"], json!(70.5));

    // A stream hears only its own device.
    let answer = post(
        &host.url("/insert/other"),
        "application/json",
        json!({ "deviceinfo": { "deviceid": "other" }, "tsdata": [{ "timestamp": 5, "v": 1 }] })
            .to_string()
            .as_bytes(),
    );
    assert_eq!(answer.status, 200);
    let (name, data) = other.next_event();
    assert_eq!(
        (name.as_str(), data.as_str()),
        ("rows", r#"[{"timestamp":5,"v":1}]"#)
    );
}

#[test]
fn a_client_that_does_not_read_is_dropped_and_ingest_goes_on() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    let mut stuck = Stream::open(&host, "busy");
    // Thousands of commits while `stuck` reads nothing: its socket, its own
    // buffer and then the shared one fill up, and it is dropped.
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let url = host.url("/insert/busy");
            std::thread::spawn(move || {
                for i in 0..1000i64 {
                    let pad = "x".repeat(2000);
                    let doc = json!({ "deviceinfo": { "deviceid": "busy" }, "tsdata": [{ "timestamp": w * 1_000_000 + i, "pad": pad }] });
                    let answer = post(&url, "application/json", doc.to_string().as_bytes());
                    assert_eq!(answer.status, 200, "ingest must not wait for a stream client");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    // Now read: the rows that were buffered, then the notice, then the end.
    loop {
        let (name, data) = stuck.next_event();
        if name == "dropped" {
            let reason: Value = serde_json::from_str(&data).unwrap();
            assert!(reason["missed_batches"].as_u64().unwrap() > 0, "{reason}");
            break;
        }
        assert_eq!(name, "rows");
    }
    let mut rest = Vec::new();
    let _ = stuck.reader.read_to_end(&mut rest);
    // The host is fine.
    assert_eq!(get(&host.url("/fetch/busy?limit=1")).status, 200);
}

/// Headless Chromium (Debian's `chromium`) driven by Playwright from `ui/`:
/// load the page, post the sample, and read the temperature chart's points
/// from the page's state. The screenshot lands in `target/ui-screenshot.png`.
#[test]
fn the_page_charts_the_sample_in_a_browser() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    let screenshot = repo_root().join("target/ui-screenshot.png");
    run_page_test(&host, &screenshot, &[]);
    assert!(screenshot.exists());
}

/// The page's device health and alarms, in headless Chromium
/// (`tests/browser/alarms-test.mjs`): with a 2 s inactivity timeout the
/// sample goes quiet and raises an alarm; the page shows the device inactive
/// with its last-seen time, a badge with its one open alarm, and the alarm in
/// its list; its Acknowledge button acknowledges it on the host. The
/// screenshot lands in `target/ui-alarms-screenshot.png`.
#[test]
fn the_page_shows_open_alarms_and_acknowledges_them() {
    let dir = TempDir::new().unwrap();
    let host = Host::start_inactive_after_2s(dir.path());
    assert_eq!(insert_sample(&host).status, 200);
    let open = |host: &Host| get(&host.url("/alarms?state=open")).json();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while open(&host)["count"] != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "no inactivity alarm within 10 s: {}",
            open(&host)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let screenshot = repo_root().join("target/ui-alarms-screenshot.png");
    run_browser_script("alarms-test.mjs", &host, &screenshot, &[]);
    // Acknowledged on the host, and still open (the device has not sent).
    let listed = open(&host);
    assert_eq!(listed["count"], 1, "{listed}");
    let alarm = &listed["alarms"][0];
    assert_eq!(
        (&alarm["device"], &alarm["rule"], &alarm["state"]),
        (
            &json!("sample"),
            &json!("inactivity"),
            &json!("acknowledged")
        ),
        "{alarm}"
    );
    assert!(alarm["acknowledged"].is_i64(), "{alarm}");
}
