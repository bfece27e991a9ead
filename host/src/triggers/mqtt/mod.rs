//! The MQTT trigger: messages from devices go to the components of
//! `[[trigger.mqtt]]`, in batches, and each one is answered only once it is
//! committed or dead-lettered.
//!
//! Messages come from two sources, which share everything from `submit` on:
//! - `endpoint`: the host's own device endpoint (`cromflag up`, `--mqtt-broker`):
//!   a device's PUBACK/PUBREC is sent once its message is stored;
//! - `client`: an external broker (`mqtt_address`), subscribed to with a
//!   persistent session and manual acks, sent in the order messages arrived.
//!
//! `submit` hands a message to one of a few ingest workers, chosen by topic,
//! so that one device's messages are handled in the order they arrived. A
//! worker takes what is queued (up to `MAX_BATCH_MESSAGES`, waiting
//! `LINGER` for more when more is coming), runs it through the component,
//! preferring the batch export `cromflag:iot/mqtt-batch` (one instance and one
//! commit for the batch) over Spin's one-message `handle-message`, and answers
//! each message:
//! - stored: its rows are committed;
//! - rejected (bad payload, unknown topic, a trap): logged, counted, stored in
//!   the `_rejected` dead-letter container, then answered, so that it does not
//!   loop;
//! - a store failure is retried (capped backoff) until it passes, unanswered
//!   all along: the worker stops taking messages, its queue fills, and the
//!   sources stop reading (back-pressure). At most `MAX_QUEUED_BYTES` of
//!   payload wait in the workers at once.

mod client;
mod codec;
pub mod endpoint;
mod subscriptions;

use crate::bindings::mqtt::MqttComponentPre;
use crate::bindings::mqtt_batch::exports::cromflag::iot::mqtt_batch::Message as BatchMessage;
use crate::bindings::mqtt_batch::spin::mqtt_trigger::spin_mqtt_types::{
    Error as HandlerError, Metadata,
};
use crate::bindings::mqtt_batch::MqttBatchComponentPre;
use crate::health::MqttReadiness;
use crate::manifest::App;
use crate::metrics::{metrics, Alive, IngestOutcome, Transport};
use crate::runtime::{ComponentConfig, Components, HostState, Runtime};
use crate::store::{Backend, Column, ColumnType, ContainerInfo, ContainerKind, Value};
use anyhow::{Context, Result};
use bytes::Bytes;
use rumqttc::QoS;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use wasmtime::component::InstancePre;

pub use client::client_options;

/// The dead-letter container: every rejected message, with why.
pub const REJECTED: &str = "_rejected";
/// Most messages one component call takes.
const MAX_BATCH_MESSAGES: usize = 512;
/// Most payload bytes one component call takes (a larger message goes alone).
const MAX_BATCH_BYTES: usize = 4 << 20;
/// How long a worker that found more than one message queued waits for more
/// before it flushes. A lone message goes at once: a device that waits for
/// each ack pays no linger.
const LINGER: Duration = Duration::from_millis(2);
/// Messages queued per worker; the byte bound below usually binds first.
const WORKER_QUEUE: usize = 4096;
/// Payload bytes queued or being handled in all workers together; past this,
/// `submit` waits, and so do the connections that call it.
pub const MAX_QUEUED_BYTES: usize = 64 << 20;
/// How often the counters are logged (when they changed).
const COUNTERS_INTERVAL: Duration = Duration::from_secs(60);
/// The longest pause between two tries of a batch the store failed.
const MAX_STORE_BACKOFF: Duration = Duration::from_secs(5);

struct Subscription {
    filter: String,
    qos: QoS,
    handler: Arc<MqttHandler>,
}

/// A component bound to topics, by the export it has.
enum Export {
    /// `cromflag:iot/mqtt-batch`: many messages per instance.
    Batch(MqttBatchComponentPre<HostState>),
    /// Spin's `handle-message`: one message per instance.
    Single(MqttComponentPre<HostState>),
}

