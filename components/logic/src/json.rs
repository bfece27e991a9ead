//! JSON encoding of stored rows, in the shape the original `/fetch` answered:
//! an array of objects keyed by column name, TIMESTAMPs as epoch milliseconds.

use crate::model::{Column, Row, Value};
use base64::Engine as _;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// Serializes `rows` as `[{"col": value, ...}, ...]` without building an
/// intermediate JSON tree.
pub struct RowObjects<'a> {
    pub columns: &'a [Column],
    pub rows: &'a [Row],
}

impl RowObjects<'_> {
    pub fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("row values always serialize")
    }
}

impl Serialize for RowObjects<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.rows.len()))?;
        for row in self.rows {
            seq.serialize_element(&RowObject {
                columns: self.columns,
                row,
            })?;
        }
        seq.end()
    }
}

struct RowObject<'a> {
    columns: &'a [Column],
    row: &'a Row,
}

impl Serialize for RowObject<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.columns.len()))?;
        for (index, column) in self.columns.iter().enumerate() {
            // Rows may omit trailing columns; they are null.
            let value = self.row.get(index).unwrap_or(&Value::Null);
            map.serialize_entry(&column.name, &JsonValue(value))?;
        }
        map.end()
    }
}

/// One value as JSON: FLOAT keeps its shortest 32-bit form (`0.1`, not
/// `0.10000000149011612`), BLOB is base64 as in GridDB's WebAPI.
pub struct JsonValue<'a>(pub &'a Value);

impl Serialize for JsonValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(v) => serializer.serialize_bool(*v),
            Value::String(v) => serializer.serialize_str(v),
            Value::Byte(v) => serializer.serialize_i8(*v),
            Value::Short(v) => serializer.serialize_i16(*v),
            Value::Integer(v) => serializer.serialize_i32(*v),
            Value::Long(v) | Value::Timestamp(v) => serializer.serialize_i64(*v),
            Value::Float(v) => serializer.serialize_f32(*v),
            Value::Double(v) => serializer.serialize_f64(*v),
            Value::Blob(v) => {
                serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ColumnType;

    #[test]
    fn encodes_objects_in_column_order() {
        let columns = [
            Column::new("timestamp", ColumnType::Timestamp),
            Column::new("t", ColumnType::Float),
            Column::new("b", ColumnType::Blob),
            Column::new("late", ColumnType::Long),
        ];
        let rows = [vec![
            Value::Timestamp(1582046738255),
            Value::Float(0.1),
            Value::Blob(vec![1, 2, 3]),
        ]];
        let out = RowObjects {
            columns: &columns,
            rows: &rows,
        }
        .to_vec();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"[{"timestamp":1582046738255,"t":0.1,"b":"AQID","late":null}]"#
        );
    }
}
