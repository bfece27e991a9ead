//! The MQTT trigger: one broker connection (rumqttc) whose messages go to the
//! components of `[[trigger.mqtt]]`, through the Spin MQTT trigger's
//! `handle-message` (the synchronous form, package `spin:mqtt-trigger`).
//!
//! Delivery: the session is persistent (a fixed client id, no clean start) and
//! acks are manual. A QoS 1/2 message is acked only once its handler returned,
//! i.e. once its rows are committed; redelivery after a crash is harmless, as
//! rows upsert on their timestamp. A message the handler rejects (bad payload,
//! unknown topic, a trap) is logged, counted, stored in the `_rejected`
//! dead-letter container, and then acked so that it does not loop. A store
//! failure is retried (capped backoff) until it passes, the message unacked
//! all along.
//! A lost connection is retried with capped exponential backoff; the broker
//! keeps the subscriptions and redelivers what was not acked.

use crate::manifest::{App, MqttSettings};
use crate::runtime::{ComponentConfig, Components, HostState, Runtime};
use crate::store::{Backend, Column, ColumnType, ContainerInfo, ContainerKind, Value};
use anyhow::{bail, Context, Result};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;
use tokio::sync::Semaphore;
use wasmtime::component::InstancePre;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "mqtt-component",
        imports: { default: async },
        exports: { default: async },
        with: {
            "cromflag:iot/types": crate::store::bindings::cromflag::iot::types,
            "cromflag:iot/store": crate::store::bindings::cromflag::iot::store,
            "cromflag:iot/pipeline": crate::store::bindings::cromflag::iot::pipeline,
            "fermyon:spin/variables": crate::store::bindings::fermyon::spin::variables,
        },
    });
}

use bindings::spin::mqtt_trigger::spin_mqtt_types::{Error as HandlerError, Metadata};
use bindings::MqttComponentPre;

/// The dead-letter container: every rejected message, with why.
pub const REJECTED: &str = "_rejected";
/// The largest MQTT packet the client reads (MQTT's own maximum). Larger than any
/// payload limit, so that an oversize message reaches `deliver` and is
/// dead-lettered, instead of breaking the connection and coming back forever.
const MAX_PACKET: usize = 256 << 20;
/// Messages handled at once; past this the connection stops reading (backpressure).
const MAX_IN_FLIGHT: usize = 64;
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often the counters are logged (when they changed).
const COUNTERS_INTERVAL: Duration = Duration::from_secs(60);
/// The longest pause between two tries of a message the store failed.
const MAX_STORE_BACKOFF: Duration = Duration::from_secs(5);

struct Subscription {
    filter: String,
    qos: QoS,
    handler: Arc<MqttHandler>,
}

struct MqttHandler {
    id: String,
    pre: MqttComponentPre<HostState>,
    config: ComponentConfig,
}

/// Counts of what the trigger did, logged every `COUNTERS_INTERVAL` when they change.
#[derive(Default)]
struct Counters {
    received: AtomicU64,
    stored: AtomicU64,
    rejected: AtomicU64,
}

pub struct MqttTrigger {
    runtime: Arc<Runtime>,
    backend: Arc<dyn Backend>,
    options: MqttOptions,
    /// Swapped whole when the manifest changes (see `replace`).
    subscriptions: RwLock<Arc<Vec<Subscription>>>,
    /// The connection's client, once `run` made it: `replace` subscribes with it.
    client: OnceLock<AsyncClient>,
    counters: Counters,
    /// Payloads above this many bytes are rejected unread.
    max_payload: usize,
    /// Dead letters are keyed by receive time; this keeps the keys distinct.
    last_rejected_ms: AtomicI64,
}

