//! MQTT ingestion through a real Mosquitto broker and the real binary.

use cromflag_tests::mosquitto::Mosquitto;
use cromflag_tests::mqtt::{
    manifest, publish_burst_subscribed, v5_puback_reasons, Burst, Publisher,
};
use cromflag_tests::{
    fetch_rows, get, repo_manifest_with, sample_payload, wait_for_rows, wait_until, Host,
};
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
    every_qos_and_a_bad_message(&host, host.mqtt_port);
}

/// Any device id comes in through its topic as it does through its URL: a
/// UUID, a MAC address, Unicode, and ids that differ only by case, published
/// to the host's own endpoint, are stored apart and read back by their ids.
#[test]
fn any_device_id_is_stored_from_its_topic() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    let mut publisher = Publisher::connect(host.mqtt_port, "id-publisher");
    let ids = [
        "123e4567-e89b-12d3-a456-426614174000",
        "00:1A:2B:3C:4D:5E",
        "capteur-été",
    ];
    for id in ids {
        let payload = sample_for(id).to_string().into_bytes();
        publisher.publish(&format!("devices/{id}/telemetry"), 1, payload);
    }
    for (id, ts) in [("Sensor1", 1), ("sensor1", 2)] {
        publisher.publish(&format!("devices/{id}/telemetry"), 1, one_row(ts, ts));
    }
    for id in ids {
        assert_sample_rows(&host, id);
    }
    for (id, ts) in [("Sensor1", 1), ("sensor1", 2)] {
        assert_eq!(
            wait_for_rows(&host, id, 1),
            [json!({ "timestamp": ts, "seq": ts })],
            "{id}"
        );
    }
    let devices = wait_for_rows(&host, "devices", 5);
    let mut listed: Vec<&str> = devices
        .iter()
        .map(|d| d["deviceid"].as_str().unwrap())
        .collect();
    listed.sort();
    let mut expected = vec![ids[0], ids[1], ids[2], "Sensor1", "sensor1"];
    expected.sort();
    assert_eq!(listed, expected);
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
    let ready = |host: &Host| {
        let answer = get(&host.url("/readyz"));
        (answer.status, answer.json()["checks"]["mqtt"].clone())
    };
    assert_eq!(
        ready(&host),
        (
            200,
            json!({ "ok": true, "state": "connected to the broker" })
        )
    );

    // Without its broker the host is not ready, and says why.
    broker.stop();
    wait_until("/readyz to see the broker gone", || {
        (ready(&host)
            == (
                503,
                json!({ "ok": false, "state": "not connected to the broker" }),
            ))
            .then_some(())
    });
    broker.restart();
    host.wait_for_log("MQTT subscribed", 2);
    wait_until("/readyz to see the broker back", || {
        (ready(&host).0 == 200).then_some(())
    });
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

// The host's own device endpoint (`cromflag up` alone): a PUBACK means the
// message is committed.

/// Messages `0..count` of publisher `p`, each one row of device `burst<p>`.
fn burst_message(p: usize) -> impl Fn(usize) -> (String, Vec<u8>) {
    move |i| {
        (
            format!("devices/burst{p}/telemetry"),
            one_row(1_700_000_000_000 + i as i64, i as i64),
        )
    }
}

/// The seq of every row device `device` has, sorted.
fn stored_seqs(host: &Host, device: &str) -> Vec<i64> {
    let answer = cromflag_tests::get(&host.url(&format!("/fetch/{device}?limit=100000")));
    if answer.status == 404 {
        return Vec::new();
    }
    let mut seqs: Vec<i64> = answer
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["seq"].as_i64().unwrap())
        .collect();
    seqs.sort_unstable();
    seqs
}

