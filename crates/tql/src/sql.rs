//! The translation of a parsed TQL [`Statement`] into a [`Plan`] for SQLite.
//!
//! This module owns what a query *means* against one container's storage:
//! it resolves column names against the schema, applies GridDB's typing
//! rules ([`types`](crate::types)) to comparisons, conditions, functions and
//! aggregations, gives `NOW()` its value (and folds the time functions of
//! constants), and writes SQL for the store's [`layout`](crate::layout)
//! (container column `i` stored as SQL column `c{i}`, BOOL as 0/1,
//! TIMESTAMP as epoch ms; a time series' rows in the shared table, under
//! `container = ?`).
//!
//! Plain selections and aggregations become one SQL statement each. A
//! row-selection function becomes a [`SelectPlan`]: its arguments evaluated
//! and its WHERE translated, for the store to compute from key-indexed reads
//! with [`rows`](crate::rows).
//!
//! Every literal travels as a bound parameter ([`SqlParam`]). The only text
//! written into the SQL string is our own keywords and numbers, the
//! validated `c{i}` names and the table names of the layout (built from
//! numbers), so user input cannot inject SQL. No SQLite here: the store
//! prepares the SQL and binds the parameters.

use crate::layout::Storage;
use crate::types::{comparable, resolve_column};
use crate::{
    error, timestamp_add, timestamp_diff, Aggregate, AggregateFn, CompareOp, Expr, Limit, Literal,
    Name, SelectFunction, SelectKind, Selection, SortKey, Statement, TimeUnit,
};
use cromflag_model::{
    range_key, Column, ColumnType, ContainerInfo, ContainerKind, KeyRange, StoreError,
};

#[cfg(test)]
mod tests;

/// A value bound to one `?` of the SQL, in SQLite's storage classes (the
/// store turns each into its driver's value where it binds them).
#[derive(Clone, Debug, PartialEq)]
pub enum SqlParam {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
}

/// What running a statement takes: which of the three shapes of TQL result
/// it has, and everything needed to compute it.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// Rows straight from one SQL statement (`SELECT *` or a column list).
    Rows(SqlQuery),
    /// One row of aggregates from one SQL statement.
    Aggregates(AggregatePlan),
    /// A row-selection or interpolation function, computed in Rust from a few
    /// key-indexed SQL reads (the store's executor, with [`rows`](crate::rows)).
    Select(SelectPlan),
}

/// One SQLite query ready to prepare and run.
#[derive(Clone, Debug, PartialEq)]
pub struct SqlQuery {
    /// `SELECT c.. FROM <table> [WHERE [container = ? AND] …] ORDER BY …
    /// [LIMIT ? [OFFSET ?]]`.
    pub sql: String,
    /// Values for the `?` placeholders, in order.
    pub params: Vec<SqlParam>,
    /// The container column index of each result column, in result order.
    pub columns: Vec<usize>,
}

/// `WITH f AS (SELECT * FROM <table> [WHERE …]) SELECT <aggregates> FROM f`.
#[derive(Clone, Debug, PartialEq)]
pub struct AggregatePlan {
    pub sql: String,
    pub params: Vec<SqlParam>,
    /// One per aggregate, in selection order.
    pub outputs: Vec<AggregateOutput>,
    /// GridDB's single-aggregation form: no row at all when the aggregate has
    /// no input value (COUNT excepted). Several aggregates (our extension)
    /// always give one row, with NULL for an aggregate without input.
    pub single: bool,
    /// Applied to the one result row (the WebAPI appends a LIMIT to every statement).
    pub limit: Option<Limit>,
}

