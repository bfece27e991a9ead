//! The embedded MQTT broker: rumqttd, run in-process, so that `cromflag up`
//! alone accepts device publishes (on 127.0.0.1:1883 by default) with nothing
//! else installed. Point `[application.trigger.mqtt] address` at an external
//! broker and turn this one off (`--mqtt-broker off`) to use Mosquitto, EMQX or
//! HiveMQ instead.
//!
//! It keeps sessions (and their unacked messages) in memory while the host runs,
//! supports QoS 0/1/2 and `$share/<group>/...` subscriptions.

use anyhow::{bail, Context, Result};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Largest publish the broker accepts, as the HTTP body limit's default.
const MAX_PAYLOAD: usize = 1 << 20;

/// Starts the broker on `listen` and returns once it accepts connections.
pub fn start(listen: SocketAddr) -> Result<()> {
    // rumqttd reports a failed bind only in its own log: check the port first.
    drop(std::net::TcpListener::bind(listen).with_context(|| {
        format!("the embedded MQTT broker cannot listen on {listen} (use --mqtt-broker off or another address)")
    })?);
    let server = ServerSettings {
        name: "mqtt-v4".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: MAX_PAYLOAD,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_010,
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
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "the embedded MQTT broker stopped");
            }
        })?;
    // Ready once the port is taken; a probe connection would make the broker
    // log a failed handshake.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpListener::bind(listen).is_ok() {
        if Instant::now() > deadline {
            bail!("the embedded MQTT broker did not start on {listen}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    tracing::info!("embedded MQTT broker on mqtt://{listen}");
    Ok(())
}