#[test]
fn a_burst_into_the_endpoint_stores_every_acked_message_once() {
    const PUBLISHERS: usize = 8;
    const MESSAGES: usize = 2_000;
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    let bursts: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            cromflag_tests::mqtt::publish_burst(
                host.mqtt_port,
                &format!("burst-{p}"),
                MESSAGES,
                burst_message(p),
            )
        })
        .collect();
    for (p, burst) in bursts.into_iter().enumerate() {
        let mut acked = burst.join().unwrap();
        acked.sort_unstable();
        assert_eq!(acked.len(), MESSAGES, "publisher {p}: PUBACKs");
        // Acked means committed: every one is there already, exactly once.
        let stored = stored_seqs(&host, &format!("burst{p}"));
        let expected: Vec<i64> = (0..MESSAGES as i64).collect();
        assert_eq!(stored, expected, "publisher {p}");
    }
    assert!(!host.log().contains("ERROR"), "{}", host.log());
}

#[test]
fn a_killed_host_loses_no_acked_message_of_its_endpoint() {
    const MESSAGES: usize = 200_000;
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    let port = host.mqtt_port;
    let burst =
        cromflag_tests::mqtt::publish_burst(port, "crash-device", MESSAGES, burst_message(0));
    wait_for_rows(&host, "burst0", 2_000);
    host.stop(); // SIGKILL, mid-stream
    let acked = burst.join().unwrap();
    assert!(
        !acked.is_empty() && acked.len() < MESSAGES,
        "{} acked: the kill was not mid-stream",
        acked.len()
    );

    // The same data directory again: every acked message is there.
    let host = Host::start(dir.path());
    let stored: std::collections::HashSet<i64> = stored_seqs(&host, "burst0").into_iter().collect();
    let lost: Vec<usize> = acked
        .iter()
        .copied()
        .filter(|i| !stored.contains(&(*i as i64)))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acked messages lost, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
}

/// A rule that burst messages breach and clear by turns (`level` 0, 100, 0,
/// …): an alarm event for every message.
const FLAPPING: &str = r#"
[[application.tool.cromflag.alarms.rule]]
name = "flapping"
when = "level > 50"
"#;

fn flapping_message(p: usize) -> impl Fn(usize) -> (String, Vec<u8>) {
    move |i| {
        let row =
            json!({ "timestamp": 1_700_000_000_000 + i as i64, "seq": i, "level": (i % 2) * 100 });
        (
            format!("devices/flap{p}/telemetry"),
            json!({ "deviceinfo": { "batt_lvl": 50 }, "tsdata": [row] })
                .to_string()
                .into_bytes(),
        )
    }
}

/// Publishers subscribed to `alarms/#` while their own messages raise and
/// clear an alarm all along: the alarms the endpoint writes between its
/// answers reorder no PUBACK (MQTT 3.1.1 §4.6) and cost no acked message,
/// through a kill -9 mid-stream.
#[test]
fn publishers_subscribed_to_alarms_get_every_ack_in_order_and_lose_none_to_a_kill() {
    const PUBLISHERS: usize = 4;
    const MESSAGES: usize = 50_000;
    let dir = TempDir::new().unwrap();
    let manifest = repo_manifest_with(dir.path(), FLAPPING);
    let data = dir.path().join("data");
    let host = Host::start_with(&manifest, &data, &[]);
    let bursts: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            publish_burst_subscribed(
                host.mqtt_port,
                &format!("flap{p}"),
                "alarms/#",
                MESSAGES,
                flapping_message(p),
            )
        })
        .collect();
    for p in 0..PUBLISHERS {
        wait_for_rows(&host, &format!("flap{p}"), 2_000);
    }
    // Alarms are being raised (and so published to the subscribers).
    wait_until("alarms raised mid-stream", || {
        (get(&host.url("/alarms?device=flap0")).json()["count"].as_u64() > Some(1)).then_some(())
    });
    host.stop(); // SIGKILL, mid-stream
    let bursts: Vec<Burst> = bursts.into_iter().map(|b| b.join().unwrap()).collect();
    assert!(
        bursts.iter().any(|b| b.received > 0),
        "no publisher received an alarm"
    );

    let host = Host::start_with(&manifest, &data, &[]);
    for (p, burst) in bursts.iter().enumerate() {
        assert!(
            !burst.acked.is_empty() && burst.acked.len() < MESSAGES,
            "publisher {p}: {} acked: the kill was not mid-stream",
            burst.acked.len()
        );
        eprintln!(
            "publisher {p}: {} acked, {} alarm publishes received",
            burst.acked.len(),
            burst.received
        );
        // Acks come in the order the publishes went out.
        assert!(
            burst.acked.windows(2).all(|w| w[0] < w[1]),
            "publisher {p}: PUBACKs out of order"
        );
        let stored: std::collections::HashSet<i64> = stored_seqs(&host, &format!("flap{p}"))
            .into_iter()
            .collect();
        let lost: Vec<usize> = burst
            .acked
            .iter()
            .copied()
            .filter(|i| !stored.contains(&(*i as i64)))
            .collect();
        assert!(
            lost.is_empty(),
            "publisher {p}: {} of {} acked messages lost, e.g. {:?}",
            lost.len(),
            burst.acked.len(),
            &lost[..lost.len().min(5)]
        );
    }
}

