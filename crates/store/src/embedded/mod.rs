//! The embedded backend: SQLite (bundled) in WAL mode, in the layout of
//! `cromflag_tql::layout` (every time series in one shared table, keyed by
//! container and time; a table per collection).
//!
//! Writes go to the group-commit `writer` thread; reads run on a small pool of
//! read-only connections in blocking tasks, and see only committed data. The
//! `catalog` answers schema questions from a bounded cache of the containers
//! in use, reading the others by name when asked. A query is parsed and
//! translated into a plan by cromflag-tql (`tql::parse`, `tql::sql`) and run
//! on a read connection (`execute`). `migrate` brings older databases to the
//! layout when the store opens them.

mod catalog;
mod codec;
mod execute;
mod migrate;
#[cfg(test)]
mod sql_tests;
mod writer;

use super::{
    tql, Backend, CommitFeed, Committed, ContainerInfo, ContainerListing, ContainerPage, KeyRange,
    QueryResult, RangeAggregates, Row, StoreError, Value,
};
use async_trait::async_trait;
use catalog::Cache;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc, oneshot};

/// Jobs waiting for the writer; senders wait (asynchronously) when it is full.
const WRITE_QUEUE: usize = 1024;

/// Containers whose schemas stay in memory, most recently used first: enough
/// for the devices that report often, bounded for fleets of any size.
const HOT_CONTAINERS: usize = 16_384;

/// The WAL file's size after a checkpoint restarted it: what the file is cut
/// back to (SQLite's `journal_size_limit`).
const WAL_KEPT_BYTES: u64 = 16 << 20;

pub struct EmbeddedStore {
    path: PathBuf,
    catalog: Arc<Cache>,
    writer: mpsc::Sender<writer::Job>,
    /// Idle read connections; a query takes one or opens a new one.
    readers: Mutex<Vec<Connection>>,
    /// What the writer publishes after each commit.
    commits: CommitFeed,
}

impl EmbeddedStore {
    /// Opens (or creates) the database at `path`, brings it to the current
    /// layout, and starts its writer thread.
    pub fn open(path: &Path) -> Result<EmbeddedStore, StoreError> {
        Self::open_with(path, HOT_CONTAINERS, None)
    }

    /// `open`, refusing writes that would grow the database past about
    /// `max_bytes` when given (SQLite's `max_page_count`): they fail as on a
    /// full disk, whole, and writes succeed again once deletes have freed pages.
    pub fn open_capped(path: &Path, max_bytes: Option<u64>) -> Result<EmbeddedStore, StoreError> {
        Self::open_with(path, HOT_CONTAINERS, max_bytes)
    }

    /// `open`, keeping at most `hot_containers` schemas in memory.
    fn open_with(
        path: &Path,
        hot_containers: usize,
        max_bytes: Option<u64>,
    ) -> Result<EmbeddedStore, StoreError> {
        let db_err = |e: rusqlite::Error| StoreError::Backend(format!("{}: {e}", path.display()));
        let mut conn = Connection::open(path).map_err(db_err)?;
        // WAL lets readers run beside the writer; FULL syncs the WAL at every
        // commit, so an acknowledged batch survives a power cut.
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
             PRAGMA journal_size_limit = {WAL_KEPT_BYTES};"
        ))
        .map_err(db_err)?;
        conn.busy_timeout(writer::BUSY_TIMEOUT).map_err(db_err)?;
        conn.set_prepared_statement_cache_capacity(256);
        migrate::run(&mut conn)?;
        if let Some(max_bytes) = max_bytes {
            let page_size: u64 = conn
                .query_row("PRAGMA page_size", [], |row| row.get(0))
                .map_err(db_err)?;
            // SQLite keeps a cap below the pages in use at the pages in use.
            let pages = max_bytes.div_ceil(page_size.max(1));
            conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
                .map_err(db_err)?;
        }
        let catalog = Arc::new(Cache::new(hot_containers));
        let (writer, jobs) = mpsc::channel(WRITE_QUEUE);
        let writer_catalog = catalog.clone();
        let commits = CommitFeed::default();
        let writer_commits = commits.clone();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer::run(conn, writer_catalog, writer_commits, jobs))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer: {e}")))?;
        Ok(EmbeddedStore {
            path: path.to_owned(),
            catalog,
            writer,
            readers: Mutex::new(Vec::new()),
            commits,
        })
    }

    async fn write<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<T>) -> writer::Job,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::Backend("the store writer has stopped".into());
        self.writer.send(job(reply)).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())
    }

    /// The container, from the catalog's cache or else from its table.
    async fn entry(
        self: &Arc<Self>,
        name: &str,
    ) -> Result<Option<Arc<catalog::Entry>>, StoreError> {
        if let Some(entry) = self.catalog.get(name) {
            return Ok(Some(entry));
        }
        let name = name.to_owned();
        let catalog = self.catalog.clone();
        self.read(move |conn| catalog.load(conn, &name)).await
    }

    /// Runs `f` on a pooled read connection, off the async threads.
    async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = store.readers.lock().expect("reader pool lock").pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => store.open_reader()?,
            };
            let result = f(&conn);
            store.readers.lock().expect("reader pool lock").push(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("query task failed: {e}")))?
    }

    fn open_reader(&self) -> Result<Connection, StoreError> {
        let db_err = |e: rusqlite::Error| StoreError::Backend(e.to_string());
        // NO_MUTEX: a connection is used by one thread at a time (the pool
        // hands it out whole), so SQLite need not lock it on every call;
        // serialized, reading a 10,000-row page spent a fifth of its time
        // taking and releasing that lock for each cell.
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db_err)?;
        conn.busy_timeout(writer::BUSY_TIMEOUT).map_err(db_err)?;
        Ok(conn)
    }
}

/// `Backend` is implemented for `Arc<EmbeddedStore>` so that queries can move a
/// handle into their blocking task.
#[async_trait]
impl Backend for Arc<EmbeddedStore> {
    async fn put_container(&self, info: ContainerInfo) -> Result<ContainerInfo, StoreError> {
        self.write(|reply| writer::Job::PutContainer { info, reply })
            .await?
    }

    async fn get_container(&self, name: &str) -> Result<Option<ContainerInfo>, StoreError> {
        Ok(self.entry(name).await?.map(|e| e.info.clone()))
    }

    /// One query on the catalog table, in the order of its name index.
    async fn list_container_page(
        &self,
        listing: &ContainerListing,
    ) -> Result<ContainerPage, StoreError> {
        let listing = *listing;
        self.read(move |conn| catalog::list(conn, &listing)).await
    }

    /// Every name in one query: one snapshot, no pages.
    async fn list_containers(&self) -> Result<Vec<String>, StoreError> {
        let everything = ContainerListing {
            kind: None,
            descending: false,
            offset: 0,
            limit: u64::MAX,
        };
        Ok(self.list_container_page(&everything).await?.names)
    }

    async fn drop_container(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.write(|reply| writer::Job::DropContainer { name, reply })
            .await?
    }

    async fn put_rows(&self, container: &str, rows: Vec<Row>) -> Result<u64, StoreError> {
        self.multi_put(vec![(container.to_owned(), rows)]).await
    }

    /// All containers' rows in one savepoint of one group commit: all or none.
    async fn multi_put(&self, batches: Vec<(String, Vec<Row>)>) -> Result<u64, StoreError> {
        self.write(|reply| writer::Job::PutRows { batches, reply })
            .await?
    }

    /// One savepoint of a group commit, like a put: a large delete goes
    /// in chunks (the retention job's), so ingest never waits long behind it.
    async fn delete_rows(&self, container: &str, keys: Vec<Value>) -> Result<u64, StoreError> {
        let container = container.to_owned();
        self.write(|reply| writer::Job::DeleteRows {
            container,
            keys,
            reply,
        })
        .await?
    }

    fn commits(&self) -> Option<broadcast::Receiver<Arc<Committed>>> {
        Some(self.commits.subscribe())
    }

