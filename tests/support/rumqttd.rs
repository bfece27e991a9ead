//! A real rumqttd broker, in the test process: the strictest peer for a
//! subscriber's acks (it drops a client that acks out of the order it sent
//! the messages in, as MQTT 3.1.1 §4.6 requires). It runs until the test
//! process ends.
//!
//! Its port comes from `ports`: rumqttd binds in a thread of its own and
//! never says which port a port-0 bind got. A bind that fails ends that
//! thread, and with it `Broker::start`, which is how a port in use shows.

use crate::ports::{self, Started};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct Rumqttd {
    pub port: u16,
}

impl Rumqttd {
    pub fn start() -> Rumqttd {
        ports::start_on_free_ports("rumqttd", 1, |ports| Rumqttd::start_on(ports[0]))
    }

    /// Starts a broker on `port` and waits until this process listens there,
    /// or the broker has stopped because it could not bind.
    fn start_on(port: u16) -> Started<Rumqttd> {
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
        let (stopped_tx, stopped) = mpsc::channel();
        std::thread::spawn(move || {
            if let Err(e) = broker.start() {
                eprintln!("rumqttd stopped: {e}");
            }
            let _ = stopped_tx.send(());
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ports::listens(std::process::id(), port) {
            // `start` returns only once its server thread has ended: here,
            // because its bind failed (it logs why through `tracing` only).
            if stopped.try_recv().is_ok() {
                return Started::AddressInUse;
            }
            assert!(
                Instant::now() < deadline,
                "rumqttd did not start on {listen}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Started::Listening(Rumqttd { port })
    }

    pub fn address(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}
