//! The WebAPI's wire format, shared by the `griddb` store (which sends it) and
//! the host's `--webapi` server (which answers it): request and response bodies, the
//! error body, type names, and how one value is written as JSON.
//!
//! Shapes follow `griddb-webapi.md` (WebAPI 5.8): §2 for the bodies, §3.2 for
//! values in responses, §3.3 for values in row puts. Where the real server is
//! lenient in surprising ways (a BOOL column reading `1` as false, `.5Z` read
//! as 5 ms), this side refuses with a clear error instead.

use base64::Engine as _;
use chrono::{DateTime, FixedOffset, NaiveDateTime, Offset, TimeZone};
use cromflag_model::{Column, ColumnType, ContainerInfo, ContainerKind, Row, Value};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// The WebAPI's `maxLimit`: the most rows one call returns, and the LIMIT of a
/// TQL statement that has none.
pub const MAX_LIMIT: u64 = 1_000_000;

/// The WebAPI's `maxQueryNum`: statements in one `/tql` request.
pub const MAX_QUERIES: usize = 10;

/// The WebAPI's `maxRequestSize` default (20 MB): the most one row put may
/// weigh, by [`estimated_size`].
pub const MAX_REQUEST_BYTES: usize = 20 << 20;

/// The error body of every failure the WebAPI itself reports.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub version: String,
    /// 0 for the WebAPI's own checks, else the GridDB error number.
    pub error_code: i64,
    pub error_message: String,
}

impl ErrorBody {
    pub fn new(error_code: i64, error_message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            version: "v2".into(),
            error_code,
            error_message: error_message.into(),
        }
    }
}

/// A column as `containers/<c>/info`, `rows` and `tql` describe it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ColumnDto {
    pub name: String,
    /// `null` only in the answer to an aggregation that found no value (the
    /// WebAPI then names no type; see [`TqlResult`]).
    #[serde(rename = "type")]
    pub column_type: Option<String>,
    /// Indexes (`TREE`, `HASH`, `SPATIAL`); only in container info and create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<Vec<String>>,
    /// `MILLISECOND` on TIMESTAMP columns; absent on every other type.
    #[serde(
        default,
        rename = "timePrecision",
        skip_serializing_if = "Option::is_none"
    )]
    pub time_precision: Option<String>,
}

impl ColumnDto {
    /// The column as a response describes it; `with_index` adds the (empty)
    /// index list that container info carries.
    pub fn describe(column: &Column, with_index: bool) -> ColumnDto {
        ColumnDto::typed(&column.name, column.column_type.name(), with_index)
    }

    pub fn typed(name: &str, column_type: &str, with_index: bool) -> ColumnDto {
        ColumnDto {
            name: name.to_owned(),
            column_type: Some(column_type.to_owned()),
            index: with_index.then(Vec::new),
            time_precision: (column_type == ColumnType::Timestamp.name())
                .then(|| "MILLISECOND".to_owned()),
        }
    }

    /// The column it describes; `None` for a type this store has no column for
    /// (GEOMETRY, arrays) or a timestamp finer than milliseconds.
    pub fn column(&self) -> Result<Column, String> {
        let type_name = self.column_type.as_deref().unwrap_or("null");
        let column_type = ColumnType::ALL
            .into_iter()
            .find(|t| t.name() == type_name)
            .ok_or_else(|| format!("column `{}`: type {type_name} is not supported", self.name))?;
        match self.time_precision.as_deref() {
            None | Some("MILLISECOND") => Ok(Column::new(&self.name, column_type)),
            Some(other) => Err(format!(
                "column `{}`: time precision {other} is not supported (only MILLISECOND)",
                self.name
            )),
        }
    }
}

/// `GET containers/<c>/info` and the body of `POST containers`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ContainerDto {
    pub container_name: String,
    pub container_type: String,
    #[serde(default)]
    pub rowkey: bool,
    pub columns: Vec<ColumnDto>,
}