/// Whether `pre` exports the Spin MQTT trigger's `handle-message`.
pub fn check(pre: &InstancePre<HostState>) -> Result<()> {
    MqttComponentPre::new(pre.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// Why a handler did not take a message.
enum Failure {
    /// The message is bad: it goes to `_rejected` and is acked.
    Rejected(String),
    /// The store failed: worth retrying, never acked while it lasts.
    Transient(String),
}

impl MqttTrigger {
    /// Loads the components of the application's MQTT triggers; `None` if it has none.
    /// `client_id` names this host's session at the broker: keep it stable across
    /// restarts, and distinct between hosts (`cromflag-<app>` when `None`).
    pub fn new(
        app: &App,
        runtime: Arc<Runtime>,
        backend: Arc<dyn Backend>,
        components: &Components,
        client_id: Option<&str>,
        max_payload: usize,
    ) -> Result<Option<MqttTrigger>> {
        let Some(settings) = &app.mqtt else {
            return Ok(None);
        };
        let subscriptions = Self::subscriptions(app, &runtime, components)?;
        Ok(Some(MqttTrigger {
            runtime,
            backend,
            options: client_options(
                client_id.map_or_else(|| format!("cromflag-{}", app.name), str::to_owned),
                settings,
            )?,
            subscriptions: RwLock::new(Arc::new(subscriptions)),
            client: OnceLock::new(),
            counters: Counters::default(),
            max_payload,
            last_rejected_ms: AtomicI64::new(0),
        }))
    }

    fn subscriptions(
        app: &App,
        runtime: &Runtime,
        components: &Components,
    ) -> Result<Vec<Subscription>> {
        let mut subscriptions = Vec::new();
        for trigger in &app.mqtt_triggers {
            let spec = &app.components[&trigger.component];
            let linked = components
                .get(&spec.id)
                .with_context(|| format!("component `{}` is not loaded", spec.id))?;
            let pre = MqttComponentPre::new(linked.pre.clone()).map_err(|e| {
                anyhow::anyhow!(
                    "component `{}` does not export the MQTT handler: {e}",
                    spec.id
                )
            })?;
            let handler = Arc::new(MqttHandler {
                id: spec.id.clone(),
                pre,
                config: runtime.component_config(app, spec),
            });
            let qos = match trigger.qos {
                0 => QoS::AtMostOnce,
                1 => QoS::AtLeastOnce,
                _ => QoS::ExactlyOnce,
            };
            subscriptions.push(Subscription {
                filter: trigger.topic.clone(),
                qos,
                handler,
            });
        }
        Ok(subscriptions)
    }

    /// Follows `app`'s `[[trigger.mqtt]]` from now on: new topics are
    /// subscribed, dropped ones unsubscribed, and messages go to the new
    /// versions of the components. (The broker connection itself stays: a
    /// changed `[application.trigger.mqtt]` needs a restart.)
    pub fn replace(&self, app: &App, components: &Components) -> Result<()> {
        let new = Self::subscriptions(app, &self.runtime, components)?;
        let old = std::mem::replace(
            &mut *self.subscriptions.write().expect("subscriptions lock"),
            Arc::new(new),
        );
        let new = self
            .subscriptions
            .read()
            .expect("subscriptions lock")
            .clone();
        let Some(client) = self.client.get().cloned() else {
            return Ok(());
        };
        let added: Vec<_> = new
            .iter()
            .filter(|n| !old.iter().any(|o| o.filter == n.filter && o.qos == n.qos))
            .map(|n| (n.filter.clone(), n.qos))
            .collect();
        let removed: Vec<_> = old
            .iter()
            .filter(|o| !new.iter().any(|n| n.filter == o.filter))
            .map(|o| o.filter.clone())
            .collect();
        // From a task: the request queue is drained by the connection loop.
        tokio::spawn(async move {
            for (filter, qos) in added {
                tracing::info!(topic = %filter, "MQTT subscribing (manifest changed)");
                if let Err(e) = client.subscribe(filter.clone(), qos).await {
                    tracing::error!(topic = %filter, error = %e, "MQTT subscribe failed");
                }
            }
            for filter in removed {
                tracing::info!(topic = %filter, "MQTT unsubscribing (manifest changed)");
                if let Err(e) = client.unsubscribe(filter.clone()).await {
                    tracing::error!(topic = %filter, error = %e, "MQTT unsubscribe failed");
                }
            }
        });
        Ok(())
    }

    /// Runs the connection until the task is dropped, reconnecting as needed.
    pub async fn run(self: Arc<Self>) {
        let (client, mut eventloop) = AsyncClient::new(self.options.clone(), MAX_IN_FLIGHT);
        let _ = self.client.set(client.clone());
        let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let mut backoff = Duration::from_millis(100);
        tokio::spawn(report_counters(Arc::downgrade(&self), COUNTERS_INTERVAL));
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    backoff = Duration::from_millis(100);
                    tracing::info!(broker = %self.broker(), session_present = ack.session_present, "MQTT connected");
                    // Subscribing again is harmless and covers a broker that lost the
                    // session. From a task of its own: the request queue is drained by
                    // this very loop, which must not wait on it.
                    let subscriptions = self
                        .subscriptions
                        .read()
                        .expect("subscriptions lock")
                        .clone();
                    for sub in subscriptions.iter() {
                        let (client, filter, qos) = (client.clone(), sub.filter.clone(), sub.qos);
                        tokio::spawn(async move {
                            if let Err(e) = client.subscribe(filter.clone(), qos).await {
                                tracing::error!(topic = %filter, error = %e, "MQTT subscribe failed");
                            }
                        });
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    tracing::info!(broker = %self.broker(), codes = ?ack.return_codes, "MQTT subscribed");
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    tracing::debug!(topic = %publish.topic, pkid = publish.pkid, "MQTT message received");
                    let permit = in_flight
                        .clone()
                        .acquire_owned()
                        .await
                        .expect("the semaphore is never closed");
                    let (trigger, client) = (self.clone(), client.clone());
                    tokio::spawn(async move {
                        let ack = trigger.deliver(&publish).await;
                        // The permit goes before the ack: an ack waits for this loop to
                        // drain the request queue, which it cannot while out of permits.
                        drop(permit);
                        if ack {
                            if let Err(e) = client.ack(&publish).await {
                                tracing::warn!(topic = %publish.topic, error = %e, "MQTT ack failed; the broker will redeliver");
                            }
                        }
                    });
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(broker = %self.broker(), error = %e, retry_in = ?backoff, "MQTT connection lost");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn broker(&self) -> String {
        let (host, port) = self.options.broker_address();
        format!("{host}:{port}")
    }

    /// Handles one message; says whether to ack it: once it is stored or dead-lettered.
    async fn deliver(&self, publish: &Publish) -> bool {
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        let topic = publish.topic.clone();
        let payload = &publish.payload;
        if payload.len() > self.max_payload {
            let reason = format!(
                "payload of {} bytes is over the limit of {} bytes (its first bytes are kept)",
                payload.len(),
                self.max_payload
            );
            return self
                .reject(&topic, &payload[..self.max_payload], &reason)
                .await;
        }
        let payload = payload.to_vec();
        let mut outcome = self.handle(&topic, &payload).await;
        // While the store is down the message is tried again and again, unacked:
        // its permit stays taken, so with `MAX_IN_FLIGHT` of them waiting the
        // connection stops reading and the broker holds the rest. Should this
        // host stop meanwhile, the broker redelivers what was never acked.
        let mut backoff = Duration::from_millis(200);
        let mut tries = 1u64;
        while let Err(Failure::Transient(reason)) = &outcome {
            if tries.is_power_of_two() {
                tracing::error!(%topic, %reason, tries, "store unavailable: message kept unacked, retrying");
            }
            tokio::time::sleep(backoff.mul_f64(0.5 + fastrand::f64())).await;
            backoff = (backoff * 2).min(MAX_STORE_BACKOFF);
            tries += 1;
            outcome = self.handle(&topic, &payload).await;
        }
        match outcome {
            Ok(()) => {
                self.counters.stored.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%topic, pkid = publish.pkid, "MQTT message stored");
            }
            Err(Failure::Rejected(reason)) => return self.reject(&topic, &payload, &reason).await,
            Err(Failure::Transient(_)) => unreachable!("retried above"),
        }
        true
    }

    /// Logs, counts and dead-letters a rejected message; says whether to ack it
    /// (only once it is safely in `_rejected`).
    async fn reject(&self, topic: &str, payload: &[u8], reason: &str) -> bool {
        let rejected = self.counters.rejected.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(%topic, %reason, rejected, "MQTT message rejected");
        if let Err(e) = self.dead_letter(topic, payload, reason).await {
            tracing::error!(%topic, error = %e, "could not store a rejected message: left unacked");
            return false;
        }
        true
    }

    #[allow(
        clippy::ptr_arg,
        reason = "the generated binding takes the WIT list as &Vec<u8>"
    )]
    async fn handle(&self, topic: &str, payload: &Vec<u8>) -> Result<(), Failure> {
        let subscriptions = self
            .subscriptions
            .read()
            .expect("subscriptions lock")
            .clone();
        let Some(sub) = subscriptions
            .iter()
            .find(|s| topic_matches(&s.filter, topic))
        else {
            return Err(Failure::Rejected(format!(
                "no [[trigger.mqtt]] topic matches `{topic}`"
            )));
        };
        let mut store = self.runtime.new_store(&sub.handler.config);
        let called = async {
            let instance = sub.handler.pre.instantiate_async(&mut store).await?;
            let metadata = Metadata {
                topic: topic.to_owned(),
            };
            instance
                .call_handle_message(&mut store, payload, &metadata)
                .await
        };
        match called.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(HandlerError::Other(message))) => Err(classify(&message)),
            // A trap would trap again on redelivery: reject rather than loop.
            Err(trap) => {
                tracing::error!(component = %sub.handler.id, %topic, error = ?trap, "component failed");
                Err(Failure::Rejected(format!(
                    "component `{}` failed: {trap}",
                    sub.handler.id
                )))
            }
        }
    }

    async fn dead_letter(&self, topic: &str, payload: &[u8], reason: &str) -> Result<()> {
        let info = ContainerInfo {
            name: REJECTED.into(),
            kind: ContainerKind::TimeSeries,
            columns: vec![
                Column::new("received", ColumnType::Timestamp),
                Column::new("topic", ColumnType::String),
                Column::new("payload", ColumnType::Blob),
                Column::new("error", ColumnType::String),
            ],
            row_key: true,
        };
        self.backend.put_container(info).await?;
        let row = vec![
            Value::Timestamp(self.next_rejected_key()),
            Value::String(topic.to_owned()),
            Value::Blob(payload.to_vec()),
            Value::String(reason.to_owned()),
        ];
        self.backend.put_rows(REJECTED, vec![row]).await?;
        Ok(())
    }

    /// Now in epoch ms, or one past the last key used if that is later.
    fn next_rejected_key(&self) -> i64 {
        let now = crate::store::now_ms();
        let previous = self
            .last_rejected_ms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                Some(now.max(last + 1))
            })
            .expect("the update always succeeds");
        now.max(previous + 1)
    }
}

