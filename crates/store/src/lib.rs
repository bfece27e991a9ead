//! Storage: the `Backend` trait every store implements, its two backends
//! (`embedded`: SQLite; `griddb`: a GridDB cluster through its WebAPI, whose
//! bodies, dialect and paging are `cromflag-griddb-webapi`'s). The schema and row checks
//! they share are `cromflag-model`'s, re-exported here.
//!
//! Boundary, enforced by this crate's dependencies: backends see containers,
//! rows and TQL, never components or the host (no wasmtime here); only
//! `griddb` sees HTTP, as a client. The host's `runtime::store_import` is the
//! only place that converts the WIT-generated types.

pub mod embedded;
pub mod griddb;
/// The TQL parser: its own crate (`cromflag-tql`), no I/O, so that it also
/// compiles for wasm32-wasip2.
pub use cromflag_tql as tql;

use async_trait::async_trait;
pub use cromflag_model::{
    added_columns, check_column_name, check_rows, Column, ColumnType, ContainerInfo, ContainerKind,
    QueryResult, Row, StoreError, Value,
};

/// Rows of one time series as they were just committed: what live streams carry.
#[derive(Debug)]
pub struct Committed {
    pub container: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
}

/// A GridDB-style key-container store (see `wit/store.wit` for the contract).
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Creates the container, or checks it against `info` and appends the
    /// columns it lacks; returns the container as stored.
    async fn put_container(&self, info: ContainerInfo) -> Result<ContainerInfo, StoreError>;
    async fn get_container(&self, name: &str) -> Result<Option<ContainerInfo>, StoreError>;
    /// All container names, sorted.
    async fn list_containers(&self) -> Result<Vec<String>, StoreError>;
    /// Drops a container and its rows; says whether it existed. Not in the
    /// WIT interface: only the host (the WebAPI's `DELETE containers`) drops.
    async fn drop_container(&self, name: &str) -> Result<bool, StoreError>;
    /// Writes all rows or none; returns once they are durable.
    async fn put_rows(&self, container: &str, rows: Vec<Row>) -> Result<u64, StoreError>;
    /// Writes rows into several containers; see `multi-put` in `wit/store.wit`
    /// for how much of it is atomic.
    async fn multi_put(&self, batches: Vec<(String, Vec<Row>)>) -> Result<u64, StoreError>;
    async fn query(&self, container: &str, tql: &str) -> Result<QueryResult, StoreError>;

    /// Time-series rows as they commit, if this backend can tell. The channel is
    /// bounded: a receiver that falls behind gets `Lagged`, and writers never wait.
    fn commits(&self) -> Option<tokio::sync::broadcast::Receiver<std::sync::Arc<Committed>>> {
        None
    }
}

/// The current time as a TIMESTAMP value: milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
