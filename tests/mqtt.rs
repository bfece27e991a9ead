//! MQTT ingestion through a real Mosquitto broker and the real binary.

use cromflag_tests::mosquitto::Mosquitto;
use cromflag_tests::mqtt::{manifest, Publisher};
use cromflag_tests::{fetch_rows, sample_payload, wait_for_rows, Host};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use tempfile::TempDir;

const TELEMETRY: &str = "devices/+/telemetry";

fn sample_for(device: &str) -> Value {
    let mut doc: Value = serde_json::from_slice(&sample_payload()).unwrap();
    doc["deviceinfo"]["deviceid"] = json!(device);
    doc
}

/// One document with one row, at `ts`, carrying `seq`.
fn one_row(ts: i64, seq: i64) -> Vec<u8> {
    json!({ "deviceinfo": { "batt_lvl": 50 }, "tsdata": [{ "timestamp": ts, "seq": seq }] })
        .to_string()
        .into_bytes()
}

fn start_host(dir: &TempDir, broker: &Mosquitto, topic: &str, client_id: &str) -> Host {
    let manifest = manifest(dir.path(), &broker.address(), topic, 2);
    let host = Host::start_with(
        &manifest,
        &dir.path().join("data"),
        &["--mqtt-client-id", client_id],
    );
    host.wait_for_log("MQTT subscribed", 1);
    host
}

fn assert_sample_rows(host: &Host, device: &str) {
    let rows = wait_for_rows(host, device, 6);
    let expected = sample_for(device)["tsdata"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 6);
    for (got, want) in rows.iter().zip(&expected) {
        assert_eq!(got.as_object().unwrap(), want.as_object().unwrap());
    }
}

/// Publishes the sample for devices `q0`, `q1`, `q2` at QoS 0, 1, 2 through the
/// broker on `port` (`q2` as MessagePack), and checks that `host` stored each,
/// and dead-lettered a bad message.
fn every_qos_and_a_bad_message(host: &Host, port: u16) {
    let mut publisher = Publisher::connect(port, "qos-publisher");
    for qos in 0..=2u8 {
        let device = format!("q{qos}");
        let topic = format!("devices/{device}/telemetry");
        let payload = match qos {
            2 => rmp_serde::to_vec_named(&sample_for(&device)).unwrap(),
            _ => sample_for(&device).to_string().into_bytes(),
        };
        publisher.publish(&topic, qos, payload);
    }
    publisher.publish("devices/q1/telemetry", 1, b"\xc1 not a document".to_vec());
    for qos in 0..=2u8 {
        assert_sample_rows(host, &format!("q{qos}"));
    }
    // The device row commits after the telemetry rows: wait for it too.
    assert_eq!(wait_for_rows(host, "devices", 3).len(), 3);
    let rejected = wait_for_rows(host, "_rejected", 1);
    assert!(
        rejected[0]["error"]
            .as_str()
            .unwrap()
            .contains("MessagePack"),
        "{rejected:#?}"
    );
}

#[test]
fn the_sample_is_stored_at_every_qos_through_mosquitto() {
    let dir = TempDir::new().unwrap();
    let broker = Mosquitto::start(dir.path());
    let host = start_host(&dir, &broker, TELEMETRY, "qos-host");
    every_qos_and_a_bad_message(&host, broker.port);
}

/// `cromflag up` with the repository's `spin.toml` and nothing else: its own
/// broker takes the publishes.
#[test]
fn the_sample_is_stored_at_every_qos_through_the_embedded_broker() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    host.wait_for_log("MQTT subscribed", 1);
    every_qos_and_a_bad_message(&host, host.mqtt_port);
}

