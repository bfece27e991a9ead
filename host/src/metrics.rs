//! Metrics: what the host counts, and `GET /metrics`, which exports it in the
//! OpenMetrics text format Prometheus scrapes (prometheus-client).
//!
//! One set per process (`metrics()`), each metric named, helped and
//! registered here; the code where its event happens only moves it. Labels
//! take a few fixed values, or names from the manifest (routes, components,
//! triggers, transforms), never a device id: a fleet's size must not become
//! the number of series.
//!
//! `Metered` wraps the store: it times and counts every write, whatever the
//! backend, so the store crate knows nothing of metrics.

use crate::store::{
    Backend, Committed, ContainerInfo, ContainerListing, ContainerPage, KeyRange, QueryResult,
    RangeAggregates, Row, StoreError,
};
use async_trait::async_trait;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// What `GET /metrics` answers with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How a message reached the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Http,
    Mqtt,
}

impl Transport {
    fn label(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Mqtt => "mqtt",
        }
    }
}

/// What became of an ingested message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Its rows are committed.
    Stored,
    /// Bad input: answered 4xx, or (MQTT) kept in `_rejected`.
    Rejected,
    /// Nothing was stored and the sender should try again (HTTP 5xx).
    Failed,
}

impl IngestOutcome {
    fn label(self) -> &'static str {
        match self {
            IngestOutcome::Stored => "stored",
            IngestOutcome::Rejected => "rejected",
            IngestOutcome::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IngestMessage {
    transport: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IngestRows {
    transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpRequest {
    /// The manifest route (`/insert/...`), or the host's own (`/readyz`,
    /// `/admin/`, `/stream/...`, the page), or `unmatched`.
    route: String,
    /// `2xx` … `5xx`.
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ComponentLabel {
    component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabel {
    backend: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CronRun {
    /// The trigger's name, or `manual` for `cromflag cron run`.
    trigger: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransformLabel {
    transform: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RetentionLabel {
    /// `device` (telemetry), or the collection's name.
    container_kind: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    ingest_messages: Family<IngestMessage, Counter>,
    ingest_rows: Family<IngestRows, Counter>,
    http_request_duration: HistogramFamily<HttpRequest>,
    component_instances: Gauge,
    component_traps: Family<ComponentLabel, Counter>,
    store_commit_batch_size: Histogram,
    store_commit_duration: Histogram,
    store_errors: Family<BackendLabel, Counter>,
    mqtt_connections: Gauge,
    mqtt_inflight: Gauge,
    cron_runs: Family<CronRun, Counter>,
    transform_rejections: Family<TransformLabel, Counter>,
    stream_clients: Gauge,
    retention_deleted_rows: Family<RetentionLabel, Counter>,
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Seconds, from 0.5 ms to about 16 s.
fn duration_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    fn new() -> Metrics {
        let metrics = Metrics {
            registry: Registry::default(),
            ingest_messages: Family::default(),
            ingest_rows: Family::default(),
            http_request_duration: Family::new_with_constructor(duration_buckets),
            component_instances: Gauge::default(),
            component_traps: Family::default(),
            // Rows per write: 1 to 65,536.
            store_commit_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 17)),
            store_commit_duration: duration_buckets(),
            store_errors: Family::default(),
            mqtt_connections: Gauge::default(),
            mqtt_inflight: Gauge::default(),
            cron_runs: Family::default(),
            transform_rejections: Family::default(),
            stream_clients: Gauge::default(),
            retention_deleted_rows: Family::default(),
        };
        let mut registry = Registry::with_prefix("cromflag");
        registry.register(
            "ingest_messages",
            "Messages (HTTP inserts, MQTT publishes) by transport and outcome",
            metrics.ingest_messages.clone(),
        );
        registry.register(
            "ingest_rows",
            "Telemetry rows committed, by the transport of their message",
            metrics.ingest_rows.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP requests, from their headers to their answer's headers, by route and status class",
            metrics.http_request_duration.clone(),
        );
        registry.register(
            "component_instances",
            "Component instances alive",
            metrics.component_instances.clone(),
        );
        registry.register(
            "component_traps",
            "Component instances that trapped or failed",
            metrics.component_traps.clone(),
        );
        registry.register(
            "store_commit_batch_size",
            "Rows per committed store write",
            metrics.store_commit_batch_size.clone(),
        );
        registry.register(
            "store_commit_duration_seconds",
            "Store writes, from the call to the commit",
            metrics.store_commit_duration.clone(),
        );
        registry.register(
            "store_errors",
            "Store calls that failed in the backend (not refused input)",
            metrics.store_errors.clone(),
        );
        registry.register(
            "mqtt_connections",
            "MQTT connections open: devices on the endpoint, and the broker connection while up",
            metrics.mqtt_connections.clone(),
        );
        registry.register(
            "mqtt_inflight",
            "MQTT messages received and not yet answered (stored or rejected)",
            metrics.mqtt_inflight.clone(),
        );
        registry.register(
            "cron_runs",
            "Cron runs by trigger and final status",
            metrics.cron_runs.clone(),
        );
        registry.register(
            "transform_rejections",
            "Batches a transform rejected",
            metrics.transform_rejections.clone(),
        );
        registry.register(
            "stream_clients",
            "Clients following /stream/<device>",
            metrics.stream_clients.clone(),
        );
        registry.register(
            "retention_deleted_rows",
            "Rows deleted for being older than their retention",
            metrics.retention_deleted_rows.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    pub fn ingested(&self, transport: Transport, outcome: IngestOutcome) {
        self.ingest_messages
            .get_or_create(&IngestMessage {
                transport: transport.label(),
                outcome: outcome.label(),
            })
            .inc();
    }

    pub fn ingested_rows(&self, transport: Transport, rows: u64) {
        self.ingest_rows
            .get_or_create(&IngestRows {
                transport: transport.label(),
            })
            .inc_by(rows);
    }

    pub fn http_request(&self, route: String, status: http::StatusCode, started: Instant) {
        let status = match status.as_u16() {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.http_request_duration
            .get_or_create(&HttpRequest { route, status })
            .observe(started.elapsed().as_secs_f64());
    }

    /// Counts an instance alive for as long as the guard lives.
    pub fn component_instance(&self) -> Alive {
        Alive::new(&self.component_instances)
    }

    pub fn trapped(&self, component: &str) {
        self.component_traps
            .get_or_create(&ComponentLabel {
                component: component.to_owned(),
            })
            .inc();
    }

    /// An MQTT connection open for as long as the guard lives.
    pub fn mqtt_connection(&self) -> Alive {
        Alive::new(&self.mqtt_connections)
    }

    /// An MQTT message unanswered for as long as the guard lives.
    pub fn mqtt_message(&self) -> Alive {
        Alive::new(&self.mqtt_inflight)
    }

    pub fn cron_run(&self, trigger: Option<&str>, status: &'static str) {
        self.cron_runs
            .get_or_create(&CronRun {
                trigger: trigger.unwrap_or("manual").to_owned(),
                status,
            })
            .inc();
    }

    pub fn transform_rejected(&self, transform: &str) {
        self.transform_rejections
            .get_or_create(&TransformLabel {
                transform: transform.to_owned(),
            })
            .inc();
    }

    /// A stream client following for as long as the guard lives.
    pub fn stream_client(&self) -> Alive {
        Alive::new(&self.stream_clients)
    }

    /// `rows` deleted from `container` (`device` for telemetry) by retention.
    pub fn retention_deleted(&self, container: &'static str, rows: u64) {
        self.retention_deleted_rows
            .get_or_create(&RetentionLabel {
                container_kind: container,
            })
            .inc_by(rows);
    }
}

/// Holds one unit of a gauge: added when made, taken back when dropped, so
/// that every way out of a scope (an error, a panic, a dropped task) counts.
pub struct Alive(Gauge);

impl Alive {
    fn new(gauge: &Gauge) -> Alive {
        gauge.inc();
        Alive(gauge.clone())
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The store, with every write timed and counted, and every backend failure
/// counted under the backend's name.
pub struct Metered {
    inner: Arc<dyn Backend>,
    backend: &'static str,
}

impl Metered {
    pub fn new(inner: Arc<dyn Backend>, backend: &'static str) -> Metered {
        Metered { inner, backend }
    }

    fn observe<T>(&self, outcome: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(StoreError::Backend(_)) = &outcome {
            metrics()
                .store_errors
                .get_or_create(&BackendLabel {
                    backend: self.backend,
                })
                .inc();
        }
        outcome
    }

    fn committed(&self, rows: usize, started: Instant) {
        let metrics = metrics();
        metrics.store_commit_batch_size.observe(rows as f64);
        metrics
            .store_commit_duration
            .observe(started.elapsed().as_secs_f64());
    }
}

#[async_trait]
impl Backend for Metered {
    async fn put_container(&self, info: ContainerInfo) -> Result<ContainerInfo, StoreError> {
        self.observe(self.inner.put_container(info).await)
    }

    async fn get_container(&self, name: &str) -> Result<Option<ContainerInfo>, StoreError> {
        self.observe(self.inner.get_container(name).await)
    }

    async fn list_container_page(
        &self,
        listing: &ContainerListing,
    ) -> Result<ContainerPage, StoreError> {
        self.observe(self.inner.list_container_page(listing).await)
    }

    async fn list_containers(&self) -> Result<Vec<String>, StoreError> {
        self.observe(self.inner.list_containers().await)
    }

    async fn drop_container(&self, name: &str) -> Result<bool, StoreError> {
        self.observe(self.inner.drop_container(name).await)
    }

    async fn put_rows(&self, container: &str, rows: Vec<Row>) -> Result<u64, StoreError> {
        let (started, count) = (Instant::now(), rows.len());
        let written = self.observe(self.inner.put_rows(container, rows).await)?;
        self.committed(count, started);
        Ok(written)
    }

    async fn multi_put(&self, batches: Vec<(String, Vec<Row>)>) -> Result<u64, StoreError> {
        let started = Instant::now();
        let count = batches.iter().map(|(_, rows)| rows.len()).sum();
        let written = self.observe(self.inner.multi_put(batches).await)?;
        self.committed(count, started);
        Ok(written)
    }

    async fn delete_rows(
        &self,
        container: &str,
        keys: Vec<crate::store::Value>,
    ) -> Result<u64, StoreError> {
        let started = Instant::now();
        let count = keys.len();
        let deleted = self.observe(self.inner.delete_rows(container, keys).await)?;
        self.committed(count, started);
        Ok(deleted)
    }

    async fn query(&self, container: &str, tql: &str) -> Result<QueryResult, StoreError> {
        self.observe(self.inner.query(container, tql).await)
    }

    async fn aggregate_ranges(
        &self,
        container: &str,
        aggregates: &str,
        ranges: &[KeyRange],
    ) -> Result<RangeAggregates, StoreError> {
        self.observe(
            self.inner
                .aggregate_ranges(container, aggregates, ranges)
                .await,
        )
    }

    async fn close(&self) {
        self.inner.close().await;
    }

    fn commits(&self) -> Option<tokio::sync::broadcast::Receiver<Arc<Committed>>> {
        self.inner.commits()
    }

    fn publish_collection(&self, name: &str) {
        self.inner.publish_collection(name);
    }
}