    fn publish_collection(&self, name: &str) {
        self.commits.publish_collection(name);
    }

    async fn query(&self, container: &str, text: &str) -> Result<QueryResult, StoreError> {
        let entry = self.entry(container).await?.ok_or_else(|| {
            StoreError::NotFound(format!("container `{container}` does not exist"))
        })?;
        let statement = tql::parse(text)?;
        let plan = tql::sql::translate(&statement, &entry.info, &entry.storage, super::now_ms())?;
        self.read(move |conn| execute::run(conn, &entry.info, &plan))
            .await
    }

    /// Every range in one SQL statement (`tql::sql::translate_ranges`).
    async fn aggregate_ranges(
        &self,
        container: &str,
        aggregates: &str,
        ranges: &[KeyRange],
    ) -> Result<RangeAggregates, StoreError> {
        let entry = self.entry(container).await?.ok_or_else(|| {
            StoreError::NotFound(format!("container `{container}` does not exist"))
        })?;
        let statement = tql::parse(aggregates)?;
        let plan = tql::sql::translate_ranges(
            &statement,
            &entry.info,
            &entry.storage,
            super::now_ms(),
            ranges,
        )?;
        self.read(move |conn| execute::run_ranges(conn, &plan))
            .await
    }

    /// Commits what was sent before, then checkpoints and truncates the WAL
    /// and closes every connection, so a stopped store leaves no WAL behind.
    async fn close(&self) {
        let (reply, closed) = oneshot::channel();
        if self.writer.send(writer::Job::Close { reply }).await.is_ok() {
            let _ = closed.await;
        }
        self.readers.lock().expect("reader pool lock").clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Column, ColumnType, ContainerKind, Value};

    fn series(name: &str, columns: &[(&str, ColumnType)]) -> ContainerInfo {
        ContainerInfo {
            name: name.into(),
            kind: ContainerKind::TimeSeries,
            columns: columns.iter().map(|(n, t)| Column::new(*n, *t)).collect(),
            row_key: true,
        }
    }

    fn open(dir: &tempfile::TempDir) -> Arc<EmbeddedStore> {
        Arc::new(EmbeddedStore::open(&dir.path().join("db")).unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn schemas_evolve_and_survive_reopening() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = open(&dir);
        let base = series(
            "Dev",
            &[("ts", ColumnType::Timestamp), ("t", ColumnType::Float)],
        );
        store.put_container(base.clone()).await.unwrap();
        // Same columns in any case: nothing changes; a new column is appended.
        let grown = series(
            "dev",
            &[("TS", ColumnType::Timestamp), ("n", ColumnType::Long)],
        );
        let stored = store.put_container(grown).await.unwrap();
        assert_eq!(stored.name, "Dev");
        let names: Vec<&str> = stored.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["ts", "t", "n"]);
        // A type change is a conflict and changes nothing.
        let conflict = series("dev", &[("t", ColumnType::Long)]);
        assert!(matches!(
            store.put_container(conflict).await,
            Err(StoreError::SchemaConflict(_))
        ));

        // Rows written before the new column still read back, padded with null.
        let rows = vec![
            vec![Value::Timestamp(2), Value::Float(0.5)],
            vec![Value::Timestamp(1), Value::Float(1.5), Value::Long(7)],
        ];
        assert_eq!(store.put_rows("DEV", rows).await.unwrap(), 2);
        drop(store);

        let store = open(&dir);
        assert_eq!(store.list_containers().await.unwrap(), ["Dev"]);
        let result = store.query("dev", "select * order by ts").await.unwrap();
        assert_eq!(result.columns.len(), 3);
        assert_eq!(
            result.rows,
            [
                vec![Value::Timestamp(1), Value::Float(1.5), Value::Long(7)],
                vec![Value::Timestamp(2), Value::Float(0.5), Value::Null],
            ]
        );
    }