/// Raw MQTT 3.1.1 packets, encoded and decoded by rumqttc's codec.
mod raw {
    use bytes::BytesMut;
    use rumqttc::mqttbytes::v4::{Connect, Packet, PubRel, Publish};
    use rumqttc::mqttbytes::{Protocol, QoS};
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    pub struct Conn {
        stream: TcpStream,
        buf: BytesMut,
    }

    impl Conn {
        pub fn open(port: u16) -> Conn {
            let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            Conn {
                stream,
                buf: BytesMut::new(),
            }
        }

        pub fn connect(port: u16, client_id: &str, keep_alive: u16) -> Conn {
            let mut conn = Conn::open(port);
            conn.send(Packet::Connect(Connect {
                protocol: Protocol::V4,
                keep_alive,
                client_id: client_id.into(),
                clean_session: false,
                last_will: None,
                login: None,
            }));
            assert!(matches!(conn.recv(), Some(Packet::ConnAck(_))));
            conn
        }

        pub fn send(&mut self, packet: Packet) {
            let mut out = BytesMut::new();
            packet.write(&mut out, usize::MAX).unwrap();
            self.send_bytes(&out);
        }

        pub fn send_bytes(&mut self, bytes: &[u8]) {
            // The host may have closed the connection already: that is fine.
            let _ = self.stream.write_all(bytes);
        }

        pub fn publish(&mut self, topic: &str, qos: QoS, pkid: u16, payload: Vec<u8>) {
            let mut publish = Publish::new(topic, qos, payload);
            publish.pkid = pkid;
            self.send(Packet::Publish(publish));
        }

        pub fn pubrel(&mut self, pkid: u16) {
            self.send(Packet::PubRel(PubRel::new(pkid)));
        }

