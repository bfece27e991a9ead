//! Schema inference and value coercion: from document records to typed rows.
//!
//! A container's schema comes from the first batch it sees: JSON integer → LONG,
//! other number → FLOAT, bool → BOOL, string → STRING. Later batches may bring new
//! fields, which become new nullable columns; a value that does not fit its
//! existing column is a type conflict. Every value is checked here, before the
//! store is touched, so a bad batch writes nothing.

use crate::document::{Field, Record};
use crate::error::ApiError;
use crate::model::{Column, ColumnType, ContainerInfo, ContainerKind, Row, Value, TIMESTAMP_RANGE};
use serde_json::json;

/// The type a new column gets from a value; `None` for null, which says nothing.
fn inferred_type(field: &Field) -> Option<ColumnType> {
    match field {
        Field::Bool(_) => Some(ColumnType::Bool),
        Field::Int(_) | Field::BigInt(_) => Some(ColumnType::Long),
        Field::Float(_) => Some(ColumnType::Float),
        Field::String(_) => Some(ColumnType::String),
        Field::Null | Field::Unsupported(_) => None,
    }
}

/// The schema a batch needs: `existing` (or, for a new container, `required`)
/// plus any `required` column it lacks, plus one column per new non-null field of
/// `records`, in the order the fields first appear. Integers and floats in the
/// same new field make a FLOAT column.
///
/// `what` names the records in errors (`tsdata`, `deviceinfo`).
pub fn plan_container(
    name: &str,
    kind: ContainerKind,
    existing: Option<&ContainerInfo>,
    required: &[Column],
    records: &[Record],
    what: &str,
) -> Result<ContainerInfo, ApiError> {
    if let Some(existing) = existing {
        if existing.kind != kind {
            return Err(ApiError::bad_request(
                "type conflict",
                json!(format!(
                    "container `{}` is a {}, not a {}",
                    existing.name, existing.kind, kind
                )),
            ));
        }
    }
    let mut columns: Vec<Column> = existing.map(|e| e.columns.clone()).unwrap_or_default();
    let has =
        |columns: &[Column], name: &str| columns.iter().any(|c| c.name.eq_ignore_ascii_case(name));
    for column in required {
        if !has(&columns, &column.name) {
            columns.push(column.clone());
        }
    }
    let known = columns.len();
    for (index, record) in records.iter().enumerate() {
        for (field, value) in &record.0 {
            if let Field::Unsupported(kind) = value {
                return Err(ApiError::bad_request(
                    "unsupported value",
                    json!({ "field": field, "row": format!("{what}[{index}]"), "got": kind }),
                ));
            }
            let Some(ty) = inferred_type(value) else {
                continue;
            };
            match columns
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(field))
            {
                None => columns.push(Column::new(field.clone(), ty)),
                // A new column seen as LONG and now FLOAT widens; any other
                // disagreement inside the batch is reported by `to_row`.
                Some(at) if at >= known => {
                    if columns[at].column_type == ColumnType::Long && ty == ColumnType::Float {
                        columns[at].column_type = ColumnType::Float;
                    }
                }
                Some(_) => {}
            }
        }
    }
    Ok(ContainerInfo {
        name: existing.map_or_else(|| name.to_owned(), |e| e.name.clone()),
        kind,
        columns,
        row_key: existing.is_none_or(|e| e.row_key),
    })
}

/// Whether `planned` has columns that `existing` lacks, i.e. `put-container` is needed.
pub fn needs_put(existing: Option<&ContainerInfo>, planned: &ContainerInfo) -> bool {
    existing.is_none_or(|e| e.columns.len() != planned.columns.len())
}