    /// Jobs committed in one group each stand or fall alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bad_batch_in_a_group_fails_alone() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = open(&dir);
        store
            .put_container(series(
                "d",
                &[("ts", ColumnType::Timestamp), ("v", ColumnType::Long)],
            ))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for batch in 0..64i64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut rows: Vec<Row> = (0..10)
                    .map(|i| vec![Value::Timestamp(batch * 10 + i), Value::Long(i)])
                    .collect();
                if batch % 8 == 0 {
                    // The last row of every eighth batch does not fit: the whole batch must go.
                    rows[9][1] = Value::String("bad".into());
                }
                store.put_rows("d", rows).await
            }));
        }
        for (batch, task) in tasks.into_iter().enumerate() {
            let result = task.await.unwrap();
            assert_eq!(result.is_err(), batch % 8 == 0, "batch {batch}: {result:?}");
        }
        let result = store.query("d", "select *").await.unwrap();
        assert_eq!(result.rows.len(), 56 * 10);
        assert!(result
            .rows
            .iter()
            .all(|row| matches!(row[0], Value::Timestamp(ts) if (ts / 10) % 8 != 0)));
    }

    /// A multi-put is one job: a bad row in its last container undoes the first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_multi_put_stands_or_falls_whole() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = open(&dir);
        for name in ["a", "b"] {
            let info = series(
                name,
                &[("ts", ColumnType::Timestamp), ("v", ColumnType::Long)],
            );
            store.put_container(info).await.unwrap();
        }
        let row = |ts: i64, v: Value| vec![Value::Timestamp(ts), v];
        let good = vec![
            (
                "a".to_owned(),
                vec![row(1, Value::Long(1)), row(2, Value::Long(2))],
            ),
            ("b".to_owned(), vec![row(1, Value::Long(3))]),
        ];
        assert_eq!(store.multi_put(good).await.unwrap(), 3);
        let bad = vec![
            ("a".to_owned(), vec![row(3, Value::Long(4))]),
            ("b".to_owned(), vec![row(2, Value::String("bad".into()))]),
        ];
        assert!(matches!(
            store.multi_put(bad).await,
            Err(StoreError::Invalid(_))
        ));
        let missing = vec![
            ("a".to_owned(), vec![row(4, Value::Long(5))]),
            ("zz".to_owned(), vec![]),
        ];
        assert!(matches!(
            store.multi_put(missing).await,
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(store.query("a", "select *").await.unwrap().rows.len(), 2);
        assert_eq!(store.query("b", "select *").await.unwrap().rows.len(), 1);
    }

    /// Devices share the series table and its columns: what one device adds
    /// is its own, and a column of the same name can have another type in
    /// another device.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_column_is_one_devices_own() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = open(&dir);
        let base = [("ts", ColumnType::Timestamp), ("t", ColumnType::Double)];
        for name in ["a", "b"] {
            store.put_container(series(name, &base)).await.unwrap();
        }
        let row = |ts: i64, t: f64| vec![Value::Timestamp(ts), Value::Double(t)];
        store.put_rows("a", vec![row(1, 1.0)]).await.unwrap();
        store.put_rows("b", vec![row(1, 2.0)]).await.unwrap();
        let grown = series("a", &[("x", ColumnType::Long)]);
        store.put_container(grown).await.unwrap();
        let a2 = vec![Value::Timestamp(2), Value::Double(1.5), Value::Long(7)];
        store.put_rows("a", vec![a2.clone()]).await.unwrap();
        // b takes the same name with another type, into the same shared column.
        let other = series("b", &[("x", ColumnType::String)]);
        store.put_container(other).await.unwrap();
        let b2 = vec![Value::Timestamp(2), Value::Null, Value::String("s".into())];
        store.put_rows("b", vec![b2.clone()]).await.unwrap();
        // A row for b that puts a LONG in its STRING column is refused.
        let wrong = vec![Value::Timestamp(3), Value::Null, Value::Long(1)];
        assert!(store.put_rows("b", vec![wrong]).await.is_err());
        for store in [store.clone(), {
            drop(store);
            open(&dir)
        }] {
            let a = store.query("a", "select *").await.unwrap();
            let b = store.query("b", "select *").await.unwrap();
            assert_eq!(a.columns[2].column_type, ColumnType::Long);
            assert_eq!(b.columns[2].column_type, ColumnType::String);
            assert_eq!(
                a.rows,
                [
                    vec![Value::Timestamp(1), Value::Double(1.0), Value::Null],
                    a2.clone()
                ]
            );
            assert_eq!(
                b.rows,
                [
                    vec![Value::Timestamp(1), Value::Double(2.0), Value::Null],
                    b2.clone()
                ]
            );
            let counted = store.query("b", "select count(x)").await.unwrap();
            assert_eq!(counted.rows, [vec![Value::Long(1)]]);
        }
    }

    /// More containers than the cache holds: every one is found, written,
    /// changed and dropped right, before and after reopening.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn containers_beyond_the_cache_are_read_by_name() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("db");
        let store = Arc::new(EmbeddedStore::open_with(&path, 4, None).unwrap());
        let base = [("ts", ColumnType::Timestamp), ("v", ColumnType::Long)];
        for i in 0..40 {
            store
                .put_container(series(&format!("d{i}"), &base))
                .await
                .unwrap();
            let rows = vec![vec![Value::Timestamp(i), Value::Long(i)]];
            store.put_rows(&format!("d{i}"), rows).await.unwrap();
        }
        // d0 left the cache long ago: grow it, then drop d1.
        let grown = series("D0", &[("w", ColumnType::Bool)]);
        assert_eq!(store.put_container(grown).await.unwrap().columns.len(), 3);
        assert!(store.drop_container("d1").await.unwrap());
        assert!(!store.drop_container("d1").await.unwrap());
        for store in [store.clone(), {
            drop(store);
            Arc::new(EmbeddedStore::open_with(&path, 4, None).unwrap())
        }] {
            assert_eq!(store.list_containers().await.unwrap().len(), 39);
            assert!(store.get_container("d1").await.unwrap().is_none());
            assert!(store.query("d1", "select *").await.is_err());
            let d0 = store.get_container("d0").await.unwrap().unwrap();
            assert_eq!(d0.columns.len(), 3);
            for i in (0..40).filter(|&i| i != 1) {
                let rows = store
                    .query(&format!("d{i}"), "select *")
                    .await
                    .unwrap()
                    .rows;
                assert_eq!(rows.len(), 1, "d{i}");
                assert_eq!(rows[0][1], Value::Long(i), "d{i}");
            }
        }
    }

    /// What a database written before the shared layout looks like: a table
    /// per container, typed, with the catalog as it was.
    fn old_layout(path: &Path, moved_already: &[i64]) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE _cromflag_containers (id INTEGER PRIMARY KEY,
                 name TEXT NOT NULL UNIQUE COLLATE NOCASE, kind TEXT NOT NULL,
                 row_key INTEGER NOT NULL, columns TEXT NOT NULL);
             INSERT INTO _cromflag_containers VALUES
                 (1, 'Alpha', 'TIME_SERIES', 1, '[[\"ts\",\"TIMESTAMP\"],[\"t\",\"FLOAT\"]]'),
                 (2, 'beta', 'TIME_SERIES', 1, '[[\"ts\",\"TIMESTAMP\"],[\"n\",\"LONG\"],[\"s\",\"STRING\"]]'),
                 (3, 'people', 'COLLECTION', 1, '[[\"name\",\"STRING\"],[\"age\",\"INTEGER\"]]');
             CREATE TABLE \"t_1\" (c0 INTEGER PRIMARY KEY NOT NULL, c1 REAL);
             INSERT INTO \"t_1\" VALUES (1, 75.0), (2, 0.5);
             CREATE TABLE \"t_2\" (c0 INTEGER PRIMARY KEY NOT NULL, c1 INTEGER, c2 TEXT);
             INSERT INTO \"t_2\" VALUES (5, 1, 'x'), (6, NULL, 'y');
             CREATE TABLE \"t_3\" (c0 TEXT PRIMARY KEY NOT NULL, c1 INTEGER);
             INSERT INTO \"t_3\" VALUES ('carol', 30), ('bob', 25);",
        )
        .unwrap();
        // An interrupted migration moved these, in a transaction each.
        for id in moved_already {
            conn.execute_batch(&format!(
                "{}; ALTER TABLE _cromflag_series ADD COLUMN c1; ALTER TABLE _cromflag_series ADD COLUMN c2;
                 BEGIN; INSERT INTO _cromflag_series (container, c0, c1) SELECT {id}, c0, c1 FROM \"t_{id}\";
                 DROP TABLE \"t_{id}\"; COMMIT;",
                cromflag_tql::layout::SERIES_DDL
            ))
            .unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_old_layout_is_moved_on_open_even_if_interrupted() {
        for moved_already in [&[][..], &[1]] {
            let dir = tempfile::TempDir::new().unwrap();
            let path = dir.path().join("db");
            old_layout(&path, moved_already);
            for _ in 0..2 {
                let store = Arc::new(EmbeddedStore::open(&path).unwrap());
                let alpha = store
                    .query(
                        "alpha",
                        "select * where ts < TO_TIMESTAMP_MS(3) order by ts desc",
                    )
                    .await
                    .unwrap();
                assert_eq!(
                    alpha.rows,
                    [
                        vec![Value::Timestamp(2), Value::Float(0.5)],
                        vec![Value::Timestamp(1), Value::Float(75.0)],
                    ]
                );
                let beta = store
                    .query("beta", "select count(*), max(n)")
                    .await
                    .unwrap();
                assert_eq!(beta.rows, [vec![Value::Long(2), Value::Long(1)]]);
                let people = store.query("people", "select name").await.unwrap();
                assert_eq!(
                    people.rows,
                    [
                        vec![Value::String("carol".into())],
                        vec![Value::String("bob".into())]
                    ]
                );
                let rows = vec![vec![Value::Timestamp(3), Value::Float(1.0)]];
                store.put_rows("ALPHA", rows).await.unwrap();
                store.close().await;
            }
            let conn = Connection::open(&path).unwrap();
            let own_tables: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM sqlite_schema WHERE name IN ('t_1', 't_2')",
                    [],
                    |row| row.get(0),
                )
                .unwrap();
            assert_eq!(own_tables, 0);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closing_checkpoints_and_truncates_the_wal() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = open(&dir);
        let base = [("ts", ColumnType::Timestamp), ("v", ColumnType::Long)];
        store.put_container(series("d", &base)).await.unwrap();
        let rows: Vec<Row> = (0..5_000)
            .map(|i| vec![Value::Timestamp(i), Value::Long(i)])
            .collect();
        store.put_rows("d", rows).await.unwrap();
        store.close().await;
        let wal = dir.path().join("db-wal");
        let wal_bytes = std::fs::metadata(&wal).map_or(0, |m| m.len());
        assert_eq!(wal_bytes, 0, "{}", wal.display());
        assert!(store.put_rows("d", vec![]).await.is_err());
        drop(store);
        let store = open(&dir);
        let count = store.query("d", "select count(*)").await.unwrap();
        assert_eq!(count.rows, [vec![Value::Long(5_000)]]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn missing_containers_and_bad_values_are_named() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = open(&dir);
        assert!(matches!(
            store.put_rows("nope", vec![]).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            store.query("nope", "select *").await,
            Err(StoreError::NotFound(_))
        ));
        store
            .put_container(series(
                "d",
                &[("ts", ColumnType::Timestamp), ("v", ColumnType::Double)],
            ))
            .await
            .unwrap();
        let err = store
            .put_rows("d", vec![vec![Value::Null]])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("row key"), "{err}");
        let err = store
            .put_rows(
                "d",
                vec![vec![Value::Timestamp(1), Value::Double(f64::NAN)]],
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("NaN"), "{err}");
        let bad_name = ContainerInfo {
            name: "1st".into(),
            ..series("x", &[("ts", ColumnType::Timestamp)])
        };
        assert!(matches!(
            store.put_container(bad_name).await,
            Err(StoreError::Invalid(_))
        ));
        assert!(store.get_container("d").await.unwrap().is_some());
    }
}

