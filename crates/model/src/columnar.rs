//! Query results column-major: the shape in which rows cross into a
//! component (`query-result` in `wit/store.wit`).
//!
//! Row-major, every row is a list the host must ask the component's
//! allocator for, and every cell a variant; column-major, a column of
//! numbers is one list, copied in bulk. The host turns a store's rows into
//! columns ([`to_columns`]) and the component turns them back
//! ([`from_columns`]); both sides only move whole lists between these types
//! and the WIT's.

use crate::{Row, StoreError, Value};

/// One column's values, all of one type, one per row. A null row holds a
/// placeholder (`false`, `""`, `0`, empty) and is listed in [`ColumnData::nulls`].
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnValues {
    Bool(Vec<bool>),
    String(Vec<String>),
    Byte(Vec<i8>),
    Short(Vec<i16>),
    Integer(Vec<i32>),
    Long(Vec<i64>),
    Float(Vec<f32>),
    Double(Vec<f64>),
    /// Milliseconds since the Unix epoch, UTC.
    Timestamp(Vec<i64>),
    Blob(Vec<Vec<u8>>),
}

/// One result column: its values and which rows are null.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnData {
    pub values: ColumnValues,
    /// The indexes of the null rows, ascending.
    pub nulls: Vec<u32>,
}

/// `rows` (of `width` columns; a row may omit trailing ones, which are null)
/// column-major. Each column takes the type of its first non-null value (a
/// column of nulls is LONG); a value of another type in the same column is a
/// backend error, since a store reads every column as one type.
pub fn to_columns(width: usize, rows: Vec<Row>) -> Result<Vec<ColumnData>, StoreError> {
    let mut columns: Vec<ColumnData> = (0..width)
        .map(|index| {
            let first = rows
                .iter()
                .filter_map(|row| row.get(index))
                .find(|v| !v.is_null());
            ColumnData {
                values: empty_like(first, rows.len()),
                nulls: Vec::new(),
            }
        })
        .collect();
    // One pass, each row consumed whole.
    for (at, row) in rows.into_iter().enumerate() {
        let padded = row.into_iter().chain(std::iter::repeat(Value::Null));
        for (index, (data, value)) in columns.iter_mut().zip(padded).enumerate() {
            push(data, at, value, index)?;
        }
    }
    Ok(columns)
}

/// Row-major again: `columns` as rows of `columns.len()` values each.
pub fn from_columns(columns: Vec<ColumnData>) -> Vec<Row> {
    let count = columns.first().map_or(0, |c| c.values.len());
    let mut rows: Vec<Row> = (0..count)
        .map(|_| Vec::with_capacity(columns.len()))
        .collect();
    for column in columns {
        let mut nulls = column.nulls.iter().map(|&i| i as usize).peekable();
        let mut next = |at: usize, value: Value| -> Value {
            if nulls.next_if_eq(&at).is_some() {
                Value::Null
            } else {
                value
            }
        };
        macro_rules! spread {
            ($values:expr, $variant:ident) => {
                for (at, (row, v)) in rows.iter_mut().zip($values).enumerate() {
                    row.push(next(at, Value::$variant(v)));
                }
            };
        }
        match column.values {
            ColumnValues::Bool(values) => spread!(values, Bool),
            ColumnValues::String(values) => spread!(values, String),
            ColumnValues::Byte(values) => spread!(values, Byte),
            ColumnValues::Short(values) => spread!(values, Short),
            ColumnValues::Integer(values) => spread!(values, Integer),
            ColumnValues::Long(values) => spread!(values, Long),
            ColumnValues::Float(values) => spread!(values, Float),
            ColumnValues::Double(values) => spread!(values, Double),
            ColumnValues::Timestamp(values) => spread!(values, Timestamp),
            ColumnValues::Blob(values) => spread!(values, Blob),
        }
    }
    rows
}