/// The row for `record` in `info`'s column order. Fields the schema lacks can only
/// be nulls (see `plan_container`) and are dropped; absent fields are null.
pub fn to_row(record: &Record, info: &ContainerInfo, row: &str) -> Result<Row, ApiError> {
    info.columns
        .iter()
        .enumerate()
        .map(|(index, column)| {
            let field = record
                .0
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&column.name))
                .map(|(_, v)| v);
            let is_key = index == 0 && info.row_key;
            match field {
                None | Some(Field::Null) if is_key => Err(ApiError::bad_request(
                    format!("missing {}", column.name),
                    json!({ "field": column.name, "row": row, "reason": "the row key must be present and not null" }),
                )),
                None => Ok(Value::Null),
                Some(field) => coerce(field, column.column_type).map_err(|reason| {
                    ApiError::bad_request(
                        "type conflict",
                        json!({
                            "field": column.name,
                            "row": row,
                            "expected": column.column_type.name(),
                            "got": field.kind(),
                            "reason": reason,
                        }),
                    )
                }),
            }
        })
        .collect()
}

/// Converts a document value into a value of column type `ty`, or says why not.
pub fn coerce(field: &Field, ty: ColumnType) -> Result<Value, String> {
    fn fit<T: TryFrom<i64>>(v: i64, ty: ColumnType) -> Result<T, String> {
        T::try_from(v).map_err(|_| format!("{v} is out of range for {ty}"))
    }
    Ok(match (field, ty) {
        (Field::Null, _) => Value::Null,
        (Field::Bool(b), ColumnType::Bool) => Value::Bool(*b),
        (Field::String(s), ColumnType::String) => Value::String(s.clone()),
        (Field::Int(v), ColumnType::Byte) => Value::Byte(fit(*v, ty)?),
        (Field::Int(v), ColumnType::Short) => Value::Short(fit(*v, ty)?),
        (Field::Int(v), ColumnType::Integer) => Value::Integer(fit(*v, ty)?),
        (Field::Int(v), ColumnType::Long) => Value::Long(*v),
        (Field::Int(v), ColumnType::Float) => Value::Float(*v as f32),
        (Field::Int(v), ColumnType::Double) => Value::Double(*v as f64),
        (Field::Int(v), ColumnType::Timestamp) => {
            if !TIMESTAMP_RANGE.contains(v) {
                return Err(format!(
                    "{v} is outside the TIMESTAMP range (epoch milliseconds from 0 to {})",
                    TIMESTAMP_RANGE.end()
                ));
            }
            Value::Timestamp(*v)
        }
        (Field::BigInt(v), _) if ty.is_numeric() || ty == ColumnType::Timestamp => {
            return Err(format!("{v} is out of range for {ty}"));
        }
        (Field::Float(v), ColumnType::Float | ColumnType::Double) if !v.is_finite() => {
            return Err(format!("{v} is not a finite number"));
        }
        (Field::Float(v), ColumnType::Float) => Value::Float(*v as f32),
        (Field::Float(v), ColumnType::Double) => Value::Double(*v),
        (Field::Float(_), ColumnType::Timestamp) => {
            return Err("a TIMESTAMP must be an integer (epoch milliseconds)".into());
        }
        (field, ty) => {
            return Err(format!(
                "a {} value does not fit a {ty} column",
                field.kind()
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &[(&str, Field)]) -> Record {
        Record(
            fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    fn ts_key() -> Vec<Column> {
        vec![Column::new("timestamp", ColumnType::Timestamp)]
    }

    #[test]
    fn infers_types_in_first_seen_order_with_the_key_first() {
        let records = [
            record(&[
                ("a", Field::Int(1)),
                ("timestamp", Field::Int(5)),
                ("b", Field::Null),
            ]),
            record(&[
                ("a", Field::Float(1.5)),
                ("b", Field::String("x".into())),
                ("timestamp", Field::Int(6)),
            ]),
        ];
        let info = plan_container(
            "d",
            ContainerKind::TimeSeries,
            None,
            &ts_key(),
            &records,
            "tsdata",
        )
        .unwrap();
        let cols: Vec<(&str, ColumnType)> = info
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.column_type))
            .collect();
        assert_eq!(
            cols,
            [
                ("timestamp", ColumnType::Timestamp),
                ("a", ColumnType::Float),
                ("b", ColumnType::String)
            ]
        );
        assert!(info.row_key);
    }

    #[test]
    fn existing_columns_keep_their_type_and_conflicts_name_the_field() {
        let existing = ContainerInfo {
            name: "D".into(),
            kind: ContainerKind::TimeSeries,
            columns: vec![
                Column::new("timestamp", ColumnType::Timestamp),
                Column::new("n", ColumnType::Long),
            ],
            row_key: true,
        };
        let records = [record(&[
            ("timestamp", Field::Int(1)),
            ("n", Field::Float(2.5)),
            ("new", Field::Bool(true)),
        ])];
        let plan = plan_container(
            "d",
            ContainerKind::TimeSeries,
            Some(&existing),
            &ts_key(),
            &records,
            "tsdata",
        )
        .unwrap();
        assert_eq!(plan.name, "D");
        assert_eq!(plan.columns.len(), 3);
        assert_eq!(plan.columns[1].column_type, ColumnType::Long);
        assert!(needs_put(Some(&existing), &plan));
        let err = to_row(&records[0], &plan, "tsdata[0]").unwrap_err();
        assert_eq!(err.status, 400);
        assert_eq!(err.detail["field"], "n");
        assert_eq!(err.detail["expected"], "LONG");
    }

    #[test]
    fn rows_follow_schema_order_and_require_the_key() {
        let info = plan_container(
            "d",
            ContainerKind::TimeSeries,
            None,
            &ts_key(),
            &[record(&[
                ("x", Field::Int(1)),
                ("timestamp", Field::Int(2)),
            ])],
            "tsdata",
        )
        .unwrap();
        let row = to_row(
            &record(&[("X", Field::Int(7)), ("timestamp", Field::Int(9))]),
            &info,
            "r",
        )
        .unwrap();
        assert_eq!(row, vec![Value::Timestamp(9), Value::Long(7)]);
        let err = to_row(&record(&[("x", Field::Int(7))]), &info, "tsdata[3]").unwrap_err();
        assert_eq!(err.detail["row"], "tsdata[3]");
        assert_eq!(err.detail["field"], "timestamp");
        let err = to_row(&record(&[("timestamp", Field::Float(2.5))]), &info, "r").unwrap_err();
        assert_eq!(err.detail["expected"], "TIMESTAMP");
        assert!(to_row(&record(&[("timestamp", Field::Int(-1))]), &info, "r").is_err());
    }

    #[test]
    fn coercion_checks_ranges() {
        assert_eq!(
            coerce(&Field::Int(78), ColumnType::Integer),
            Ok(Value::Integer(78))
        );
        assert!(coerce(&Field::Int(1 << 40), ColumnType::Integer).is_err());
        assert!(coerce(&Field::Int(300), ColumnType::Byte).is_err());
        assert_eq!(
            coerce(&Field::Int(2), ColumnType::Float),
            Ok(Value::Float(2.0))
        );
        assert!(coerce(&Field::Float(f64::NAN), ColumnType::Double).is_err());
        assert!(coerce(&Field::String("1".into()), ColumnType::Long).is_err());
        assert!(coerce(&Field::BigInt(u64::MAX), ColumnType::Long).is_err());
    }

    #[test]
    fn kind_mismatch_is_a_conflict() {
        let existing = ContainerInfo {
            name: "devices".into(),
            kind: ContainerKind::Collection,
            columns: vec![Column::new("deviceid", ColumnType::String)],
            row_key: true,
        };
        let err = plan_container(
            "devices",
            ContainerKind::TimeSeries,
            Some(&existing),
            &ts_key(),
            &[],
            "tsdata",
        );
        assert_eq!(err.unwrap_err().error, "type conflict");
    }
}