/// Logs the trigger's counters every `interval` in which they changed, for as
/// long as the trigger lives.
async fn report_counters(trigger: std::sync::Weak<MqttTrigger>, interval: Duration) {
    let mut last = (0, 0, 0);
    loop {
        tokio::time::sleep(interval).await;
        let Some(trigger) = trigger.upgrade() else {
            return;
        };
        let c = &trigger.counters;
        let now = (
            c.received.load(Ordering::Relaxed),
            c.stored.load(Ordering::Relaxed),
            c.rejected.load(Ordering::Relaxed),
        );
        if now != last {
            tracing::info!(
                received = now.0,
                stored = now.1,
                rejected = now.2,
                "MQTT messages"
            );
            last = now;
        }
    }
}

/// A handler's error text: the insert component reports `{"status": N, ...}`;
/// a 5xx is the store failing, anything else the message being bad.
fn classify(message: &str) -> Failure {
    let status = serde_json::from_str::<serde_json::Value>(message)
        .ok()
        .and_then(|v| v.get("status")?.as_u64());
    match status {
        Some(status) if status >= 500 => Failure::Transient(message.to_owned()),
        _ => Failure::Rejected(message.to_owned()),
    }
}

/// MQTT filter matching; a shared subscription `$share/<group>/<filter>`
/// matches as its filter.
fn topic_matches(filter: &str, topic: &str) -> bool {
    let filter = match filter.strip_prefix("$share/") {
        Some(rest) => rest.split_once('/').map_or(rest, |(_group, filter)| filter),
        None => filter,
    };
    rumqttc::matches(topic, filter)
}