/// TQL features over a real store: aggregations, predicates, time functions
/// and row-selection functions. Expected values are worked out by hand in the
/// comments from the fixed rows of [`sensor`].
#[cfg(test)]
mod query_tests {
    use super::*;
    use crate::{Column, ColumnType, ContainerKind, Value};

    /// 2024-01-01T00:00:00Z.
    const BASE: i64 = 1_704_067_200_000;
    const SECOND: i64 = 1_000;

    fn at(seconds: i64) -> Value {
        Value::Timestamp(BASE + seconds * SECOND)
    }

    fn ms(seconds: i64) -> i64 {
        BASE + seconds * SECOND
    }

    /// One `sensor` row: (ts, temperature DOUBLE, humidity FLOAT, n INTEGER, label STRING).
    fn row(s: i64, t: Option<f64>, h: Option<f32>, n: i32, label: Option<&str>) -> Row {
        vec![
            at(s),
            t.map_or(Value::Null, Value::Double),
            h.map_or(Value::Null, Value::Float),
            Value::Integer(n),
            label.map_or(Value::Null, |l| Value::String(l.into())),
        ]
    }

    /// The five rows every test reads, keyed by seconds after BASE:
    ///
    /// | s  | temperature | humidity | n  | label  |
    /// |----|-------------|----------|----|--------|
    /// | 0  | 10.0        | 40.0     | 10 | Dev_1  |
    /// | 10 | 20.0        | NULL     | 20 | dev_2  |
    /// | 20 | NULL        | 50.0     | 25 | dev%3  |
    /// | 40 | 40.0        | 60.0     | 40 | NULL   |
    /// | 50 | 40.0        | 45.0     | 45 | x*y    |
    fn rows() -> Vec<Row> {
        vec![
            row(0, Some(10.0), Some(40.0), 10, Some("Dev_1")),
            row(10, Some(20.0), None, 20, Some("dev_2")),
            row(20, None, Some(50.0), 25, Some("dev%3")),
            row(40, Some(40.0), Some(60.0), 40, None),
            row(50, Some(40.0), Some(45.0), 45, Some("x*y")),
        ]
    }

    async fn sensor(dir: &tempfile::TempDir) -> Arc<EmbeddedStore> {
        let store = Arc::new(EmbeddedStore::open(&dir.path().join("db")).unwrap());
        let columns = [
            ("ts", ColumnType::Timestamp),
            ("temperature", ColumnType::Double),
            ("humidity", ColumnType::Float),
            ("n", ColumnType::Integer),
            ("label", ColumnType::String),
        ];
        let info = ContainerInfo {
            name: "sensor".into(),
            kind: ContainerKind::TimeSeries,
            columns: columns.iter().map(|(n, t)| Column::new(*n, *t)).collect(),
            row_key: true,
        };
        store.put_container(info).await.unwrap();
        // Out of order on purpose: results must follow the key, not insertion.
        let mut data = rows();
        data.reverse();
        store.put_rows("sensor", data).await.unwrap();
        store
    }

    async fn query(store: &Arc<EmbeddedStore>, tql: &str) -> QueryResult {
        store
            .query("sensor", tql)
            .await
            .unwrap_or_else(|e| panic!("{tql}: {e}"))
    }

    /// The keys (seconds after BASE) of the rows `tql` returns, in order.
    async fn keys(store: &Arc<EmbeddedStore>, tql: &str) -> Vec<i64> {
        query(store, tql)
            .await
            .rows
            .iter()
            .map(|row| match row[0] {
                Value::Timestamp(t) => (t - BASE) / SECOND,
                ref other => panic!("{tql}: key {other:?}"),
            })
            .collect()
    }

    /// Asserts that `tql` fails with a `TQL: ` query error containing `needle`.
    async fn fails(store: &Arc<EmbeddedStore>, tql: &str, needle: &str) {
        match store.query("sensor", tql).await {
            Err(StoreError::Query(m)) => assert!(
                m.starts_with("TQL: ") && m.contains(needle),
                "{tql}: {m:?} lacks {needle:?}"
            ),
            other => panic!("{tql}: expected a query error, got {other:?}"),
        }
    }

    /// Each `(query, needle)`: the query fails with a `TQL: ` message
    /// containing the needle (a failure names its query).
    async fn fails_all(store: &Arc<EmbeddedStore>, cases: &[(&str, &str)]) {
        for &(tql, needle) in cases {
            fails(store, tql, needle).await;
        }
    }

    /// Each `(query, keys)`: the query returns the rows with those keys
    /// (seconds after BASE), in that order.
    async fn keys_are(store: &Arc<EmbeddedStore>, cases: &[(&str, &[i64])]) {
        for &(tql, expected) in cases {
            assert_eq!(keys(store, tql).await, expected, "{tql}");
        }
    }

    /// The single value of a one-row, one-column result.
    async fn scalar(store: &Arc<EmbeddedStore>, tql: &str) -> Value {
        let result = query(store, tql).await;
        assert_eq!(result.rows.len(), 1, "{tql}: {result:?}");
        assert_eq!(result.rows[0].len(), 1, "{tql}: {result:?}");
        result.rows[0][0].clone()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn single_aggregates() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = sensor(&dir).await;
        let one = format!("where ts = TO_TIMESTAMP_MS({})", ms(0));
        let cases: Vec<(String, Value)> = [
            // Counts: 5 rows; 4 non-NULL temperatures; 4 non-NULL labels.
            ("select count(*)", Value::Long(5)),
            ("select COUNT(temperature)", Value::Long(4)),
            ("select count(label)", Value::Long(4)),
            // SUM: 10 + 20 + 40 + 40 = 110 (DOUBLE); n: 10 + 20 + 25 + 40 + 45 = 140 (LONG).
            ("select sum(temperature)", Value::Double(110.0)),
            ("select sum(n)", Value::Long(140)),
            // AVG skips NULL: 110 / 4 = 27.5; humidity (40 + 50 + 60 + 45) / 4 = 48.75.
            ("select avg(temperature)", Value::Double(27.5)),
            ("select avg(humidity)", Value::Double(48.75)),
            ("select avg(n)", Value::Double(28.0)),
            // MIN/MAX keep the column's type.
            ("select min(temperature)", Value::Double(10.0)),
            ("select max(humidity)", Value::Float(60.0)),
            ("select max(n)", Value::Integer(45)),
            ("select min(ts)", at(0)),
            ("select max(ts)", at(50)),
            // Sample variance of 10, 20, 40, 40: mean 27.5, squared deviations
            // 306.25 + 56.25 + 156.25 + 156.25 = 675, / (4 − 1) = 225; stddev 15.
            ("select variance(temperature)", Value::Double(225.0)),
            ("select stddev(temperature)", Value::Double(15.0)),
            // n: mean 28, squared deviations 324 + 64 + 9 + 144 + 289 = 830, / 4 = 207.5.
            ("select variance(n)", Value::Double(207.5)),
            // WHERE applies: temperatures of rows 10 and 40 (20 < n < 45): 20 and 40.
            (
                "select avg(temperature) where n > 10 and n < 45",
                Value::Double(30.0),
            ),
        ]
        .into_iter()
        .map(|(tql, value)| (tql.to_owned(), value))
        // One value: 0.0, not a division by zero.
        .chain([
            (
                format!("select variance(temperature) {one}"),
                Value::Double(0.0),
            ),
            (format!("select stddev(n) {one}"), Value::Double(0.0)),
        ])
        .collect();
        for (tql, expected) in &cases {
            assert_eq!(&scalar(&store, tql).await, expected, "{tql}");
        }

        // The result column is named after the call as written.
        let result = query(&store, "select AVG(temperature)").await;
        assert_eq!(
            result.columns,
            [Column::new("AVG(temperature)", ColumnType::Double)]
        );
        let result = query(&store, "select count(*)").await;
        assert_eq!(result.columns, [Column::new("COUNT(*)", ColumnType::Long)]);
        let result = query(&store, "select Max(\"humidity\")").await;
        assert_eq!(
            result.columns,
            [Column::new("MAX(\"humidity\")", ColumnType::Float)]
        );

        // No input value: no row at all, except COUNT, which gives 0.
        for tql in [
            "select avg(temperature) where n > 100",
            "select sum(n) where n > 100",
            "select max(ts) where n > 100",
            "select variance(n) where n > 100",
            // Row 20 is the only one, and its temperature is NULL.
            "select min(temperature) where n = 25",
        ] {
            assert!(query(&store, tql).await.rows.is_empty(), "{tql}");
        }
        assert_eq!(
            scalar(&store, "select count(*) where n > 100").await,
            Value::Long(0)
        );
        assert_eq!(
            scalar(&store, "select count(temperature) where n = 25").await,
            Value::Long(0)
        );

        // LIMIT/OFFSET apply to the one row (the WebAPI appends a LIMIT to every statement).
        assert_eq!(
            scalar(&store, "select count(*) limit 1000000").await,
            Value::Long(5)
        );
        assert!(query(&store, "select count(*) limit 0")
            .await
            .rows
            .is_empty());
        assert!(query(&store, "select count(*) limit 1 offset 1")
            .await
            .rows
            .is_empty());
    }

