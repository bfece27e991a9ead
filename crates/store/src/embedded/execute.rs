//! Running a translated [`Plan`] on a read connection: cromflag-tql's
//! executor ([`exec`]), which every store in its layout shares, over a
//! rusqlite connection. This module only runs one statement at a time for
//! it and reads the cells (`codec`).

use super::codec;
use crate::tql::exec::{self, Fetch};
use crate::tql::sql::{Plan, RangesPlan, SqlParam};
use crate::{Column, ContainerInfo, QueryResult, RangeAggregates, Row, StoreError};
use rusqlite::{params_from_iter, Connection};

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Runs `plan`, translated for the container `info`.
pub fn run(
    conn: &Connection,
    info: &ContainerInfo,
    plan: &Plan,
) -> Result<QueryResult, StoreError> {
    exec::run(&Reader(conn), info, plan)
}

/// Runs `plan`: a statement's aggregates over each of its ranges.
pub fn run_ranges(conn: &Connection, plan: &RangesPlan) -> Result<RangeAggregates, StoreError> {
    exec::run_ranges(&Reader(conn), plan)
}

struct Reader<'a>(&'a Connection);

impl Fetch for Reader<'_> {
    /// Runs `sql` (cached: a container's queries repeat) and decodes its
    /// result columns as `columns`.
    fn fetch(
        &self,
        sql: &str,
        params: &[SqlParam],
        columns: &[Column],
    ) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self.0.prepare_cached(sql).map_err(db_err)?;
        let mut cursor = stmt
            .query(params_from_iter(params.iter().map(codec::param_to_sql)))
            .map_err(db_err)?;
        let mut rows = Vec::new();
        while let Some(row) = cursor.next().map_err(db_err)? {
            let mut values = Row::with_capacity(columns.len());
            for (i, column) in columns.iter().enumerate() {
                values.push(codec::from_sql(
                    row.get_ref(i).map_err(db_err)?,
                    column.column_type,
                )?);
            }
            rows.push(values);
        }
        Ok(rows)
    }
}
