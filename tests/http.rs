//! The HTTP API of the original stack, against the real binary and its real store.

use cromflag_tests::{
    device_once_seen, fetch_rows, get, insert_sample, insert_sample_as, path_segment, post,
    repo_root, request, sample_payload, write_manifest, Host,
};
use serde_json::{json, Value};
use tempfile::TempDir;

const SAMPLE_RANGE: &str = "/fetch/sample?from=1582046738255&to=1582046768255";

fn sample_rows() -> Vec<Value> {
    let doc: Value = serde_json::from_slice(&sample_payload()).unwrap();
    doc["tsdata"].as_array().unwrap().clone()
}

/// A fetched row equals a sample row: same fields, same values (key order aside).
fn assert_same_rows(fetched: &[Value], expected: &[Value]) {
    assert_eq!(fetched.len(), expected.len(), "{fetched:#?}");
    for (got, want) in fetched.iter().zip(expected) {
        assert_eq!(got.as_object().unwrap(), want.as_object().unwrap());
    }
}

#[test]
fn the_sample_round_trips_verbatim() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());

    let sent = chrono::Utc::now().timestamp_millis();
    let answer = insert_sample(&host);
    assert_eq!((answer.status, answer.text().as_str()), (200, "True"));

    let answer = get(&host.url(SAMPLE_RANGE));
    assert_eq!(answer.status, 200);
    assert!(answer.content_type.starts_with("application/json"));
    let rows = answer.json();
    // `from` is inclusive and `to` exclusive: the first three of six rows.
    assert_same_rows(rows.as_array().unwrap(), &sample_rows()[..3]);
    // Columns come in schema order, the row key first, and FLOAT keeps `75.0`.
    assert!(
        answer.text().starts_with(r#"[{"timestamp":1582046738255,"#),
        "{}",
        answer.text()
    );
    assert!(answer.text().contains(r#""humidity":75.0"#));

    assert_same_rows(&fetch_rows(&host, "sample").unwrap(), &sample_rows());
    // The device's metadata, then its health once the host wrote it.
    let last_seen = device_once_seen(&host, "sample")["last_seen"].clone();
    assert!(last_seen.as_i64().unwrap() >= sent, "{last_seen}");
    assert_eq!(
        fetch_rows(&host, "devices").unwrap(),
        [
            json!({ "deviceid": "sample", "batt_lvl": 78, "fw_ver": "12345.009",
                 "last_seen": last_seen, "active": true })
        ]
    );

    // Posting the same batch again upserts on the timestamp: still six rows.
    let answer = insert_sample(&host);
    assert_eq!(answer.status, 200);
    assert_eq!(fetch_rows(&host, "sample").unwrap().len(), 6);
}

#[test]
fn messagepack_is_the_same_document() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    let mut doc: Value = serde_json::from_slice(&sample_payload()).unwrap();
    doc["deviceinfo"]["deviceid"] = json!("packed");
    let packed = rmp_serde::to_vec_named(&doc).unwrap();

    let answer = post(&host.url("/insert/packed"), "application/msgpack", &packed);
    assert_eq!((answer.status, answer.text().as_str()), (200, "True"));
    assert_same_rows(&fetch_rows(&host, "packed").unwrap(), &sample_rows());
}

#[test]
fn rows_survive_a_restart() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    assert_eq!(insert_sample(&host).status, 200);
    // Killed, not shut down: an acknowledged batch must already be on disk.
    host.stop();

    let host = Host::start(dir.path());
    assert_same_rows(
        get(&host.url(SAMPLE_RANGE)).json().as_array().unwrap(),
        &sample_rows()[..3],
    );
    assert_eq!(fetch_rows(&host, "devices").unwrap().len(), 1);
}