    /// A sum of squares minus a squared sum would lose every digit here.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn variance_is_numerically_sound() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = sensor(&dir).await;
        let far: Vec<Row> = [1.0, 2.0, 3.0, 4.0]
            .iter()
            .enumerate()
            .map(|(i, v)| row(100 + i as i64, Some(1e9 + v), None, 0, None))
            .collect();
        store.put_rows("sensor", far).await.unwrap();
        // 1e9 + {1, 2, 3, 4}: mean 1e9 + 2.5, squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5, / 3.
        let variance = scalar(&store, "select variance(temperature) where n = 0").await;
        assert_eq!(variance, Value::Double(5.0 / 3.0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn several_aggregates_give_one_row() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = sensor(&dir).await;
        // Rows 10, 20, 40: count 3; temperatures 20, NULL, 40 → 30; humidity NULL, 50, 60 → 60.
        let result = query(
            &store,
            &format!(
                "SELECT COUNT(*), AVG(temperature), MAX(humidity) WHERE \"ts\" >= TO_TIMESTAMP_MS({}) AND \"ts\" < TO_TIMESTAMP_MS({})",
                ms(10),
                ms(50)
            ),
        )
        .await;
        assert_eq!(
            result.columns,
            [
                Column::new("COUNT(*)", ColumnType::Long),
                Column::new("AVG(temperature)", ColumnType::Double),
                Column::new("MAX(humidity)", ColumnType::Float),
            ]
        );
        assert_eq!(
            result.rows,
            [vec![
                Value::Long(3),
                Value::Double(30.0),
                Value::Float(60.0)
            ]]
        );
        // No input: still exactly one row, COUNT 0 and NULL for the rest.
        let result = query(
            &store,
            "select count(*), avg(temperature), max(humidity), stddev(n) where n > 100",
        )
        .await;
        assert_eq!(
            result.rows,
            [vec![Value::Long(0), Value::Null, Value::Null, Value::Null]]
        );
        // Only row 20: its temperature is NULL, its humidity 50.
        let result = query(
            &store,
            "select sum(temperature), min(humidity), count(temperature) where n = 25",
        )
        .await;
        assert_eq!(
            result.rows,
            [vec![Value::Null, Value::Float(50.0), Value::Long(0)]]
        );
        let result = query(
            &store,
            "select stddev(temperature), variance(temperature), sum(n)",
        )
        .await;
        assert_eq!(
            result.rows,
            [vec![
                Value::Double(15.0),
                Value::Double(225.0),
                Value::Long(140)
            ]]
        );
    }

    /// `aggregate-ranges` answers each range as `query` answers the
    /// statement with the range as its WHERE: the default implementation
    /// (one query per range) is the reference for the one SQL statement.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn aggregate_ranges_answer_each_range_as_its_query() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = sensor(&dir).await;
        // Rows at 0, 10, 20, 40, 50 s: ranges with several rows, one row
        // (20: NULL temperature), none (25–40), empty (30–30), reversed,
        // and one covering everything; in no particular order.
        let ranges: Vec<KeyRange> = [
            (0, 15),
            (20, 21),
            (25, 40),
            (30, 30),
            (45, 35),
            (-100, 100),
            (40, 51),
        ]
        .iter()
        .map(|&(a, b)| KeyRange {
            start: ms(a),
            end: ms(b),
        })
        .collect();
        for aggregates in [
            "SELECT COUNT(*)",
            "SELECT AVG(temperature)",
            "SELECT max(n)",
            "SELECT stddev(temperature)",
            "SELECT COUNT(*), AVG(temperature), MIN(humidity), SUM(n), VARIANCE(n), STDDEV(temperature)",
            "select count(label), max(ts) from sensor",
        ] {
            let one_call = store
                .aggregate_ranges("sensor", aggregates, &ranges)
                .await
                .unwrap_or_else(|e| panic!("{aggregates}: {e}"));
            let by_query = cromflag_model::aggregate_ranges_by_query(
                &store.get_container("sensor").await.unwrap().unwrap(),
                aggregates,
                &ranges,
                |tql| {
                    tokio::task::block_in_place(|| {
                        tokio::runtime::Handle::current().block_on(store.query("sensor", tql))
                    })
                },
            )
            .unwrap();
            assert_eq!(one_call, by_query, "{aggregates}");
            assert_eq!(one_call.rows.len(), ranges.len());
        }
        // What it answers, spelled out for one statement: the first range
        // holds rows 0 and 10, the sixth all five.
        let answer = store
            .aggregate_ranges("sensor", "SELECT COUNT(*), AVG(temperature)", &ranges)
            .await
            .unwrap();
        assert_eq!(
            answer.rows[0],
            Some(vec![Value::Long(2), Value::Double(15.0)])
        );
        assert_eq!(answer.rows[2], Some(vec![Value::Long(0), Value::Null]));
        assert_eq!(
            answer.rows[5],
            Some(vec![Value::Long(5), Value::Double(27.5)])
        );
        // A single aggregation over no value is no row, as in GridDB.
        let answer = store
            .aggregate_ranges("sensor", "SELECT AVG(temperature)", &ranges)
            .await
            .unwrap();
        assert_eq!(answer.rows[1], None);
        assert_eq!(answer.rows[2], None);

        for (aggregates, message) in [
            ("SELECT * ", "SELECT of aggregates only"),
            ("SELECT COUNT(*) WHERE n > 1", "no WHERE, ORDER BY or LIMIT"),
            ("SELECT COUNT(*) LIMIT 1", "no WHERE, ORDER BY or LIMIT"),
            ("SELECT AVG(label)", "AVG is not defined"),
        ] {
            let error = store
                .aggregate_ranges("sensor", aggregates, &ranges)
                .await
                .unwrap_err();
            assert!(
                matches!(&error, StoreError::Query(m) if m.contains(message)),
                "{aggregates}: {error}"
            );
        }
    }

