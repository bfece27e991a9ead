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
    ContainerListing, ContainerPage, KeyRange, QueryResult, RangeAggregates, Row, StoreError,
    Value, ALL_NAMES_PAGE,
};

/// Rows of one container as they were just committed: what live streams
/// (time series) and the host's alarms (also `devices`) follow.
#[derive(Debug)]
pub struct Committed {
    pub container: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
}

/// Committed batches kept for slow listeners before they lag.
const COMMITS_BUFFER: usize = 1024;

/// What a backend publishes as it commits: the rows of every time series,
/// and of the collections named with [`CommitFeed::publish_collection`]
/// (only those: a collection such as `messages` holds whole documents, which
/// the channel would keep alive until overwritten). A send never waits.
#[derive(Clone)]
pub struct CommitFeed {
    sender: tokio::sync::broadcast::Sender<std::sync::Arc<Committed>>,
    collections: std::sync::Arc<std::sync::RwLock<std::collections::BTreeSet<String>>>,
}

impl Default for CommitFeed {
    fn default() -> CommitFeed {
        CommitFeed {
            sender: tokio::sync::broadcast::channel(COMMITS_BUFFER).0,
            collections: Default::default(),
        }
    }
}

impl CommitFeed {
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<std::sync::Arc<Committed>> {
        self.sender.subscribe()
    }

    /// Whether anyone listens: rows are copied for the feed only then.
    pub fn listening(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// Whether rows of `info` go on the feed.
    pub fn carries(&self, info: &ContainerInfo) -> bool {
        info.kind == ContainerKind::TimeSeries
            || self
                .collections
                .read()
                .expect("commit feed lock")
                .contains(&info.name)
    }

    pub fn publish_collection(&self, name: &str) {
        self.collections
            .write()
            .expect("commit feed lock")
            .insert(name.to_owned());
    }

    pub fn send(&self, committed: Committed) {
        // No listener left is not an error.
        let _ = self.sender.send(std::sync::Arc::new(committed));
    }
}

/// Every name, ascending, asked `page` names at a time: see
/// [`cromflag_model::all_names`].
async fn all_names<B: Backend + ?Sized>(backend: &B, page: u64) -> Result<Vec<String>, StoreError> {
    cromflag_model::all_names(page, |listing| async move {
        backend.list_container_page(&listing).await
    })
    .await
}

/// A GridDB-style key-container store (see `wit/store.wit` for the contract).
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Creates the container, or checks it against `info` and appends the
    /// columns it lacks; returns the container as stored.
    async fn put_container(&self, info: ContainerInfo) -> Result<ContainerInfo, StoreError>;
    async fn get_container(&self, name: &str) -> Result<Option<ContainerInfo>, StoreError>;
    /// One page of container names, in one call where the backend can: see
    /// [`ContainerListing`] for which names, in what order, and
    /// [`ContainerPage`] for the answer. GridDB's `GET containers` (WebAPI
    /// §2.2) is this call.
    async fn list_container_page(
        &self,
        listing: &ContainerListing,
    ) -> Result<ContainerPage, StoreError>;
    /// Every container name, sorted (the WIT's `list-containers`): pages of
    /// [`ALL_NAMES_PAGE`] names, asked one after the other until the last.
    /// Not a snapshot: a container created or dropped meanwhile may be listed
    /// or not, but no name is listed twice and the list stays sorted. What
    /// reads one page of names (the WebAPI server's `GET containers`) calls
    /// [`Backend::list_container_page`] instead.
    async fn list_containers(&self) -> Result<Vec<String>, StoreError> {
        all_names(self, ALL_NAMES_PAGE).await
    }
    /// Drops a container and its rows; says whether it existed. Not in the
    /// WIT interface: only the host (the WebAPI's `DELETE containers`) drops.
    async fn drop_container(&self, name: &str) -> Result<bool, StoreError>;
    /// Writes all rows or none; returns once they are durable.
    async fn put_rows(&self, container: &str, rows: Vec<Row>) -> Result<u64, StoreError>;
    /// Writes rows into several containers; see `multi-put` in `wit/store.wit`
    /// for how much of it is atomic.
    async fn multi_put(&self, batches: Vec<(String, Vec<Row>)>) -> Result<u64, StoreError>;
    /// Deletes the rows whose row key is one of `keys`, all or none; keys of
    /// no row are passed over. Returns how many rows went, where the backend
    /// can tell (GridDB's WebAPI cannot: there, how many keys were sent).
    /// GridDB's `DELETE containers/{c}/rows` (WebAPI §2.8) is this call. Not
    /// in the WIT interface: only the host (retention, the WebAPI) deletes.
    async fn delete_rows(&self, container: &str, keys: Vec<Value>) -> Result<u64, StoreError>;
    async fn query(&self, container: &str, tql: &str) -> Result<QueryResult, StoreError>;
    /// `aggregates` over each of `ranges` of the row key (`aggregate-ranges`
    /// in `wit/store.wit`), in one call: each backend answers it its own way.
    async fn aggregate_ranges(
        &self,
        container: &str,
        aggregates: &str,
        ranges: &[KeyRange],
    ) -> Result<RangeAggregates, StoreError>;

    /// Finishes what was written, leaves the backend's files tidy (the
    /// embedded store checkpoints and truncates its WAL) and lets go of its
    /// connections; calls after it fail. For a clean shutdown.
    async fn close(&self) {}

    /// Rows as they commit (see [`CommitFeed`]), if this backend can tell. The
    /// channel is bounded: a receiver that falls behind gets `Lagged`, and
    /// writers never wait.
    fn commits(&self) -> Option<tokio::sync::broadcast::Receiver<std::sync::Arc<Committed>>> {
        None
    }

