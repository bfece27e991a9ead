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
    /// The JSON text, as `serde_json::to_vec(self)` writes it, with each
    /// column's key escaped once rather than once per row, and room for the
    /// whole text reserved up front (growing a 10,000-row answer copied it
    /// some twenty times).
    pub fn to_vec(&self) -> Vec<u8> {
        let keys: Vec<Vec<u8>> = self
            .columns
            .iter()
            .map(|c| {
                let mut key = serde_json::to_vec(&c.name).expect("a string serializes");
                key.push(b':');
                key
            })
            .collect();
        // Keys, punctuation and about 16 bytes per value.
        let row_bytes = keys.iter().map(|k| k.len() + 17).sum::<usize>() + 2;
        let mut out = Vec::with_capacity(2 + self.rows.len() * row_bytes);
        out.push(b'[');
        for (i, row) in self.rows.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'{');
            for (index, key) in keys.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(key);
                // Rows may omit trailing columns; they are null.
                let value = row.get(index).unwrap_or(&Value::Null);
                serde_json::to_writer(&mut out, &JsonValue(value))
                    .expect("row values always serialize");
            }
            out.push(b'}');
        }
        out.push(b']');
        out
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

    #[test]
    fn writes_what_serde_json_writes() {
        let columns = [
            Column::new("ts", ColumnType::Timestamp),
            Column::new("quo\"te\n", ColumnType::String),
            Column::new("é", ColumnType::Double),
        ];
        let rows = [
            vec![
                Value::Timestamp(1),
                Value::String("a\u{0}\"b".into()),
                Value::Double(-0.5),
            ],
            vec![Value::Timestamp(2)],
        ];
        for rows in [&rows[..], &rows[..1], &[]] {
            let objects = RowObjects {
                columns: &columns,
                rows,
            };
            assert_eq!(objects.to_vec(), serde_json::to_vec(&objects).unwrap());
        }
    }
}