impl ContainerDto {
    pub fn describe(info: &ContainerInfo) -> ContainerDto {
        ContainerDto {
            container_name: info.name.clone(),
            container_type: info.kind.name().to_owned(),
            rowkey: info.row_key,
            columns: info
                .columns
                .iter()
                .map(|c| ColumnDto::describe(c, true))
                .collect(),
        }
    }

    pub fn info(&self) -> Result<ContainerInfo, String> {
        let kind = match self.container_type.as_str() {
            "TIME_SERIES" => ContainerKind::TimeSeries,
            "COLLECTION" => ContainerKind::Collection,
            other => return Err(format!("container type {other} is not supported")),
        };
        Ok(ContainerInfo {
            name: self.container_name.clone(),
            kind,
            columns: self
                .columns
                .iter()
                .map(ColumnDto::column)
                .collect::<Result<_, _>>()?,
            row_key: self.rowkey,
        })
    }
}

/// `GET containers`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ContainerList {
    pub names: Vec<String>,
    pub total: u64,
    pub offset: u64,
    pub limit: u64,
}

/// The body of `POST containers/<c>/rows`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RowsQuery {
    pub limit: Option<i64>,
    #[serde(default)]
    pub offset: Option<i64>,
    #[serde(default)]
    pub condition: Option<String>,
    #[serde(default)]
    pub sort: Option<String>,
    /// The BLOB zip endpoints' file-name column; known to the WebAPI's
    /// mapping (so not an unknown field), unused here.
    #[serde(
        default,
        rename = "fileNameCol",
        skip_serializing_if = "Option::is_none"
    )]
    pub file_name_col: Option<String>,
}

/// The answer to `POST containers/<c>/rows`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RowsResult {
    pub columns: Vec<ColumnDto>,
    pub rows: Vec<Vec<Json>>,
    pub offset: u64,
    pub limit: u64,
    pub total: u64,
}

/// The answer to `PUT containers/<c>/rows`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PutCount {
    pub count: u64,
}

/// One container's rows in `PUT containers/rows` (the multi-container put).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRows {
    pub container_name: String,
    /// A column list the WebAPI's mapping knows and its multi-put ignores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Json>,
    pub rows: Vec<Vec<Json>>,
}

/// One container's answer to `PUT containers/rows`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UpdatedRows {
    pub container_name: String,
    pub updated_rows: u64,
}

/// One statement of `POST tql`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TqlQuery {
    pub name: String,
    pub stmt: String,
    /// A projection by exact column names; `null` or `[]` for every column.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    #[serde(
        default,
        rename = "hasPartialExecution",
        skip_serializing_if = "Option::is_none"
    )]
    pub has_partial_execution: Option<bool>,
}

/// One statement's answer in `POST tql`: rows (with `offset`, `limit`,
/// `total` and `responseSizeByte`), or an aggregation (one column named
/// [`AGGREGATION_RESULT`], one row, none of the four).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TqlResult {
    pub columns: Vec<ColumnDto>,
    pub results: Vec<Vec<Json>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Matching rows before LIMIT/OFFSET; −1 for selection functions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    #[serde(
        default,
        rename = "responseSizeByte",
        skip_serializing_if = "Option::is_none"
    )]
    pub response_size_byte: Option<u64>,
}

/// One statement of the SQL endpoints (`sql/ddl`, `sql/update`, …).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SqlStatement {
    pub stmt: String,
    /// `sql-select` in GridDB Cloud's samples; ignored by the WebAPI.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// One statement's answer from `sql/ddl` (no `updatedRows`) or `sql/update`:
/// `status` 1 for done, 0 for refused with GridDB's `message`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SqlOutcome {
    #[serde(
        default,
        rename = "updatedRows",
        skip_serializing_if = "Option::is_none"
    )]
    pub updated_rows: Option<i64>,
    pub status: i64,
    pub message: Option<String>,
    pub stmt: String,
}

/// The column name of an aggregation's answer.
pub const AGGREGATION_RESULT: &str = "aggregationResult";