/// Every kind of bad input is a 4xx with a JSON body naming the problem, and
/// writes nothing.
#[test]
fn bad_input_is_refused_and_writes_nothing() {
    let dir = TempDir::new().unwrap();
    let host = Host::start_with(
        &repo_root().join("spin.toml"),
        dir.path(),
        &["--max-body-bytes", "65536"],
    );
    assert_eq!(insert_sample(&host).status, 200);
    let stored = || {
        (
            fetch_rows(&host, "sample").unwrap(),
            fetch_rows(&host, "devices").unwrap(),
        )
    };
    let before = stored();

    let sample = String::from_utf8(sample_payload()).unwrap();
    let later = |field: &str, value: &str| {
        format!(
            r#"{{"deviceinfo":{{"deviceid":"sample","batt_lvl":5,"fw_ver":"2"}},
               "tsdata":[{{"timestamp":1600000000000,"temperature":1.5}},{{"timestamp":1600000001000,"{field}":{value}}}]}}"#
        )
    };
    let huge = format!(
        r#"{{"deviceinfo":{{"deviceid":"sample"}},"tsdata":[{{"timestamp":1600000000000,"note":"{}"}}]}}"#,
        "x".repeat(70_000)
    );
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        (
            "malformed JSON",
            "application/json",
            sample[..sample.len() / 2].to_owned(),
            400,
            "malformed JSON",
        ),
        (
            "malformed MessagePack",
            "application/msgpack",
            "\u{c1}\u{c1}".to_owned(),
            400,
            "malformed MessagePack",
        ),
        (
            "a wrong deviceid",
            "application/json",
            sample.replace("\"sample\"", "\"intruder\""),
            400,
            "deviceinfo.deviceid",
        ),
        (
            "a missing timestamp",
            "application/json",
            later("timestamp_", "1").replace(r#""timestamp":1600000001000,"#, ""),
            400,
            "timestamp",
        ),
        (
            "a float timestamp",
            "application/json",
            later("hour", "1").replace("1600000001000", "1600000001000.5"),
            400,
            "timestamp",
        ),
        (
            "a string timestamp",
            "application/json",
            later("hour", "1").replace("1600000001000", "\"soon\""),
            400,
            "timestamp",
        ),
        (
            "a type conflict",
            "application/json",
            later("motion", "\"yes\""),
            400,
            "motion",
        ),
        (
            "a float in a LONG column",
            "application/json",
            later("hour", "1.5"),
            400,
            "hour",
        ),
        (
            "an object value",
            "application/json",
            later("extra", "{\"a\":1}"),
            400,
            "extra",
        ),
        (
            "a body over the limit",
            "application/json",
            huge.clone(),
            413,
            "limit_bytes",
        ),
    ];
    for (what, content_type, body, status, named) in cases {
        let answer = post(&host.url("/insert/sample"), content_type, body.as_bytes());
        assert_eq!(answer.status, status, "{what}: {}", answer.text());
        assert!(
            answer.content_type.starts_with("application/json"),
            "{what}: {}",
            answer.content_type
        );
        let error = answer.json();
        assert!(error["error"].is_string(), "{what}: {error}");
        assert!(
            error.to_string().contains(named),
            "{what} should name `{named}`: {error}"
        );
        assert_eq!(stored(), before, "{what} changed the store");
    }

    // Without a Content-Length the limit holds all the same.
    let answer = cromflag_tests::post_chunked(
        &host.url("/insert/sample"),
        "application/json",
        huge.as_bytes(),
    );
    assert_eq!(answer.status, 413, "{}", answer.text());
    assert_eq!(stored(), before);

    // The original's injection hole: from/to are numbers or a 400.
    let answer = get(&host.url("/fetch/sample?from=0)%20OR%20(1=1"));
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["detail"]["parameter"], "from");

    // The sample body posted to another device is refused and creates nothing.
    let answer = post(
        &host.url("/insert/other"),
        "application/json",
        &sample_payload(),
    );
    assert_eq!(answer.status, 400, "{}", answer.text());
    assert_eq!(answer.json()["detail"]["field"], "deviceinfo.deviceid");
    assert_eq!(fetch_rows(&host, "other"), None);
    assert_eq!(stored(), before);

    // Unknown routes and methods.
    let answer = get(&host.url("/nowhere"));
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json()["detail"]["path"], "/nowhere");
    assert_eq!(get(&host.url("/insert")).status, 404);
    assert_eq!(request("DELETE", &host.url("/insert/sample")).status, 405);
    assert_eq!(get(&host.url("/fetch/never_seen")).status, 404);
    assert_eq!(stored(), before);

    // A chunked body under the limit is stored as any other.
    let answer = cromflag_tests::post_chunked(
        &host.url("/insert/chunked"),
        "application/json",
        sample.replace("\"sample\"", "\"chunked\"").as_bytes(),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(fetch_rows(&host, "chunked").unwrap().len(), 6);
}

