//! The `griddb` backend: the store interface over a GridDB cluster (or GridDB
//! Cloud) through its WebAPI, so that no component changes with the store.
//!
//! What it does with each call is `cromflag-griddb-webapi`'s `WebApiStore`
//! (one implementation, which the `griddb-store` component runs too; its
//! header says what GridDB offers and so what this backend promises). This
//! module adds what only a long-lived host has: hyper's pooled connections
//! (`transport`), the connection check at start-up, and the live streams'
//! feed of committed time-series rows.

mod transport;

use super::{
    Backend, CommitFeed, Committed, ContainerInfo, ContainerListing, ContainerPage, KeyRange,
    QueryResult, RangeAggregates, Row, StoreError, Value,
};
use async_trait::async_trait;
pub use cromflag_griddb_webapi::store::GriddbSettings;
use cromflag_griddb_webapi::store::WebApiStore;
use std::sync::Arc;
use tokio::sync::broadcast;
/// Also how the host sends alarm webhooks: any HTTP(S) exchange with a deadline.
pub use transport::HyperTransport;

pub struct GriddbStore {
    webapi: WebApiStore<HyperTransport>,
    /// Rows this host wrote that the feed carries, once GridDB took them
    /// (live streams see this host's writes; other writers to the cluster
    /// are not seen).
    commits: CommitFeed,
}

impl GriddbStore {
    /// Checks the connection once and probes the WebAPI's release (see
    /// [`WebApiStore::connect`]): wrong credentials stop here, an
    /// unreachable GridDB does not.
    pub async fn connect(settings: &GriddbSettings) -> anyhow::Result<GriddbStore> {
        let webapi = WebApiStore::connect(settings, HyperTransport::new())
            .await
            .map_err(anyhow::Error::msg)?;
        Ok(GriddbStore {
            webapi,
            commits: CommitFeed::default(),
        })
    }
}

#[async_trait]
impl Backend for GriddbStore {
    async fn put_container(&self, info: ContainerInfo) -> Result<ContainerInfo, StoreError> {
        self.webapi.put_container(info).await
    }

    async fn get_container(&self, name: &str) -> Result<Option<ContainerInfo>, StoreError> {
        self.webapi.get_container(name).await
    }

    async fn list_container_page(
        &self,
        listing: &ContainerListing,
    ) -> Result<ContainerPage, StoreError> {
        self.webapi.list_container_page(listing).await
    }

    async fn drop_container(&self, name: &str) -> Result<bool, StoreError> {
        self.webapi.drop_container(name).await
    }

    async fn put_rows(&self, container: &str, rows: Vec<Row>) -> Result<u64, StoreError> {
        self.multi_put(vec![(container.to_owned(), rows)]).await
    }

    /// The rows, and once GridDB took them all, the time series among them
    /// to the live streams (copied only while someone listens).
    async fn multi_put(&self, batches: Vec<(String, Vec<Row>)>) -> Result<u64, StoreError> {
        let mut committed = Vec::new();
        let listening = self.commits.listening();
        let written = self
            .webapi
            .multi_put(batches, |info, rows| {
                if listening && self.commits.carries(info) {
                    committed.push(Committed {
                        container: info.name.clone(),
                        columns: info.columns.clone(),
                        rows: rows.to_vec(),
                    });
                }
            })
            .await?;
        for batch in committed {
            self.commits.send(batch);
        }
        Ok(written)
    }

    async fn delete_rows(&self, container: &str, keys: Vec<Value>) -> Result<u64, StoreError> {
        self.webapi.delete_rows(container, keys).await
    }

    fn commits(&self) -> Option<broadcast::Receiver<Arc<Committed>>> {
        Some(self.commits.subscribe())
    }

    fn publish_collection(&self, name: &str) {
        self.commits.publish_collection(name);
    }

    async fn query(&self, container: &str, text: &str) -> Result<QueryResult, StoreError> {
        self.webapi.query(container, text).await
    }

    async fn aggregate_ranges(
        &self,
        container: &str,
        aggregates: &str,
        ranges: &[KeyRange],
    ) -> Result<RangeAggregates, StoreError> {
        self.webapi
            .aggregate_ranges(container, aggregates, ranges)
            .await
    }
}