/// `YYYY-MM-DDThh:mm:ss.SSSZ`, the TIMESTAMP text the WebAPI reads in puts
/// and row keys (and writes when no `timeZone` is set).
pub fn format_timestamp(ms: i64) -> String {
    AnswerZone::Utc.format(ms)
}

/// Reads exactly `YYYY-MM-DDThh:mm:ss.SSSZ` (three fraction digits, UTC): what
/// a put may carry.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let fraction = text.strip_suffix('Z')?.rsplit_once('.')?.1;
    if text.len() != 24 || fraction.len() != 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDateTime::parse_from_str(&text[..23], "%Y-%m-%dT%H:%M:%S%.3f")
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

/// Reads a TIMESTAMP of an answer: RFC 3339 with `Z` or any offset
/// (`…+09:00`, as a WebAPI with a `timeZone` setting writes them) and any
/// number of fraction digits (those past milliseconds are dropped).
pub fn read_timestamp(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// How answers write TIMESTAMP values: the WebAPI's `timeZone` setting
/// (`yyyy-MM-dd'T'HH:mm:ss.SSSXXX` in that zone; `XXX` is `Z` at offset 0).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum AnswerZone {
    /// Unset: UTC.
    #[default]
    Utc,
    /// A fixed offset (`+09:00`, `-0530`, `+9`, `Z`: Java's `ZoneOffset.of`).
    Offset(FixedOffset),
    /// `auto`: the server's own zone, its offset at each instant.
    Local,
}

impl AnswerZone {
    /// Reads the setting as the WebAPI does: empty → UTC, `auto` → the
    /// system's zone, else an offset.
    pub fn parse(setting: &str) -> Result<AnswerZone, String> {
        let setting = setting.trim();
        if setting.is_empty() {
            return Ok(AnswerZone::Utc);
        }
        if setting == "auto" {
            return Ok(AnswerZone::Local);
        }
        let refused = || format!("time zone `{setting}` is not `auto` or an offset such as +09:00");
        if setting == "Z" {
            return Ok(AnswerZone::Offset(
                FixedOffset::east_opt(0).expect("0 is an offset"),
            ));
        }
        let (sign, digits) = match setting.split_at(1) {
            ("+", rest) => (1, rest),
            ("-", rest) => (-1, rest),
            _ => return Err(refused()),
        };
        let digits: String = digits.chars().filter(|c| *c != ':').collect();
        if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(refused());
        }
        // `h`, `hh`, `hhmm` or `hhmmss`.
        let digits = if digits.len() == 1 {
            format!("0{digits}")
        } else {
            digits
        };
        if digits.len() % 2 != 0 {
            return Err(refused());
        }
        let part = |i: usize| {
            digits
                .get(i..i + 2)
                .map_or(0, |p| p.parse::<i32>().unwrap_or(99))
        };
        let (hours, minutes, seconds) = (part(0), part(2), part(4));
        if hours > 18 || minutes > 59 || seconds > 59 {
            return Err(refused());
        }
        FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60 + seconds))
            .map(AnswerZone::Offset)
            .ok_or_else(refused)
    }

    /// `ms` as the WebAPI writes it in this zone.
    pub fn format(&self, ms: i64) -> String {
        let Some(utc) = DateTime::from_timestamp_millis(ms) else {
            return ms.to_string();
        };
        let offset = match self {
            AnswerZone::Utc => return utc.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            AnswerZone::Offset(offset) => *offset,
            AnswerZone::Local => chrono::Local
                .offset_from_utc_datetime(&utc.naive_utc())
                .fix(),
        };
        let local = utc.with_timezone(&offset);
        if offset.local_minus_utc() == 0 {
            local.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
        } else {
            local.format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string()
        }
    }
}

/// One value as a put carries it, and as a response writes it with no
/// `timeZone` set (§3.2). JSON has no NaN or infinities: they are written as
/// the strings `NaN`, `Infinity` and `-Infinity` (Jackson's default), which
/// [`read_value`] reads back and a put refuses.
pub fn encode_value(value: &Value) -> Json {
    encode_answer(value, AnswerZone::Utc)
}