        /// The next packet, or `None` once the host closed the connection.
        pub fn recv(&mut self) -> Option<Packet> {
            loop {
                if let Ok(packet) = Packet::read(&mut self.buf, 1 << 20) {
                    return Some(packet);
                }
                let mut chunk = [0u8; 4096];
                match self.stream.read(&mut chunk) {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        }
    }
}

#[test]
fn qos2_into_the_endpoint_is_exactly_once_across_a_reconnect() {
    use rumqttc::mqttbytes::{v4::Packet, QoS};
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    let payload = one_row(1_700_000_000_000, 1);
    let mut conn = raw::Conn::connect(host.mqtt_port, "qos2-device", 30);
    conn.publish(
        "devices/exact/telemetry",
        QoS::ExactlyOnce,
        7,
        payload.clone(),
    );
    assert!(matches!(conn.recv(), Some(Packet::PubRec(r)) if r.pkid == 7));
    // PUBREC means stored; then the connection drops before PUBREL.
    assert_eq!(stored_seqs(&host, "exact"), [1]);
    drop(conn);

    let mut conn = raw::Conn::connect(host.mqtt_port, "qos2-device", 30);
    // A device that missed the PUBREC sends the PUBLISH again: known, not stored twice.
    conn.publish("devices/exact/telemetry", QoS::ExactlyOnce, 7, payload);
    assert!(matches!(conn.recv(), Some(Packet::PubRec(r)) if r.pkid == 7));
    conn.pubrel(7);
    assert!(matches!(conn.recv(), Some(Packet::PubComp(c)) if c.pkid == 7));
    let messages = wait_for_rows(&host, "messages", 1);
    assert_eq!(
        messages.iter().filter(|m| m["device"] == "exact").count(),
        1,
        "{messages:#?}"
    );
    assert_eq!(stored_seqs(&host, "exact"), [1]);
}

#[test]
fn malformed_packets_close_their_connection_and_nothing_else() {
    use rumqttc::mqttbytes::{v4::Packet, QoS};
    let dir = TempDir::new().unwrap();
    let mut host = Host::start(dir.path());
    let port = host.mqtt_port;
    let mut good = raw::Conn::connect(port, "good-device", 60);

    let mut publish_first = Vec::new();
    {
        let mut out = bytes::BytesMut::new();
        let publish =
            rumqttc::mqttbytes::v4::Publish::new("devices/x/telemetry", QoS::AtMostOnce, "{}");
        Packet::Publish(publish)
            .write(&mut out, usize::MAX)
            .unwrap();
        publish_first.extend_from_slice(&out);
    }
    let corpus: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"\xff\xff\xff\xff\xff\xff".to_vec()),
        ("a PUBLISH before CONNECT", publish_first),
        (
            "a remaining length over 4 bytes",
            vec![0x10, 0xff, 0xff, 0xff, 0xff, 0x7f],
        ),
        (
            "MQTT 3.1 (level 3)",
            b"\x10\x10\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x02id".to_vec(),
        ),
        (
            "a CONNECT cut short, then nothing",
            b"\x10\x20\x00\x04MQTT".to_vec(),
        ),
    ];
    for (what, bytes) in &corpus {
        let mut conn = raw::Conn::open(port);
        conn.send_bytes(bytes);
        // The host answers at most a refusal, then closes.
        loop {
            match conn.recv() {
                None => break,
                Some(Packet::ConnAck(ack)) => assert_ne!(
                    ack.code,
                    rumqttc::mqttbytes::v4::ConnectReturnCode::Success,
                    "{what}"
                ),
                Some(other) => panic!("{what}: answered {other:?}"),
            }
        }
    }
    // After a CONNECT: QoS 3, a wildcard topic, a second CONNECT, silence past the keep-alive.
    type Step = (&'static str, Box<dyn Fn(&mut raw::Conn)>);
    let after_connect: Vec<Step> = vec![
        (
            "QoS 3",
            Box::new(|c| c.send_bytes(b"\x36\x07\x00\x01a\x00\x01{}")),
        ),
        (
            "a wildcard topic",
            Box::new(|c| c.publish("devices/+/telemetry", QoS::AtLeastOnce, 1, b"{}".to_vec())),
        ),
        (
            "a second CONNECT",
            Box::new(|c| {
                c.send(Packet::Connect(rumqttc::mqttbytes::v4::Connect::new(
                    "again",
                )))
            }),
        ),
        ("silence past the keep-alive", Box::new(|_| {})),
    ];
    for (i, (what, misbehave)) in after_connect.iter().enumerate() {
        let mut conn = raw::Conn::connect(port, &format!("bad-{i}"), 1);
        misbehave(&mut conn);
        let started = std::time::Instant::now();
        assert!(conn.recv().is_none(), "{what}: still answered");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{what}"
        );
    }

