//! An MQTT publisher (rumqttc) that waits for the broker's acknowledgement of
//! each message, and the manifest that binds the insert component to MQTT.

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
        let qos = match qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        };
        self.client
            .publish(topic, qos, false, payload)
            .expect("publish");
        // Publications are sequential, so the next completion of this QoS is this one.
        loop {
            let finished = self
                .done
                .recv_timeout(Duration::from_secs(30))
                .expect("the broker acknowledged");
            if finished == qos {
                return;
            }
        }
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
