//! Our TQL as GridDB's WebAPI runs it, and its answers as our `QueryResult`.
//!
//! Components write the TQL the embedded engine accepts. Two of its forms are
//! extensions that GridDB refuses, so they are asked another way:
//! - a column list (`SELECT a, b …`) becomes `SELECT * …` with the WebAPI's
//!   `columns` projection (which matches names exactly, so the stored names
//!   are sent);
//! - several aggregations (`SELECT COUNT(*), AVG(a) …`) become one statement
//!   per aggregation in one `/tql` request, answered as one row.
//!
//! Row statements (`*` and column lists) are asked in pages ([`paging`](crate::paging));
//! selection functions (TIME_SAMPLING, MAX_ROWS, …) and aggregations are sent
//! as written (only the selection is replaced, by its span in the text).
//!
//! The WebAPI types every numeric aggregation DOUBLE (`getDouble()`);
//! answers are retyped by [`tql::AggregateFn::result_type`], as the embedded
//! engine types them. An integer result beyond 2^53 may have been rounded on
//! the way: MIN and MAX are then read exactly from the row that holds them
//! ([`AggregateQuery::exact`]); a SUM cannot be, and is an error that says so.

use crate::paging::Pages;
use crate::wire::{self, TqlQuery, TqlResult, AGGREGATION_RESULT};
use cromflag_model::{tql_name, Column, ColumnType, ContainerInfo, QueryResult, StoreError, Value};
use cromflag_tql::types::resolve_column;
use cromflag_tql::{self as tql, AggregateFn, Selection, Statement};

/// How one statement is asked, and how its answer is read.
#[derive(Debug, PartialEq)]
pub enum Plan {
    /// `*` or a column list, a page at a time; `columns` is the projection
    /// returned (the stored names, in the order asked), if any.
    Rows {
        pages: Pages,
        columns: Option<Vec<Column>>,
    },
    /// A selection function's rows: one statement, as written.
    Function { query: TqlQuery },
    /// One statement per aggregation, answered as one row.
    Aggregates {
        aggregates: Vec<AggregateQuery>,
        /// GridDB's single-aggregation form: no row when there is no value.
        single: bool,
    },
}

/// One aggregation of a statement.
#[derive(Debug, PartialEq)]
pub struct AggregateQuery {
    pub query: TqlQuery,
    /// The result column, as the embedded engine names and types it.
    pub column: Column,
    pub function: AggregateFn,
    /// For MIN/MAX over an integer column: the statement whose one row holds
    /// the extreme (`SELECT * WHERE (<cond>) AND c IS NOT NULL ORDER BY c
    /// DESC LIMIT 1`, projected on `c`), asked when the DOUBLE answer is
    /// beyond 2^53.
    pub exact: Option<TqlQuery>,
}

/// Integers up to this magnitude survive a DOUBLE; from it on, neighbours
/// share a DOUBLE (2^53 + 1 arrives as 2^53).
const EXACT_DOUBLE: f64 = 9_007_199_254_740_992.0;

