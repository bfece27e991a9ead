//! The single writer: one thread owns the write connection and commits in groups.
//!
//! Callers send a `Job` and await its reply. The thread takes every job that is
//! already queued (up to `MAX_GROUP`), runs each inside its own savepoint so that
//! a failing job rolls back alone, then commits them all with one transaction
//! and one sync, and only then replies. So many small batches share the cost of
//! a commit, each batch is still all-or-nothing, and a reply of `Ok` means the
//! rows are durable (`synchronous = FULL`). After the commit, the catalog's
//! changes reach its cache, and the rows of time series go out on the
//! `commits` broadcast, for live streams.
//!
//! The writer also keeps the WAL bounded: SQLite's own checkpoints are
//! passive, and readers that always hold some snapshot keep them from ever
//! restarting the WAL, which then grows without end. So at most once a
//! `CHECKPOINT_EVERY` the writer checkpoints in RESTART mode, waiting
//! `CHECKPOINT_WAIT` at most for readers of old snapshots to finish (reads
//! are one statement each, so they do), and at `Close` it checkpoints and
//! truncates the WAL before the connection goes.

use super::catalog::{Cache, Entry, Pending};
use super::codec;
use crate::{CommitFeed, Committed, ContainerInfo, Row, StoreError};
use rusqlite::{params_from_iter, Connection, TransactionBehavior};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// How often, at most, the writer restarts the WAL.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// How long a checkpoint waits for readers before it gives up until the next.
const CHECKPOINT_WAIT: Duration = Duration::from_millis(100);
/// How long anything else waits for a lock: the connection's busy timeout.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// Deletes the rows of one container with these row keys, in one
    /// savepoint; replies how many there were.
    DeleteRows {
        container: String,
        keys: Vec<crate::Value>,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    /// Commits what came before, checkpoints and truncates the WAL, and
    /// stops the writer.
    Close { reply: oneshot::Sender<()> },
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
        /// The rows written and their containers, kept to publish once committed.
        Vec<(Arc<Entry>, Vec<Row>)>,
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

    /// The job's error, if it failed.
    fn error(&self) -> Option<StoreError> {
        match self {
            Done::Container(_, r) => r.as_ref().err().cloned(),
            Done::Dropped(_, r) => r.as_ref().err().cloned(),
            Done::Rows(_, r, _) => r.as_ref().err().cloned(),
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

/// A failed write as callers see it. A full disk (or `max_page_count`) and
/// a read-only file say so, and that the write left nothing behind (its
/// savepoint, or the whole group, rolled back): the caller answers 503 and
/// MQTT leaves the message unacked until writes succeed again.
pub fn write_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    let what = match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => "the store is full",
        Some(ErrorCode::ReadOnly) => "the store is read-only",
        _ => return StoreError::Backend(e.to_string()),
    };
    StoreError::Backend(format!(
        "{what} ({e}): nothing of this write was kept; it succeeds again once the store can grow"
    ))
}

/// Runs the writer loop until every sender is dropped or `Close` comes.
pub fn run(
    mut conn: Connection,
    cache: Arc<Cache>,
    commits: CommitFeed,
    mut jobs: mpsc::Receiver<Job>,
) {
    let mut last_checkpoint = Instant::now();
    while let Some(first) = jobs.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        // What came before a `Close` is committed; jobs after it are dropped
        // unanswered, so their senders see the writer gone.
        let mut close = None;
        if let Some(at) = group
            .iter()
            .position(|job| matches!(job, Job::Close { .. }))
        {
            if let Some(Job::Close { reply }) = group.drain(at..).next() {
                close = Some(reply);
            }
        }
        commit_group(&mut conn, &cache, &commits, group);
        if let Some(reply) = close {
            checkpoint(&conn, "TRUNCATE", BUSY_TIMEOUT);
            drop(conn);
            let _ = reply.send(());
            return;
        }
        if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            checkpoint(&conn, "RESTART", CHECKPOINT_WAIT);
            last_checkpoint = Instant::now();
        }
    }
}

/// Checkpoints the WAL in `mode` (RESTART or TRUNCATE), waiting at most
/// `wait` for readers; a checkpoint that could not finish is tried again
/// next time.
fn checkpoint(conn: &Connection, mode: &str, wait: Duration) {
    let run = || -> rusqlite::Result<(i64, i64, i64)> {
        conn.busy_timeout(wait)?;
        let outcome = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        });
        conn.busy_timeout(BUSY_TIMEOUT)?;
        outcome
    };
    match run() {
        Ok((0, _, _)) => {}
        Ok((_, log, done)) => {
            tracing::debug!(log, done, mode, "WAL checkpoint waited for readers; later")
        }
        Err(e) => tracing::warn!(error = %e, mode, "WAL checkpoint failed"),
    }
}

