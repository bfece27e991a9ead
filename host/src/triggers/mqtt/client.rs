//! The connection to an external broker (Mosquitto, EMQX, HiveMQ, rumqttd):
//! rumqttc with a persistent session (a fixed client id, no clean start) and
//! manual acks.
//!
//! Acks go out in the order the messages arrived (MQTT 3.1.1 §4.6), whatever
//! order their batches finish in: each QoS 1/2 message is queued, with its
//! answer to come, on the ack queue, and one task acks the queue from the
//! front. Strict brokers (rumqttd) drop a client that acks out of order.
//! After a reconnect, the broker redelivers every message not acked on the
//! old connection with its old packet id, so acks still owed for the old
//! connection are dropped, not sent: the redelivered copies are stored
//! (harmless: rows upsert) and acked in their turn.

use super::MqttTrigger;
use crate::manifest::{MqttSettings, MqttTls};
use anyhow::{bail, Context, Result};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS, TlsConfiguration, Transport};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The largest MQTT packet the client reads (MQTT's own maximum). Larger than any
/// payload limit, so that an oversize message reaches the trigger and is
/// dead-lettered, instead of breaking the connection and coming back forever.
const MAX_PACKET: usize = 256 << 20;
/// Room in rumqttc's request queue (acks, subscribes).
const REQUEST_QUEUE: usize = 4096;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A message waiting for its ack, in arrival order.
struct Owed {
    publish: Publish,
    /// The connection it arrived on.
    connection: u64,
    outcome: oneshot::Receiver<super::Outcome>,
}

/// Runs the connection until the task is dropped, reconnecting as needed.
pub async fn run(trigger: Arc<MqttTrigger>, options: MqttOptions) {
    let broker = {
        let (host, port) = options.broker_address();
        format!("{host}:{port}")
    };
    let (client, mut eventloop) = AsyncClient::new(options, REQUEST_QUEUE);
    let _ = trigger.client.set(client.clone());
    let connection = Arc::new(AtomicU64::new(0));
    // Unbounded, because this loop must never wait on the ack task: the acks
    // it sends leave only when this loop polls (rumqttc drains its request
    // queue from `poll`), so a bounded queue deadlocks under a flood. What
    // bounds it is the broker's own in-flight window for this client (for
    // example Mosquitto's max_inflight_messages, rumqttd's max_inflight_count,
    // MQTT 5's Receive Maximum), and `submit`, which waits while the workers
    // hold MAX_QUEUED_BYTES.
    let (owed_tx, owed_rx) = mpsc::unbounded_channel();
    tokio::spawn(ack_in_order(client.clone(), connection.clone(), owed_rx));
    let mut backoff = Duration::from_millis(100);
    // Counts the connection in `cromflag_mqtt_connections` while it is up.
    let mut up: Option<crate::metrics::Alive> = None;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff = Duration::from_millis(100);
                connection.fetch_add(1, Ordering::SeqCst);
                trigger.connected.store(true, Ordering::SeqCst);
                up.replace(crate::metrics::metrics().mqtt_connection());
                tracing::info!(%broker, session_present = ack.session_present, "MQTT connected");
                // Subscribing again is harmless and covers a broker that lost the session.
                change_subscriptions(client.clone(), trigger.filters(), Vec::new());
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                tracing::info!(%broker, codes = ?ack.return_codes, "MQTT subscribed");
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                tracing::debug!(topic = %publish.topic, pkid = publish.pkid, "MQTT message received");
                // Waiting here is the back-pressure: this connection stops
                // reading while the workers are full.
                let outcome = match trigger
                    .submit(publish.topic.clone(), publish.payload.clone())
                    .await
                {
                    Ok(outcome) => outcome,
                    Err(e) => {
                        tracing::error!(error = %e, "MQTT message not taken");
                        return;
                    }
                };
                if publish.qos != QoS::AtMostOnce {
                    let owed = Owed {
                        publish,
                        connection: connection.load(Ordering::SeqCst),
                        outcome,
                    };
                    if owed_tx.send(owed).is_err() {
                        return;
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                trigger.connected.store(false, Ordering::SeqCst);
                up.take();
                tracing::warn!(%broker, error = %e, retry_in = ?backoff, "MQTT connection lost");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Acks each owed message once it is stored or dead-lettered, in arrival order.
async fn ack_in_order(
    client: AsyncClient,
    connection: Arc<AtomicU64>,
    mut owed: mpsc::UnboundedReceiver<Owed>,
) {
    while let Some(message) = owed.recv().await {
        // A dropped answer means the host is stopping: ack nothing more.
        if message.outcome.await.is_err() {
            return;
        }
        if message.connection != connection.load(Ordering::SeqCst) {
            tracing::debug!(
                pkid = message.publish.pkid,
                "ack dropped: the broker redelivers on the new connection"
            );
            continue;
        }
        if let Err(e) = client.ack(&message.publish).await {
            tracing::warn!(topic = %message.publish.topic, error = %e, "MQTT ack failed; the broker will redeliver");
        }
        tracing::trace!(pkid = message.publish.pkid, "MQTT ack queued");
    }
}

/// Subscribes to `added` and unsubscribes from `removed`, from a task of its
/// own: the request queue is drained by the connection loop, which must not
/// wait on it.
pub(super) fn change_subscriptions(
    client: AsyncClient,
    added: Vec<(String, QoS)>,
    removed: Vec<String>,
) {
    tokio::spawn(async move {
        for (filter, qos) in added {
            if let Err(e) = client.subscribe(filter.clone(), qos).await {
                tracing::error!(topic = %filter, error = %e, "MQTT subscribe failed");
            }
        }
        for filter in removed {
            if let Err(e) = client.unsubscribe(filter.clone()).await {
                tracing::error!(topic = %filter, error = %e, "MQTT unsubscribe failed");
            }
        }
    });
}

/// The client options for `settings.address` (`mqtt://host[:port]`, or
/// `mqtts://host[:port]` over TLS).
pub fn client_options(client_id: String, settings: &MqttSettings) -> Result<MqttOptions> {
    let (rest, tls, default_port) = if let Some(rest) = settings.address.strip_prefix("mqtt://") {
        (rest, false, 1883)
    } else if let Some(rest) = settings.address.strip_prefix("mqtts://") {
        (rest, true, 8883)
    } else {
        bail!(
            "MQTT address `{}`: use mqtt://host:port or mqtts://host:port",
            settings.address
        );
    };
    let (host, port) = match rest.trim_end_matches('/').rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse()
                .with_context(|| format!("bad port in `{}`", settings.address))?,
        ),
        None => (rest.trim_end_matches('/'), default_port),
    };
    // A fixed client id is what makes the broker keep this host's session.
    let mut options = MqttOptions::new(client_id, host, port);
    options
        .set_keep_alive(Duration::from_secs(settings.keep_alive_secs.max(5)))
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_max_packet_size(MAX_PACKET, MAX_PACKET);
    // Spin's trigger requires both keys; empty means none.
    if let Some(username) = settings.username.as_deref().filter(|u| !u.is_empty()) {
        options.set_credentials(username, settings.password.as_deref().unwrap_or(""));
    }
    if tls {
        let config = tls_config(&settings.tls)?;
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(config),
        )));
    }
    Ok(options)
}