fn client_options(client_id: String, settings: &MqttSettings) -> Result<MqttOptions> {
    let Some(rest) = settings.address.strip_prefix("mqtt://") else {
        bail!(
            "MQTT address `{}`: only mqtt://host:port is supported",
            settings.address
        );
    };
    let (host, port) = match rest.trim_end_matches('/').rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse()
                .with_context(|| format!("bad port in `{}`", settings.address))?,
        ),
        None => (rest.trim_end_matches('/'), 1883),
    };
    // A fixed client id is what makes the broker keep this host's session.
    let mut options = MqttOptions::new(client_id, host, port);
    options
        .set_keep_alive(Duration::from_secs(settings.keep_alive_secs.max(5)))
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_max_packet_size(MAX_PACKET, MAX_PACKET);
    if let Some(username) = &settings.username {
        options.set_credentials(username, settings.password.as_deref().unwrap_or(""));
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_shared_subscriptions() {
        assert!(topic_matches("devices/+/telemetry", "devices/a/telemetry"));
        assert!(topic_matches("devices/#", "devices/a/telemetry"));
        assert!(!topic_matches(
            "devices/+/telemetry",
            "devices/a/b/telemetry"
        ));
        assert!(topic_matches(
            "$share/hosts/devices/+/telemetry",
            "devices/a/telemetry"
        ));
    }

    #[test]
    fn errors_are_rejections_unless_the_store_failed() {
        assert!(matches!(
            classify(r#"{"status":400,"error":"x"}"#),
            Failure::Rejected(_)
        ));
        assert!(matches!(
            classify(r#"{"status":503,"error":"x"}"#),
            Failure::Transient(_)
        ));
        assert!(matches!(classify("plain text"), Failure::Rejected(_)));
    }

    #[test]
    fn addresses() {
        let settings = |address: &str| MqttSettings {
            address: address.into(),
            username: None,
            password: None,
            keep_alive_secs: 30,
        };
        let options = client_options("app".into(), &settings("mqtt://127.0.0.1:1884")).unwrap();
        assert_eq!(options.broker_address(), ("127.0.0.1".into(), 1884));
        assert!(!options.clean_session());
        assert!(client_options("app".into(), &settings("tcp://x")).is_err());
    }
}