pub fn plan(text: &str, info: &ContainerInfo) -> Result<Plan, StoreError> {
    let statement = tql::parse(text)?;
    let query = |stmt: String, columns: Option<Vec<String>>| TqlQuery {
        name: info.name.clone(),
        stmt,
        columns,
        has_partial_execution: None,
    };
    match &statement.selection {
        Selection::Function(_) => Ok(Plan::Function {
            query: query(text.to_owned(), None),
        }),
        Selection::All => Ok(Plan::Rows {
            pages: Pages::new(text, &statement, info, None)?,
            columns: None,
        }),
        Selection::Columns(names) => {
            let columns: Vec<Column> = names
                .iter()
                .map(|name| resolve_column(info, name).map(|i| info.columns[i].clone()))
                .collect::<Result<_, _>>()?;
            Ok(Plan::Rows {
                pages: Pages::new(text, &statement, info, Some(&columns))?,
                columns: Some(columns),
            })
        }
        Selection::Aggregates(aggregates) => {
            let mut planned = Vec::new();
            for aggregate in aggregates {
                let arg = match &aggregate.column {
                    Some(name) => Some(info.columns[resolve_column(info, name)?].clone()),
                    None => None,
                };
                let arg_type = arg.as_ref().map(|c| c.column_type);
                let ty = aggregate.function.result_type(arg_type).ok_or_else(|| {
                    StoreError::Query(format!(
                        "TQL: {} at byte {}: {} is not defined for a column of type {}",
                        aggregate.label(),
                        aggregate.offset,
                        aggregate.function.name(),
                        arg_type.map_or("?", ColumnType::name)
                    ))
                })?;
                let stmt = if aggregates.len() == 1 {
                    text.to_owned()
                } else {
                    with_selection(text, &statement, &aggregate.label())
                };
                let exact = match (aggregate.function, &arg) {
                    (AggregateFn::Min | AggregateFn::Max, Some(arg)) if ty.is_integral() => {
                        let max = aggregate.function == AggregateFn::Max;
                        Some(query(
                            extreme_row(text, &statement, &arg.name, max)?,
                            Some(vec![arg.name.clone()]),
                        ))
                    }
                    _ => None,
                };
                planned.push(AggregateQuery {
                    query: query(stmt, None),
                    column: Column::new(aggregate.label(), ty),
                    function: aggregate.function,
                    exact,
                });
            }
            Ok(Plan::Aggregates {
                aggregates: planned,
                single: aggregates.len() == 1,
            })
        }
    }
}

/// `text` with its selection replaced by `selection`.
fn with_selection(text: &str, statement: &Statement, selection: &str) -> String {
    let span = &statement.selection_span;
    format!("{}{selection} {}", &text[..span.start], &text[span.end..])
}

/// The statement whose one row holds the largest (`max`) or smallest value
/// of `column` among the rows `statement` aggregates.
fn extreme_row(
    text: &str,
    statement: &Statement,
    column: &str,
    max: bool,
) -> Result<String, StoreError> {
    let column = tql_name(column);
    let not_null = format!("{column} IS NOT NULL");
    let condition = match &statement.filter_span {
        Some(span) => format!(
            "({}) AND {not_null}",
            tql::blank_comments(text)?[span.clone()].trim()
        ),
        None => not_null,
    };
    let direction = if max { "DESC" } else { "ASC" };
    Ok(format!(
        "SELECT * WHERE {condition} ORDER BY {column} {direction} LIMIT 1"
    ))
}