/// rustls (ring) trusting `tls.ca_file`'s certificates, or the WebPKI roots,
/// with the client certificate and key when both are given.
fn tls_config(tls: &MqttTls) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca_file {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path)
                .with_context(|| format!("reading mqtt_tls_ca_file {}", path.display()))?
            {
                roots
                    .add(cert.with_context(|| format!("a certificate in {}", path.display()))?)
                    .with_context(|| format!("a CA certificate in {}", path.display()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_root_certificates(roots);
    Ok(match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .with_context(|| format!("reading mqtt_tls_cert_file {}", cert.display()))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("a certificate in {}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .with_context(|| format!("reading mqtt_tls_key_file {}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .context("the MQTT client certificate and key")?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => bail!("set both mqtt_tls_cert_file and mqtt_tls_key_file, or neither"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let settings = |address: &str| MqttSettings {
            address: address.into(),
            username: None,
            password: None,
            keep_alive_secs: 30,
            tls: MqttTls::default(),
        };
        let options = client_options("app".into(), &settings("mqtt://127.0.0.1:1884")).unwrap();
        assert_eq!(options.broker_address(), ("127.0.0.1".into(), 1884));
        assert!(!options.clean_session());
        assert!(client_options("app".into(), &settings("tcp://x")).is_err());
        // mqtts:// defaults to 8883 and goes over TLS.
        let options = client_options("app".into(), &settings("mqtts://broker")).unwrap();
        assert_eq!(options.broker_address(), ("broker".into(), 8883));
        assert!(matches!(options.transport(), Transport::Tls(_)));
    }

    #[test]
    fn empty_credentials_are_none() {
        let with = |username: &str, password: &str| MqttSettings {
            address: "mqtt://127.0.0.1:1883".into(),
            username: Some(username.into()),
            password: Some(password.into()),
            keep_alive_secs: 30,
            tls: MqttTls::default(),
        };
        let none = client_options("app".into(), &with("", "")).unwrap();
        assert!(none.credentials().is_none());
        let some = client_options("app".into(), &with("host", "s3cret")).unwrap();
        let login = some.credentials().unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("host", "s3cret")
        );
    }
}