impl ColumnValues {
    pub fn len(&self) -> usize {
        match self {
            ColumnValues::Bool(v) => v.len(),
            ColumnValues::String(v) => v.len(),
            ColumnValues::Byte(v) => v.len(),
            ColumnValues::Short(v) => v.len(),
            ColumnValues::Integer(v) => v.len(),
            ColumnValues::Long(v) | ColumnValues::Timestamp(v) => v.len(),
            ColumnValues::Float(v) => v.len(),
            ColumnValues::Double(v) => v.len(),
            ColumnValues::Blob(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An empty column of `like`'s type, room for `rows` values.
fn empty_like(like: Option<&Value>, rows: usize) -> ColumnValues {
    match like {
        Some(Value::Bool(_)) => ColumnValues::Bool(Vec::with_capacity(rows)),
        Some(Value::String(_)) => ColumnValues::String(Vec::with_capacity(rows)),
        Some(Value::Byte(_)) => ColumnValues::Byte(Vec::with_capacity(rows)),
        Some(Value::Short(_)) => ColumnValues::Short(Vec::with_capacity(rows)),
        Some(Value::Integer(_)) => ColumnValues::Integer(Vec::with_capacity(rows)),
        Some(Value::Float(_)) => ColumnValues::Float(Vec::with_capacity(rows)),
        Some(Value::Double(_)) => ColumnValues::Double(Vec::with_capacity(rows)),
        Some(Value::Timestamp(_)) => ColumnValues::Timestamp(Vec::with_capacity(rows)),
        Some(Value::Blob(_)) => ColumnValues::Blob(Vec::with_capacity(rows)),
        Some(Value::Long(_)) | Some(Value::Null) | None => {
            ColumnValues::Long(Vec::with_capacity(rows))
        }
    }
}

/// Appends `value`, row `at` of column `index`, to `data`.
fn push(data: &mut ColumnData, at: usize, value: Value, index: usize) -> Result<(), StoreError> {
    let at_u32 = || {
        u32::try_from(at)
            .map_err(|_| StoreError::Backend(format!("a result of more than {} rows", u32::MAX)))
    };
    if value.is_null() {
        data.nulls.push(at_u32()?);
    }
    // A null takes its column's placeholder; anything else must be of its type.
    match (&mut data.values, value) {
        (ColumnValues::Bool(v), Value::Null) => v.push(false),
        (ColumnValues::Bool(v), Value::Bool(x)) => v.push(x),
        (ColumnValues::String(v), Value::Null) => v.push(String::new()),
        (ColumnValues::String(v), Value::String(x)) => v.push(x),
        (ColumnValues::Byte(v), Value::Null) => v.push(0),
        (ColumnValues::Byte(v), Value::Byte(x)) => v.push(x),
        (ColumnValues::Short(v), Value::Null) => v.push(0),
        (ColumnValues::Short(v), Value::Short(x)) => v.push(x),
        (ColumnValues::Integer(v), Value::Null) => v.push(0),
        (ColumnValues::Integer(v), Value::Integer(x)) => v.push(x),
        (ColumnValues::Long(v), Value::Null) => v.push(0),
        (ColumnValues::Long(v), Value::Long(x)) => v.push(x),
        (ColumnValues::Float(v), Value::Null) => v.push(0.0),
        (ColumnValues::Float(v), Value::Float(x)) => v.push(x),
        (ColumnValues::Double(v), Value::Null) => v.push(0.0),
        (ColumnValues::Double(v), Value::Double(x)) => v.push(x),
        (ColumnValues::Timestamp(v), Value::Null) => v.push(0),
        (ColumnValues::Timestamp(v), Value::Timestamp(x)) => v.push(x),
        (ColumnValues::Blob(v), Value::Null) => v.push(Vec::new()),
        (ColumnValues::Blob(v), Value::Blob(x)) => v.push(x),
        (_, other) => {
            return Err(StoreError::Backend(format!(
                "result column {index} mixes types: {other:?} among values of another type"
            )))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_go_and_come_back_unchanged() {
        let rows = vec![
            vec![
                Value::Timestamp(1),
                Value::Double(0.5),
                Value::Null,
                Value::String("a".into()),
            ],
            vec![
                Value::Timestamp(2),
                Value::Null,
                Value::Null,
                Value::String("b".into()),
            ],
            // Trailing columns omitted: null.
            vec![Value::Timestamp(3), Value::Double(1.5)],
            vec![
                Value::Timestamp(4),
                Value::Double(-0.0),
                Value::Bool(true),
                Value::Null,
            ],
        ];
        let columns = to_columns(4, rows.clone()).unwrap();
        assert_eq!(columns[0].values, ColumnValues::Timestamp(vec![1, 2, 3, 4]));
        assert_eq!(columns[1].nulls, [1]);
        assert_eq!(
            columns[2].values,
            ColumnValues::Bool(vec![false, false, false, true])
        );
        assert_eq!(columns[2].nulls, [0, 1, 2]);
        assert_eq!(columns[3].nulls, [2, 3]);
        let mut padded = rows.clone();
        padded[2].extend([Value::Null, Value::Null]);
        assert_eq!(from_columns(columns), padded);
    }

    #[test]
    fn every_type_and_all_nulls_round_trip() {
        let rows = vec![vec![
            Value::Bool(true),
            Value::String("s".into()),
            Value::Byte(-1),
            Value::Short(-2),
            Value::Integer(-3),
            Value::Long(i64::MIN),
            Value::Float(0.1),
            Value::Double(f64::MAX),
            Value::Timestamp(253_402_300_799_999),
            Value::Blob(vec![0, 255]),
            Value::Null,
        ]];
        assert_eq!(from_columns(to_columns(11, rows.clone()).unwrap()), rows);
        assert_eq!(
            from_columns(to_columns(3, Vec::new()).unwrap()),
            Vec::<Row>::new()
        );
    }

    #[test]
    fn a_column_of_two_types_is_refused() {
        let rows = vec![vec![Value::Long(1)], vec![Value::Double(1.0)]];
        assert!(matches!(to_columns(1, rows), Err(StoreError::Backend(_))));
    }
}