/// 32 clients post distinct batches at once, some bringing new columns; every
/// acknowledged row is there afterwards, exactly once, with its values.
#[test]
fn concurrent_clients_lose_nothing() {
    const CLIENTS: i64 = 32;
    const BATCHES: i64 = 8;
    const ROWS: i64 = 25;
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    let url = host.url("/insert/load");

    std::thread::scope(|scope| {
        for client in 0..CLIENTS {
            let url = &url;
            scope.spawn(move || {
                for batch in 0..BATCHES {
                    let rows: Vec<Value> = (0..ROWS)
                        .map(|i| {
                            let ts = 1_700_000_000_000 + (client * BATCHES + batch) * ROWS + i;
                            // Four clients bring a column of their own, racing to add it.
                            json!({ "timestamp": ts, "client": client, "seq": i, format!("extra{}", client % 4): 1.5 })
                        })
                        .collect();
                    let doc = json!({ "deviceinfo": { "deviceid": "load", "batt_lvl": client }, "tsdata": rows });
                    let answer = cromflag_tests::post(url, "application/json", doc.to_string().as_bytes());
                    assert_eq!(answer.status, 200, "client {client}: {}", answer.text());
                }
            });
        }
    });

    let rows = fetch_rows(&host, "load").unwrap();
    assert_eq!(rows.len() as i64, CLIENTS * BATCHES * ROWS);
    for (index, row) in rows.iter().enumerate() {
        let index = index as i64;
        assert_eq!(
            row["timestamp"],
            json!(1_700_000_000_000 + index),
            "rows come in key order"
        );
        let client = index / (BATCHES * ROWS);
        assert_eq!(row["client"], json!(client));
        assert_eq!(row["seq"], json!(index % ROWS));
        assert_eq!(row[format!("extra{}", client % 4)], json!(1.5));
    }
    let devices = fetch_rows(&host, "devices").unwrap();
    assert_eq!(devices.len(), 1);
}

/// A component that traps costs one 500; the host keeps serving.
#[test]
fn a_trapping_component_is_a_500_and_the_host_goes_on() {
    let dir = TempDir::new().unwrap();
    let triggers = r#"
[[trigger.http]]
route = "/insert/..."
component = "insert"
[[trigger.http]]
route = "/fault/..."
component = "fault"
"#;
    let manifest = write_manifest(dir.path(), "faulty", triggers, &["insert", "fault"]);
    let mut host = Host::start_with(&manifest, &dir.path().join("data"), &[]);

    for _ in 0..3 {
        let answer = post(&host.url("/fault/now"), "application/json", b"{}");
        assert_eq!(answer.status, 500);
        assert_eq!(answer.json()["detail"]["component"], "fault");
    }
    assert!(host.is_alive());
    let answer = insert_sample(&host);
    assert_eq!((answer.status, answer.text().as_str()), (200, "True"));
    assert!(
        host.log().contains("component failed"),
        "the trap is logged:\n{}",
        host.log()
    );
}

/// The issue's "must show": a UUID is a device id like any other.
#[test]
fn a_uuid_device_is_stored_and_fetched_back() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    let uuid = "123e4567-e89b-12d3-a456-426614174000";
    let sent = chrono::Utc::now().timestamp_millis();
    let answer = insert_sample_as(&host, uuid);
    assert_eq!(
        (answer.status, answer.text().as_str()),
        (200, "True"),
        "{}",
        answer.text()
    );
    let rows = get(&host.url(&format!("/fetch/{uuid}")));
    assert_eq!(rows.status, 200, "{}", rows.text());
    assert_same_rows(rows.json().as_array().unwrap(), &sample_rows());
    let last_seen = device_once_seen(&host, uuid)["last_seen"].clone();
    assert!(last_seen.as_i64().unwrap() >= sent, "{last_seen}");
    assert_eq!(
        fetch_rows(&host, "devices").unwrap(),
        [
            json!({ "deviceid": uuid, "batt_lvl": 78, "fw_ver": "12345.009",
                 "last_seen": last_seen, "active": true })
        ]
    );
}