pub fn encode_row(row: &[Value]) -> Vec<Json> {
    row.iter().map(encode_value).collect()
}

/// One value as a response writes it, its timestamps in `zone`.
pub fn encode_answer(value: &Value, zone: AnswerZone) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::String(s) => Json::String(s.clone()),
        Value::Byte(v) => Json::from(*v),
        Value::Short(v) => Json::from(*v),
        Value::Integer(v) => Json::from(*v),
        Value::Long(v) => Json::from(*v),
        Value::Float(_) | Value::Double(_) => {
            let v = value.as_f64().expect("a number");
            serde_json::Number::from_f64(v).map_or_else(
                || {
                    Json::String(
                        match v {
                            f64::INFINITY => "Infinity",
                            f64::NEG_INFINITY => "-Infinity",
                            _ => "NaN",
                        }
                        .into(),
                    )
                },
                Json::Number,
            )
        }
        Value::Timestamp(ms) => Json::String(zone.format(*ms)),
        Value::Blob(bytes) => Json::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
    }
}

pub fn encode_answer_row(row: &[Value], zone: AnswerZone) -> Vec<Json> {
    row.iter().map(|v| encode_answer(v, zone)).collect()
}

/// One JSON value of a put read into a column of `column_type` (§3.3):
/// numbers and numeric strings alike for numeric columns, numbers as text for
/// STRING, no infinities (the WebAPI's `convertToDouble` refuses them),
/// TIMESTAMP only as `YYYY-MM-DDThh:mm:ss.SSSZ`, BLOB as base64. The error
/// reads like the WebAPI's.
pub fn decode_value(json: &Json, column_type: ColumnType) -> Result<Value, String> {
    let refused = || format!("The specified data cannot be converted to {column_type} type.");
    if json.is_null() {
        return Ok(Value::Null);
    }
    let text = match json {
        Json::String(s) => Some(s.as_str()),
        _ => None,
    };
    let number = match json {
        Json::Number(n) => Some(n.to_string()),
        _ => text.map(str::to_owned),
    };
    let integer = || -> Result<i64, String> {
        number
            .as_deref()
            .and_then(|n| n.parse::<i64>().ok())
            .ok_or_else(refused)
    };
    Ok(match column_type {
        ColumnType::Bool => match (json, text) {
            (Json::Bool(b), _) => Value::Bool(*b),
            (_, Some(t)) if t.eq_ignore_ascii_case("true") => Value::Bool(true),
            (_, Some(t)) if t.eq_ignore_ascii_case("false") => Value::Bool(false),
            _ => return Err(refused()),
        },
        ColumnType::String => match json {
            Json::String(s) => Value::String(s.clone()),
            Json::Number(n) => Value::String(n.to_string()),
            _ => return Err(refused()),
        },
        ColumnType::Byte => Value::Byte(integer()?.try_into().map_err(|_| refused())?),
        ColumnType::Short => Value::Short(integer()?.try_into().map_err(|_| refused())?),
        ColumnType::Integer => Value::Integer(integer()?.try_into().map_err(|_| refused())?),
        ColumnType::Long => Value::Long(integer()?),
        ColumnType::Float | ColumnType::Double => {
            let v = match number.as_deref() {
                Some("NaN") => f64::NAN,
                Some(n) => n.parse::<f64>().map_err(|_| refused())?,
                None => return Err(refused()),
            };
            if v.is_infinite() || (column_type == ColumnType::Float && (v as f32).is_infinite()) {
                return Err(refused());
            }
            if column_type == ColumnType::Float {
                Value::Float(v as f32)
            } else {
                Value::Double(v)
            }
        }
        ColumnType::Timestamp => {
            Value::Timestamp(text.and_then(parse_timestamp).ok_or_else(refused)?)
        }
        ColumnType::Blob => Value::Blob(
            text.and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok())
                .ok_or_else(refused)?,
        ),
    })
}

/// A JSON row of a put read against `columns`: one value per column, as the
/// WebAPI requires.
pub fn decode_row(json: &[Json], columns: &[Column]) -> Result<Row, String> {
    if json.len() != columns.len() {
        return Err("Row data is invalid".into());
    }
    json.iter()
        .zip(columns)
        .map(|(v, c)| decode_value(v, c.column_type))
        .collect()
}

