//! Storage: the `Backend` trait every store implements, its two backends
//! (`embedded`: SQLite; `griddb`: a GridDB cluster through its WebAPI, whose
//! bodies, dialect and paging are `cromflag-griddb-webapi`'s), and the schema
//! and row checks they share.
//!
//! Boundary, enforced by this crate's dependencies: backends see containers,
//! rows and TQL, never components or the host (no wasmtime here); only
//! `griddb` sees HTTP, as a client. The host's `runtime::store_import` is the
//! only place that converts the WIT-generated types.

pub mod embedded;
pub mod griddb;
/// The TQL parser: its own crate (`cromflag-tql`), no I/O, so that it also
/// compiles for wasm32-wasip2.
pub use cromflag_tql as tql;

use async_trait::async_trait;
pub use cromflag_model::{
    Column, ColumnType, ContainerInfo, ContainerKind, QueryResult, Row, StoreError, Value,
};

/// Rows of one time series as they were just committed: what live streams carry.
#[derive(Debug)]
pub struct Committed {
    pub container: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
}

/// A GridDB-style key-container store (see `wit/store.wit` for the contract).
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Creates the container, or checks it against `info` and appends the
    /// columns it lacks; returns the container as stored.
    async fn put_container(&self, info: ContainerInfo) -> Result<ContainerInfo, StoreError>;
    async fn get_container(&self, name: &str) -> Result<Option<ContainerInfo>, StoreError>;
    /// All container names, sorted.
    async fn list_containers(&self) -> Result<Vec<String>, StoreError>;
    /// Drops a container and its rows; says whether it existed. Not in the
    /// WIT interface: only the host (the WebAPI's `DELETE containers`) drops.
    async fn drop_container(&self, name: &str) -> Result<bool, StoreError>;
    /// Writes all rows or none; returns once they are durable.
    async fn put_rows(&self, container: &str, rows: Vec<Row>) -> Result<u64, StoreError>;
    /// Writes rows into several containers; see `multi-put` in `wit/store.wit`
    /// for how much of it is atomic.
    async fn multi_put(&self, batches: Vec<(String, Vec<Row>)>) -> Result<u64, StoreError>;
    async fn query(&self, container: &str, tql: &str) -> Result<QueryResult, StoreError>;

    /// Time-series rows as they commit, if this backend can tell. The channel is
    /// bounded: a receiver that falls behind gets `Lagged`, and writers never wait.
    fn commits(&self) -> Option<tokio::sync::broadcast::Receiver<std::sync::Arc<Committed>>> {
        None
    }
}

/// What `put-container` must append to `stored` to hold `wanted`: the columns
/// `wanted` names that `stored` lacks, in order. A different kind or row key,
/// or a column of another type, is a conflict.
pub fn added_columns(
    stored: &ContainerInfo,
    wanted: &ContainerInfo,
) -> Result<Vec<Column>, StoreError> {
    if stored.kind != wanted.kind || stored.row_key != wanted.row_key {
        let keyed = |row_key| if row_key { " with a row key" } else { "" };
        return Err(StoreError::SchemaConflict(format!(
            "container `{}` is a {}{}, not a {}{}",
            stored.name,
            stored.kind,
            keyed(stored.row_key),
            wanted.kind,
            keyed(wanted.row_key),
        )));
    }
    let mut columns = stored.columns.clone();
    for column in &wanted.columns {
        match stored.column_index(&column.name) {
            Some(at) if stored.columns[at].column_type != column.column_type => {
                return Err(StoreError::SchemaConflict(format!(
                    "column `{}` of `{}` is {}, not {}",
                    stored.columns[at].name,
                    stored.name,
                    stored.columns[at].column_type,
                    column.column_type
                )));
            }
            Some(_) => {}
            None => {
                check_column_name(&column.name, &columns)?;
                columns.push(column.clone());
            }
        }
    }
    Ok(columns.split_off(stored.columns.len()))
}