fn commit_group(conn: &mut Connection, cache: &Cache, commits: &CommitFeed, group: Vec<Job>) {
    if group.is_empty() {
        return;
    }
    let db_err = write_error;
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
    // Catalog changes stay in `pending` until the commit.
    let mut pending = Pending::new(cache);
    let mut done = Vec::with_capacity(group.len());
    // Set when SQLite rolled the whole transaction back itself (it may on a
    // full disk): later jobs must not run, since outside the transaction
    // each would commit on its own, and nothing of the group is kept.
    let mut aborted: Option<StoreError> = None;
    for job in group {
        if let Some(failure) = &aborted {
            done.push(failed(job, failure));
            continue;
        }
        // Each job in its own savepoint, so that a failing one rolls back alone.
        if let Err(e) = tx.execute_batch("SAVEPOINT job") {
            done.push(failed(job, &db_err(e)));
            continue;
        }
        // Only schema jobs change the catalog: only they need a mark to undo.
        let mark = matches!(job, Job::PutContainer { .. } | Job::DropContainer { .. })
            .then(|| pending.mark());
        let outcome = run_job(&tx, &mut pending, job);
        if tx.is_autocommit() {
            aborted = Some(outcome.error().unwrap_or_else(|| {
                StoreError::Backend("the store rolled the group's transaction back".into())
            }));
            done.push(outcome);
            continue;
        }
        let end = if outcome.is_ok() {
            "RELEASE job"
        } else {
            if let Some(mark) = mark {
                pending.restore(mark);
            }
            "ROLLBACK TO job; RELEASE job"
        };
        if let Err(e) = tx.execute_batch(end) {
            tracing::error!(error = %e, "could not end a savepoint");
        }
        done.push(outcome);
    }
    if let Some(failure) = aborted {
        tracing::error!(error = %failure, "group transaction rolled back");
        // The transaction is gone already: dropping `tx` rolls back nothing.
        drop(tx);
        done.into_iter().for_each(|d| d.reply(Some(&failure)));
        return;
    }
    let changes = pending.into_changes();
    match tx.commit() {
        Ok(()) => {
            cache.apply(changes);
            let mut done = done;
            if commits.listening() {
                publish(commits, &mut done);
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

fn run_job(conn: &Connection, catalog: &mut Pending<'_>, job: Job) -> Done {
    match job {
        Job::PutContainer { info, reply } => Done::Container(reply, catalog.put(conn, info)),
        Job::DropContainer { name, reply } => Done::Dropped(reply, catalog.drop(conn, &name)),
        Job::PutRows { batches, reply } => {
            let mut written = Vec::with_capacity(batches.len());
            let mut result = Ok(0);
            for (container, rows) in batches {
                match put_rows(conn, catalog, &container, &rows) {
                    Ok(entry) => {
                        result = result.map(|n| n + rows.len() as u64);
                        written.push((entry, rows));
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            Done::Rows(reply, result, written)
        }
        Job::DeleteRows {
            container,
            keys,
            reply,
        } => Done::Rows(
            reply,
            delete_rows(conn, catalog, &container, &keys),
            Vec::new(),
        ),
        Job::Close { .. } => unreachable!("the writer stops at Close"),
    }
}

/// The outcome of a job that could not run.
fn failed(job: Job, failure: &StoreError) -> Done {
    match job {
        Job::PutContainer { reply, .. } => Done::Container(reply, Err(failure.clone())),
        Job::DropContainer { reply, .. } => Done::Dropped(reply, Err(failure.clone())),
        Job::PutRows { reply, .. } | Job::DeleteRows { reply, .. } => {
            Done::Rows(reply, Err(failure.clone()), Vec::new())
        }
        Job::Close { .. } => unreachable!("the writer stops at Close"),
    }
}

/// Sends the committed rows the feed carries to its listeners. A send never
/// waits: listeners that fall behind lag and are dropped by their readers.
fn publish(commits: &CommitFeed, done: &mut [Done]) {
    for outcome in done {
        let Done::Rows(_, Ok(_), batches) = outcome else {
            continue;
        };
        for (entry, rows) in std::mem::take(batches) {
            if !commits.carries(&entry.info) || rows.is_empty() {
                continue;
            }
            let committed = Committed {
                container: entry.info.name.clone(),
                columns: entry.info.columns.clone(),
                rows,
            };
            commits.send(committed);
        }
    }
}

/// Checks every row against the schema, then writes them with one cached
/// statement; returns the container written to.
fn put_rows(
    conn: &Connection,
    catalog: &Pending<'_>,
    container: &str,
    rows: &[Row],
) -> Result<Arc<Entry>, StoreError> {
    let entry = catalog
        .get(conn, container)?
        .ok_or_else(|| StoreError::NotFound(format!("container `{container}` does not exist")))?;
    crate::check_rows(&entry.info, rows)?;
    let width = entry.info.columns.len();
    let sql = entry.storage.insert_sql(width, entry.info.row_key);
    let mut stmt = conn.prepare_cached(&sql).map_err(write_error)?;
    // A shared table's rows start with their container's id.
    let id = entry.storage.shared_by().map(crate::Value::Long);
    let null = crate::Value::Null;
    for row in rows {
        let cells = (0..width).map(|i| row.get(i).unwrap_or(&null));
        stmt.execute(params_from_iter(id.iter().chain(cells).map(codec::to_sql)))
            .map_err(write_error)?;
    }
    Ok(entry)
}

/// Deletes the rows of `container` whose row key is one of `keys` (keys of
/// no row are passed over, as GridDB does); returns how many it deleted.
fn delete_rows(
    conn: &Connection,
    catalog: &Pending<'_>,
    container: &str,
    keys: &[crate::Value],
) -> Result<u64, StoreError> {
    let entry = catalog
        .get(conn, container)?
        .ok_or_else(|| StoreError::NotFound(format!("container `{container}` does not exist")))?;
    if !entry.info.row_key {
        return Err(StoreError::Invalid(format!(
            "container `{container}` has no row key"
        )));
    }
    let key_type = entry.info.columns[0].column_type;
    let mut stmt = conn
        .prepare_cached(&entry.storage.delete_key_sql())
        .map_err(write_error)?;
    let id = entry.storage.shared_by().map(crate::Value::Long);
    let mut deleted = 0;
    for key in keys {
        if key.column_type() != Some(key_type) {
            return Err(StoreError::Invalid(format!(
                "`{key:?}` is not a {key_type:?} row key of `{container}`"
            )));
        }
        deleted += stmt
            .execute(params_from_iter(id.iter().chain([key]).map(codec::to_sql)))
            .map_err(write_error)? as u64;
    }
    Ok(deleted)
}