/// A row-shaped answer as a `QueryResult`; `projection` puts the columns in
/// the order asked (whatever order the WebAPI answers them in).
pub fn rows(answer: TqlResult, projection: Option<&[Column]>) -> Result<QueryResult, StoreError> {
    let answered: Vec<Column> = answer
        .columns
        .iter()
        .map(|c| c.column().map_err(StoreError::Backend))
        .collect::<Result<_, _>>()?;
    let order: Vec<usize> = match projection {
        None => (0..answered.len()).collect(),
        Some(wanted) => wanted
            .iter()
            .map(|w| {
                answered
                    .iter()
                    .position(|c| c.name == w.name)
                    .ok_or_else(|| {
                        StoreError::Backend(format!(
                            "the WebAPI's answer lacks column `{}`",
                            w.name
                        ))
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    let mut result = QueryResult {
        columns: order.iter().map(|&i| answered[i].clone()).collect(),
        rows: Vec::with_capacity(answer.results.len()),
    };
    for row in &answer.results {
        let values = wire::read_row(row, &answered).map_err(|e| {
            StoreError::Backend(format!(
                "the WebAPI answered a row this store cannot read: {e}"
            ))
        })?;
        result
            .rows
            .push(order.iter().map(|&i| values[i].clone()).collect());
    }
    Ok(result)
}

/// What one aggregation's answer holds.
#[derive(Debug, PartialEq)]
pub enum Reading {
    /// No value (AVG over no rows): the WebAPI answers `"type": null` and no
    /// row, or the row shape with no row.
    Absent,
    Value(Value),
    /// An integer result at or beyond 2^53, as the DOUBLE that came: it
    /// may be a neighbour of the true value.
    Inexact(f64),
}

/// Reads one aggregation's answer as a value of `ty`.
pub fn aggregate(answer: &TqlResult, ty: ColumnType) -> Result<Reading, StoreError> {
    let is_aggregate = answer
        .columns
        .first()
        .is_some_and(|c| c.name == AGGREGATION_RESULT);
    let Some(json) = answer.results.first().and_then(|row| row.first()) else {
        return Ok(Reading::Absent);
    };
    if !is_aggregate || json.is_null() {
        return Ok(Reading::Absent);
    }
    let unreadable = || {
        StoreError::Backend(format!(
            "the WebAPI answered aggregation {json}, not a {ty}"
        ))
    };
    let value = match ty {
        // Counts and integer sums, mins and maxes arrive as DOUBLE.
        ColumnType::Long | ColumnType::Integer | ColumnType::Short | ColumnType::Byte => {
            let v = json.as_f64().ok_or_else(unreadable)?;
            if v.abs() >= EXACT_DOUBLE {
                return Ok(Reading::Inexact(v));
            }
            if v.fract() != 0.0 {
                return Err(unreadable());
            }
            wire::read_value(&serde_json::Value::from(v as i64), ty).map_err(|_| unreadable())?
        }
        _ => wire::read_value(json, ty).map_err(|_| unreadable())?,
    };
    Ok(Reading::Value(value))
}

/// The error for an integer aggregation that only an inexact DOUBLE can
/// give (SUM, or COUNT past 2^53).
pub fn inexact(aggregate: &AggregateQuery, value: f64) -> StoreError {
    let what = match aggregate.function {
        AggregateFn::Sum => "sums".to_owned(),
        f => format!("{} results", f.name()),
    };
    StoreError::Query(format!(
        "{}: GridDB's WebAPI returns {what} as DOUBLE, and this one (≈{value:e}) is beyond 2^53, so it cannot be given exactly",
        aggregate.column.name
    ))
}

/// The exact extreme from the answer to [`AggregateQuery::exact`]: its one
/// row's one column (projected), of the column's type as MIN/MAX are.
pub fn extreme(answer: TqlResult) -> Result<Option<Value>, StoreError> {
    let result = rows(answer, None)?;
    Ok(result
        .rows
        .into_iter()
        .next()
        .and_then(|row| row.into_iter().next())
        .filter(|v| !matches!(v, Value::Null)))
}

/// One row of aggregations from their values (in the plan's order).
pub fn aggregate_row(
    values: Vec<Option<Value>>,
    columns: Vec<Column>,
    single: bool,
) -> QueryResult {
    let rows = if single && values.iter().all(Option::is_none) {
        Vec::new()
    } else {
        vec![values
            .into_iter()
            .map(|v| v.unwrap_or(Value::Null))
            .collect()]
    };
    QueryResult { columns, rows }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paging::Position;
    use cromflag_model::ContainerKind;
    use serde_json::json;

    fn sensor() -> ContainerInfo {
        ContainerInfo {
            name: "Sensor".into(),
            kind: ContainerKind::TimeSeries,
            columns: vec![
                Column::new("ts", ColumnType::Timestamp),
                Column::new("Temp", ColumnType::Double),
                Column::new("n", ColumnType::Integer),
            ],
            row_key: true,
        }
    }

    fn with_long(mut info: ContainerInfo) -> ContainerInfo {
        info.columns.push(Column::new("big", ColumnType::Long));
        info
    }

    #[test]
    fn row_statements_are_paged_and_functions_sent_as_written() {
        let text = "select * where temp > 1 order by ts desc limit 5";
        let Plan::Rows { pages, columns } = plan(text, &sensor()).unwrap() else {
            panic!()
        };
        assert_eq!(
            pages.statement(&Position::Start, 5),
            "select * WHERE temp > 1 ORDER BY \"ts\" DESC LIMIT 5"
        );
        assert_eq!(pages.columns, None);
        assert_eq!(columns, None);
        let text = "SELECT TIME_SAMPLING(temp, TO_TIMESTAMP_MS(0), TO_TIMESTAMP_MS(9), 1, SECOND)";
        let Plan::Function { query } = plan(text, &sensor()).unwrap() else {
            panic!()
        };
        assert_eq!((query.name.as_str(), query.stmt.as_str()), ("Sensor", text));
    }

    #[test]
    fn column_lists_become_a_projection_of_stored_names() {
        let text = "SELECT temp, \"ts\" WHERE n > 2 ORDER BY ts LIMIT 3";
        let Plan::Rows { pages, columns } = plan(text, &sensor()).unwrap() else {
            panic!()
        };
        assert_eq!(
            pages.statement(&Position::Start, 3),
            "SELECT * WHERE n > 2 ORDER BY \"ts\" ASC LIMIT 3"
        );
        assert_eq!(pages.columns, Some(vec!["Temp".into(), "ts".into()]));
        assert_eq!(columns.unwrap()[0].name, "Temp");
        assert!(matches!(
            plan("SELECT \"temp\"", &sensor()),
            Err(StoreError::Query(m)) if m.contains("exactly")
        ));
    }

    fn answers(json: serde_json::Value) -> Vec<TqlResult> {
        serde_json::from_value(json).unwrap()
    }

    fn read_all(
        aggregates: &[AggregateQuery],
        answers: &[TqlResult],
    ) -> Result<Vec<Reading>, StoreError> {
        aggregates
            .iter()
            .zip(answers)
            .map(|(a, answer)| aggregate(answer, a.column.column_type))
            .collect()
    }

    #[test]
    fn several_aggregations_become_one_statement_each() {
        let text = "SELECT COUNT(*), AVG(temp), MAX(n), MIN(temp) WHERE ts > TO_TIMESTAMP_MS(0)";
        let Plan::Aggregates { aggregates, single } = plan(text, &sensor()).unwrap() else {
            panic!()
        };
        let stmts: Vec<&str> = aggregates.iter().map(|a| a.query.stmt.as_str()).collect();
        assert_eq!(
            stmts,
            [
                "SELECT COUNT(*) WHERE ts > TO_TIMESTAMP_MS(0)",
                "SELECT AVG(temp) WHERE ts > TO_TIMESTAMP_MS(0)",
                "SELECT MAX(n) WHERE ts > TO_TIMESTAMP_MS(0)",
                "SELECT MIN(temp) WHERE ts > TO_TIMESTAMP_MS(0)",
            ]
        );
        assert!(!single);
        let types: Vec<ColumnType> = aggregates.iter().map(|a| a.column.column_type).collect();
        assert_eq!(
            types,
            [
                ColumnType::Long,
                ColumnType::Double,
                ColumnType::Integer,
                ColumnType::Double
            ]
        );
        // COUNT 0 answers 0.0; an aggregation with no value answers either
        // `"type": null` and no row, or the row shape and no row.
        let answers = answers(json!([
            {"columns": [{"name": "aggregationResult", "type": "DOUBLE"}], "results": [[0.0]]},
            {"columns": [{"name": "aggregationResult", "type": null}], "results": []},
            {"columns": [{"name": "aggregationResult", "type": "DOUBLE"}], "results": [[7.0]]},
            {"columns": [{"name": "ts", "type": "TIMESTAMP"}], "results": [], "offset": 0, "limit": 1000000, "total": 1},
        ]));
        let readings = read_all(&aggregates, &answers).unwrap();
        assert_eq!(
            readings,
            [
                Reading::Value(Value::Long(0)),
                Reading::Absent,
                Reading::Value(Value::Integer(7)),
                Reading::Absent
            ]
        );
        let values = vec![Some(Value::Long(0)), None, Some(Value::Integer(7)), None];
        let columns = aggregates.into_iter().map(|a| a.column).collect();
        let result = aggregate_row(values, columns, single);
        assert_eq!(
            result.rows,
            [vec![
                Value::Long(0),
                Value::Null,
                Value::Integer(7),
                Value::Null
            ]]
        );
        // One aggregation without a value: no row, as GridDB.
        let Plan::Aggregates { aggregates, single } = plan("SELECT AVG(temp)", &sensor()).unwrap()
        else {
            panic!()
        };
        let result = aggregate_row(
            vec![None],
            aggregates.into_iter().map(|a| a.column).collect(),
            single,
        );
        assert!(result.rows.is_empty());
    }

    #[test]
    fn integer_aggregates_past_two_to_the_53_are_asked_exactly_or_refused() {
        let text = "SELECT MAX(big), MIN(big), SUM(big) WHERE ts > TO_TIMESTAMP_MS(0) -- recent";
        let info = with_long(sensor());
        let Plan::Aggregates { aggregates, .. } = plan(text, &info).unwrap() else {
            panic!()
        };
        let exact: Vec<Option<&str>> = aggregates
            .iter()
            .map(|a| a.exact.as_ref().map(|q| q.stmt.as_str()))
            .collect();
        assert_eq!(
            exact,
            [
                Some("SELECT * WHERE (ts > TO_TIMESTAMP_MS(0)) AND \"big\" IS NOT NULL ORDER BY \"big\" DESC LIMIT 1"),
                Some("SELECT * WHERE (ts > TO_TIMESTAMP_MS(0)) AND \"big\" IS NOT NULL ORDER BY \"big\" ASC LIMIT 1"),
                None,
            ]
        );
        assert_eq!(
            aggregates[0].exact.as_ref().unwrap().columns,
            Some(vec!["big".to_owned()])
        );
        // Our own parser reads what it sends.
        for a in &aggregates {
            if let Some(q) = &a.exact {
                tql::parse(&q.stmt).unwrap();
            }
        }
        let answers = answers(json!([
            {"columns": [{"name": "aggregationResult", "type": "DOUBLE"}], "results": [[9.223372036854776e18]]},
            {"columns": [{"name": "aggregationResult", "type": "DOUBLE"}], "results": [[-9007199254740992.0]]},
            {"columns": [{"name": "aggregationResult", "type": "DOUBLE"}], "results": [[9007199254740991.0]]},
        ]));
        let readings = read_all(&aggregates, &answers).unwrap();
        assert_eq!(
            readings,
            [
                Reading::Inexact(9.223372036854776e18),
                Reading::Inexact(-9007199254740992.0),
                Reading::Value(Value::Long(9_007_199_254_740_991)),
            ]
        );
        // The row holding MAX gives it exactly.
        let row: TqlResult = serde_json::from_value(json!({
            "columns": [{"name": "big", "type": "LONG"}],
            "results": [[9223372036854775807_i64]],
            "offset": 0, "limit": 1, "total": 3, "responseSizeByte": 8
        }))
        .unwrap();
        assert_eq!(extreme(row).unwrap(), Some(Value::Long(i64::MAX)));
        // A SUM cannot be read exactly: a query error that says why.
        let error = inexact(&aggregates[2], 1.2e19);
        assert!(
            matches!(&error, StoreError::Query(m) if m.starts_with("SUM(big): GridDB's WebAPI returns sums as DOUBLE") && m.contains("2^53")),
            "{error}"
        );
    }

    #[test]
    fn rows_are_read_by_the_answered_types_in_the_asked_order() {
        let answer: TqlResult = serde_json::from_value(json!({
            "columns": [
                {"name": "ts", "type": "TIMESTAMP", "timePrecision": "MILLISECOND"},
                {"name": "Temp", "type": "DOUBLE"}
            ],
            "results": [["2020-02-19T09:37:48.000Z", 25.5]],
            "offset": 0, "limit": 1000000, "total": 1, "responseSizeByte": 16
        }))
        .unwrap();
        let wanted = [
            Column::new("Temp", ColumnType::Double),
            Column::new("ts", ColumnType::Timestamp),
        ];
        let result = rows(answer, Some(&wanted)).unwrap();
        assert_eq!(
            result.rows,
            [vec![
                Value::Double(25.5),
                Value::Timestamp(1_582_105_068_000)
            ]]
        );
        assert_eq!(result.columns, wanted);
    }
}