    /// SQLite's plan for `aggregate-ranges`: one key seek per range, and the
    /// means STDDEV needs joined by an index, not a scan per row (which
    /// took seconds for a day of one-minute buckets).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn aggregate_ranges_seek_each_range() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = sensor(&dir).await;
        let entry = store.entry("sensor").await.unwrap().unwrap();
        let ranges = [KeyRange {
            start: ms(0),
            end: ms(60),
        }];
        for aggregates in [
            "SELECT COUNT(*), AVG(temperature)",
            "SELECT STDDEV(temperature), VARIANCE(n)",
        ] {
            let statement = tql::parse(aggregates).unwrap();
            let plan =
                tql::sql::translate_ranges(&statement, &entry.info, &entry.storage, 0, &ranges)
                    .unwrap();
            let steps = store
                .read(move |conn| {
                    let mut explain = conn
                        .prepare(&format!("EXPLAIN QUERY PLAN {}", plan.plan.sql))
                        .unwrap();
                    let params = plan.plan.params.iter().map(codec::param_to_sql);
                    let steps = explain
                        .query_map(rusqlite::params_from_iter(params), |row| {
                            row.get::<_, String>(3)
                        })
                        .unwrap()
                        .collect::<Result<Vec<_>, _>>()
                        .unwrap();
                    Ok(steps)
                })
                .await
                .unwrap();
            assert!(
                steps
                    .iter()
                    .any(|s| s
                        .starts_with("SEARCH t USING PRIMARY KEY (container=? AND c0>? AND c0<?)")),
                "{aggregates}: {steps:?}"
            );
            // Nothing is scanned but the ranges themselves: every row is
            // reached by a key seek or an index on the range.
            assert!(
                steps
                    .iter()
                    .filter(|s| s.starts_with("SCAN"))
                    .all(|s| s.starts_with("SCAN json_each")),
                "{aggregates}: {steps:?}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn aggregate_errors() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = sensor(&dir).await;
        fails_all(
            &store,
            &[
                (
                    "select avg(label)",
                    "AVG(label) at byte 7: AVG is not defined for column label of type STRING",
                ),
                (
                    "select min(label)",
                    "MIN is not defined for column label of type STRING",
                ),
                (
                    "select sum(ts)",
                    "SUM is not defined for column ts of type TIMESTAMP",
                ),
                ("select count(*), stddev(ts)", "STDDEV(ts) at byte 17"),
                (
                    "select count(*), n",
                    "aggregations cannot be mixed with plain columns",
                ),
                ("select avg(pressure)", "unknown column pressure"),
                (
                    "select count(*) order by n",
                    "ORDER BY n cannot be used with aggregations",
                ),
            ],
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn like_and_null_predicates() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = sensor(&dir).await;
        // Labels: 0 Dev_1, 10 dev_2, 20 dev%3, 40 NULL, 50 x*y.
        for (condition, expected) in [
            // Case-sensitive: Dev_1 does not match 'dev%'.
            ("label like 'dev%'", vec![10, 20]),
            ("label LIKE 'Dev%'", vec![0]),
            ("label like '_ev_%'", vec![0, 10, 20]),
            ("label like 'dev_2'", vec![10]),
            // Whole-string: no implicit wildcards.
            ("label like 'dev'", vec![]),
            ("label like '%3'", vec![20]),
            // ESCAPE makes % and _ literal.
            ("label like 'dev\\%%' escape '\\'", vec![20]),
            ("label like 'dev!_%' ESCAPE '!'", vec![10]),
            ("label like '%!%%' escape '!'", vec![20]),
            // GLOB's metacharacters are plain characters in LIKE.
            ("label like 'x*y'", vec![50]),
            ("label like 'x?y'", vec![]),
            ("label like 'x_y'", vec![50]),
            ("label like '[xd]%'", vec![]),
            // The empty pattern never matches; NULL labels are neither LIKE nor NOT LIKE.
            ("label like ''", vec![]),
            ("label not like ''", vec![0, 10, 20, 50]),
            ("label not like 'dev%'", vec![0, 50]),
            ("not label like 'dev%'", vec![0, 50]),
            ("label like null", vec![]),
            // IS [NOT] NULL and string equality.
            ("label is null", vec![40]),
            ("temperature is not null", vec![0, 10, 40, 50]),
            ("humidity is null or temperature is null", vec![10, 20]),
            ("label = 'dev_2'", vec![10]),
            ("label <> 'dev_2'", vec![0, 20, 50]),
            ("label != 'DEV_2' and label like 'dev%'", vec![10, 20]),
        ] {
            assert_eq!(
                keys(&store, &format!("select * where {condition}")).await,
                expected,
                "{condition}"
            );
        }
        fails_all(
            &store,
            &[
                (
                    "select * where n like '1%'",
                    "LIKE is not defined for column n of type INTEGER",
                ),
                (
                    "select * where label like label",
                    "LIKE expects a string literal pattern, not column label",
                ),
                (
                    "select * where label like 'a' escape 'ab'",
                    "ESCAPE expects a one-character string literal",
                ),
                (
                    "select * where label like 'a!' escape '!'",
                    "LIKE pattern 'a!' ends with its ESCAPE character",
                ),
                (
                    "select * where label > 'a'",
                    "binary operation '>' is not defined for STRING and STRING",
                ),
                (
                    "select * where label like",
                    "at byte 25: expected an expression, found end of query",
                ),
            ],
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn time_functions() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = sensor(&dir).await;
        for (condition, expected) in [
            // Constant arguments are folded.
            (format!("ts = TIMESTAMPADD(SECOND, TO_TIMESTAMP_MS({}), 10)", ms(0)), vec![10]),
            (format!("ts = timestamp_add(millisecond, TO_TIMESTAMP_MS({}), -10000)", ms(50)), vec![40]),
            ("ts = TIMESTAMPADD(MONTH, TIMESTAMP('2023-12-01T00:00:00Z'), 1)".to_string(), vec![0]),
            (format!("TO_EPOCH_MS(ts) = {}", ms(20)), vec![20]),
            (format!("TO_EPOCH_MS(TO_TIMESTAMP_MS({})) = TO_EPOCH_MS(ts)", ms(40)), vec![40]),
            // Over a column: ts + 1 minute > 100 s, i.e. ts > 40 s.
            (format!("TIMESTAMPADD(MINUTE, ts, 1) > TO_TIMESTAMP_MS({})", ms(100)), vec![50]),
            // ts − BASE in whole seconds.
            (format!("TIMESTAMPDIFF(SECOND, ts, TO_TIMESTAMP_MS({})) >= 40", ms(0)), vec![40, 50]),
            (format!("timestamp_diff(MINUTE, TO_TIMESTAMP_MS({}), ts) = 1", ms(100)), vec![0, 10, 20, 40]),
            // Constant calendar differences: Jan 31 → Mar 31 is 2 months; 2024 → 2025 one year less 1 ms is 0.
            (
                "TIMESTAMPDIFF(MONTH, TIMESTAMP('2024-03-31T00:00:00Z'), TIMESTAMP('2024-01-31T00:00:00Z')) = 2 and n = 10".to_string(),
                vec![0],
            ),
            (
                "TIMESTAMPDIFF(YEAR, TIMESTAMP('2024-12-31T23:59:59.999Z'), TIMESTAMP('2024-01-01T00:00:00Z')) = 0 and n = 10".to_string(),
                vec![0],
            ),
        ] {
            assert_eq!(keys(&store, &format!("select * where {condition}")).await, expected, "{condition}");
        }
        fails_all(
            &store,
            &[
                (
                    "select * where TIMESTAMPADD(DAY, n, 1) > ts",
                    "TIMESTAMPADD is not defined for column n of type INTEGER",
                ),
                (
                    "select * where TIMESTAMPADD(DAY, ts, 1.5) > ts",
                    "TIMESTAMPADD is not defined for the literal of type DOUBLE",
                ),
                (
                    "select * where TO_EPOCH_MS(n) > 1",
                    "TO_EPOCH_MS is not defined for column n of type INTEGER",
                ),
                (
                    "select * where TIMESTAMPADD(YEAR, TO_TIMESTAMP_MS(0), -1) < ts",
                    "is outside the TIMESTAMP range",
                ),
                (
                    "select * where TIMESTAMPADD(DAY, ts, 1) > 5",
                    "'>' is not defined for TIMESTAMP and LONG",
                ),
                (
                    "select * where TIMESTAMPADD(FORTNIGHT, ts, 1) > ts",
                    "at byte 28: expected a time unit",
                ),
            ],
        )
        .await;
    }

    /// YEAR and MONTH on a column go through SQLite's calendar, which must
    /// clamp the day of month exactly like the constant folding does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calendar_units_on_columns() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = sensor(&dir).await;
        let jan31 = 1_706_695_200_250; // 2024-01-31T10:00:00.250Z
        let mar15 = 1_710_460_800_000; // 2024-03-15T00:00:00Z
        store
            .put_rows(
                "sensor",
                vec![
                    row((jan31 - BASE) / SECOND, None, None, 1, None),
                    row((mar15 - BASE) / SECOND, None, None, 2, None),
                ],
            )
            .await
            .unwrap();
        // Seconds granularity in `row`: re-put the exact milliseconds.
        store
            .put_rows(
                "sensor",
                vec![vec![
                    Value::Timestamp(jan31),
                    Value::Null,
                    Value::Null,
                    Value::Integer(3),
                ]],
            )
            .await
            .unwrap();
        let n = |tql: &'static str| {
            let store = store.clone();
            async move {
                query(&store, tql)
                    .await
                    .rows
                    .iter()
                    .map(|r| r[3].clone())
                    .collect::<Vec<_>>()
            }
        };
        // (query, the n of the one row it selects)
        for (tql, expected) in [
            (
                "select * where TIMESTAMPADD(MONTH, ts, 1) = TIMESTAMP('2024-02-29T10:00:00.250Z')",
                3,
            ),
            (
                "select * where TIMESTAMPADD(MONTH, ts, -1) = TIMESTAMP('2023-12-31T10:00:00.250Z')",
                3,
            ),
            (
                "select * where TIMESTAMPADD(YEAR, ts, -1) = TIMESTAMP('2023-03-15T00:00:00Z')",
                2,
            ),
            (
                "select * where TIMESTAMPADD(month, ts, 13) = TIMESTAMP('2025-04-15T00:00:00Z')",
                2,
            ),
            // TIMESTAMPDIFF in calendar units over a column: from 2024-01-31T10:00:00.250
            // to 2024-03-31T10:00:00.249 is one month (two would land 1 ms later).
            (
                "select * where TIMESTAMPDIFF(MONTH, TIMESTAMP('2024-03-31T10:00:00.249Z'), ts) = 1",
                3,
            ),
            // From 2024-03-15 back to 2023-03-14: −12 months, so −1 YEAR;
            // 2023-03-16 is only −11 months, 0 years.
            (
                "select * where TIMESTAMPDIFF(YEAR, TIMESTAMP('2023-03-14T00:00:00Z'), ts) = -1",
                2,
            ),
            (
                "select * where TIMESTAMPDIFF(year, TIMESTAMP('2023-03-16T00:00:00Z'), ts) = 0 and n = 2",
                2,
            ),
        ] {
            assert_eq!(n(tql).await, [Value::Integer(expected)], "{tql}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn extreme_rows() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = sensor(&dir).await;
        keys_are(
            &store,
            &[
                // Temperature 40 at 40 s and 50 s: both rows.
                ("select MAX_ROWS(temperature)", &[40, 50]),
                ("select max_rows(temperature) order by ts desc", &[50, 40]),
                ("select max_rows(temperature) limit 1 offset 1", &[50]),
                ("select min_rows(n)", &[0]),
                ("select min_rows(humidity)", &[0]),
                ("select max_rows(ts)", &[50]),
                // Over the rows passing WHERE only.
                ("select max_rows(temperature) where n < 45", &[40]),
                ("select max_rows(temperature) where n > 100", &[]),
            ],
        )
        .await;
        let result = query(&store, "select max_rows(n)").await;
        assert_eq!(result.columns.len(), 5);
        assert_eq!(result.rows, [rows()[4].clone()]);
        fails(
            &store,
            "select max_rows(label)",
            "MAX_ROWS is not defined for column label of type STRING",
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn time_neighbours() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = sensor(&dir).await;
        for (call, seconds, expected) in [
            ("TIME_NEXT", 10, vec![10]),
            ("TIME_NEXT_ONLY", 10, vec![20]),
            ("time_next", 30, vec![40]),
            ("TIME_NEXT", 51, vec![]),
            ("TIME_PREV", 30, vec![20]),
            ("TIME_PREV", 40, vec![40]),
            ("TIME_PREV_ONLY", 40, vec![20]),
            ("TIME_PREV", -1, vec![]),
            ("TIME_PREV_ONLY", 0, vec![]),
        ] {
            let tql = format!("select {call}(*, TO_TIMESTAMP_MS({}))", ms(seconds));
            assert_eq!(keys(&store, &tql).await, expected, "{tql}");
        }
        let warmer = format!(
            "select time_next(*, TO_TIMESTAMP_MS({})) where temperature > 25",
            ms(10)
        );
        keys_are(
            &store,
            &[
                // WHERE first: the next row at or after 10 s that is warmer than 25.
                (&warmer, &[40]),
                (
                    "select time_prev(*, TIMESTAMPADD(SECOND, TIMESTAMP('2024-01-01T00:00:00Z'), 15))",
                    &[10],
                ),
                ("select time_prev(*, now())", &[50]),
                ("select time_next(*, null)", &[]),
            ],
        )
        .await;
        let result = query(
            &store,
            &format!("select time_next(*, TO_TIMESTAMP_MS({}))", ms(1)),
        )
        .await;
        assert_eq!(result.rows, [rows()[1].clone()]);
        fails_all(
            &store,
            &[
                (
                    "select time_next(*, ts)",
                    "TIME_NEXT expects a constant TIMESTAMP",
                ),
                (
                    "select time_next(*, 5)",
                    "TIME_NEXT expects a TIMESTAMP, but the literal is LONG",
                ),
            ],
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn time_interpolated() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = sensor(&dir).await;
        let call = |column: &str, seconds: i64| {
            format!(
                "select TIME_INTERPOLATED({column}, TO_TIMESTAMP_MS({}))",
                ms(seconds)
            )
        };
        // 30 s is halfway between 20 s (n 25) and 40 s (n 40): 32.5, truncated
        // to the INTEGER 32; the other columns are copied from 20 s.
        assert_eq!(
            query(&store, &call("n", 30)).await.rows,
            [vec![
                at(30),
                Value::Null,
                Value::Float(50.0),
                Value::Integer(32),
                Value::String("dev%3".into())
            ]]
        );
        // 45 s between 40 s (humidity 60) and 50 s (45): 52.5.
        assert_eq!(
            query(&store, &call("humidity", 45)).await.rows,
            [vec![
                at(45),
                Value::Double(40.0),
                Value::Float(52.5),
                Value::Integer(40),
                Value::Null
            ]]
        );
        // NULL on one side (temperature at 20 s) gives NULL.
        assert_eq!(
            query(&store, &call("temperature", 30)).await.rows[0][1],
            Value::Null
        );
        assert_eq!(
            query(&store, &call("temperature", 15)).await.rows[0][1],
            Value::Null
        );
        // An exact hit is that row; no extrapolation past either end.
        assert_eq!(
            query(&store, &call("n", 10)).await.rows,
            [rows()[1].clone()]
        );
        assert!(query(&store, &call("n", 55)).await.rows.is_empty());
        assert!(query(&store, &call("n", -5)).await.rows.is_empty());
        fails_all(
            &store,
            &[
                (
                    call("label", 30).as_str(),
                    "TIME_INTERPOLATED is not defined for column label of type STRING",
                ),
                (
                    call("ts", 30).as_str(),
                    "TIME_INTERPOLATED is not defined for column ts of type TIMESTAMP",
                ),
            ],
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn time_sampling() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = sensor(&dir).await;
        let sampling = |column: &str, from: i64, to: i64, every: &str| {
            format!(
                "select TIME_SAMPLING({column}, TO_TIMESTAMP_MS({}), TO_TIMESTAMP_MS({}), {every})",
                ms(from),
                ms(to)
            )
        };
        // Instants −15, 0, 15, 30, 45, 60 s. −15 s is before the first row and
        // 60 s after the last: skipped. 0 s is an exact hit. n is interpolated
        // and truncated: 15 s → 20 + 5·0.5 = 22.5 → 22; 30 s → 25 + 15·0.5 =
        // 32.5 → 32; 45 s → 40 + 5·0.5 = 42.5 → 42. Other columns come from
        // the previous row (10 s, 20 s, 40 s).
        let result = query(&store, &sampling("n", -15, 60, "15, SECOND")).await;
        assert_eq!(
            result.rows,
            [
                rows()[0].clone(),
                vec![
                    at(15),
                    Value::Double(20.0),
                    Value::Null,
                    Value::Integer(22),
                    Value::String("dev_2".into())
                ],
                vec![
                    at(30),
                    Value::Null,
                    Value::Float(50.0),
                    Value::Integer(32),
                    Value::String("dev%3".into())
                ],
                vec![
                    at(45),
                    Value::Double(40.0),
                    Value::Float(60.0),
                    Value::Integer(42),
                    Value::Null
                ],
            ]
        );
        // `*`: nothing is interpolated, every column is the previous row's.
        let result = query(&store, &sampling("*", -15, 60, "15, second")).await;
        let mut expected: Vec<Row> = [0, 1, 2, 3].iter().map(|&i| rows()[i].clone()).collect();
        for (row, s) in expected.iter_mut().zip([0, 15, 30, 45]) {
            row[0] = at(s);
        }
        assert_eq!(result.rows, expected);
        // A DOUBLE column with a NULL neighbour: 15 s and 30 s touch the NULL at 20 s.
        let temperatures: Vec<Value> = query(&store, &sampling("temperature", 0, 60, "15, SECOND"))
            .await
            .rows
            .iter()
            .map(|r| r[1].clone())
            .collect();
        assert_eq!(
            temperatures,
            [
                Value::Double(10.0),
                Value::Null,
                Value::Null,
                Value::Double(40.0)
            ]
        );
        // The range 15–35 s has only the 20 s row inside it: 15 s needs the
        // row before the range (10 s), 25 s and 35 s the one after it (40 s).
        // 25 s → 25 + 15·(5/20) = 28.75 → 28; 35 s → 25 + 15·(15/20) = 36.25 → 36.
        let ns: Vec<Value> = query(&store, &sampling("n", 15, 35, "10, SECOND"))
            .await
            .rows
            .iter()
            .map(|r| r[3].clone())
            .collect();
        assert_eq!(
            ns,
            [Value::Integer(22), Value::Integer(28), Value::Integer(36)]
        );
        // WHERE drops the 40 s row (its label is NULL): 30 s lies between 20 s
        // (25) and 50 s (45): 25 + 20·(10/30) = 31.67 → 31; 45 s: 25 + 20·(25/30) = 41.67 → 41.
        let tql = format!(
            "{} where label is not null",
            sampling("n", 0, 50, "15, SECOND")
        );
        let ns: Vec<Value> = query(&store, &tql)
            .await
            .rows
            .iter()
            .map(|r| r[3].clone())
            .collect();
        assert_eq!(
            ns,
            [
                Value::Integer(10),
                Value::Integer(22),
                Value::Integer(31),
                Value::Integer(41)
            ]
        );
        // ORDER BY and LIMIT apply after sampling: n is 10, 22, 32, 42.
        let tql = format!(
            "{} order by n desc limit 2",
            sampling("n", -15, 60, "15, SECOND")
        );
        assert_eq!(keys(&store, &tql).await, [45, 30]);
        let tql = format!(
            "{} limit 2 offset 1",
            sampling("n", -15, 60, "15000, MILLISECOND")
        );
        assert_eq!(keys(&store, &tql).await, [15, 30]);
        let null_start = format!(
            "select time_sampling(n, null, TO_TIMESTAMP_MS({}), 1, SECOND)",
            ms(9)
        );
        keys_are(
            &store,
            &[
                // One instant per minute from 0 s: 0 s only (60 s is past the last row).
                (&sampling("n", 0, 3600, "1, MINUTE"), &[0]),
                (&sampling("n", 50, 10, "1, SECOND"), &[]),
                (&null_start, &[]),
                (&sampling("n", 0, 50, "null, SECOND"), &[]),
            ],
        )
        .await;

        fails_all(
            &store,
            &[
                (
                    sampling("label", 0, 50, "1, SECOND").as_str(),
                    "TIME_SAMPLING is not defined for column label of type STRING",
                ),
                (
                    sampling("n", 0, 50, "0, SECOND").as_str(),
                    "TIME_SAMPLING expects a positive integer interval",
                ),
                (
                    sampling("n", 0, 50, "1.5, SECOND").as_str(),
                    "TIME_SAMPLING expects a positive integer interval",
                ),
                (
                    sampling("n", 0, 50, "1, MONTH").as_str(),
                    "does not accept the unit MONTH",
                ),
            ],
        )
        .await;
        // Every millisecond of the 50 s: 50 001 rows, the last one the 50 s row.
        let result = query(&store, &sampling("n", 0, 50, "1, MILLISECOND")).await;
        assert_eq!(result.rows.len(), 50_001);
        assert_eq!(result.rows[50_000], rows()[4]);
        fails(
            &store,
            "select time_sampling(n, ts, ts, 1, SECOND)",
            "TIME_SAMPLING expects a constant TIMESTAMP",
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn time_functions_need_a_time_series() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = sensor(&dir).await;
        let info = cromflag_tql::testing::sample_collection();
        store.put_container(info).await.unwrap();
        let people = vec![
            vec![Value::String("carol".into()), Value::Integer(30)],
            vec![Value::String("alice".into()), Value::Integer(25)],
            vec![Value::String("bob".into()), Value::Integer(30)],
        ];
        store.put_rows("people", people).await.unwrap();
        // MAX_ROWS works on collections, in insertion order.
        let result = store.query("people", "select max_rows(age)").await.unwrap();
        let names: Vec<&Value> = result.rows.iter().map(|r| &r[0]).collect();
        assert_eq!(
            names,
            [&Value::String("carol".into()), &Value::String("bob".into())]
        );
        let result = store
            .query("people", "select max_rows(age) order by name")
            .await
            .unwrap();
        assert_eq!(result.rows[0][0], Value::String("bob".into()));
        assert_eq!(
            store
                .query("people", "select count(*), avg(age)")
                .await
                .unwrap()
                .rows,
            [vec![Value::Long(3), Value::Double(85.0 / 3.0)]]
        );
        for tql in [
            "select time_next(*, now())",
            "select time_interpolated(age, now())",
            "select time_sampling(*, now(), now(), 1, SECOND)",
        ] {
            match store.query("people", tql).await {
                Err(StoreError::Query(m)) => assert!(
                    m.contains(
                        "is only defined for TIME_SERIES containers, but 'people' is a COLLECTION"
                    ),
                    "{m}"
                ),
                other => panic!("{tql}: {other:?}"),
            }
        }
    }

    /// Random selections and conditions end in a result or a `TQL: ` error:
    /// never a panic, and never SQL that SQLite rejects (a Backend error).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn garbage_fails_cleanly() {
        use cromflag_tql::testing::{garbage, XorShift};
        let dir = tempfile::TempDir::new().unwrap();
        let store = sensor(&dir).await;
        let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
        let prefixes = [
            "select ",
            "select * where ",
            "select count(*), avg(n) where ",
            "select max_rows(n) where ",
            "select time_sampling(n, to_timestamp_ms(1704067200000), now(), 7, second) where ",
            "select * where label like ",
        ];
        let mut answered = 0;
        for i in 0..6_000 {
            let text = format!("{}{}", prefixes[i % prefixes.len()], garbage(&mut rng));
            match store.query("sensor", &text).await {
                Ok(_) => answered += 1,
                Err(StoreError::Query(m)) => assert!(m.starts_with("TQL: "), "{text:?}: {m}"),
                Err(other) => panic!("{text:?}: {other:?}"),
            }
        }
        assert!(answered > 0, "the generator never produced a valid query");
    }
}