    // The host is up, and the connection opened before all this still works.
    assert!(host.is_alive());
    good.publish(
        "devices/survivor/telemetry",
        QoS::AtLeastOnce,
        1,
        one_row(1, 1),
    );
    assert!(matches!(good.recv(), Some(Packet::PubAck(a)) if a.pkid == 1));
    assert_eq!(stored_seqs(&host, "survivor"), [1]);
}

/// Four devices burst into the broker at `address` (port `port`); the host,
/// subscribed there at QoS 1, stores every message, and its acks, sent in the
/// order the broker delivered, never cost it its connection.
fn a_burst_through_a_broker_keeps_the_connection(address: &str, port: u16, client_id: &str) {
    const PUBLISHERS: usize = 4;
    const MESSAGES: usize = 2_000;
    let dir = TempDir::new().unwrap();
    let manifest = manifest(dir.path(), address, TELEMETRY, 1);
    let host = Host::start_with(
        &manifest,
        &dir.path().join("data"),
        &["--mqtt-client-id", client_id],
    );
    host.wait_for_log("MQTT subscribed", 1);
    let bursts: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            cromflag_tests::mqtt::publish_burst(
                port,
                &format!("{client_id}-device-{p}"),
                MESSAGES,
                burst_message(p),
            )
        })
        .collect();
    for burst in bursts {
        assert_eq!(
            burst.join().unwrap().len(),
            MESSAGES,
            "the broker's PUBACKs"
        );
    }
    let expected: Vec<i64> = (0..MESSAGES as i64).collect();
    for p in 0..PUBLISHERS {
        wait_for_rows(&host, &format!("burst{p}"), MESSAGES);
        assert_eq!(stored_seqs(&host, &format!("burst{p}")), expected);
    }
    let log = host.log();
    assert_eq!(log.matches("MQTT connected").count(), 1, "{log}");
    assert!(!log.contains("MQTT connection lost"), "{log}");
}

#[test]
fn acks_in_order_keep_the_host_connected_to_rumqttd() {
    let broker = cromflag_tests::rumqttd::Rumqttd::start();
    a_burst_through_a_broker_keeps_the_connection(&broker.address(), broker.port, "order-rumqttd");
}

#[test]
fn acks_in_order_keep_the_host_connected_to_mosquitto() {
    let dir = TempDir::new().unwrap();
    let broker = Mosquitto::start(dir.path());
    a_burst_through_a_broker_keeps_the_connection(
        &broker.address(),
        broker.port,
        "order-mosquitto",
    );
}

/// mqtts:// to a broker that requires a client certificate: the host trusts
/// the CA and presents the certificate the variables name.
#[test]
fn the_host_subscribes_over_tls_with_a_client_certificate() {
    let dir = TempDir::new().unwrap();
    let certs = dir.path();
    cromflag_tests::mosquitto::make_certificates(certs);
    let tls = format!(
        "cafile {0}/ca.pem\ncertfile {0}/server.pem\nkeyfile {0}/server.key\nrequire_certificate true",
        certs.display()
    );
    let broker = Mosquitto::start_with_listeners(dir.path(), "", &[&tls]);
    let tls_port = broker.listener_ports[0];
    // The TLS settings are variables (Spin's MQTT trigger has no keys for them).
    let path = |name: &str| certs.join(name).display().to_string();
    let triggers = format!(
        "[variables]\nmqtt_tls_ca_file = {{ default = {:?} }}\nmqtt_tls_cert_file = {{ default = {:?} }}\n\
         mqtt_tls_key_file = {{ default = {:?} }}\n\
         [application.trigger.mqtt]\naddress = \"mqtts://127.0.0.1:{tls_port}\"\n\
         username = \"\"\npassword = \"\"\n\
         [[trigger.mqtt]]\ncomponent = \"insert\"\ntopic = \"{TELEMETRY}\"\nqos = \"1\"\n\
         [[trigger.http]]\nroute = \"/fetch/...\"\ncomponent = \"fetch\"\n",
        path("ca.pem"),
        path("client.pem"),
        path("client.key"),
    );
    let manifest =
        cromflag_tests::write_manifest(dir.path(), "mqtt-tls", &triggers, &["insert", "fetch"]);
    let host = Host::start_with(
        &manifest,
        &dir.path().join("data"),
        &["--mqtt-client-id", "tls-host"],
    );
    host.wait_for_log("MQTT subscribed", 1);
    let mut publisher = Publisher::connect(broker.port, "tls-publisher");
    publisher.publish(
        "devices/secure/telemetry",
        1,
        sample_for("secure").to_string().into_bytes(),
    );
    assert_sample_rows(&host, "secure");
}

