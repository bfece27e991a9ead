//! The embedded backend: SQLite (bundled) in WAL mode, one table per container.
//!
//! Writes go to the group-commit `writer` thread; reads run on a small pool of
//! read-only connections in blocking tasks, and see only committed data. The
//! `catalog` answers schema questions from memory.

mod catalog;
mod codec;
mod sql;
mod writer;

use super::{tql, Backend, ContainerInfo, QueryResult, Row, StoreError};
use async_trait::async_trait;
use catalog::Catalog;
use rusqlite::{params_from_iter, Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{mpsc, oneshot};

/// Jobs waiting for the writer; senders wait (asynchronously) when it is full.
const WRITE_QUEUE: usize = 1024;

pub struct EmbeddedStore {
    path: PathBuf,
    catalog: Arc<RwLock<Catalog>>,
    writer: mpsc::Sender<writer::Job>,
    /// Idle read connections; a query takes one or opens a new one.
    readers: Mutex<Vec<Connection>>,
}

impl EmbeddedStore {
    /// Opens (or creates) the database at `path` and starts its writer thread.
    pub fn open(path: &Path) -> Result<EmbeddedStore, StoreError> {
        let db_err = |e: rusqlite::Error| StoreError::Backend(format!("{}: {e}", path.display()));
        let conn = Connection::open(path).map_err(db_err)?;
        // WAL lets readers run beside the writer; FULL syncs the WAL at every
        // commit, so an acknowledged batch survives a power cut.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
        )
        .map_err(db_err)?;
        conn.set_prepared_statement_cache_capacity(256);
        let catalog = Arc::new(RwLock::new(Catalog::load(&conn)?));
        let (writer, jobs) = mpsc::channel(WRITE_QUEUE);
        let writer_catalog = catalog.clone();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer::run(conn, writer_catalog, jobs))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer: {e}")))?;
        Ok(EmbeddedStore {
            path: path.to_owned(),
            catalog,
            writer,
            readers: Mutex::new(Vec::new()),
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

    fn entry(&self, name: &str) -> Option<Arc<catalog::Entry>> {
        self.catalog
            .read()
            .expect("catalog lock")
            .get(name)
            .cloned()
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
                None => Connection::open_with_flags(&store.path, OpenFlags::SQLITE_OPEN_READ_ONLY)
                    .map_err(|e| StoreError::Backend(e.to_string()))?,
            };
            let result = f(&conn);
            store.readers.lock().expect("reader pool lock").push(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("query task failed: {e}")))?
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
        Ok(self.entry(name).map(|e| e.info.clone()))
    }

    async fn list_containers(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.catalog.read().expect("catalog lock").names())
    }

    async fn put_rows(&self, container: &str, rows: Vec<Row>) -> Result<u64, StoreError> {
        self.multi_put(vec![(container.to_owned(), rows)]).await
    }

    /// All containers' rows in one savepoint of one group commit: all or none.
    async fn multi_put(&self, batches: Vec<(String, Vec<Row>)>) -> Result<u64, StoreError> {
        self.write(|reply| writer::Job::PutRows { batches, reply })
            .await?
    }

    async fn query(&self, container: &str, text: &str) -> Result<QueryResult, StoreError> {
        let entry = self.entry(container).ok_or_else(|| {
            StoreError::NotFound(format!("container `{container}` does not exist"))
        })?;
        let statement = tql::parse(text)?;
        let query = sql::translate(&statement, &entry.info, &entry.table(), super::now_ms())?;
        self.read(move |conn| {
            let db_err = |e: rusqlite::Error| StoreError::Backend(e.to_string());
            let columns: Vec<_> = query
                .columns
                .iter()
                .map(|&i| entry.info.columns[i].clone())
                .collect();
            let mut stmt = conn.prepare_cached(&query.sql).map_err(db_err)?;
            let mut cursor = stmt
                .query(params_from_iter(query.params.iter()))
                .map_err(db_err)?;
            let mut rows = Vec::new();
            while let Some(row) = cursor.next().map_err(db_err)? {
                let values = columns
                    .iter()
                    .enumerate()
                    .map(|(i, column)| {
                        codec::from_sql(row.get_ref(i).map_err(db_err)?, column.column_type)
                    })
                    .collect::<Result<Row, StoreError>>()?;
                rows.push(values);
            }
            Ok(QueryResult { columns, rows })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Column, ColumnType, ContainerKind, Value};

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
