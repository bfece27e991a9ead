//! The single writer: one thread owns the write connection and commits in groups.
//!
//! Callers send a `Job` and await its reply. The thread takes every job that is
//! already queued (up to `MAX_GROUP`), runs each inside its own savepoint so that
//! a failing job rolls back alone, then commits them all with one transaction
//! and one sync, and only then replies. So many small batches share the cost of
//! a commit, each batch is still all-or-nothing, and a reply of `Ok` means the
//! rows are durable (`synchronous = FULL`). After the commit, the rows of time
//! series go out on the `commits` broadcast, for live streams.

use super::catalog::Catalog;
use super::codec;
use crate::{Committed, ContainerInfo, ContainerKind, Row, StoreError};
use rusqlite::{params_from_iter, Connection, TransactionBehavior};
use std::sync::{Arc, RwLock};
use tokio::sync::{broadcast, mpsc, oneshot};

/// Most jobs committed together; bounds the latency one commit can add.
const MAX_GROUP: usize = 256;

pub enum Job {
    PutContainer {
        info: ContainerInfo,
        reply: oneshot::Sender<Result<ContainerInfo, StoreError>>,
    },
    /// Drops a container and its rows; replies whether it existed.
    DropContainer {
        name: String,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    /// Rows for one or more containers, written in one savepoint.
    PutRows {
        batches: Vec<(String, Vec<Row>)>,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
}

/// What a job produced, held until the group's commit decides its fate.
enum Done {
    Container(
        oneshot::Sender<Result<ContainerInfo, StoreError>>,
        Result<ContainerInfo, StoreError>,
    ),
    Dropped(
        oneshot::Sender<Result<bool, StoreError>>,
        Result<bool, StoreError>,
    ),
    Rows(
        oneshot::Sender<Result<u64, StoreError>>,
        Result<u64, StoreError>,
        /// The rows written, kept to publish once committed.
        Vec<(String, Vec<Row>)>,
    ),
}

impl Done {
    fn is_ok(&self) -> bool {
        match self {
            Done::Container(_, r) => r.is_ok(),
            Done::Dropped(_, r) => r.is_ok(),
            Done::Rows(_, r, _) => r.is_ok(),
        }
    }

    /// Replies with the job's own outcome, or with `failure` if the commit failed.
    fn reply(self, failure: Option<&StoreError>) {
        // A caller that went away no longer needs its answer.
        match self {
            Done::Container(tx, r) => drop(tx.send(failure.map_or(r, |e| Err(e.clone())))),
            Done::Dropped(tx, r) => drop(tx.send(failure.map_or(r, |e| Err(e.clone())))),
            Done::Rows(tx, r, _) => drop(tx.send(failure.map_or(r, |e| Err(e.clone())))),
        }
    }
}

/// Runs the writer loop until every sender is dropped.
pub fn run(
    mut conn: Connection,
    catalog: Arc<RwLock<Catalog>>,
    commits: broadcast::Sender<Arc<Committed>>,
    mut jobs: mpsc::Receiver<Job>,
) {
    while let Some(first) = jobs.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        commit_group(&mut conn, &catalog, &commits, group);
    }
}

fn commit_group(
    conn: &mut Connection,
    shared: &RwLock<Catalog>,
    commits: &broadcast::Sender<Arc<Committed>>,
    group: Vec<Job>,
) {
    let db_err = |e: rusqlite::Error| StoreError::Backend(e.to_string());
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let failure = db_err(e);
            group
                .into_iter()
                .for_each(|job| failed(job, &failure).reply(None));
            return;
        }
    };
    // Schema changes go to a private copy, published only after the commit.
    let mut working: Option<Catalog> = None;
    let mut done = Vec::with_capacity(group.len());
    for job in group {
        // Each job in its own savepoint, so that a failing one rolls back alone.
        if let Err(e) = tx.execute_batch("SAVEPOINT job") {
            done.push(failed(job, &db_err(e)));
            continue;
        }
        let outcome = run_job(&tx, shared, &mut working, job);
        let end = if outcome.is_ok() {
            "RELEASE job"
        } else {
            "ROLLBACK TO job; RELEASE job"
        };
        if let Err(e) = tx.execute_batch(end) {
            tracing::error!(error = %e, "could not end a savepoint");
        }
        done.push(outcome);
    }
    match tx.commit() {
        Ok(()) => {
            if let Some(catalog) = working {
                *shared.write().expect("catalog lock") = catalog;
            }
            let mut done = done;
            if commits.receiver_count() > 0 {
                publish(&shared.read().expect("catalog lock"), commits, &mut done);
            }
            done.into_iter().for_each(|d| d.reply(None));
        }
        Err(e) => {
            let failure = db_err(e);
            tracing::error!(error = %failure, "group commit failed");
            done.into_iter().for_each(|d| d.reply(Some(&failure)));
        }
    }
}

