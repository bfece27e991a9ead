//! Rows out: the same rows as JSON (the original sample's array of objects),
//! MessagePack (the same objects) or CSV (a header of column names, then one
//! line per row). TIMESTAMPs are epoch milliseconds in all three, so each
//! decodes back to the same rows.

use crate::csv::Csv;
use crate::json::{JsonValue, RowObjects};
use crate::model::{Column, Row, Value};
use crate::query;
use base64::Engine as _;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    MsgPack,
    Csv,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::MsgPack => "application/msgpack",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// The format `Accept` prefers; JSON when it names none of ours.
pub fn negotiate(accept: Option<&str>) -> Format {
    let offered = [
        ("application/json", Format::Json),
        ("application/msgpack", Format::MsgPack),
        ("application/x-msgpack", Format::MsgPack),
        ("text/csv", Format::Csv),
    ];
    query::preferred(accept, &offered).unwrap_or(Format::Json)
}

/// `rows` of `columns` in `format`.
pub fn rows(format: Format, columns: &[Column], rows: &[Row]) -> Vec<u8> {
    let objects = RowObjects { columns, rows };
    match format {
        Format::Json => objects.to_vec(),
        Format::MsgPack => rmp_serde::to_vec_named(&objects).expect("row values always serialize"),
        Format::Csv => {
            let mut csv = Csv::default();
            csv.row(&columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>());
            for row in rows {
                let cells: Vec<String> = (0..columns.len())
                    .map(|i| csv_cell(row.get(i).unwrap_or(&Value::Null)))
                    .collect();
                csv.row(&cells);
            }
            csv.out.into_bytes()
        }
    }
}

/// One row: an object in JSON and MessagePack, a header and a line in CSV.
pub fn row(format: Format, columns: &[Column], row: &Row) -> Vec<u8> {
    match format {
        Format::Csv => rows(format, columns, std::slice::from_ref(row)),
        _ => {
            let mut bytes = rows(format, columns, std::slice::from_ref(row));
            match format {
                // `[{...}]` → `{...}`.
                Format::Json => {
                    bytes.pop();
                    bytes.remove(0);
                    bytes
                }
                // A one-element array: drop its one-byte header (fixarray 0x91).
                _ => bytes.split_off(1),
            }
        }
    }
}

/// A cell as CSV text: empty for null, numbers as JSON writes them.
fn csv_cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Blob(b) => base64::engine::general_purpose::STANDARD.encode(b),
        other => serde_json::to_string(&JsonValue(other)).expect("values serialize"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ColumnType;

    fn sample() -> (Vec<Column>, Vec<Row>) {
        let columns = vec![
            Column::new("timestamp", ColumnType::Timestamp),
            Column::new("t", ColumnType::Float),
            Column::new("label", ColumnType::String),
            Column::new("on", ColumnType::Bool),
        ];
        let rows = vec![
            vec![
                Value::Timestamp(1),
                Value::Float(0.1),
                Value::String("a, \"b\"".into()),
                Value::Bool(true),
            ],
            vec![
                Value::Timestamp(2),
                Value::Null,
                Value::String("c".into()),
                Value::Bool(false),
            ],
        ];
        (columns, rows)
    }

    #[test]
    fn csv_has_a_header_and_json_numbers() {
        let (columns, rows) = sample();
        let text = String::from_utf8(super::rows(Format::Csv, &columns, &rows)).unwrap();
        assert_eq!(
            text,
            "timestamp,t,label,on\r\n1,0.1,\"a, \"\"b\"\"\",true\r\n2,,c,false\r\n"
        );
    }

    #[test]
    fn one_row_is_an_object() {
        let (columns, rows) = sample();
        let json = row(Format::Json, &columns, &rows[1]);
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"{"timestamp":2,"t":null,"label":"c","on":false}"#
        );
        let packed = row(Format::MsgPack, &columns, &rows[1]);
        let back: serde_json::Value = rmp_serde::from_slice(&packed).unwrap();
        assert_eq!(back["label"], "c");
    }

    #[test]
    fn accept_chooses() {
        assert_eq!(negotiate(None), Format::Json);
        assert_eq!(negotiate(Some("application/msgpack")), Format::MsgPack);
        assert_eq!(
            negotiate(Some("text/csv, application/json;q=0.5")),
            Format::Csv
        );
    }
}
