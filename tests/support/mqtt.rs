//! An MQTT publisher (rumqttc) that waits for the broker's acknowledgement of
//! each message, the reason codes an MQTT 5 device is answered with, and the
//! manifest that binds the insert component to MQTT.

use rumqttc::{Client, Event, MqttOptions, Outgoing, Packet, QoS};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

pub struct Publisher {
    client: Client,
    /// What the connection saw finish: a sent QoS 0 publish, a PubAck, a PubComp.
    done: mpsc::Receiver<QoS>,
}

impl Publisher {
    pub fn connect(port: u16, id: &str) -> Publisher {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options
            .set_keep_alive(Duration::from_secs(10))
            .set_max_packet_size(8 << 20, 8 << 20);
        let (client, mut connection) = Client::new(options, 64);
        let (tx, done) = mpsc::channel();
        std::thread::spawn(move || {
            for event in connection.iter() {
                let finished = match event {
                    Ok(Event::Outgoing(Outgoing::Publish(_))) => Some(QoS::AtMostOnce),
                    Ok(Event::Incoming(Packet::PubAck(_))) => Some(QoS::AtLeastOnce),
                    Ok(Event::Incoming(Packet::PubComp(_))) => Some(QoS::ExactlyOnce),
                    Ok(_) => None,
                    // The broker may be restarting: rumqttc reconnects on the next poll.
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(100));
                        None
                    }
                };
                if let Some(qos) = finished {
                    if tx.send(qos).is_err() {
                        return;
                    }
                }
            }
        });
        Publisher { client, done }
    }

    /// Publishes and returns once the broker has it (QoS 1/2) or it is sent (QoS 0).
    pub fn publish(&mut self, topic: &str, qos: u8, payload: Vec<u8>) {
        self.send(topic, qos, payload);
        self.wait_acked(qos, Duration::from_secs(30))
            .expect("the broker acknowledged");
    }

    /// Publishes without waiting for the acknowledgement.
    pub fn send(&mut self, topic: &str, qos: u8, payload: Vec<u8>) {
        self.client
            .publish(topic, qos_of(qos), false, payload)
            .expect("publish");
    }

    /// Waits for the next completion at `qos` (publications are sequential,
    /// so it is the oldest one sent); `None` after `wait`.
    pub fn wait_acked(&mut self, qos: u8, wait: Duration) -> Option<()> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let left = deadline.checked_duration_since(std::time::Instant::now())?;
            if self.done.recv_timeout(left).ok()? == qos_of(qos) {
                return Some(());
            }
        }
    }
}

fn qos_of(qos: u8) -> QoS {
    match qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// A manifest with `insert` bound to `topic` on `broker`, and the fetch route.
pub fn manifest(dir: &Path, broker: &str, topic: &str, qos: u8) -> PathBuf {
    let triggers = format!(
        r#"[application.trigger.mqtt]
address = "{broker}"
keep_alive_interval = "10"
[[trigger.mqtt]]
component = "insert"
topic = "{topic}"
qos = "{qos}"
[[trigger.http]]
route = "/fetch/..."
component = "fetch"
"#
    );
    crate::write_manifest(dir, "mqtt-test", &triggers, &["insert", "fetch"])
}

/// A device that publishes `count` QoS 1 messages as fast as its connection
/// takes them, and records which ones were PUBACKed (by index), until the
/// connection drops or every one is acked.
pub fn publish_burst(
    port: u16,
    id: &str,
    count: usize,
    message: impl Fn(usize) -> (String, Vec<u8>) + Send + 'static,
) -> std::thread::JoinHandle<Vec<usize>> {
    publish_burst_as(port, id, None, count, message)
}

/// `publish_burst`, logging in with `credentials` (user name, password).
pub fn publish_burst_as(
    port: u16,
    id: &str,
    credentials: Option<(&str, &str)>,
    count: usize,
    message: impl Fn(usize) -> (String, Vec<u8>) + Send + 'static,
) -> std::thread::JoinHandle<Vec<usize>> {
    let mut options = burst_options(port, id);
    if let Some((user, password)) = credentials {
        options.set_credentials(user, password);
    }
    std::thread::spawn(move || burst(options, None, count, message).acked)
}

/// What a burst saw.
pub struct Burst {
    /// The messages PUBACKed (by index), in the order the acks arrived.
    pub acked: Vec<usize>,
    /// The publishes it received (on the filter it subscribed to).
    pub received: usize,
}

/// `publish_burst` from a device that first subscribes to `filter` (QoS 0)
/// and counts the publishes it receives meanwhile.
pub fn publish_burst_subscribed(
    port: u16,
    id: &str,
    filter: &str,
    count: usize,
    message: impl Fn(usize) -> (String, Vec<u8>) + Send + 'static,
) -> std::thread::JoinHandle<Burst> {
    let options = burst_options(port, id);
    let filter = filter.to_owned();
    std::thread::spawn(move || burst(options, Some(filter), count, message))
}

fn burst_options(port: u16, id: &str) -> MqttOptions {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(10))
        .set_clean_session(false);
    options
}

fn burst(
    options: MqttOptions,
    subscribe: Option<String>,
    count: usize,
    message: impl Fn(usize) -> (String, Vec<u8>) + Send + 'static,
) -> Burst {
    use rumqttc::Outgoing as Out;
    let (client, mut connection) = Client::new(options, 256);
    // Requests go out in order: the SUBSCRIBE before the first PUBLISH.
    if let Some(filter) = subscribe {
        client.subscribe(filter, QoS::AtMostOnce).unwrap();
    }
    let sender = std::thread::spawn(move || {
        for i in 0..count {
            let (topic, payload) = message(i);
            if client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .is_err()
            {
                return;
            }
        }
    });
    // Publishes go out in order: the n-th outgoing one is message n; a
    // packet id names the last message sent with it until it is acked.
    let (mut sent, mut by_pkid, mut acked) = (0, std::collections::HashMap::new(), Vec::new());
    let mut received = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    for event in connection.iter() {
        match event {
            Ok(Event::Outgoing(Out::Publish(pkid))) => {
                by_pkid.insert(pkid, sent);
                sent += 1;
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                acked.extend(by_pkid.remove(&ack.pkid));
                if acked.len() == count {
                    break;
                }
            }
            Ok(Event::Incoming(Packet::Publish(_))) => received += 1,
            Ok(_) => {}
            // The host is gone: what was acked is what it promised.
            Err(_) => break,
        }
        if std::time::Instant::now() > deadline {
            break;
        }
    }
    drop(connection);
    let _ = sender.join();
    Burst { acked, received }
}

/// The reason codes of the next `count` PUBACKs an MQTT 5 connection gets, in
/// order; panics if the connection drops first.
pub fn v5_puback_reasons(
    connection: &mut rumqttc::v5::Connection,
    count: usize,
) -> Vec<rumqttc::v5::mqttbytes::v5::PubAckReason> {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::Event;
    let mut reasons = Vec::new();
    for event in connection.iter() {
        match event {
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                reasons.push(ack.reason);
                if reasons.len() == count {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => panic!("the endpoint dropped an MQTT 5 client: {e}"),
        }
    }
    reasons
}
