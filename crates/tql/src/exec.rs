//! Running a translated [`Plan`] on any SQLite: what a store does with a
//! plan once it has one, shared by every store in the
//! [`layout`](crate::layout) (the embedded store, the store component over
//! Spin's SQLite). The store supplies only [`Fetch`]: run one statement
//! with its parameters and hand back its rows, each cell read with
//! [`value_from_cell`]. No SQLite here.
//!
//! Plain selections and aggregations are one SQL statement each; this module
//! only runs them. Row-selection and interpolation functions (MAX_ROWS,
//! TIME_NEXT, TIME_INTERPOLATED, TIME_SAMPLING, …) read here the few rows
//! they need, each with SQL on the indexed key, so no query loads the whole
//! container; what those rows become ([`rows`]: interpolation, sampling,
//! ORDER BY / LIMIT / OFFSET on the result, STDDEV's square root) is
//! [`rows`]'.

use crate::rows;
use crate::sql::{AggregatePlan, Plan, RangesPlan, RowFunction, SelectPlan, SqlParam};
use crate::AggregateFn;
use cromflag_model::{
    Column, ColumnType, ContainerInfo, QueryResult, RangeAggregates, Row, StoreError, Value,
};

/// One statement's worth of SQLite, as a store reaches it.
pub trait Fetch {
    /// Runs `sql` with `params` bound to its `?`s, in order, and reads result
    /// column `i` of every row as a value of `columns[i]`'s type (with
    /// [`value_from_cell`]).
    fn fetch(
        &self,
        sql: &str,
        params: &[SqlParam],
        columns: &[Column],
    ) -> Result<Vec<Row>, StoreError>;
}

/// A stored cell in one of SQLite's storage classes, as a driver reads it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell<'a> {
    Null,
    Integer(i64),
    Real(f64),
    /// UTF-8 unless the database was written by something else.
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

/// Reads a stored cell back as a value of column type `ty`: the inverse of
/// how the layout stores values (BOOL → INTEGER 0/1; STRING → TEXT;
/// BYTE/SHORT/INTEGER/LONG → INTEGER; FLOAT/DOUBLE → REAL; TIMESTAMP →
/// INTEGER epoch ms; BLOB → BLOB). Anything else is a corrupt store.
pub fn value_from_cell(cell: Cell<'_>, ty: ColumnType) -> Result<Value, StoreError> {
    let corrupt = || {
        let shown = match cell {
            Cell::Text(v) => format!("Text({:?})", String::from_utf8_lossy(v)),
            other => format!("{other:?}"),
        };
        StoreError::Backend(format!("stored value {shown} does not fit a {ty} column"))
    };
    Ok(match (cell, ty) {
        (Cell::Null, _) => Value::Null,
        (Cell::Integer(v), ColumnType::Bool) => Value::Bool(v != 0),
        (Cell::Integer(v), ColumnType::Byte) => Value::Byte(v.try_into().map_err(|_| corrupt())?),
        (Cell::Integer(v), ColumnType::Short) => Value::Short(v.try_into().map_err(|_| corrupt())?),
        (Cell::Integer(v), ColumnType::Integer) => {
            Value::Integer(v.try_into().map_err(|_| corrupt())?)
        }
        (Cell::Integer(v), ColumnType::Long) => Value::Long(v),
        (Cell::Integer(v), ColumnType::Timestamp) => Value::Timestamp(v),
        (Cell::Real(v), ColumnType::Float) => Value::Float(v as f32),
        (Cell::Real(v), ColumnType::Double) => Value::Double(v),
        (Cell::Text(v), ColumnType::String) => {
            Value::String(std::str::from_utf8(v).map_err(|_| corrupt())?.to_owned())
        }
        (Cell::Blob(v), ColumnType::Blob) => Value::Blob(v.to_vec()),
        _ => return Err(corrupt()),
    })
}

/// Runs `plan`, translated for the container `info`, on `db`.
pub fn run(db: &impl Fetch, info: &ContainerInfo, plan: &Plan) -> Result<QueryResult, StoreError> {
    match plan {
        Plan::Rows(query) => {
            let columns: Vec<Column> = query
                .columns
                .iter()
                .map(|&i| info.columns[i].clone())
                .collect();
            let rows = db.fetch(&query.sql, &query.params, &columns)?;
            Ok(QueryResult { columns, rows })
        }
        Plan::Aggregates(plan) => aggregates(db, plan),
        Plan::Select(plan) => select(db, info, plan),
    }
}

/// Runs `plan`: every range's aggregates from one SQL statement, a range
/// without rows answered as its own query would answer it (COUNT 0, the
/// rest NULL, or no row for a single aggregation).
pub fn run_ranges(db: &impl Fetch, plan: &RangesPlan) -> Result<RangeAggregates, StoreError> {
    let outputs = &plan.plan.outputs;
    let columns: Vec<Column> = outputs.iter().map(|o| o.column.clone()).collect();
    let read: Vec<Column> = std::iter::once(Column::new("bucket", ColumnType::Long))
        .chain(columns.iter().cloned())
        .collect();
    let mut found: Vec<Option<Row>> = vec![None; plan.ranges];
    for mut row in db.fetch(&plan.plan.sql, &plan.plan.params, &read)? {
        let bucket = match row.first() {
            Some(Value::Long(i)) => usize::try_from(*i).ok(),
            _ => None,
        };
        let slot = bucket
            .and_then(|i| found.get_mut(i))
            .ok_or_else(|| StoreError::Backend(format!("range {:?} was not asked", row[0])))?;
        row.remove(0);
        *slot = Some(row);
    }
    let rows = found
        .into_iter()
        .map(|row| {
            let row = row.unwrap_or_else(|| {
                outputs
                    .iter()
                    .map(|o| match o.function {
                        AggregateFn::Count => Value::Long(0),
                        _ => Value::Null,
                    })
                    .collect()
            });
            rows::finish_aggregates(&plan.plan, vec![row]).pop()
        })
        .collect();
    Ok(RangeAggregates { columns, rows })
}

fn aggregates(db: &impl Fetch, plan: &AggregatePlan) -> Result<QueryResult, StoreError> {
    let columns: Vec<Column> = plan.outputs.iter().map(|o| o.column.clone()).collect();
    let rows = db.fetch(&plan.sql, &plan.params, &columns)?;
    Ok(QueryResult {
        columns,
        rows: rows::finish_aggregates(plan, rows),
    })
}

fn select(
    db: &impl Fetch,
    info: &ContainerInfo,
    plan: &SelectPlan,
) -> Result<QueryResult, StoreError> {
    let reader = Reader {
        db,
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
struct Reader<'a, F> {
    db: &'a F,
    plan: &'a SelectPlan,
    columns: &'a [Column],
}

impl<F: Fetch> Reader<'_, F> {
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
        self.db.fetch(&sql, &all, self.columns)
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
