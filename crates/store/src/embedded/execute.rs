//! Running a translated [`Plan`] on a read connection.
//!
//! Plain selections and aggregations are one SQL statement each; this module
//! only decodes their rows (and takes STDDEV's square root, which SQLite lacks
//! without its math extension). Row-selection and interpolation functions
//! (MAX_ROWS, TIME_NEXT, TIME_INTERPOLATED, TIME_SAMPLING, …) are computed
//! here from the few rows they need, each read with SQL on the indexed key, so
//! no query loads the whole container. ORDER BY / LIMIT / OFFSET of those
//! functions apply to their result, after the computation.

use super::codec;
use super::sql::{AggregatePlan, Plan, RowFunction, SelectPlan};
use crate::tql::{AggregateFn, Limit};
use crate::{Column, ContainerInfo, QueryResult, Row, StoreError, Value};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params_from_iter, Connection};
use std::cmp::Ordering;

/// Most rows one TIME_SAMPLING may produce (GridDB WebAPI's default maxLimit),
/// so that a one-millisecond interval over years fails instead of exhausting memory.
const MAX_SAMPLES: i64 = 1_000_000;

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn error(message: impl std::fmt::Display) -> StoreError {
    StoreError::Query(format!("TQL: {message}"))
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
    params: &[SqlValue],
    columns: &[Column],
) -> Result<Vec<Row>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(db_err)?;
    let mut cursor = stmt.query(params_from_iter(params)).map_err(db_err)?;
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
    let mut rows = fetch(conn, &plan.sql, &plan.params, &columns)?;
    for row in &mut rows {
        for (value, output) in row.iter_mut().zip(&plan.outputs) {
            if let (AggregateFn::Stddev, Value::Double(variance)) = (output.function, &*value) {
                *value = Value::Double(variance.sqrt());
            }
        }
    }
    // GridDB gives no row when its one aggregate had no input value; COUNT is
    // never NULL, so it always gives its row.
    if plan.single && rows.first().is_some_and(|row| row[0].is_null()) {
        rows.clear();
    }
    Ok(QueryResult {
        columns,
        rows: apply_limit(rows, plan.limit),
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
    let mut rows = match plan.function {
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
    sort(&mut rows, &plan.order_by);
    Ok(QueryResult {
        columns: info.columns.clone(),
        rows: apply_limit(rows, plan.limit),
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
    fn filter(&self) -> (&str, &[SqlValue]) {
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
        params: Vec<SqlValue>,
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
        let all: Vec<SqlValue> = filter_params.iter().cloned().chain(params).collect();
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
            vec![SqlValue::Integer(t)],
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
        if key(&prev) == t {
            return Ok(Some(prev));
        }
        let Some(next) = self.neighbour(t, true, false)? else {
            return Ok(None);
        };
        Ok(Some(interpolate(&prev, &next, t, Some(column))))
    }

    /// TIME_SAMPLING over the instants `start + k·step ≤ end`. Reads only the
    /// rows in [start, end] and one neighbour on each side of that range.
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
        let mut rows: Vec<Row> = self.neighbour(start, false, false)?.into_iter().collect();
        rows.extend(self.rows(
            "c0 >= ? AND c0 <= ?",
            vec![SqlValue::Integer(start), SqlValue::Integer(end)],
            "c0",
            None,
        )?);
        rows.extend(self.neighbour(end, true, false)?);
        let (Some(first), Some(last)) = (rows.first().map(key), rows.last().map(key)) else {
            return Ok(Vec::new());
        };
        // No extrapolation: instants before the first row or after the last
        // have no neighbour on one side and are skipped without visiting them.
        // i128, because a huge interval must not overflow the arithmetic.
        let (start128, step128) = (i128::from(start), i128::from(step));
        let skipped = ((i128::from(first) - start128).max(0) + step128 - 1) / step128;
        let from = start128 + skipped * step128;
        let to = i128::from(end.min(last));
        if from > to {
            return Ok(Vec::new());
        }
        if (to - from) / step128 >= i128::from(MAX_SAMPLES) {
            return Err(error(format_args!(
                "TIME_SAMPLING would produce more than {MAX_SAMPLES} rows; \
                 use a longer interval or a shorter range"
            )));
        }
        // from ≤ to ≤ last, so both fit an i64 now.
        let (from, to) = (from as i64, to as i64);
        let mut samples = Vec::new();
        // `prev` indexes the last row at or before the instant.
        let mut prev = 0;
        let mut instant = from;
        while instant <= to {
            while prev + 1 < rows.len() && key(&rows[prev + 1]) <= instant {
                prev += 1;
            }
            let row = &rows[prev];
            samples.push(if key(row) == instant {
                row.clone()
            } else {
                // key(row) < instant <= last, so a next row exists.
                interpolate(row, &rows[prev + 1], instant, column)
            });
            match instant.checked_add(step) {
                Some(next) => instant = next,
                None => break,
            }
        }
        Ok(samples)
    }
}

/// The row key of a time-series row (column 0, never NULL).
fn key(row: &Row) -> i64 {
    match row[0] {
        Value::Timestamp(ms) => ms,
        _ => unreachable!("a time-series row key is a non-null TIMESTAMP"),
    }
}

/// A row at instant `t` between `prev` and `next`: the key is `t`, `column`
/// (if any) is linearly interpolated, everything else is copied from `prev`.
fn interpolate(prev: &Row, next: &Row, t: i64, column: Option<usize>) -> Row {
    let mut row = prev.clone();
    row[0] = Value::Timestamp(t);
    if let Some(c) = column {
        let fraction = (t - key(prev)) as f64 / (key(next) - key(prev)) as f64;
        row[c] = lerp(&prev[c], &next[c], fraction);
    }
    row
}

/// `a + (b − a)·fraction` in double precision, converted back to the column's
/// type: integers are truncated toward zero (`as` does exactly that). NULL on
/// either side gives NULL.
fn lerp(a: &Value, b: &Value, fraction: f64) -> Value {
    let (Some(x), Some(y)) = (as_f64(a), as_f64(b)) else {
        return Value::Null;
    };
    let v = x + (y - x) * fraction;
    match a {
        Value::Byte(_) => Value::Byte(v as i8),
        Value::Short(_) => Value::Short(v as i16),
        Value::Integer(_) => Value::Integer(v as i32),
        Value::Long(_) => Value::Long(v as i64),
        Value::Float(_) => Value::Float(v as f32),
        _ => Value::Double(v),
    }
}

fn as_f64(value: &Value) -> Option<f64> {
    Some(match *value {
        Value::Byte(v) => f64::from(v),
        Value::Short(v) => f64::from(v),
        Value::Integer(v) => f64::from(v),
        Value::Long(v) => v as f64,
        Value::Float(v) => f64::from(v),
        Value::Double(v) => v,
        _ => return None,
    })
}

/// A stable sort on `(column, descending)` keys with GridDB's NULL-is-largest
/// rule, so that rows equal on every key keep their natural order.
fn sort(rows: &mut [Row], keys: &[(usize, bool)]) {
    if keys.is_empty() {
        return;
    }
    rows.sort_by(|a, b| {
        keys.iter()
            .map(|&(c, descending)| {
                let order = compare(&a[c], &b[c]);
                if descending {
                    order.reverse()
                } else {
                    order
                }
            })
            .find(|order| order.is_ne())
            .unwrap_or(Ordering::Equal)
    });
}

/// Orders two values of one column; NULL is the largest value.
fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Greater,
        (_, Value::Null) => Ordering::Less,
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Timestamp(x), Value::Timestamp(y)) => x.cmp(y),
        _ => match (as_f64(a), as_f64(b)) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => Ordering::Equal,
        },
    }
}

fn apply_limit(rows: Vec<Row>, limit: Option<Limit>) -> Vec<Row> {
    let Some(limit) = limit else {
        return rows;
    };
    let offset = usize::try_from(limit.offset.unwrap_or(0)).unwrap_or(usize::MAX);
    let count = usize::try_from(limit.count).unwrap_or(usize::MAX);
    rows.into_iter().skip(offset).take(count).collect()
}
