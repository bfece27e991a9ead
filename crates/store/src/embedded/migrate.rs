//! Bringing a database to the current layout when the store opens it.
//!
//! Before layout version 2 every time series had a table of its own,
//! `t_{id}`. Opening such a database moves their rows into the shared series
//! table (see `cromflag_tql::layout`) a batch of containers at a time: each
//! batch copies its rows and drops its tables in one transaction, so a
//! migration that is interrupted leaves every container either moved or
//! untouched, and the next open carries on where it stopped. A time series
//! still to move is one whose own table still exists. Collections keep their
//! tables in both layouts.

use super::catalog;
use crate::StoreError;
use cromflag_tql::layout::{CATALOG_DDL, LAYOUT_VERSION, SERIES_DDL, SERIES_TABLE};
use rusqlite::Connection;

/// Time series moved per transaction: progress is logged and kept per batch.
const BATCH: usize = 500;

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Creates the layout's tables and moves what an older layout left.
pub fn run(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(db_err)?;
    if version >= LAYOUT_VERSION {
        return Ok(());
    }
    conn.execute_batch(&format!("{CATALOG_DDL}; {SERIES_DDL};"))
        .map_err(db_err)?;
    let todo = own_tables(conn)?;
    if !todo.is_empty() {
        tracing::info!(
            time_series = todo.len(),
            "moving time series from their own tables into the shared table (once)"
        );
    }
    let mut moved = 0;
    for batch in todo.chunks(BATCH) {
        let tx = conn.transaction().map_err(db_err)?;
        let widest = batch.iter().map(|&(_, width)| width).max().unwrap_or(1);
        catalog::widen_series(&tx, widest)?;
        for &(id, width) in batch {
            let columns: Vec<String> = (0..width).map(|i| format!("c{i}")).collect();
            let columns = columns.join(", ");
            tx.execute(
                &format!(
                    "INSERT INTO {SERIES_TABLE} (container, {columns}) SELECT ?1, {columns} FROM \"t_{id}\""
                ),
                [id],
            )
            .map_err(db_err)?;
            tx.execute(&format!("DROP TABLE \"t_{id}\""), [])
                .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
        moved += batch.len();
        tracing::info!(moved, of = todo.len(), "time series moved");
    }
    conn.execute_batch(&format!("PRAGMA user_version = {LAYOUT_VERSION}"))
        .map_err(db_err)?;
    Ok(())
}

/// The time series that still have a table of their own: `(id, columns)`.
fn own_tables(conn: &Connection) -> Result<Vec<(i64, usize)>, StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT c.id, json_array_length(c.columns) FROM _cromflag_containers c \
             JOIN sqlite_schema s ON s.type = 'table' AND s.name = 't_' || c.id \
             WHERE c.kind = 'TIME_SERIES' ORDER BY c.id",
        )
        .map_err(db_err)?;
    let tables = stmt
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .map_err(db_err)?
        .collect::<Result<_, _>>()
        .map_err(db_err)?;
    Ok(tables)
}