/// A component written for Spin exports only `handle-message`: the host calls
/// it once per message (fresh instance each), and a trap rejects that message alone.
#[test]
fn a_spin_component_with_handle_message_only_gets_one_call_per_message() {
    let dir = TempDir::new().unwrap();
    let triggers = format!(
        "[application.trigger.mqtt]\naddress = \"\"\n\
         [[trigger.mqtt]]\ncomponent = \"spin-insert\"\ntopic = \"{TELEMETRY}\"\nqos = \"1\"\n\
         [[trigger.http]]\nroute = \"/fetch/...\"\ncomponent = \"fetch\"\n"
    );
    let manifest = cromflag_tests::write_manifest(
        dir.path(),
        "spin-mqtt",
        &triggers,
        &["spin-insert", "fetch"],
    );
    let host = Host::start_with(&manifest, &dir.path().join("data"), &[]);
    let mut publisher = Publisher::connect(host.mqtt_port, "spin-style");
    for seq in 0..20 {
        publisher.publish(
            "devices/spinstyle/telemetry",
            1,
            one_row(1_700_000_000_000 + seq, seq),
        );
        if seq == 10 {
            publisher.publish("devices/spinstyle/telemetry", 1, b"trap".to_vec());
        }
    }
    assert_eq!(
        stored_seqs(&host, "spinstyle"),
        (0..20).collect::<Vec<i64>>()
    );
    let rejected = wait_for_rows(&host, "_rejected", 1);
    assert_eq!(rejected.len(), 1, "{rejected:#?}");
    assert!(
        rejected[0]["error"]
            .as_str()
            .unwrap()
            .contains("component `spin-insert` failed"),
        "{rejected:#?}"
    );
}

/// MQTT 5 devices are told what became of each message: PUBACK reason 0 for a
/// stored one, 0x99 (payload format invalid) for one that went to `_rejected`.
#[test]
fn mqtt5_devices_get_a_reason_code_per_message() {
    use rumqttc::v5::mqttbytes::v5::PubAckReason;
    use rumqttc::v5::mqttbytes::QoS as V5QoS;
    use rumqttc::v5::{Client, MqttOptions};
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    let mut options = MqttOptions::new("v5-device", "127.0.0.1", host.mqtt_port);
    options.set_keep_alive(std::time::Duration::from_secs(10));
    let (client, mut connection) = Client::new(options, 10);
    client
        .publish(
            "devices/five/telemetry",
            V5QoS::AtLeastOnce,
            false,
            one_row(1_700_000_000_000, 1),
        )
        .unwrap();
    client
        .publish(
            "devices/five/telemetry",
            V5QoS::AtLeastOnce,
            false,
            b"not a document".to_vec(),
        )
        .unwrap();
    let reasons = v5_puback_reasons(&mut connection, 2);
    assert_eq!(
        reasons,
        [PubAckReason::Success, PubAckReason::PayloadFormatInvalid]
    );
    assert_eq!(stored_seqs(&host, "five"), [1]);
    assert_eq!(wait_for_rows(&host, "_rejected", 1).len(), 1);
}