    /// Puts the rows of the collection `name` on the commit feed too.
    fn publish_collection(&self, _name: &str) {}
}

/// The current time as a TIMESTAMP value: milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Container names in memory, which `churn` changes before every
    /// listing (its argument: how many listings came before).
    struct Names {
        names: Mutex<Vec<String>>,
        listings: Mutex<u32>,
        churn: fn(u32, &mut Vec<String>),
    }

    impl Names {
        fn new(names: &[&str], churn: fn(u32, &mut Vec<String>)) -> Names {
            Names {
                names: Mutex::new(names.iter().map(|n| n.to_string()).collect()),
                listings: Mutex::new(0),
                churn,
            }
        }

        fn listings(&self) -> u32 {
            *self.listings.lock().unwrap()
        }
    }

    #[async_trait]
    impl Backend for Names {
        async fn list_container_page(
            &self,
            listing: &ContainerListing,
        ) -> Result<ContainerPage, StoreError> {
            let mut listings = self.listings.lock().unwrap();
            let mut names = self.names.lock().unwrap();
            (self.churn)(*listings, &mut names);
            *listings += 1;
            names.sort();
            Ok(listing.page_of(names.clone()))
        }
        async fn put_container(&self, _: ContainerInfo) -> Result<ContainerInfo, StoreError> {
            unreachable!()
        }
        async fn get_container(&self, _: &str) -> Result<Option<ContainerInfo>, StoreError> {
            unreachable!()
        }
        async fn drop_container(&self, _: &str) -> Result<bool, StoreError> {
            unreachable!()
        }
        async fn put_rows(&self, _: &str, _: Vec<Row>) -> Result<u64, StoreError> {
            unreachable!()
        }
        async fn multi_put(&self, _: Vec<(String, Vec<Row>)>) -> Result<u64, StoreError> {
            unreachable!()
        }
        async fn delete_rows(&self, _: &str, _: Vec<Value>) -> Result<u64, StoreError> {
            unreachable!("only listed")
        }
        async fn query(&self, _: &str, _: &str) -> Result<QueryResult, StoreError> {
            unreachable!()
        }
        async fn aggregate_ranges(
            &self,
            _: &str,
            _: &str,
            _: &[KeyRange],
        ) -> Result<RangeAggregates, StoreError> {
            unreachable!()
        }
    }

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn a_listing_pages_in_either_order() {
        let names = strings(&["Zeta", "a", "b", "c", "d"]);
        let listing = |descending, offset, limit| ContainerListing {
            kind: None,
            descending,
            offset,
            limit,
        };
        let page =
            |descending, offset, limit| listing(descending, offset, limit).page_of(names.clone());
        assert_eq!(
            page(false, 0, 2),
            ContainerPage {
                names: strings(&["Zeta", "a"]),
                total: 5
            }
        );
        assert_eq!(page(false, 3, 10).names, ["c", "d"]);
        assert_eq!(page(true, 1, 2).names, ["c", "b"]);
        assert_eq!(page(true, 4, 2).names, ["Zeta"]);
        assert_eq!(
            page(false, 0, 0),
            ContainerPage {
                names: vec![],
                total: 5
            }
        );
        assert_eq!(
            page(true, 5, 1),
            ContainerPage {
                names: vec![],
                total: 5
            }
        );
        assert_eq!(page(false, u64::MAX, u64::MAX).total, 5);
        assert_eq!(page(true, 0, u64::MAX).names, ["d", "c", "b", "a", "Zeta"]);
    }

    #[test]
    fn every_name_is_listed_a_page_at_a_time() {
        let all: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
        let names: Vec<&str> = all.iter().map(String::as_str).collect();
        let store = Names::new(&names, |_, _| {});
        assert_eq!(block_on(all_names(&store, 3)).unwrap(), all);
        // Pages overlap by a name: 0-2, 2-4, 4-6, 6-8, 8-9.
        assert_eq!(store.listings(), 5);
        // The provided method: a page holds them all.
        let store = Names::new(&names, |_, _| {});
        assert_eq!(block_on(store.list_containers()).unwrap(), all);
        assert_eq!(store.listings(), 1);
        let empty = Names::new(&[], |_, _| {});
        assert!(block_on(all_names(&empty, 3)).unwrap().is_empty());
        assert_eq!(empty.listings(), 1);
    }

    /// Containers created or dropped between two pages: every name that was
    /// there throughout is listed, once, in order.
    #[test]
    fn names_moving_between_pages_are_neither_lost_nor_repeated() {
        let names = ["b", "d", "f", "h", "j", "l", "n"];
        // Created before the offset: the names move right.
        let store = Names::new(&names, |listing, names| {
            if listing > 0 {
                names.push(format!("a{listing}"));
            }
        });
        assert_eq!(block_on(all_names(&store, 3)).unwrap(), names);
        // Dropped before the offset: the names move left.
        let store = Names::new(&names, |listing, names| {
            if listing == 1 {
                names.retain(|n| n != "b" && n != "d");
            }
        });
        let listed = block_on(all_names(&store, 3)).unwrap();
        assert_eq!(listed, ["b", "d", "f", "h", "j", "l", "n"]);
        // The last name listed dropped, and names added past it.
        let store = Names::new(&names, |listing, names| {
            if listing == 1 {
                names.retain(|n| n != "f");
                names.push("g".into());
            }
        });
        assert_eq!(
            block_on(all_names(&store, 3)).unwrap(),
            ["b", "d", "f", "g", "h", "j", "l", "n"]
        );
        // Everything dropped after the first page.
        let store = Names::new(&names, |listing, names| {
            if listing == 1 {
                names.clear();
            }
        });
        assert_eq!(block_on(all_names(&store, 3)).unwrap(), ["b", "d", "f"]);
    }
}