fn run_job(
    conn: &Connection,
    shared: &RwLock<Catalog>,
    working: &mut Option<Catalog>,
    job: Job,
) -> Done {
    match job {
        Job::PutContainer { info, reply } => {
            let catalog =
                working.get_or_insert_with(|| shared.read().expect("catalog lock").clone());
            Done::Container(reply, catalog.put(conn, info))
        }
        Job::DropContainer { name, reply } => {
            let catalog =
                working.get_or_insert_with(|| shared.read().expect("catalog lock").clone());
            Done::Dropped(reply, catalog.drop(conn, &name))
        }
        Job::PutRows { batches, reply } => {
            let put_all = |catalog: &Catalog| {
                batches.iter().try_fold(0, |written, (container, rows)| {
                    Ok(written + put_rows(conn, catalog, container, rows)?)
                })
            };
            let result = match working {
                Some(catalog) => put_all(catalog),
                None => put_all(&shared.read().expect("catalog lock")),
            };
            Done::Rows(reply, result, batches)
        }
    }
}

/// The outcome of a job that could not run.
fn failed(job: Job, failure: &StoreError) -> Done {
    match job {
        Job::PutContainer { reply, .. } => Done::Container(reply, Err(failure.clone())),
        Job::DropContainer { reply, .. } => Done::Dropped(reply, Err(failure.clone())),
        Job::PutRows { reply, .. } => Done::Rows(reply, Err(failure.clone()), Vec::new()),
    }
}

/// Sends the committed rows of time series to live listeners. A send never
/// waits: listeners that fall behind lag and are dropped by their readers.
fn publish(catalog: &Catalog, commits: &broadcast::Sender<Arc<Committed>>, done: &mut [Done]) {
    for outcome in done {
        let Done::Rows(_, Ok(_), batches) = outcome else {
            continue;
        };
        for (container, rows) in std::mem::take(batches) {
            let Some(entry) = catalog.get(&container) else {
                continue;
            };
            if entry.info.kind != ContainerKind::TimeSeries || rows.is_empty() {
                continue;
            }
            let committed = Committed {
                container: entry.info.name.clone(),
                columns: entry.info.columns.clone(),
                rows,
            };
            // No listener left is not an error.
            let _ = commits.send(Arc::new(committed));
        }
    }
}

/// Checks every row against the schema, then writes them with one cached statement.
fn put_rows(
    conn: &Connection,
    catalog: &Catalog,
    container: &str,
    rows: &[Row],
) -> Result<u64, StoreError> {
    let entry = catalog
        .get(container)
        .ok_or_else(|| StoreError::NotFound(format!("container `{container}` does not exist")))?;
    let columns = &entry.info.columns;
    crate::check_rows(&entry.info, rows)?;
    // With a row key a put replaces the whole row, as GridDB's does.
    let verb = if entry.info.row_key {
        "INSERT OR REPLACE"
    } else {
        "INSERT"
    };
    let names: Vec<String> = (0..columns.len()).map(|i| format!("c{i}")).collect();
    let slots = vec!["?"; columns.len()].join(", ");
    let sql = format!(
        "{verb} INTO {} ({}) VALUES ({slots})",
        entry.table(),
        names.join(", ")
    );
    let mut stmt = conn
        .prepare_cached(&sql)
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    let null = crate::Value::Null;
    for row in rows {
        let cells = (0..columns.len()).map(|i| codec::to_sql(row.get(i).unwrap_or(&null)));
        stmt.execute(params_from_iter(cells))
            .map_err(|e| StoreError::Backend(e.to_string()))?;
    }
    Ok(rows.len() as u64)
}