/// A statement of aggregates over each of several key ranges, as one SQL
/// statement (`aggregate-ranges`): the ranges are a JSON array bound as the
/// first parameter, each range's rows are read by a key seek, and the result
/// is grouped by range. Its result rows are the range's index (LONG), then
/// `plan.outputs`; a range without rows has no result row.
#[derive(Clone, Debug, PartialEq)]
pub struct RangesPlan {
    /// `WITH b(bucket, lo, hi) AS (… json_each(?)), f AS (SELECT b.bucket,
    /// t.* FROM b CROSS JOIN <table> AS t WHERE [container = ? AND] t.c0 >=
    /// b.lo AND t.c0 < b.hi) SELECT f.bucket, <aggregates> FROM [<means by
    /// range> JOIN] f [ON …] GROUP BY f.bucket`, with `single` as for one
    /// range and no limit.
    pub plan: AggregatePlan,
    /// How many ranges the first parameter holds.
    pub ranges: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AggregateOutput {
    /// Name (e.g. `AVG(temperature)`) and result type.
    pub column: Column,
    pub function: AggregateFn,
}

/// A row function with its arguments resolved and evaluated, plus the parts of
/// the statement that apply around it.
#[derive(Clone, Debug, PartialEq)]
pub struct SelectPlan {
    pub function: RowFunction,
    /// The quoted table name.
    pub table: String,
    /// The WHERE condition's SQL and its parameters, with the container's
    /// own rows selected first when its table is shared.
    pub filter: Option<(String, Vec<SqlParam>)>,
    /// The container's natural order: `c0` (time series) or `rowid`.
    pub natural_order: &'static str,
    /// `(column index, descending)`, applied to the function's result.
    pub order_by: Vec<(usize, bool)>,
    pub limit: Option<Limit>,
}

/// Time arguments are epoch ms; `None` stands for a NULL argument, which
/// selects nothing.
#[derive(Clone, Debug, PartialEq)]
pub enum RowFunction {
    ExtremeRows {
        column: usize,
        max: bool,
    },
    Neighbour {
        time: Option<i64>,
        next: bool,
        only: bool,
    },
    Interpolated {
        column: usize,
        time: Option<i64>,
    },
    Sampling {
        /// `None` for `*`: every instant between rows copies the previous row.
        column: Option<usize>,
        start: Option<i64>,
        end: Option<i64>,
        /// The interval in ms.
        step: Option<i64>,
    },
}

/// Translates `stmt` for the container `info`, whose rows are in `storage`.
/// `now_ms` is the value of every `NOW()` in the statement, so one query sees
/// one instant.
pub fn translate(
    stmt: &Statement,
    info: &ContainerInfo,
    storage: &Storage,
    now_ms: i64,
) -> Result<Plan, StoreError> {
    check_from(stmt, info)?;
    let mut t = Translator {
        info,
        storage,
        now_ms,
        params: Vec::new(),
    };
    match &stmt.selection {
        Selection::All => {
            let columns = (0..info.columns.len()).collect();
            t.rows(stmt, columns).map(Plan::Rows)
        }
        Selection::Columns(names) => {
            let columns = names
                .iter()
                .map(|name| t.resolve(name))
                .collect::<Result<_, _>>()?;
            t.rows(stmt, columns).map(Plan::Rows)
        }
        Selection::Aggregates(aggregates) => t.aggregates(stmt, aggregates).map(Plan::Aggregates),
        Selection::Function(function) => t.select(stmt, function).map(Plan::Select),
    }
}

/// Translates `stmt`, a SELECT of aggregates alone (no WHERE, ORDER BY or
/// LIMIT: the ranges are its condition), to run over each of `ranges` of
/// the container's TIMESTAMP row key in one SQL statement. What it answers
/// for a range is what [`translate`] of the statement with `WHERE key >=
/// start AND key < end` answers.
pub fn translate_ranges(
    stmt: &Statement,
    info: &ContainerInfo,
    storage: &Storage,
    now_ms: i64,
    ranges: &[KeyRange],
) -> Result<RangesPlan, StoreError> {
    check_from(stmt, info)?;
    range_key(info)?;
    let Selection::Aggregates(aggregates) = &stmt.selection else {
        return Err(error(format_args!(
            "aggregate-ranges takes a SELECT of aggregates only"
        )));
    };
    if stmt.filter.is_some() || !stmt.order_by.is_empty() || stmt.limit.is_some() {
        return Err(error(format_args!(
            "aggregate-ranges takes no WHERE, ORDER BY or LIMIT: the ranges are the condition"
        )));
    }
    let bounds: Vec<String> = ranges
        .iter()
        .map(|r| format!("[{},{}]", r.start, r.end))
        .collect();
    let mut t = Translator {
        info,
        storage,
        now_ms,
        params: vec![SqlParam::Text(format!("[{}]", bounds.join(",")))],
    };
    let mut sql = String::from(
        "WITH b(bucket, lo, hi) AS (SELECT key, json_extract(value, '$[0]'), \
         json_extract(value, '$[1]') FROM json_each(?)), ",
    );
    // CROSS JOIN keeps the ranges the outer loop: each is one seek on the
    // row key, as its own query would be.
    sql.push_str(&format!(
        "f AS (SELECT b.bucket, t.* FROM b CROSS JOIN {} AS t WHERE ",
        storage.table()
    ));
    if let Some(own) = t.scope(None)? {
        sql.push_str(&own);
        sql.push_str(" AND ");
    }
    sql.push_str("t.c0 >= b.lo AND t.c0 < b.hi) SELECT f.bucket, ");
    let (terms, outputs, means) = t.aggregate_terms(aggregates)?;
    sql.push_str(&terms.join(", "));
    // Each range's means, joined by range. The means come first so that
    // SQLite indexes f by range for the join (an automatic index); with f
    // first it scans a mean table per row of f.
    sql.push_str(" FROM ");
    for (k, column) in means.iter().enumerate() {
        sql.push_str(&format!(
            "(SELECT bucket, AVG({column}) AS a FROM f GROUP BY bucket) AS m{k} "
        ));
        if k > 0 {
            sql.push_str(&format!("ON m{k}.bucket = m0.bucket "));
        }
        sql.push_str("JOIN ");
    }
    sql.push('f');
    if !means.is_empty() {
        sql.push_str(" ON f.bucket = m0.bucket");
    }
    sql.push_str(" GROUP BY f.bucket");
    Ok(RangesPlan {
        plan: AggregatePlan {
            sql,
            params: std::mem::take(&mut t.params),
            outputs,
            single: aggregates.len() == 1,
            limit: None,
        },
        ranges: ranges.len(),
    })
}

/// A FROM, which TQL allows, must name the container queried.
fn check_from(stmt: &Statement, info: &ContainerInfo) -> Result<(), StoreError> {
    match &stmt.from {
        // Container names are case-insensitive in GridDB, quoted or not.
        Some(from) if !from.text.eq_ignore_ascii_case(&info.name) => Err(error(format_args!(
            "FROM names container '{}', but the query is on container '{}'",
            from.text, info.name
        ))),
        _ => Ok(()),
    }
}

fn count_param(clause: &str, n: u64) -> Result<SqlParam, StoreError> {
    i64::try_from(n)
        .map(SqlParam::Integer)
        .map_err(|_| error(format_args!("{clause} {n} is out of range")))
}

/// Translated SQL for one expression, with its TQL type. `None` is the type of
/// the NULL literal, which compares with anything.
struct Typed {
    sql: String,
    ty: Option<ColumnType>,
}

impl Typed {
    fn boolean(sql: String) -> Typed {
        Typed {
            sql,
            ty: Some(ColumnType::Bool),
        }
    }
}

struct Translator<'a> {
    info: &'a ContainerInfo,
    storage: &'a Storage,
    now_ms: i64,
    /// Parameters in the order their `?` appear in the SQL. Every method
    /// emits its SQL left to right as it pushes, which keeps the two in step.
    params: Vec<SqlParam>,
}