struct MqttHandler {
    id: String,
    export: Export,
    config: ComponentConfig,
}

/// Counts of what the trigger did, logged every `COUNTERS_INTERVAL` when they change.
#[derive(Default)]
struct Counters {
    received: AtomicU64,
    stored: AtomicU64,
    rejected: AtomicU64,
}

/// What became of a message handed to `submit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Its rows are committed.
    Stored,
    /// It is in `_rejected`, for this reason.
    Rejected(Rejection),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// The component refused it (a bad payload) or failed on it.
    Invalid(String),
    /// No `[[trigger.mqtt]]` topic matches it.
    NoTrigger,
}

/// A message on its way through a worker.
struct Job {
    topic: String,
    payload: Bytes,
    answer: oneshot::Sender<Outcome>,
    /// Its share of `MAX_QUEUED_BYTES`, returned when it is answered.
    _bytes: OwnedSemaphorePermit,
    /// Counts it in `cromflag_mqtt_inflight` until it is answered.
    _inflight: Alive,
}

/// Why a handler did not take a message.
#[derive(Clone, Debug)]
enum Failure {
    /// The message is bad: it goes to `_rejected` and is answered.
    Rejected(Rejection),
    /// The store failed: worth retrying, never answered while it lasts.
    Transient(String),
}