/// One value of an answer (rows, TQL, aggregations): as a put's, except that
/// timestamps may carry any offset and infinities are read.
pub fn read_value(json: &Json, column_type: ColumnType) -> Result<Value, String> {
    match (column_type, json) {
        (ColumnType::Timestamp, Json::String(text)) => read_timestamp(text)
            .map(Value::Timestamp)
            .ok_or_else(|| format!("`{text}` is not a timestamp")),
        (ColumnType::Float | ColumnType::Double, Json::String(text))
            if matches!(text.as_str(), "Infinity" | "-Infinity") =>
        {
            let v = if text.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            };
            Ok(if column_type == ColumnType::Float {
                Value::Float(v as f32)
            } else {
                Value::Double(v)
            })
        }
        _ => decode_value(json, column_type),
    }
}

/// A row of an answer read against `columns`.
pub fn read_row(json: &[Json], columns: &[Column]) -> Result<Row, String> {
    if json.len() != columns.len() {
        return Err(format!(
            "a row of {} values for {} columns",
            json.len(),
            columns.len()
        ));
    }
    json.iter()
        .zip(columns)
        .map(|(v, c)| read_value(v, c.column_type))
        .collect()
}

/// The WebAPI's estimate of a row's size, in bytes (§2.9 `responseSizeByte`;
/// the same estimate bounds a put, `maxRequestSize`).
pub fn estimated_size(row: &[Value]) -> usize {
    row.iter()
        .map(|value| match value {
            Value::Null => 0,
            Value::String(s) => s.len(),
            Value::Blob(b) => b.len().div_ceil(3) * 4,
            value => value
                .column_type()
                .and_then(fixed_size)
                .expect("every other value has a fixed size"),
        })
        .sum()
}