/// MessagePack is told apart from JSON by its bytes; a bad message lands in
/// `_rejected` while the good ones around it are stored.
#[test]
fn messagepack_and_bad_messages() {
    let dir = TempDir::new().unwrap();
    let broker = Mosquitto::start(dir.path());
    let host = start_host(&dir, &broker, TELEMETRY, "bad-host");
    let mut publisher = Publisher::connect(broker.port, "bad-publisher");

    publisher.publish(
        "devices/packed/telemetry",
        1,
        rmp_serde::to_vec_named(&sample_for("packed")).unwrap(),
    );
    publisher.publish("devices/mixed/telemetry", 1, b"{ not json".to_vec());
    // Over the host's 1 MiB limit: rejected unread, its first bytes kept.
    publisher.publish("devices/mixed/telemetry", 1, vec![b' '; 2 << 20]);
    publisher.publish(
        "devices/mixed/telemetry",
        1,
        sample_for("someone_else").to_string().into_bytes(),
    );
    // The device id may come from the topic alone.
    let mut anonymous = sample_for("mixed");
    anonymous["deviceinfo"]
        .as_object_mut()
        .unwrap()
        .remove("deviceid");
    publisher.publish(
        "devices/mixed/telemetry",
        1,
        anonymous.to_string().into_bytes(),
    );

    assert_sample_rows(&host, "packed");
    assert_sample_rows(&host, "mixed");
    let rejected = wait_for_rows(&host, "_rejected", 3);
    assert_eq!(rejected.len(), 3, "{rejected:#?}");
    assert!(rejected
        .iter()
        .all(|r| r["topic"] == "devices/mixed/telemetry"));
    // Messages are handled concurrently: find each rejection by its reason.
    let reason = |needle: &str| {
        rejected
            .iter()
            .find(|r| r["error"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("no rejection for {needle}: {rejected:#?}"))
    };
    // The payload is kept as it came (BLOB, base64 over JSON).
    assert_eq!(reason("malformed JSON")["payload"], "eyBub3QganNvbg==");
    assert!(reason("over the limit")["error"]
        .as_str()
        .unwrap()
        .contains("2097152 bytes"));
    assert!(reason("deviceid")["error"]
        .as_str()
        .unwrap()
        .contains("someone_else"));
    let mut devices: Vec<String> = wait_for_rows(&host, "devices", 2)
        .iter()
        .map(|d| d["deviceid"].as_str().unwrap().to_owned())
        .collect();
    devices.sort();
    assert_eq!(devices, ["mixed", "packed"]);
}

/// kill -9 of the host mid-stream at QoS 1: the persistent session brings back
/// every message that was not acked, and nothing is stored twice.
#[test]
fn a_killed_host_loses_nothing_at_qos1() {
    const MESSAGES: i64 = 300;
    let dir = TempDir::new().unwrap();
    let broker = Mosquitto::start(dir.path());
    let host = start_host(&dir, &broker, TELEMETRY, "crash-host");
    let port = broker.port;
    let published = Arc::new(AtomicI64::new(0));
    let counter = published.clone();
    let publishing = std::thread::spawn(move || {
        let mut publisher = Publisher::connect(port, "crash-publisher");
        for seq in 0..MESSAGES {
            publisher.publish(
                "devices/crash/telemetry",
                1,
                one_row(1_700_000_000_000 + seq, seq),
            );
            counter.store(seq + 1, Ordering::SeqCst);
            // Paced, so that the kill lands mid-stream.
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    });
    wait_for_rows(&host, "crash", 30);
    host.stop(); // SIGKILL
    let at_kill = published.load(Ordering::SeqCst);
    assert!(at_kill < MESSAGES, "the publisher was done before the kill");
    let host = start_host(&dir, &broker, TELEMETRY, "crash-host");
    publishing.join().unwrap();

    let rows = wait_for_rows(&host, "crash", MESSAGES as usize);
    assert_eq!(rows.len() as i64, MESSAGES);
    for (seq, row) in rows.iter().enumerate() {
        assert_eq!(row["seq"], json!(seq));
    }
}

/// The broker goes away mid-stream; the host reconnects, subscribes again, and
/// stores what follows.
#[test]
fn the_host_survives_a_broker_restart() {
    let dir = TempDir::new().unwrap();
    let mut broker = Mosquitto::start(dir.path());
    let host = start_host(&dir, &broker, TELEMETRY, "restart-host");
    let mut publisher = Publisher::connect(broker.port, "restart-publisher-1");
    for seq in 0..20 {
        publisher.publish(
            "devices/restart/telemetry",
            1,
            one_row(1_700_000_000_000 + seq, seq),
        );
    }
    wait_for_rows(&host, "restart", 20);

    broker.restart();
    host.wait_for_log("MQTT subscribed", 2);
    let mut publisher = Publisher::connect(broker.port, "restart-publisher-2");
    for seq in 20..40 {
        publisher.publish(
            "devices/restart/telemetry",
            1,
            one_row(1_700_000_000_000 + seq, seq),
        );
    }
    assert_eq!(wait_for_rows(&host, "restart", 40).len(), 40);
}

/// Two hosts on one shared subscription split the messages between them, and
/// together store every one.
#[test]
fn a_shared_subscription_splits_the_load() {
    const MESSAGES: usize = 100;
    let dir_a = TempDir::new().unwrap();
    let dir_b = TempDir::new().unwrap();
    let broker = Mosquitto::start(dir_a.path());
    let shared = format!("$share/cromflag/{TELEMETRY}");
    let host_a = start_host(&dir_a, &broker, &shared, "shared-a");
    let host_b = start_host(&dir_b, &broker, &shared, "shared-b");
    let mut publisher = Publisher::connect(broker.port, "shared-publisher");
    for seq in 0..MESSAGES as i64 {
        publisher.publish(
            "devices/shared/telemetry",
            1,
            one_row(1_700_000_000_000 + seq, seq),
        );
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (a, b) = loop {
        let count = |host: &Host| fetch_rows(host, "shared").map_or(0, |rows| rows.len());
        let (a, b) = (count(&host_a), count(&host_b));
        if a + b >= MESSAGES || std::time::Instant::now() > deadline {
            break (a, b);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(a + b, MESSAGES, "host a stored {a}, host b {b}");
    assert!(a > 0 && b > 0, "the load was not split: {a} and {b}");
}