pub struct MqttTrigger {
    runtime: Arc<Runtime>,
    backend: Arc<dyn Backend>,
    /// The broker to subscribe to, if `mqtt_address` names one.
    broker: Option<rumqttc::MqttOptions>,
    /// Swapped whole when the manifest changes (see `replace`).
    subscriptions: RwLock<Arc<Vec<Subscription>>>,
    /// The broker connection's client, once `client::run` made it: `replace`
    /// subscribes with it.
    client: OnceLock<rumqttc::AsyncClient>,
    /// Whether that connection is up: set at its CONNACK, cleared at its
    /// next error (what `/readyz` reports).
    connected: Arc<AtomicBool>,
    workers: Vec<mpsc::Sender<Job>>,
    queued_bytes: Arc<Semaphore>,
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

impl MqttTrigger {
    /// Loads the components of the application's MQTT triggers and starts the
    /// ingest workers; `None` if it has none. `client_id` names this host's
    /// session at an external broker: keep it stable across restarts, and
    /// distinct between hosts (`cromflag-<app>` when `None`). Messages come
    /// from the host's endpoint (see `endpoint::start`) and, when
    /// `mqtt_address` is set, from that broker (see `run_client`).
    pub fn new(
        app: &App,
        runtime: Arc<Runtime>,
        backend: Arc<dyn Backend>,
        components: &Components,
        client_id: Option<&str>,
        max_payload: usize,
    ) -> Result<Option<Arc<MqttTrigger>>> {
        let Some(settings) = &app.mqtt else {
            return Ok(None);
        };
        let subscriptions = Self::subscriptions(app, &runtime, components)?;
        let broker = match settings.address.trim() {
            "" => None,
            _ => Some(client_options(
                client_id.map_or_else(|| format!("cromflag-{}", app.name), str::to_owned),
                settings,
            )?),
        };
        let workers =
            std::thread::available_parallelism().map_or(4, |n| (2 * n.get()).clamp(4, 16));
        let trigger = Arc::new_cyclic(|this: &Weak<MqttTrigger>| {
            let workers = (0..workers)
                .map(|_| {
                    let (tx, rx) = mpsc::channel(WORKER_QUEUE);
                    tokio::spawn(run_worker(this.clone(), rx));
                    tx
                })
                .collect();
            MqttTrigger {
                runtime,
                backend,
                broker,
                subscriptions: RwLock::new(Arc::new(subscriptions)),
                client: OnceLock::new(),
                connected: Arc::new(AtomicBool::new(false)),
                workers,
                queued_bytes: Arc::new(Semaphore::new(MAX_QUEUED_BYTES)),
                counters: Counters::default(),
                max_payload,
                last_rejected_ms: AtomicI64::new(0),
            }
        });
        tokio::spawn(report_counters(Arc::downgrade(&trigger), COUNTERS_INTERVAL));
        Ok(Some(trigger))
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
            let export = match MqttBatchComponentPre::new(linked.pre.clone()) {
                Ok(pre) => Export::Batch(pre),
                Err(_) => {
                    Export::Single(MqttComponentPre::new(linked.pre.clone()).map_err(|e| {
                        anyhow::anyhow!(
                            "component `{}` does not export the MQTT handler: {e}",
                            spec.id
                        )
                    })?)
                }
            };
            let handler = Arc::new(MqttHandler {
                id: spec.id.clone(),
                export,
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

    /// Follows `app`'s `[[trigger.mqtt]]` from now on: messages go to the new
    /// versions of the components, new topics are taken and dropped ones no
    /// longer (at an external broker: subscribed and unsubscribed). The broker
    /// connection itself stays: a changed `[application.trigger.mqtt]` needs a
    /// restart.
    pub fn replace(&self, app: &App, components: &Components) -> Result<()> {
        let new = Arc::new(Self::subscriptions(app, &self.runtime, components)?);
        let old = std::mem::replace(
            &mut *self.subscriptions.write().expect("subscriptions lock"),
            new.clone(),
        );
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
        for (filter, _) in &added {
            tracing::info!(topic = %filter, "MQTT topic added (manifest changed)");
        }
        for filter in &removed {
            tracing::info!(topic = %filter, "MQTT topic removed (manifest changed)");
        }
        if let Some(client) = self.client.get() {
            client::change_subscriptions(client.clone(), added, removed);
        }
        Ok(())
    }

    /// Runs the connection to the external broker, if `mqtt_address` names
    /// one, until the task is dropped.
    pub async fn run_client(self: Arc<Self>) {
        if let Some(options) = self.broker.clone() {
            client::run(self, options).await;
        }
    }

    /// Whether an external broker is configured.
    /// Whether `device` may publish to `topic`: one of the triggers' filters
    /// takes it with the device's own id for its wildcard (`access::may_publish`).
    pub fn is_own_topic(&self, device: &str, topic: &str) -> bool {
        let subscriptions = self
            .subscriptions
            .read()
            .expect("subscriptions lock")
            .clone();
        crate::access::may_publish(
            device,
            topic,
            subscriptions.iter().map(|s| s.filter.as_str()),
        )
    }

    pub fn has_broker(&self) -> bool {
        self.broker.is_some()
    }

    /// Whether MQTT messages can arrive, as `/readyz` checks it: through the
    /// broker connection when there is one, else through the endpoint if
    /// the host runs one.
    pub fn readiness(&self, endpoint_listening: bool) -> MqttReadiness {
        match (self.has_broker(), endpoint_listening) {
            (true, _) => MqttReadiness::Client(self.connected.clone()),
            (false, true) => MqttReadiness::Endpoint,
            (false, false) => MqttReadiness::None,
        }
    }

    fn filters(&self) -> Vec<(String, QoS)> {
        let subscriptions = self
            .subscriptions
            .read()
            .expect("subscriptions lock")
            .clone();
        subscriptions
            .iter()
            .map(|s| (s.filter.clone(), s.qos))
            .collect()
    }

    /// Hands a message to its ingest worker, once there is room for it
    /// (back-pressure: this waits while `MAX_QUEUED_BYTES` are queued). The
    /// answer comes when it is stored or dead-lettered; `Err` if the host is
    /// stopping.
    pub async fn submit(
        &self,
        topic: String,
        payload: Bytes,
    ) -> Result<oneshot::Receiver<Outcome>> {
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        let cost = payload.len().clamp(1, MAX_QUEUED_BYTES) as u32;
        let bytes = self
            .queued_bytes
            .clone()
            .acquire_many_owned(cost)
            .await
            .context("the ingest queue is closed")?;
        let (answer, outcome) = oneshot::channel();
        let worker = &self.workers[worker_of(&topic, self.workers.len())];
        worker
            .send(Job {
                topic,
                payload,
                answer,
                _bytes: bytes,
                _inflight: metrics().mqtt_message(),
            })
            .await
            .ok()
            .context("the ingest workers stopped")?;
        Ok(outcome)
    }

    /// Handles one batch to the end: every job is answered, stored or
    /// dead-lettered; store failures are retried until they pass.
    async fn process(&self, jobs: Vec<Job>) {
        let started = std::time::Instant::now();
        let subscriptions = self
            .subscriptions
            .read()
            .expect("subscriptions lock")
            .clone();
        // Each message goes to the first subscription whose filter matches.
        let routes: Vec<Option<usize>> = jobs
            .iter()
            .map(|job| {
                subscriptions
                    .iter()
                    .position(|s| topic_matches(&s.filter, &job.topic))
            })
            .collect();
        let mut failures: Vec<Option<Failure>> = vec![None; jobs.len()];
        let mut pending: Vec<usize> = Vec::with_capacity(jobs.len());
        for (i, job) in jobs.iter().enumerate() {
            if job.payload.len() > self.max_payload {
                failures[i] = Some(Failure::Rejected(Rejection::Invalid(format!(
                    "payload of {} bytes is over the limit of {} bytes (its first bytes are kept)",
                    job.payload.len(),
                    self.max_payload
                ))));
            } else if routes[i].is_none() {
                failures[i] = Some(Failure::Rejected(Rejection::NoTrigger));
            } else {
                pending.push(i);
            }
        }
        let mut backoff = Duration::from_millis(200);
        let mut tries = 1u64;
        while !pending.is_empty() {
            // One call per subscription, its messages in arrival order.
            for (index, sub) in subscriptions.iter().enumerate() {
                let mine: Vec<usize> = pending
                    .iter()
                    .copied()
                    .filter(|&i| routes[i] == Some(index))
                    .collect();
                if mine.is_empty() {
                    continue;
                }
                let messages: Vec<(&str, &Bytes)> = mine
                    .iter()
                    .map(|&i| (jobs[i].topic.as_str(), &jobs[i].payload))
                    .collect();
                let results = self.call(&sub.handler, &messages).await;
                for (i, result) in mine.into_iter().zip(results) {
                    failures[i] = result.err();
                }
            }
            let transient: Vec<usize> = pending
                .iter()
                .copied()
                .filter(|&i| matches!(failures[i], Some(Failure::Transient(_))))
                .collect();
            if let Some(&first) = transient.first() {
                // While the store is down the messages are tried again and
                // again, unanswered: this worker takes nothing new meanwhile.
                if tries.is_power_of_two() {
                    let Some(Failure::Transient(reason)) = &failures[first] else {
                        unreachable!("filtered above")
                    };
                    tracing::error!(topic = %jobs[first].topic, %reason, tries, messages = transient.len(),
                        "store unavailable: message kept unacked, retrying");
                }
                tokio::time::sleep(backoff.mul_f64(0.5 + fastrand::f64())).await;
                backoff = (backoff * 2).min(MAX_STORE_BACKOFF);
                tries += 1;
            }
            pending = transient;
        }
        self.dead_letter_all(&jobs, &failures).await;
        tracing::debug!(messages = jobs.len(), elapsed = ?started.elapsed(), "MQTT batch handled");
        for (job, failure) in jobs.into_iter().zip(failures) {
            let outcome = match failure {
                None => {
                    self.counters.stored.fetch_add(1, Ordering::Relaxed);
                    metrics().ingested(Transport::Mqtt, IngestOutcome::Stored);
                    Outcome::Stored
                }
                Some(Failure::Rejected(why)) => {
                    metrics().ingested(Transport::Mqtt, IngestOutcome::Rejected);
                    Outcome::Rejected(why)
                }
                Some(Failure::Transient(_)) => unreachable!("retried above"),
            };
            // A source that went away no longer needs its answer.
            let _ = job.answer.send(outcome);
        }
    }

    /// Runs `messages` through `handler`: one result per message.
    async fn call(
        &self,
        handler: &MqttHandler,
        messages: &[(&str, &Bytes)],
    ) -> Vec<Result<(), Failure>> {
        match &handler.export {
            Export::Batch(pre) => {
                let list: Vec<BatchMessage> = messages
                    .iter()
                    .map(|(topic, payload)| BatchMessage {
                        payload: payload.to_vec(),
                        metadata: Metadata {
                            topic: (*topic).to_owned(),
                        },
                    })
                    .collect();
                let mut store = self.runtime.new_store(&handler.config);
                store.data_mut().set_ingest_transport(Transport::Mqtt);
                let called = async {
                    let instance = pre.instantiate_async(&mut store).await?;
                    instance
                        .cromflag_iot_mqtt_batch()
                        .call_handle_messages(&mut store, &list)
                        .await
                };
                match called.await {
                    Ok(results) if results.len() == messages.len() => results
                        .into_iter()
                        .map(|r| r.map_err(|HandlerError::Other(m)| classify(&m)))
                        .collect(),
                    Ok(results) => {
                        let error = format!(
                            "component `{}` answered {} results for {} messages",
                            handler.id,
                            results.len(),
                            messages.len()
                        );
                        tracing::error!(component = %handler.id, "{error}");
                        vec![Err(Failure::Rejected(Rejection::Invalid(error))); messages.len()]
                    }
                    // Which message made it trap? Each alone tells.
                    Err(_) if messages.len() > 1 => {
                        let mut results = Vec::with_capacity(messages.len());
                        for message in messages {
                            if let Some(failed) = store_failed(&results) {
                                results.push(Err(failed));
                                continue;
                            }
                            let one = Box::pin(self.call(handler, std::slice::from_ref(message)));
                            results.extend(one.await);
                        }
                        results
                    }
                    Err(trap) => vec![Err(self.trapped(handler, messages[0].0, &trap))],
                }
            }
            Export::Single(pre) => {
                let mut results = Vec::with_capacity(messages.len());
                for (topic, payload) in messages {
                    if let Some(failed) = store_failed(&results) {
                        results.push(Err(failed));
                        continue;
                    }
                    let mut store = self.runtime.new_store(&handler.config);
                    store.data_mut().set_ingest_transport(Transport::Mqtt);
                    let payload = payload.to_vec();
                    let called = async {
                        let instance = pre.instantiate_async(&mut store).await?;
                        let metadata = Metadata {
                            topic: (*topic).to_owned(),
                        };
                        instance
                            .call_handle_message(&mut store, &payload, &metadata)
                            .await
                    };
                    results.push(match called.await {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(HandlerError::Other(message))) => Err(classify(&message)),
                        Err(trap) => Err(self.trapped(handler, topic, &trap)),
                    });
                }
                results
            }
        }
    }

    /// A trap would trap again on redelivery: the message is rejected rather than looping.
    fn trapped(&self, handler: &MqttHandler, topic: &str, trap: &wasmtime::Error) -> Failure {
        tracing::error!(component = %handler.id, %topic, error = ?trap, "component failed");
        metrics().trapped(&handler.id);
        Failure::Rejected(Rejection::Invalid(format!(
            "component `{}` failed: {trap}",
            handler.id
        )))
    }

    /// Logs, counts and stores every rejected message of a batch in
    /// `_rejected`, in one write, retried until it is stored: a message is
    /// answered only once it is safe there.
    async fn dead_letter_all(&self, jobs: &[Job], failures: &[Option<Failure>]) {
        let mut rows = Vec::new();
        for (job, failure) in jobs.iter().zip(failures) {
            let Some(Failure::Rejected(why)) = failure else {
                continue;
            };
            let reason = match why {
                Rejection::Invalid(reason) => reason.clone(),
                Rejection::NoTrigger => {
                    format!("no [[trigger.mqtt]] topic matches `{}`", job.topic)
                }
            };
            let rejected = self.counters.rejected.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(topic = %job.topic, %reason, rejected, "MQTT message rejected");
            let kept = &job.payload[..job.payload.len().min(self.max_payload)];
            rows.push(vec![
                Value::Timestamp(self.next_rejected_key()),
                Value::String(job.topic.clone()),
                Value::Blob(kept.to_vec()),
                Value::String(reason),
            ]);
        }
        if rows.is_empty() {
            return;
        }
        let mut backoff = Duration::from_millis(200);
        let mut tries = 1u64;
        while let Err(e) = self.dead_letter(rows.clone()).await {
            if tries.is_power_of_two() {
                tracing::error!(error = %e, tries, "could not store rejected messages: kept unacked, retrying");
            }
            tokio::time::sleep(backoff.mul_f64(0.5 + fastrand::f64())).await;
            backoff = (backoff * 2).min(MAX_STORE_BACKOFF);
            tries += 1;
        }
    }

    async fn dead_letter(&self, rows: Vec<Vec<Value>>) -> Result<()> {
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
        self.backend.put_rows(REJECTED, rows).await?;
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

/// Once the store failed on a message, the ones after it in the batch are
/// not tried until it is retried: a later message must not be stored before
/// an earlier one of the same device.
fn store_failed(results: &[Result<(), Failure>]) -> Option<Failure> {
    results.iter().find_map(|r| match r {
        Err(failed @ Failure::Transient(_)) => Some(failed.clone()),
        _ => None,
    })
}

/// The worker a topic's messages go to: always the same one, so that one
/// device's messages keep their order.
fn worker_of(topic: &str, workers: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    topic.hash(&mut hasher);
    (hasher.finish() % workers as u64) as usize
}

/// One ingest worker: takes what is queued as one batch, handles it to the
/// end, then takes the next.
async fn run_worker(trigger: Weak<MqttTrigger>, mut jobs: mpsc::Receiver<Job>) {
    while let Some(first) = jobs.recv().await {
        let mut bytes = first.payload.len();
        let mut batch = vec![first];
        let full = |batch: &Vec<Job>, bytes: usize| {
            batch.len() >= MAX_BATCH_MESSAGES || bytes >= MAX_BATCH_BYTES
        };
        while !full(&batch, bytes) {
            match jobs.try_recv() {
                Ok(job) => {
                    bytes += job.payload.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        // More was queued: more is probably coming; give it a moment to join.
        if batch.len() > 1 {
            let deadline = tokio::time::Instant::now() + LINGER;
            while !full(&batch, bytes) {
                match tokio::time::timeout_at(deadline, jobs.recv()).await {
                    Ok(Some(job)) => {
                        bytes += job.payload.len();
                        batch.push(job);
                    }
                    _ => break,
                }
            }
        }
        let Some(trigger) = trigger.upgrade() else {
            return;
        };
        trigger.process(batch).await;
    }
}

/// Logs the trigger's counters every `interval` in which they changed, for as
/// long as the trigger lives.
async fn report_counters(trigger: Weak<MqttTrigger>, interval: Duration) {
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
        _ => Failure::Rejected(Rejection::Invalid(message.to_owned())),
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
    fn one_topic_always_goes_to_one_worker() {
        let first = worker_of("devices/a/telemetry", 4);
        assert!((0..100).all(|_| worker_of("devices/a/telemetry", 4) == first));
        let spread: std::collections::HashSet<usize> = (0..64)
            .map(|i| worker_of(&format!("devices/{i}/telemetry"), 4))
            .collect();
        assert_eq!(spread.len(), 4);
    }
}
