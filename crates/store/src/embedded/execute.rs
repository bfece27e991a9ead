//! Running a translated [`Plan`] on a read connection.
//!
//! Plain selections and aggregations are one SQL statement each; this module
//! only runs them and decodes their rows. Row-selection and interpolation
//! functions (MAX_ROWS, TIME_NEXT, TIME_INTERPOLATED, TIME_SAMPLING, …) read
//! here the few rows they need, each with SQL on the indexed key, so no query
//! loads the whole container; what those rows become ([`rows`]: interpolation,
//! sampling, ORDER BY / LIMIT / OFFSET on the result, STDDEV's square root)
//! is cromflag-tql's.

use super::codec;
use crate::tql::rows;
use crate::tql::sql::{AggregatePlan, Plan, RowFunction, SelectPlan, SqlParam};
use crate::{Column, ContainerInfo, QueryResult, Row, StoreError};
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
    match plan {
        Plan::Rows(query) => {
            let columns: Vec<Column> = query
                .columns
                .iter()
                .map(|&i| info.columns[i].clone())
                .collect();
            let rows = fetch(conn, &query.sql, &query.params, &columns)?;
            Ok(QueryResult { columns, rows })
        }
        Plan::Aggregates(plan) => aggregates(conn, plan),
        Plan::Select(plan) => select(conn, info, plan),
    }
}

/// Runs `sql` and decodes its result columns as `columns`.
fn fetch(
    conn: &Connection,
    sql: &str,
    params: &[SqlParam],
    columns: &[Column],
) -> Result<Vec<Row>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(db_err)?;
    let mut cursor = stmt
        .query(params_from_iter(params.iter().map(codec::param_to_sql)))
        .map_err(db_err)?;
    let mut rows = Vec::new();
    while let Some(row) = cursor.next().map_err(db_err)? {
        let values = columns
            .iter()
            .enumerate()
            .map(|(i, column)| codec::from_sql(row.get_ref(i).map_err(db_err)?, column.column_type))
            .collect::<Result<Row, StoreError>>()?;
        rows.push(values);
    }
    Ok(rows)
}

fn aggregates(conn: &Connection, plan: &AggregatePlan) -> Result<QueryResult, StoreError> {
    let columns: Vec<Column> = plan.outputs.iter().map(|o| o.column.clone()).collect();
    let rows = fetch(conn, &plan.sql, &plan.params, &columns)?;
    Ok(QueryResult {
        columns,
        rows: rows::finish_aggregates(plan, rows),
    })
}

fn select(
    conn: &Connection,
    info: &ContainerInfo,
    plan: &SelectPlan,
) -> Result<QueryResult, StoreError> {
    let reader = Reader {
        conn,
        plan,
        columns: &info.columns,
    };
    let mut result = match plan.function {
        RowFunction::ExtremeRows { column, max } => reader.extreme_rows(column, max)?,
        RowFunction::Neighbour {
            time: Some(t),
            next,
            only,
        } => reader.neighbour(t, next, !only)?.into_iter().collect(),
        RowFunction::Interpolated {
            column,
            time: Some(t),
        } => reader.interpolated(column, t)?.into_iter().collect(),
        RowFunction::Sampling {
            column,
            start: Some(start),
            end: Some(end),
            step: Some(step),
        } => reader.sampling(column, start, end, step)?,
        // A NULL time or interval selects nothing.
        _ => Vec::new(),
    };
    rows::sort(&mut result, &plan.order_by);
    Ok(QueryResult {
        columns: info.columns.clone(),
        rows: rows::apply_limit(result, plan.limit),
    })
}

/// Reads whole rows that pass the statement's WHERE.
struct Reader<'a> {
    conn: &'a Connection,
    plan: &'a SelectPlan,
    columns: &'a [Column],
}

impl Reader<'_> {
    /// The WHERE condition and its parameters (`1` when there is none).
    fn filter(&self) -> (&str, &[SqlParam]) {
        match &self.plan.filter {
            Some((sql, params)) => (sql, params),
            None => ("1", &[]),
        }
    }

    /// Rows passing WHERE and `condition` (whose parameters are `params`),
    /// in `order`, at most `limit`.
    fn rows(
        &self,
        condition: &str,
        params: Vec<SqlParam>,
        order: &str,
        limit: Option<u32>,
    ) -> Result<Vec<Row>, StoreError> {
        let (filter, filter_params) = self.filter();
        let list: Vec<String> = (0..self.columns.len()).map(|i| format!("c{i}")).collect();
        let mut sql = format!(
            "SELECT {} FROM {} WHERE ({filter}) AND ({condition}) ORDER BY {order}",
            list.join(", "),
            self.plan.table
        );
        if let Some(limit) = limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let all: Vec<SqlParam> = filter_params.iter().cloned().chain(params).collect();
        fetch(self.conn, &sql, &all, self.columns)
    }

    /// MAX_ROWS / MIN_ROWS: every row whose `column` equals the extreme, ties
    /// included, in the container's natural order.
    fn extreme_rows(&self, column: usize, max: bool) -> Result<Vec<Row>, StoreError> {
        let (filter, filter_params) = self.filter();
        let function = if max { "MAX" } else { "MIN" };
        // The subquery repeats the WHERE, so its parameters come twice.
        let condition = format!(
            "c{column} = (SELECT {function}(c{column}) FROM {} WHERE {filter})",
            self.plan.table
        );
        self.rows(
            &condition,
            filter_params.to_vec(),
            self.plan.natural_order,
            None,
        )
    }

    /// The first row at or after `t` (`next`), or the last at or before it;
    /// `inclusive: false` excludes a row exactly at `t`.
    fn neighbour(&self, t: i64, next: bool, inclusive: bool) -> Result<Option<Row>, StoreError> {
        let op = match (next, inclusive) {
            (true, true) => ">=",
            (true, false) => ">",
            (false, true) => "<=",
            (false, false) => "<",
        };
        let order = if next { "c0" } else { "c0 DESC" };
        let rows = self.rows(
            &format!("c0 {op} ?"),
            vec![SqlParam::Integer(t)],
            order,
            Some(1),
        )?;
        Ok(rows.into_iter().next())
    }

    /// TIME_INTERPOLATED: the row at `t`, or one interpolated between its
    /// neighbours; nothing without a neighbour on each side.
    fn interpolated(&self, column: usize, t: i64) -> Result<Option<Row>, StoreError> {
        let Some(prev) = self.neighbour(t, false, true)? else {
            return Ok(None);
        };
        if rows::key(&prev) == t {
            return Ok(Some(prev));
        }
        let Some(next) = self.neighbour(t, true, false)? else {
            return Ok(None);
        };
        Ok(Some(rows::interpolate(&prev, &next, t, Some(column))))
    }

    /// TIME_SAMPLING over the instants `start + k·step ≤ end`: reads only the
    /// rows in [start, end] and one neighbour on each side of that range, and
    /// [`rows::sample`] makes the samples of them.
    fn sampling(
        &self,
        column: Option<usize>,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Vec<Row>, StoreError> {
        if start > end {
            return Ok(Vec::new());
        }
        let mut read: Vec<Row> = self.neighbour(start, false, false)?.into_iter().collect();
        read.extend(self.rows(
            "c0 >= ? AND c0 <= ?",
            vec![SqlParam::Integer(start), SqlParam::Integer(end)],
            "c0",
            None,
        )?);
        read.extend(self.neighbour(end, true, false)?);
        rows::sample(&read, column, start, end, step)
    }
}