/// What the WebAPI's estimate counts for one value of a fixed-size type
/// (BYTE is 8: it counts bits there); `None` for STRING and BLOB, whose
/// values count their length.
pub fn fixed_size(column_type: ColumnType) -> Option<usize> {
    match column_type {
        ColumnType::Bool => Some(1),
        ColumnType::Short => Some(2),
        ColumnType::Integer | ColumnType::Float => Some(4),
        ColumnType::Byte | ColumnType::Long | ColumnType::Double | ColumnType::Timestamp => Some(8),
        ColumnType::String | ColumnType::Blob => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_are_written_and_read_with_three_fraction_digits() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_timestamp(1_582_105_068_000),
            "2020-02-19T09:37:48.000Z"
        );
        assert_eq!(
            parse_timestamp("2024-05-01T12:00:00.123Z"),
            Some(1_714_564_800_123)
        );
        for bad in [
            "2024-05-01T12:00:00Z",
            "2024-05-01T12:00:00.5Z",
            "2024-05-01T12:00:00.123456Z",
            "2024-05-01T12:00:00.123+09:00",
            "1714564800123",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn answers_are_read_and_written_in_any_zone() {
        let ms = 1_714_564_800_123;
        assert_eq!(read_timestamp("2024-05-01T12:00:00.123Z"), Some(ms));
        assert_eq!(read_timestamp("2024-05-01T21:00:00.123+09:00"), Some(ms));
        assert_eq!(read_timestamp("2024-05-01T06:30:00.123456-05:30"), Some(ms));
        assert_eq!(read_timestamp("2024-05-01T12:00:00Z"), Some(ms - 123));
        assert_eq!(read_timestamp("1714564800123"), None);
        let zone = |setting: &str| AnswerZone::parse(setting).unwrap();
        assert_eq!(zone("").format(ms), "2024-05-01T12:00:00.123Z");
        assert_eq!(zone("Z").format(ms), "2024-05-01T12:00:00.123Z");
        assert_eq!(zone("+09:00").format(ms), "2024-05-01T21:00:00.123+09:00");
        assert_eq!(zone("+0900").format(ms), "2024-05-01T21:00:00.123+09:00");
        assert_eq!(zone("+9").format(ms), "2024-05-01T21:00:00.123+09:00");
        assert_eq!(zone("-05:30").format(ms), "2024-05-01T06:30:00.123-05:30");
        assert_eq!(read_timestamp(&zone("auto").format(ms)), Some(ms));
        for bad in ["Asia/Tokyo", "+19", "+09:60", "09:00", "+123"] {
            assert!(AnswerZone::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_round_trip_through_their_json() {
        let row = vec![
            Value::Timestamp(1_714_564_800_123),
            Value::Bool(true),
            Value::String("ok".into()),
            Value::Byte(-3),
            Value::Short(300),
            Value::Integer(70_000),
            Value::Long(i64::MAX),
            Value::Float(0.1),
            Value::Double(f64::NEG_INFINITY),
            Value::Blob(vec![0, 1, 255]),
            Value::Null,
        ];
        let columns: Vec<Column> = row
            .iter()
            .map(|v| Column::new("c", v.column_type().unwrap_or(ColumnType::String)))
            .collect();
        let json = encode_row(&row);
        assert_eq!(json[7], json!(0.1));
        assert_eq!(json[8], json!("-Infinity"));
        assert_eq!(json[9], json!("AAH/"));
        assert_eq!(read_row(&json, &columns).unwrap(), row);
        // A put cannot carry the infinity an answer may.
        assert!(decode_row(&json, &columns).is_err());
        let zoned = encode_answer_row(&row, AnswerZone::parse("+09:00").unwrap());
        assert_eq!(zoned[0], json!("2024-05-01T21:00:00.123+09:00"));
        assert_eq!(read_row(&zoned, &columns).unwrap(), row);
    }

    #[test]
    fn puts_coerce_like_the_webapi_and_refuse_the_rest() {
        assert_eq!(
            decode_value(&json!("42"), ColumnType::Integer),
            Ok(Value::Integer(42))
        );
        assert_eq!(
            decode_value(&json!(7), ColumnType::String),
            Ok(Value::String("7".into()))
        );
        assert_eq!(
            decode_value(&json!("TRUE"), ColumnType::Bool),
            Ok(Value::Bool(true))
        );
        for (json, ty) in [
            (json!(1), ColumnType::Bool),
            (json!(1.5), ColumnType::Integer),
            (json!(128), ColumnType::Byte),
            (json!(true), ColumnType::String),
            (json!(1_714_564_800_123_i64), ColumnType::Timestamp),
            (json!("x"), ColumnType::Double),
            (json!("Infinity"), ColumnType::Double),
            (json!("-Infinity"), ColumnType::Double),
            (json!(1e300), ColumnType::Float),
            (
                json!("2024-05-01T21:00:00.123+09:00"),
                ColumnType::Timestamp,
            ),
        ] {
            let err = decode_value(&json, ty).unwrap_err();
            assert_eq!(
                err,
                format!("The specified data cannot be converted to {ty} type.")
            );
        }
        assert_eq!(
            decode_row(&[json!(1)], &[]).unwrap_err(),
            "Row data is invalid"
        );
    }

    #[test]
    fn container_info_has_the_documented_shape() {
        let info = ContainerInfo {
            name: "sensor_a".into(),
            kind: ContainerKind::TimeSeries,
            columns: vec![
                Column::new("ts", ColumnType::Timestamp),
                Column::new("temp", ColumnType::Double),
            ],
            row_key: true,
        };
        let dto = ContainerDto::describe(&info);
        assert_eq!(
            serde_json::to_value(&dto).unwrap(),
            json!({
                "container_name": "sensor_a",
                "container_type": "TIME_SERIES",
                "rowkey": true,
                "columns": [
                    {"name": "ts", "type": "TIMESTAMP", "index": [], "timePrecision": "MILLISECOND"},
                    {"name": "temp", "type": "DOUBLE", "index": []}
                ]
            })
        );
        assert_eq!(dto.info().unwrap(), info);
    }
}