/// A column name is 1 to 256 characters without NUL, not already in `existing`
/// (names are case-insensitive).
pub fn check_column_name(name: &str, existing: &[Column]) -> Result<(), StoreError> {
    if name.is_empty() || name.len() > 256 || name.contains('\0') {
        return Err(StoreError::Invalid(format!("invalid column name `{name}`")));
    }
    if existing.iter().any(|c| c.name.eq_ignore_ascii_case(name)) {
        return Err(StoreError::Invalid(format!(
            "column `{name}` is given twice"
        )));
    }
    Ok(())
}

/// Checks rows against their container before anything is written: at most
/// one value per column, each of its column's type, no null key, no NaN (the
/// embedded store could not keep it), no infinity (GridDB's WebAPI refuses it
/// in a put) and timestamps in GridDB's range. Every backend refuses the same
/// rows, with the same message.
pub fn check_rows(info: &ContainerInfo, rows: &[Row]) -> Result<(), StoreError> {
    for (r, row) in rows.iter().enumerate() {
        if row.len() > info.columns.len() {
            return Err(StoreError::Invalid(format!(
                "row {r} has {} values, `{}` has {} columns",
                row.len(),
                info.name,
                info.columns.len()
            )));
        }
        for (c, (value, column)) in row.iter().zip(&info.columns).enumerate() {
            check_value(value, column.column_type, c == 0 && info.row_key).map_err(|why| {
                StoreError::Invalid(format!("row {r}, column `{}`: {why}", column.name))
            })?;
        }
        if row.is_empty() && info.row_key {
            return Err(StoreError::Invalid(format!(
                "row {r}, column `{}`: the row key must not be null",
                info.columns[0].name
            )));
        }
    }
    Ok(())
}

fn check_value(value: &Value, ty: ColumnType, is_key: bool) -> Result<(), String> {
    match value {
        Value::Null if is_key => Err("the row key must not be null".into()),
        Value::Null => Ok(()),
        Value::Float(v) if v.is_nan() => Err("NaN cannot be stored".into()),
        Value::Double(v) if v.is_nan() => Err("NaN cannot be stored".into()),
        Value::Float(v) if v.is_infinite() => Err("an infinite value cannot be stored".into()),
        Value::Double(v) if v.is_infinite() => Err("an infinite value cannot be stored".into()),
        Value::Timestamp(v) if !cromflag_model::TIMESTAMP_RANGE.contains(v) => {
            Err(format!("{v} is outside the TIMESTAMP range"))
        }
        value if value.column_type() == Some(ty) => Ok(()),
        value => Err(format!(
            "a {} value does not fit a {ty} column",
            value.column_type().map_or("null", ColumnType::name)
        )),
    }
}

/// The current time as a TIMESTAMP value: milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_every_backend_refuses() {
        let info = ContainerInfo {
            name: "sensor".into(),
            kind: ContainerKind::TimeSeries,
            columns: vec![
                Column::new("ts", ColumnType::Timestamp),
                Column::new("f", ColumnType::Float),
                Column::new("d", ColumnType::Double),
            ],
            row_key: true,
        };
        let row = |f: f32, d: f64| vec![Value::Timestamp(0), Value::Float(f), Value::Double(d)];
        assert_eq!(check_rows(&info, &[row(1.5, f64::MAX)]), Ok(()));
        for (bad, why) in [
            (
                row(f32::INFINITY, 0.0),
                "row 0, column `f`: an infinite value cannot be stored",
            ),
            (
                row(0.0, f64::NEG_INFINITY),
                "row 0, column `d`: an infinite value cannot be stored",
            ),
            (
                row(0.0, f64::NAN),
                "row 0, column `d`: NaN cannot be stored",
            ),
            (
                vec![Value::Null],
                "row 0, column `ts`: the row key must not be null",
            ),
        ] {
            assert_eq!(
                check_rows(&info, &[bad]),
                Err(StoreError::Invalid(why.into()))
            );
        }
    }
}
