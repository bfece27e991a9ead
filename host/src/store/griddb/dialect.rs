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
//! Everything else is sent as written. Only the selection is replaced, by its
//! span in the text, so the rest of a statement reaches GridDB untouched.
//! The WebAPI types every aggregation DOUBLE (`aggregationResult`); answers
//! are retyped by [`tql::AggregateFn::result_type`], as the embedded engine types them.

use crate::store::tql::{self, Selection, Statement};
use crate::store::{
    resolve_column, Column, ColumnType, ContainerInfo, QueryResult, StoreError, Value,
};
use crate::webapi::wire::{self, TqlQuery, TqlResult, AGGREGATION_RESULT};

/// How one statement is asked, and how its answer is read.
#[derive(Debug, PartialEq)]
pub enum Plan {
    /// One statement whose answer is rows; `columns` is the projection (the
    /// stored names, in the order asked), if any.
    Rows {
        query: TqlQuery,
        columns: Option<Vec<Column>>,
    },
    /// One statement per aggregation, answered as one row.
    Aggregates {
        queries: Vec<TqlQuery>,
        /// The result columns, as the embedded engine names and types them.
        columns: Vec<Column>,
        /// GridDB's single-aggregation form: no row when there is no value.
        single: bool,
    },
}

pub fn plan(text: &str, info: &ContainerInfo) -> Result<Plan, StoreError> {
    let statement = tql::parse(text)?;
    let query = |stmt: String, columns: Option<Vec<String>>| TqlQuery {
        name: info.name.clone(),
        stmt,
        columns,
        has_partial_execution: None,
    };
    match &statement.selection {
        Selection::All | Selection::Function(_) => Ok(Plan::Rows {
            query: query(text.to_owned(), None),
            columns: None,
        }),
        Selection::Columns(names) => {
            let columns: Vec<Column> = names
                .iter()
                .map(|name| resolve_column(info, name).map(|i| info.columns[i].clone()))
                .collect::<Result<_, _>>()?;
            let names = columns.iter().map(|c| c.name.clone()).collect();
            Ok(Plan::Rows {
                query: query(with_selection(text, &statement, "*"), Some(names)),
                columns: Some(columns),
            })
        }
        Selection::Aggregates(aggregates) => {
            let mut queries = Vec::new();
            let mut columns = Vec::new();
            for aggregate in aggregates {
                let arg = match &aggregate.column {
                    Some(name) => Some(info.columns[resolve_column(info, name)?].column_type),
                    None => None,
                };
                let ty = aggregate.function.result_type(arg).ok_or_else(|| {
                    StoreError::Query(format!(
                        "TQL: {} at byte {}: {} is not defined for a column of type {}",
                        aggregate.label(),
                        aggregate.offset,
                        aggregate.function.name(),
                        arg.map_or("?", ColumnType::name)
                    ))
                })?;
                let stmt = if aggregates.len() == 1 {
                    text.to_owned()
                } else {
                    with_selection(text, &statement, &aggregate.label())
                };
                queries.push(query(stmt, None));
                columns.push(Column::new(aggregate.label(), ty));
            }
            Ok(Plan::Aggregates {
                queries,
                columns,
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

/// The value of one aggregation's answer, typed `ty`; `None` when there was
/// no value (the WebAPI then answers rows, and none).
pub fn aggregate(answer: &TqlResult, ty: ColumnType) -> Result<Option<Value>, StoreError> {
    let is_aggregate = answer
        .columns
        .first()
        .is_some_and(|c| c.name == AGGREGATION_RESULT);
    let Some(json) = answer.results.first().and_then(|row| row.first()) else {
        return Ok(None);
    };
    if !is_aggregate {
        return Ok(None);
    }
    let unreadable = || {
        StoreError::Backend(format!(
            "the WebAPI answered aggregation {json}, not a {ty}"
        ))
    };
    let value = match ty {
        // Counts and integer sums arrive as DOUBLE: exact up to 2^53.
        ColumnType::Long | ColumnType::Integer | ColumnType::Short | ColumnType::Byte => {
            let v = json.as_f64().ok_or_else(unreadable)?;
            if v.fract() != 0.0 || v.abs() > 9.007_199_254_740_992e15 {
                return Err(unreadable());
            }
            wire::read_value(&serde_json::Value::from(v as i64), ty).map_err(|_| unreadable())?
        }
        _ => wire::read_value(json, ty).map_err(|_| unreadable())?,
    };
    Ok(Some(value))
}

/// One row of aggregations from their answers (in the plan's order).
pub fn aggregates(
    answers: &[TqlResult],
    columns: Vec<Column>,
    single: bool,
) -> Result<QueryResult, StoreError> {
    let values = answers
        .iter()
        .zip(&columns)
        .map(|(answer, column)| aggregate(answer, column.column_type))
        .collect::<Result<Vec<_>, _>>()?;
    let rows = if single && values.iter().all(Option::is_none) {
        Vec::new()
    } else {
        vec![values
            .into_iter()
            .map(|v| v.unwrap_or(Value::Null))
            .collect()]
    };
    Ok(QueryResult { columns, rows })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ContainerKind;
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

    #[test]
    fn plain_statements_are_sent_as_written() {
        let text = "select * where temp > 1 order by ts desc limit 5";
        let Plan::Rows { query, columns } = plan(text, &sensor()).unwrap() else {
            panic!()
        };
        assert_eq!(query.stmt, text);
        assert_eq!(query.name, "Sensor");
        assert_eq!(columns, None);
    }

    #[test]
    fn column_lists_become_a_projection_of_stored_names() {
        let text = "SELECT temp, \"ts\" WHERE n > 2 ORDER BY ts LIMIT 3";
        let Plan::Rows { query, columns } = plan(text, &sensor()).unwrap() else {
            panic!()
        };
        assert_eq!(query.stmt, "SELECT * WHERE n > 2 ORDER BY ts LIMIT 3");
        assert_eq!(query.columns, Some(vec!["Temp".into(), "ts".into()]));
        assert_eq!(columns.unwrap()[0].name, "Temp");
        assert!(matches!(
            plan("SELECT \"temp\"", &sensor()),
            Err(StoreError::Query(m)) if m.contains("exactly")
        ));
    }

    #[test]
    fn several_aggregations_become_one_statement_each() {
        let text = "SELECT COUNT(*), AVG(temp), MAX(n) WHERE ts > TO_TIMESTAMP_MS(0)";
        let Plan::Aggregates {
            queries,
            columns,
            single,
        } = plan(text, &sensor()).unwrap()
        else {
            panic!()
        };
        let stmts: Vec<&str> = queries.iter().map(|q| q.stmt.as_str()).collect();
        assert_eq!(
            stmts,
            [
                "SELECT COUNT(*) WHERE ts > TO_TIMESTAMP_MS(0)",
                "SELECT AVG(temp) WHERE ts > TO_TIMESTAMP_MS(0)",
                "SELECT MAX(n) WHERE ts > TO_TIMESTAMP_MS(0)",
            ]
        );
        assert!(!single);
        let types: Vec<ColumnType> = columns.iter().map(|c| c.column_type).collect();
        assert_eq!(
            types,
            [ColumnType::Long, ColumnType::Double, ColumnType::Integer]
        );
        // COUNT 0 answers 0.0; AVG and MAX over no rows answer rows, and none.
        let answers: Vec<TqlResult> = serde_json::from_value(json!([
            {"columns": [{"name": "aggregationResult", "type": "DOUBLE"}], "results": [[0.0]]},
            {"columns": [{"name": "ts", "type": "TIMESTAMP"}], "results": [], "offset": 0, "limit": 1000000, "total": 1},
            {"columns": [{"name": "aggregationResult", "type": "DOUBLE"}], "results": [[7.0]]},
        ]))
        .unwrap();
        let result = aggregates(&answers, columns, single).unwrap();
        assert_eq!(
            result.rows,
            [vec![Value::Long(0), Value::Null, Value::Integer(7)]]
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