impl Translator<'_> {
    /// The condition selecting the container's rows that pass `filter`: the
    /// container's own rows first when its table is shared (so that SQLite
    /// reads them by key), then the statement's WHERE. `None` for all rows.
    fn scope(&mut self, filter: Option<&Expr>) -> Result<Option<String>, StoreError> {
        let own = self.storage.shared_by().map(|id| {
            self.params.push(SqlParam::Integer(id));
            "container = ?".to_string()
        });
        let filter = match filter {
            Some(filter) => Some(self.condition(filter, "WHERE")?),
            None => None,
        };
        Ok(match (own, filter) {
            (Some(own), Some(filter)) => Some(format!("{own} AND {filter}")),
            (own, filter) => own.or(filter),
        })
    }

    /// ` FROM <table> [WHERE <scope>]`.
    fn from(&mut self, stmt: &Statement) -> Result<String, StoreError> {
        let mut sql = format!(" FROM {}", self.storage.table());
        if let Some(condition) = self.scope(stmt.filter.as_ref())? {
            sql.push_str(" WHERE ");
            sql.push_str(&condition);
        }
        Ok(sql)
    }

    /// `SELECT <columns> FROM <table> [WHERE …] ORDER BY … [LIMIT …]`.
    fn rows(&mut self, stmt: &Statement, columns: Vec<usize>) -> Result<SqlQuery, StoreError> {
        if columns.is_empty() {
            return Err(error(format_args!(
                "container '{}' has no columns",
                self.info.name
            )));
        }
        let list: Vec<String> = columns.iter().map(|i| format!("c{i}")).collect();
        let mut sql = format!("SELECT {}", list.join(", "));
        sql.push_str(&self.from(stmt)?);
        sql.push_str(" ORDER BY ");
        sql.push_str(&self.order_by(&stmt.order_by)?);
        if let Some(limit) = stmt.limit {
            sql.push_str(" LIMIT ?");
            self.params.push(count_param("LIMIT", limit.count)?);
            if let Some(offset) = limit.offset {
                sql.push_str(" OFFSET ?");
                self.params.push(count_param("OFFSET", offset)?);
            }
        }
        Ok(SqlQuery {
            sql,
            params: std::mem::take(&mut self.params),
            columns,
        })
    }

    /// One SQL statement computing every aggregate over the rows passing
    /// WHERE. The filtered rows are a CTE so that VARIANCE/STDDEV can make
    /// their second pass over them without repeating the WHERE parameters.
    fn aggregates(
        &mut self,
        stmt: &Statement,
        aggregates: &[Aggregate],
    ) -> Result<AggregatePlan, StoreError> {
        if let Some(key) = stmt.order_by.first() {
            return Err(error(format_args!(
                "ORDER BY {} cannot be used with aggregations (they give one row)",
                key.column
            )));
        }
        let mut sql = format!("WITH f AS (SELECT *{}) SELECT ", self.from(stmt)?);
        let (terms, outputs, means) = self.aggregate_terms(aggregates)?;
        sql.push_str(&terms.join(", "));
        // Each mean is a one-row subquery, so joining it keeps f's row count;
        // and since every term aggregates, the result is always one row.
        sql.push_str(" FROM f");
        for (k, column) in means.iter().enumerate() {
            sql.push_str(&format!(", (SELECT AVG({column}) AS a FROM f) AS m{k}"));
        }
        Ok(AggregatePlan {
            sql,
            params: std::mem::take(&mut self.params),
            outputs,
            single: aggregates.len() == 1,
            limit: stmt.limit,
        })
    }

    /// The SQL terms of `aggregates` over the CTE `f`, their outputs, and the
    /// columns whose means they need joined (see [`Translator::aggregate`]).
    #[allow(clippy::type_complexity)]
    fn aggregate_terms(
        &self,
        aggregates: &[Aggregate],
    ) -> Result<(Vec<String>, Vec<AggregateOutput>, Vec<String>), StoreError> {
        let mut terms = Vec::new();
        let mut means = Vec::new();
        let mut outputs = Vec::new();
        for aggregate in aggregates {
            let (term, ty) = self.aggregate(aggregate, &mut means)?;
            terms.push(term);
            outputs.push(AggregateOutput {
                column: Column::new(aggregate.label(), ty),
                function: aggregate.function,
            });
        }
        Ok((terms, outputs, means))
    }

    /// The SQL of one aggregate over the CTE `f`, and its result type.
    /// VARIANCE and STDDEV add the column whose mean they need to `means`;
    /// that mean is joined as `m{k}`, `k` being its position there.
    fn aggregate(
        &self,
        aggregate: &Aggregate,
        means: &mut Vec<String>,
    ) -> Result<(String, ColumnType), StoreError> {
        let function = aggregate.function;
        let Some(name) = &aggregate.column else {
            return Ok(("COUNT(*)".to_string(), ColumnType::Long));
        };
        let index = self.resolve(name)?;
        let ty = self.info.columns[index].column_type;
        let c = format!("c{index}");
        let Some(result_type) = function.result_type(Some(ty)) else {
            return Err(error(format_args!(
                "{} at byte {}: {} is not defined for column {name} of type {ty}",
                aggregate.label(),
                aggregate.offset,
                function.name()
            )));
        };
        Ok(match function {
            AggregateFn::Count
            | AggregateFn::Sum
            | AggregateFn::Avg
            | AggregateFn::Min
            | AggregateFn::Max => (format!("{}({c})", function.name()), result_type),
            // Two passes (the mean first, then the squared deviations from
            // it) rather than Σx² − (Σx)²/n, which cancels catastrophically
            // for values far from zero. Sample variance: n − 1, and 0.0 for a
            // single value; NULL when there is none. STDDEV takes the square
            // root of this in Rust.
            AggregateFn::Variance | AggregateFn::Stddev => {
                let k = means.len();
                means.push(c.clone());
                (
                    format!(
                        "CASE WHEN COUNT({c}) = 1 THEN 0.0 \
                         ELSE SUM(({c} - m{k}.a) * ({c} - m{k}.a)) / (COUNT({c}) - 1) END"
                    ),
                    result_type,
                )
            }
        })
    }

    /// Resolves a row function's arguments; the rows are computed at run time.
    fn select(
        &mut self,
        stmt: &Statement,
        call: &SelectFunction,
    ) -> Result<SelectPlan, StoreError> {
        let name = call.name();
        let time_series_only = !matches!(call.kind, SelectKind::ExtremeRows { .. });
        if time_series_only && self.info.kind != ContainerKind::TimeSeries {
            return Err(error(format_args!(
                "{name} at byte {} is only defined for TIME_SERIES containers, \
                 but '{}' is a {}",
                call.offset, self.info.name, self.info.kind
            )));
        }
        let function = match &call.kind {
            SelectKind::ExtremeRows { column, max } => RowFunction::ExtremeRows {
                column: self.function_column(name, column, true)?,
                max: *max,
            },
            SelectKind::TimeNeighbour { time, next, only } => RowFunction::Neighbour {
                time: self.time_argument(name, time)?,
                next: *next,
                only: *only,
            },
            SelectKind::TimeInterpolated { column, time } => RowFunction::Interpolated {
                column: self.function_column(name, column, false)?,
                time: self.time_argument(name, time)?,
            },
            SelectKind::TimeSampling {
                column,
                start,
                end,
                interval,
                unit,
            } => RowFunction::Sampling {
                column: match column {
                    Some(column) => Some(self.function_column(name, column, false)?),
                    None => None,
                },
                start: self.time_argument(name, start)?,
                end: self.time_argument(name, end)?,
                step: self.interval(interval, *unit)?,
            },
        };
        let filter = self
            .scope(stmt.filter.as_ref())?
            .map(|condition| (condition, std::mem::take(&mut self.params)));
        let order_by = self.sort_keys(&stmt.order_by)?;
        Ok(SelectPlan {
            function,
            table: self.storage.table(),
            filter,
            natural_order: match self.info.kind {
                ContainerKind::TimeSeries => "c0",
                ContainerKind::Collection => "rowid",
            },
            order_by,
            limit: stmt.limit,
        })
    }

    /// The column argument of a row function: numeric, or (for MAX_ROWS and
    /// MIN_ROWS, `timestamps`) also TIMESTAMP.
    fn function_column(
        &self,
        function: &str,
        name: &Name,
        timestamps: bool,
    ) -> Result<usize, StoreError> {
        let index = self.resolve(name)?;
        let ty = self.info.columns[index].column_type;
        if ty.is_numeric() || (timestamps && ty == ColumnType::Timestamp) {
            Ok(index)
        } else {
            Err(error(format_args!(
                "{function} is not defined for column {name} of type {ty}"
            )))
        }
    }

    /// A time argument of a row function: a constant TIMESTAMP, or NULL.
    fn time_argument(&self, function: &str, expr: &Expr) -> Result<Option<i64>, StoreError> {
        match self.constant(expr)? {
            Some(Literal::Timestamp(ms)) => Ok(Some(ms)),
            Some(Literal::Null) => Ok(None),
            Some(_) => Err(error(format_args!(
                "{function} expects a TIMESTAMP, but {} is {}",
                describe(expr),
                self.value_type_name(expr)
            ))),
            None => Err(error(format_args!(
                "{function} expects a constant TIMESTAMP (a literal, NOW() or a time \
                 function of them), not {}",
                describe(expr)
            ))),
        }
    }

    /// TIME_SAMPLING's interval in ms: a positive integer count of `unit`s, or NULL.
    fn interval(&self, expr: &Expr, unit: TimeUnit) -> Result<Option<i64>, StoreError> {
        let unit_ms = unit.fixed_ms().unwrap_or(1);
        match self.constant(expr)? {
            Some(Literal::Null) => Ok(None),
            Some(Literal::Integer(n)) if n > 0 => {
                n.checked_mul(unit_ms).map(Some).ok_or_else(|| {
                    error(format_args!(
                        "TIME_SAMPLING interval {n} {unit} is too large"
                    ))
                })
            }
            _ => Err(error(format_args!(
                "TIME_SAMPLING expects a positive integer interval, not {}",
                describe(expr)
            ))),
        }
    }

    fn value_type_name(&self, expr: &Expr) -> &'static str {
        let mut scratch = Translator {
            info: self.info,
            storage: self.storage,
            now_ms: self.now_ms,
            params: Vec::new(),
        };
        scratch
            .value(expr)
            .ok()
            .and_then(|t| t.ty)
            .map_or("NULL", ColumnType::name)
    }

    /// The container column index a name refers to: unquoted names match
    /// case-insensitively (as GridDB does), quoted names exactly.
    fn resolve(&self, name: &Name) -> Result<usize, StoreError> {
        resolve_column(self.info, name)
    }

    fn bind(&mut self, value: SqlParam) -> String {
        self.params.push(value);
        "?".to_string()
    }

    /// Translates `expr` where a truth value is required: the WHERE clause and
    /// the operands of AND, OR and NOT.
    fn condition(&mut self, expr: &Expr, context: &str) -> Result<String, StoreError> {
        let value = self.value(expr)?;
        match value.ty {
            // A bare BOOL column holds 0/1. Test it explicitly rather than rely
            // on SQLite's integer truthiness, so the SQL says what it means;
            // NULL <> 0 is still NULL, as three-valued logic wants.
            Some(ColumnType::Bool) if matches!(expr, Expr::Column(_)) => {
                Ok(format!("({} <> 0)", value.sql))
            }
            Some(ColumnType::Bool) | None => Ok(value.sql),
            Some(ty) => Err(error(format_args!(
                "{context} requires a boolean condition, but {} is {ty}",
                describe(expr)
            ))),
        }
    }

    /// Translates `expr` as a value (an operand of a comparison, IS NULL or `-`).
    fn value(&mut self, expr: &Expr) -> Result<Typed, StoreError> {
        Ok(match expr {
            Expr::Literal(literal) => {
                let (value, ty) = match literal {
                    Literal::Null => (SqlParam::Null, None),
                    Literal::Integer(n) => (SqlParam::Integer(*n), Some(ColumnType::Long)),
                    Literal::Float(f) => (SqlParam::Real(*f), Some(ColumnType::Double)),
                    Literal::String(s) => (SqlParam::Text(s.clone()), Some(ColumnType::String)),
                    Literal::Timestamp(ms) => (SqlParam::Integer(*ms), Some(ColumnType::Timestamp)),
                };
                Typed {
                    sql: self.bind(value),
                    ty,
                }
            }
            Expr::Now => Typed {
                sql: self.bind(SqlParam::Integer(self.now_ms)),
                ty: Some(ColumnType::Timestamp),
            },
            Expr::Column(name) => {
                let index = self.resolve(name)?;
                Typed {
                    sql: format!("c{index}"),
                    ty: Some(self.info.columns[index].column_type),
                }
            }
            Expr::Neg(operand) => {
                let operand = self.value(operand)?;
                if let Some(ty) = operand.ty.filter(|ty| !ty.is_numeric()) {
                    return Err(error(format_args!(
                        "unary operator '-' is not defined for {ty}"
                    )));
                }
                // The operand is `?`, `cN` or parenthesised, so this never forms `--`.
                Typed {
                    sql: format!("(-{})", operand.sql),
                    ty: operand.ty,
                }
            }
            Expr::Not(operand) => {
                Typed::boolean(format!("(NOT {})", self.condition(operand, "NOT")?))
            }
            Expr::And(left, right) => {
                let left = self.condition(left, "AND")?;
                let right = self.condition(right, "AND")?;
                Typed::boolean(format!("({left} AND {right})"))
            }
            Expr::Or(left, right) => {
                let left = self.condition(left, "OR")?;
                let right = self.condition(right, "OR")?;
                Typed::boolean(format!("({left} OR {right})"))
            }
            Expr::Compare { op, left, right } => self.compare(*op, left, right)?,
            Expr::IsNull { expr, negated } => {
                let operand = self.value(expr)?;
                let not = if *negated { "NOT " } else { "" };
                Typed::boolean(format!("({} IS {not}NULL)", operand.sql))
            }
            Expr::Like {
                expr,
                pattern,
                escape,
                negated,
            } => self.like(expr, pattern, escape.as_deref(), *negated)?,
            Expr::TimestampAdd { .. } | Expr::TimestampDiff { .. } | Expr::ToEpochMs(_) => {
                self.time_function(expr)?
            }
        })
    }

    /// The value of an expression without columns, if it has one: literals,
    /// `NOW()` and the time functions of constants, folded here so that SQLite
    /// sees one parameter and row functions get their instants. `None` for
    /// anything else, including ill-typed calls, which `value` then reports.
    fn constant(&self, expr: &Expr) -> Result<Option<Literal>, StoreError> {
        let both = |a: &Expr, b: &Expr| -> Result<Option<(Literal, Literal)>, StoreError> {
            Ok(self.constant(a)?.zip(self.constant(b)?))
        };
        Ok(Some(match expr {
            Expr::Literal(literal) => literal.clone(),
            Expr::Now => Literal::Timestamp(self.now_ms),
            Expr::TimestampAdd { unit, ts, amount } => match both(ts, amount)? {
                Some((Literal::Null, _) | (_, Literal::Null)) => Literal::Null,
                Some((Literal::Timestamp(ms), Literal::Integer(n))) => {
                    match timestamp_add(*unit, ms, n) {
                        Some(ms) => Literal::Timestamp(ms),
                        None => {
                            return Err(error(format_args!(
                                "TIMESTAMPADD({unit}, {ms}, {n}) is outside the TIMESTAMP range"
                            )))
                        }
                    }
                }
                _ => return Ok(None),
            },
            Expr::TimestampDiff { unit, left, right } => match both(left, right)? {
                Some((Literal::Null, _) | (_, Literal::Null)) => Literal::Null,
                Some((Literal::Timestamp(l), Literal::Timestamp(r))) => {
                    Literal::Integer(timestamp_diff(*unit, l, r))
                }
                _ => return Ok(None),
            },
            Expr::ToEpochMs(ts) => match self.constant(ts)? {
                Some(Literal::Null) => Literal::Null,
                Some(Literal::Timestamp(ms)) => Literal::Integer(ms),
                _ => return Ok(None),
            },
            _ => return Ok(None),
        }))
    }

    /// TIMESTAMPADD, TIMESTAMPDIFF and TO_EPOCH_MS: folded when constant,
    /// otherwise (over a column) computed by SQLite.
    fn time_function(&mut self, expr: &Expr) -> Result<Typed, StoreError> {
        if let Some(literal) = self.constant(expr)? {
            return self.value(&Expr::Literal(literal));
        }
        let timestamp = Some(ColumnType::Timestamp);
        let long = Some(ColumnType::Long);
        match expr {
            Expr::TimestampAdd { unit, ts, amount } => {
                let time =
                    self.typed_operand("TIMESTAMPADD", ts, |ty| ty == ColumnType::Timestamp)?;
                let n = self.typed_operand("TIMESTAMPADD", amount, ColumnType::is_integral)?;
                let sql = match (unit.fixed_ms(), *unit) {
                    (Some(unit_ms), _) => format!("({time} + {n} * {unit_ms})"),
                    // SQLite's date arithmetic on whole seconds, milliseconds
                    // carried over; 'floor' clamps Jan 31 + 1 month to Feb 28/29
                    // as `timestamp_add` does. `time` is evaluated twice, so it
                    // is translated twice to keep the parameters in step.
                    (None, unit) => {
                        let months = if unit == TimeUnit::Year { 12 } else { 1 };
                        let again = self.value(ts)?.sql;
                        add_months_sql(&time, &format!("{n} * {months}"), &again)
                    }
                };
                Ok(Typed { sql, ty: timestamp })
            }
            Expr::TimestampDiff { unit, left, right } => {
                let l =
                    self.typed_operand("TIMESTAMPDIFF", left, |ty| ty == ColumnType::Timestamp)?;
                let r =
                    self.typed_operand("TIMESTAMPDIFF", right, |ty| ty == ColumnType::Timestamp)?;
                // SQLite's integer division truncates toward zero, as timestamp_diff does.
                let sql = match unit.fixed_ms() {
                    Some(unit_ms) => format!("(({l} - {r}) / {unit_ms})"),
                    None => {
                        let per_unit = if *unit == TimeUnit::Year { 12 } else { 1 };
                        format!("({} / {per_unit})", month_diff_sql(&l, &r))
                    }
                };
                Ok(Typed { sql, ty: long })
            }
            Expr::ToEpochMs(ts) => {
                let time =
                    self.typed_operand("TO_EPOCH_MS", ts, |ty| ty == ColumnType::Timestamp)?;
                Ok(Typed {
                    sql: time,
                    ty: long,
                })
            }
            _ => unreachable!("time_function is called for time functions only"),
        }
    }

    /// Translates a function argument that must satisfy `accepts` (or be NULL).
    fn typed_operand(
        &mut self,
        function: &str,
        expr: &Expr,
        accepts: impl Fn(ColumnType) -> bool,
    ) -> Result<String, StoreError> {
        let value = self.value(expr)?;
        match value.ty {
            Some(ty) if !accepts(ty) => Err(error(format_args!(
                "{function} is not defined for {} of type {ty}",
                describe(expr)
            ))),
            _ => Ok(value.sql),
        }
    }

    /// `expr [NOT] LIKE pattern [ESCAPE c]`. SQLite's LIKE ignores ASCII case,
    /// GridDB's does not, so the pattern is rewritten as an equivalent GLOB
    /// (case-sensitive, whole-string) with GLOB's own metacharacters escaped.
    fn like(
        &mut self,
        expr: &Expr,
        pattern: &Expr,
        escape: Option<&Expr>,
        negated: bool,
    ) -> Result<Typed, StoreError> {
        let subject = self.typed_operand("LIKE", expr, |ty| ty == ColumnType::String)?;
        let escape = match escape.map(|e| (e, self.constant(e))) {
            None => None,
            Some((_, Ok(Some(Literal::String(s))))) if s.chars().count() == 1 => s.chars().next(),
            Some((e, _)) => {
                return Err(error(format_args!(
                    "ESCAPE expects a one-character string literal, not {}",
                    describe(e)
                )))
            }
        };
        let pattern = match self.constant(pattern)? {
            Some(Literal::String(p)) => p,
            Some(Literal::Null) => {
                return Ok(Typed::boolean(format!("({subject} AND NULL)")));
            }
            _ => {
                return Err(error(format_args!(
                    "LIKE expects a string literal pattern, not {}",
                    describe(pattern)
                )))
            }
        };
        let not = if negated { "NOT " } else { "" };
        if pattern.is_empty() {
            // GridDB: the empty pattern never matches (a NULL subject stays NULL).
            return Ok(Typed::boolean(format!(
                "({not}(CASE WHEN {subject} IS NULL THEN NULL ELSE 0 END))"
            )));
        }
        let glob = like_to_glob(&pattern, escape)?;
        let param = self.bind(SqlParam::Text(glob));
        Ok(Typed::boolean(format!("({subject} {not}GLOB {param})")))
    }

    fn compare(&mut self, op: CompareOp, left: &Expr, right: &Expr) -> Result<Typed, StoreError> {
        let l = self.value(left)?;
        let r = self.value(right)?;
        if !comparable(op, l.ty, r.ty) {
            let name = |ty: Option<ColumnType>| ty.map_or("NULL", ColumnType::name);
            // The classic mistake: `timestamp > '2024-01-01T00:00:00Z'`.
            let is_string = |e: &Expr| matches!(e, Expr::Literal(Literal::String(_)));
            let hint = match (l.ty, r.ty) {
                (Some(ColumnType::Timestamp), Some(ColumnType::String)) if is_string(right) => {
                    " (wrap the literal in TIMESTAMP('...'))"
                }
                (Some(ColumnType::String), Some(ColumnType::Timestamp)) if is_string(left) => {
                    " (wrap the literal in TIMESTAMP('...'))"
                }
                _ => "",
            };
            return Err(error(format_args!(
                "binary operation '{op}' is not defined for {} and {}{hint}",
                name(l.ty),
                name(r.ty)
            )));
        }
        Ok(Typed::boolean(format!("({} {op} {})", l.sql, r.sql)))
    }

    /// The ORDER BY terms: the user's keys, then the container's natural order
    /// as a tie-breaker so that LIMIT/OFFSET pages are stable.
    fn order_by(&self, keys: &[SortKey]) -> Result<String, StoreError> {
        let mut terms = Vec::new();
        let mut sorted_on_key = false;
        for (index, descending) in self.sort_keys(keys)? {
            // GridDB sorts NULL as the largest value, SQLite as the smallest.
            // Sorting on `IS NULL` (0, then 1) first puts NULLs last ascending
            // and first descending, as GridDB does.
            // A row key is never NULL: sorting on it alone lets SQLite walk
            // the key's index instead of sorting every row.
            let never_null = index == 0 && self.info.row_key;
            terms.push(match (descending, never_null) {
                (true, true) => "c0 DESC".to_string(),
                (false, true) => "c0".to_string(),
                (true, false) => format!("(c{index} IS NULL) DESC, c{index} DESC"),
                (false, false) => format!("(c{index} IS NULL), c{index}"),
            });
            sorted_on_key |= index == 0;
        }
        match self.info.kind {
            // c0 is the unique timestamp key: once sorted on it, ties are impossible.
            ContainerKind::TimeSeries if sorted_on_key => {}
            ContainerKind::TimeSeries => terms.push("c0".to_string()),
            ContainerKind::Collection => terms.push("rowid".to_string()),
        }
        Ok(terms.join(", "))
    }

    /// The ORDER BY keys as `(column index, descending)`.
    fn sort_keys(&self, keys: &[SortKey]) -> Result<Vec<(usize, bool)>, StoreError> {
        keys.iter()
            .map(|key| {
                let index = self.resolve(&key.column)?;
                if self.info.columns[index].column_type == ColumnType::Blob {
                    return Err(error(format_args!(
                        "ORDER BY is not defined for BLOB column {}",
                        key.column
                    )));
                }
                Ok((index, key.descending))
            })
            .collect()
    }
}

