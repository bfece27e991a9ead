//! A real rumqttd broker, in the test process: the strictest peer for a
//! subscriber's acks (it drops a client that acks out of the order it sent
//! the messages in, as MQTT 3.1.1 §4.6 requires). It runs until the test
//! process ends.

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub struct Rumqttd {
    pub port: u16,
}

impl Rumqttd {
    pub fn start() -> Rumqttd {
        let port = crate::free_port();
        let listen: SocketAddr = ([127, 0, 0, 1], port).into();
        let server = ServerSettings {
            name: "mqtt-v4".into(),
            listen,
            tls: None,
            next_connection_delay_ms: 1,
            connections: ConnectionSettings {
                connection_timeout_ms: 60_000,
                max_payload_size: 1 << 20,
                max_inflight_count: 100,
                auth: None,
                external_auth: None,
                dynamic_filters: true,
            },
        };
        let config = Config {
            id: 0,
            router: RouterConfig {
                max_connections: 1_000,
                max_outgoing_packet_count: 200,
                max_segment_size: 100 << 20,
                max_segment_count: 10,
                custom_segment: None,
                initialized_filters: None,
                shared_subscriptions_strategy: Default::default(),
            },
            v4: Some(HashMap::from([("1".to_owned(), server)])),
            v5: None,
            ws: None,
            cluster: None,
            console: None,
            bridge: None,
            prometheus: None,
            metrics: None,
        };
        let mut broker = Broker::new(config);
        std::thread::spawn(move || {
            if let Err(e) = broker.start() {
                eprintln!("rumqttd stopped: {e}");
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(listen).is_err() {
            assert!(
                Instant::now() < deadline,
                "rumqttd did not start on {listen}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Rumqttd { port }
    }

    pub fn address(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}