/// UUIDs, MAC addresses, Unicode, dots and spaces: stored under their own
/// container, read back by the id, listed by the id; a valid lower-case
/// container name (the Flask collector's `sample`) keeps its own container.
#[test]
fn any_device_id_round_trips() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    let ids = [
        "sample",
        "123e4567-e89b-12d3-a456-426614174000",
        "00:1A:2B:3C:4D:5E",
        "sensor.kitchen",
        "salle 2 (nord)",
        "温度計",
    ];
    for id in ids {
        let answer = insert_sample_as(&host, id);
        assert_eq!(answer.status, 200, "{id}: {}", answer.text());
    }
    // A Unicode id as a client sends it: percent-encoded UTF-8.
    let mut doc: Value = serde_json::from_slice(&sample_payload()).unwrap();
    doc["deviceinfo"]["deviceid"] = json!("capteur-été");
    let answer = post(
        &host.url("/insert/capteur-%C3%A9t%C3%A9"),
        "application/json",
        doc.to_string().as_bytes(),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());

    let mut listed: Vec<String> = fetch_rows(&host, "devices")
        .unwrap()
        .iter()
        .map(|d| d["deviceid"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    let mut expected: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    expected.push("capteur-été".to_owned());
    expected.sort();
    assert_eq!(listed, expected);

    let mut containers = Vec::new();
    for id in &expected {
        assert_same_rows(&fetch_rows(&host, id).unwrap(), &sample_rows());
        let segment = path_segment(id);
        let latest = get(&host.url(&format!("/devices/{segment}/latest")));
        assert_eq!(latest.json(), sample_rows()[5], "{id}");
        let schema = get(&host.url(&format!("/devices/{segment}/schema"))).json();
        assert_eq!(schema["device"], json!(id));
        let container = schema["container"].as_str().unwrap().to_owned();
        if id == "sample" {
            assert_eq!(container, "sample", "a valid name keeps its container");
        } else {
            assert!(container.starts_with("b32_"), "{id}: {container}");
        }
        containers.push(container);
    }
    containers.sort();
    containers.dedup();
    assert_eq!(containers.len(), expected.len(), "{containers:?}");

    // The path's device and the body's deviceid must still match.
    let answer = post(
        &host.url("/insert/capteur-%C3%A9t%C3%A9"),
        "application/json",
        doc.to_string()
            .replace("capteur-été", "capteur-ete")
            .as_bytes(),
    );
    assert_eq!(answer.status, 400, "{}", answer.text());
    assert_eq!(answer.json()["detail"]["expected"], "capteur-été");
}

/// GridDB matches container names case-insensitively: `Sensor1` and `sensor1`
/// are still two devices with two containers.
#[test]
fn ids_differing_only_by_case_stay_distinct() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    for (id, temperature) in [("Sensor1", 1.5), ("sensor1", 2.5), ("SENSOR1", 3.5)] {
        let doc = json!({
            "deviceinfo": { "deviceid": id },
            "tsdata": [{ "timestamp": 1600000000000i64, "temperature": temperature }],
        });
        let answer = post(
            &host.url(&format!("/insert/{id}")),
            "application/json",
            doc.to_string().as_bytes(),
        );
        assert_eq!(answer.status, 200, "{id}: {}", answer.text());
    }
    let mut containers = Vec::new();
    for (id, temperature) in [("Sensor1", 1.5), ("sensor1", 2.5), ("SENSOR1", 3.5)] {
        assert_eq!(
            fetch_rows(&host, id).unwrap(),
            [json!({ "timestamp": 1600000000000i64, "temperature": temperature })],
            "{id}"
        );
        let schema = get(&host.url(&format!("/devices/{id}/schema"))).json();
        containers.push(schema["container"].as_str().unwrap().to_ascii_lowercase());
    }
    assert_eq!(containers[1], "sensor1", "the lower-case id keeps its name");
    containers.sort();
    containers.dedup();
    assert_eq!(containers.len(), 3, "{containers:?}");
    assert_eq!(fetch_rows(&host, "devices").unwrap().len(), 3);
}

/// Ids with `/`, `+`, `#`, NUL or control characters, over 128 bytes, or
/// naming one of the stack's own containers: a 400 naming the device, and
/// nothing written.
#[test]
fn bad_device_ids_are_refused_naming_the_problem() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    let long = "x".repeat(129);
    for segment in [
        "a%2Fb",
        "a%2Bb",
        "a+b",
        "a%23b",
        "nul%00",
        "tab%09",
        long.as_str(),
        "messages",
        "_rejected",
    ] {
        let body = json!({ "deviceinfo": { "deviceid": "x" }, "tsdata": [] });
        let answer = post(
            &host.url(&format!("/insert/{segment}")),
            "application/json",
            body.to_string().as_bytes(),
        );
        assert_eq!(answer.status, 400, "{segment}: {}", answer.text());
        let error = answer.json();
        assert_eq!(error["error"], "invalid device id", "{segment}: {error}");
        assert!(error["detail"]["reason"].is_string(), "{segment}: {error}");
    }
    assert_eq!(fetch_rows(&host, "devices").unwrap(), Vec::<Value>::new());
    assert_eq!(get(&host.url("/fetch/a%23b")).status, 400);
}

/// Liveness and readiness probes answer without a token, even where tokens
/// are required, before any manifest route.
#[test]
fn probes_answer_without_a_token() {
    let dir = TempDir::new().unwrap();
    let host = Host::start_with_env(
        &repo_root().join("spin.toml"),
        dir.path(),
        &[],
        &[("SPIN_VARIABLE_ACCESS", "required")],
    );
    // Tokens are required here: a fetch without one is refused.
    assert_eq!(get(&host.url("/fetch/devices")).status, 401);

    let alive = get(&host.url("/healthz"));
    assert_eq!(alive.status, 200, "{}", alive.text());
    assert!(alive.content_type.starts_with("application/json"));
    assert_eq!(alive.json(), json!({ "status": "alive" }));

    let ready = get(&host.url("/readyz"));
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(
        ready.json(),
        json!({
            "ready": true,
            "checks": {
                "store": { "ok": true },
                "mqtt": { "ok": true, "state": "endpoint listening" },
            },
        })
    );
}