/// SQL for the timestamp `time` plus `months` months, in UTC, with the day of
/// month clamped as [`timestamp_add`] does: SQLite's date arithmetic on
/// whole seconds ('floor' turns Jan 31 + 1 month into Feb 28/29 rather than
/// Mar 2/3), with the milliseconds carried over from `time_again` (the same
/// value as `time`, translated separately when it has parameters).
pub fn add_months_sql(time: &str, months: &str, time_again: &str) -> String {
    format!(
        "(CAST(strftime('%s', {time} / 1000, 'unixepoch', \
         printf('%+d months', {months}), 'floor') AS INTEGER) * 1000 + {time_again} % 1000)"
    )
}

/// SQL for TIMESTAMPDIFF in whole months, `l − r`, computed as
/// [`timestamp_diff`] does: the calendar difference, less one when
/// adding it to `r` would pass `l`. A subquery names `l`, `r` and the
/// calendar difference `m` once, since each is used several times.
pub fn month_diff_sql(l: &str, r: &str) -> String {
    let month_index = |t: &str| {
        format!(
            "(CAST(strftime('%Y', {t} / 1000, 'unixepoch') AS INTEGER) * 12 \
                           + CAST(strftime('%m', {t} / 1000, 'unixepoch') AS INTEGER))"
        )
    };
    let landed = add_months_sql("d.r", "d.m", "d.r");
    format!(
        "(SELECT CASE WHEN d.m > 0 AND {landed} > d.l THEN d.m - 1 \
         WHEN d.m < 0 AND {landed} < d.l THEN d.m + 1 ELSE d.m END \
         FROM (SELECT x.l AS l, x.r AS r, {} - {} AS m FROM (SELECT {l} AS l, {r} AS r) AS x) AS d)",
        month_index("x.l"),
        month_index("x.r"),
    )
}

/// Rewrites a LIKE pattern (`%` any run, `_` one character, `escape` making
/// the next character literal) as a GLOB pattern matching exactly the same
/// strings: `*` and `?` for the wildcards, and GLOB's metacharacters `*`, `?`
/// and `[` as one-character classes when they are meant literally.
fn like_to_glob(pattern: &str, escape: Option<char>) -> Result<String, StoreError> {
    let mut glob = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        let literal = if Some(c) == escape {
            chars.next().ok_or_else(|| {
                error(format_args!(
                    "LIKE pattern '{pattern}' ends with its ESCAPE character"
                ))
            })?
        } else if c == '%' {
            glob.push('*');
            continue;
        } else if c == '_' {
            glob.push('?');
            continue;
        } else {
            c
        };
        match literal {
            '*' => glob.push_str("[*]"),
            '?' => glob.push_str("[?]"),
            '[' => glob.push_str("[[]"),
            other => glob.push(other),
        }
    }
    Ok(glob)
}

/// How an error message refers to an expression.
fn describe(expr: &Expr) -> String {
    match expr {
        Expr::Column(name) => format!("column {name}"),
        Expr::Literal(_) => "the literal".to_string(),
        _ => "the expression".to_string(),
    }
}
