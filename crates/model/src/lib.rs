//! The store model of `wit/store.wit` as plain Rust types, and the `Store`
//! trait the application logic is written against.
//!
//! Components adapt the WIT imports to `Store`; the host's backends speak these
//! same types, so one model serves both sides of the WIT boundary. The schema
//! and row checks every store applies (`added_columns`, `check_column_name`,
//! `check_rows`) are here too, so that every store refuses the same things. A crate of
//! its own (no I/O, no dependencies) so that the TQL engine and the host's
//! store get the vocabulary without the application logic.

use std::fmt;

mod columnar;
pub use columnar::{from_columns, to_columns, ColumnData, ColumnValues};

/// GridDB column types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ColumnType {
    Bool,
    String,
    Byte,
    Short,
    Integer,
    Long,
    Float,
    Double,
    /// Milliseconds since the Unix epoch, UTC.
    Timestamp,
    Blob,
}

impl ColumnType {
    pub const ALL: [ColumnType; 10] = [
        ColumnType::Bool,
        ColumnType::String,
        ColumnType::Byte,
        ColumnType::Short,
        ColumnType::Integer,
        ColumnType::Long,
        ColumnType::Float,
        ColumnType::Double,
        ColumnType::Timestamp,
        ColumnType::Blob,
    ];

    /// The GridDB (WebAPI) type name.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Bool => "BOOL",
            ColumnType::String => "STRING",
            ColumnType::Byte => "BYTE",
            ColumnType::Short => "SHORT",
            ColumnType::Integer => "INTEGER",
            ColumnType::Long => "LONG",
            ColumnType::Float => "FLOAT",
            ColumnType::Double => "DOUBLE",
            ColumnType::Timestamp => "TIMESTAMP",
            ColumnType::Blob => "BLOB",
        }
    }

    pub fn from_name(name: &str) -> Option<ColumnType> {
        ColumnType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    pub fn is_integral(self) -> bool {
        matches!(
            self,
            ColumnType::Byte | ColumnType::Short | ColumnType::Integer | ColumnType::Long
        )
    }

    pub fn is_numeric(self) -> bool {
        self.is_integral() || matches!(self, ColumnType::Float | ColumnType::Double)
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One cell.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    String(String),
    Byte(i8),
    Short(i16),
    Integer(i32),
    Long(i64),
    Float(f32),
    Double(f64),
    /// Milliseconds since the Unix epoch, UTC.
    Timestamp(i64),
    Blob(Vec<u8>),
}

impl Value {
    /// The column type this value belongs in; `None` for null.
    pub fn column_type(&self) -> Option<ColumnType> {
        Some(match self {
            Value::Null => return None,
            Value::Bool(_) => ColumnType::Bool,
            Value::String(_) => ColumnType::String,
            Value::Byte(_) => ColumnType::Byte,
            Value::Short(_) => ColumnType::Short,
            Value::Integer(_) => ColumnType::Integer,
            Value::Long(_) => ColumnType::Long,
            Value::Float(_) => ColumnType::Float,
            Value::Double(_) => ColumnType::Double,
            Value::Timestamp(_) => ColumnType::Timestamp,
            Value::Blob(_) => ColumnType::Blob,
        })
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// A numeric value as f64; `None` for anything else. FLOAT goes through its
    /// shortest decimal form, so that a stored `0.1f32` is 0.1 and not 0.10000000149.
    pub fn as_f64(&self) -> Option<f64> {
        Some(match *self {
            Value::Byte(v) => f64::from(v),
            Value::Short(v) => f64::from(v),
            Value::Integer(v) => f64::from(v),
            Value::Long(v) => v as f64,
            Value::Float(v) => v.to_string().parse().unwrap_or(f64::from(v)),
            Value::Double(v) => v,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub column_type: ColumnType,
}

impl Column {
    pub fn new(name: impl Into<String>, column_type: ColumnType) -> Column {
        Column {
            name: name.into(),
            column_type,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerKind {
    Collection,
    TimeSeries,
}

impl ContainerKind {
    /// The GridDB (WebAPI) name.
    pub fn name(self) -> &'static str {
        match self {
            ContainerKind::Collection => "COLLECTION",
            ContainerKind::TimeSeries => "TIME_SERIES",
        }
    }
}

impl fmt::Display for ContainerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerInfo {
    pub name: String,
    pub kind: ContainerKind,
    pub columns: Vec<Column>,
    /// Whether the first column is the row key (always true for time series).
    pub row_key: bool,
}

impl ContainerInfo {
    /// Position of the column named `name`, matched case-insensitively as GridDB does.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }
}

/// Values in schema order; a row may omit trailing columns, which are then null.
pub type Row = Vec<Value>;

#[derive(Clone, Debug, PartialEq, Default)]
pub struct QueryResult {
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
}

/// A row-key range `[start, end)` in epoch milliseconds (`key-range` in
/// `wit/store.wit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRange {
    pub start: i64,
    pub end: i64,
}

/// What `aggregate-ranges` answers: the columns of the aggregate statement,
/// and for each key range, in order, its one row, or `None` where `query`
/// gives no row (GridDB's single aggregation over no value).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RangeAggregates {
    pub columns: Vec<Column>,
    pub rows: Vec<Option<Row>>,
}

/// The statement `aggregate-ranges` runs for one range: `aggregates` (a
/// SELECT of aggregates, without WHERE, ORDER BY or LIMIT) restricted to
/// rows whose key `key` is in `range`. How a store without a one-call way of
/// its own answers `aggregate-ranges`, one `query` per range.
pub fn range_statement(aggregates: &str, key: &str, range: KeyRange) -> String {
    let key = tql_name(key);
    format!(
        "{aggregates} WHERE {key} >= TO_TIMESTAMP_MS({}) AND {key} < TO_TIMESTAMP_MS({})",
        range.start, range.end
    )
}

/// `aggregate-ranges` as one `query` per range, over `info`'s row key. The
/// answers must share their columns; a range without a row is `None`.
pub fn aggregate_ranges_by_query(
    info: &ContainerInfo,
    aggregates: &str,
    ranges: &[KeyRange],
    mut query: impl FnMut(&str) -> Result<QueryResult, StoreError>,
) -> Result<RangeAggregates, StoreError> {
    let key = range_key(info)?;
    let mut answer = RangeAggregates::default();
    for &range in ranges {
        let result = query(&range_statement(aggregates, key, range))?;
        answer.columns = result.columns;
        answer.rows.push(result.rows.into_iter().next());
    }
    Ok(answer)
}

/// The name of `info`'s row key if ranges can be taken over it: a TIMESTAMP
/// row key.
pub fn range_key(info: &ContainerInfo) -> Result<&str, StoreError> {
    match info.columns.first() {
        Some(key) if info.row_key && key.column_type == ColumnType::Timestamp => Ok(&key.name),
        _ => Err(StoreError::Query(format!(
            "aggregate-ranges needs a TIMESTAMP row key, and container `{}` has none",
            info.name
        ))),
    }
}

/// Which container names to list: those of `kind` (all, if `None`), in plain
/// string order (byte order, which for container names, ASCII only, is the
/// code-unit order of Java's `String.compareTo` that GridDB sorts by; upper
/// case before lower case), reversed if `descending`, from the `offset`th on,
/// at most `limit` of them. The query parameters `type`, `sort`, `offset` and
/// `limit` of GridDB's `GET containers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContainerListing {
    /// Only containers of this kind; `None`: every container.
    pub kind: Option<ContainerKind>,
    /// Names in reverse order (`sort=DESC`).
    pub descending: bool,
    /// How many names to skip, counted in the listing's order.
    pub offset: u64,
    /// The most names to answer; 0 answers none and still counts `total`.
    pub limit: u64,
}

impl ContainerListing {
    /// The page `self` asks of `names`: every name of `kind`, in ascending
    /// order (as `catalog`-like sources hold them). For backends and test
    /// stores that list from memory.
    pub fn page_of(&self, names: Vec<String>) -> ContainerPage {
        let total = names.len() as u64;
        let skip = usize::try_from(self.offset).unwrap_or(usize::MAX);
        let take = usize::try_from(self.limit).unwrap_or(usize::MAX);
        let names = if self.descending {
            names.into_iter().rev().skip(skip).take(take).collect()
        } else {
            names.into_iter().skip(skip).take(take).collect()
        };
        ContainerPage { names, total }
    }
}

/// What a [`ContainerListing`] answers: GridDB's `{"names", "total"}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerPage {
    /// The page's names, in the listing's order: every name of the listing
    /// from its offset, up to its limit (fewer only at the end).
    pub names: Vec<String>,
    /// How many containers there are of the listing's kind, whatever the
    /// offset and limit.
    pub total: u64,
}

/// The page a listing of every name asks for (`Backend::list_containers`): 100,000 names (a few MB),
/// so that a store of 100,000 devices is listed in one call.
pub const ALL_NAMES_PAGE: u64 = 100_000;

/// Every name, ascending, asked `page` names at a time (at least 2; see
/// [`Backend::list_containers`]). Each page after the first starts at the
/// last name already listed, which tells whether the names moved: a page
/// that starts before it (containers created meanwhile) is read past it; one
/// that does not start with it (containers dropped meanwhile, so that names
/// not yet listed may now stand before the offset) is asked again a page
/// earlier.
pub async fn all_names<Page: std::future::Future<Output = Result<ContainerPage, StoreError>>>(
    page: u64,
    mut list_page: impl FnMut(ContainerListing) -> Page,
) -> Result<Vec<String>, StoreError> {
    let mut names: Vec<String> = Vec::new();
    let mut listing = ContainerListing {
        kind: None,
        descending: false,
        offset: 0,
        limit: page.max(2),
    };
    loop {
        let answer = list_page(listing).await?;
        let got = answer.names.len() as u64;
        if let Some(last) = names.last() {
            if listing.offset > 0 && answer.names.first().is_none_or(|first| first > last) {
                listing.offset = listing.offset.saturating_sub(listing.limit);
                continue;
            }
            let last = last.clone();
            names.extend(answer.names.into_iter().filter(|n| *n > last));
        } else {
            names = answer.names;
        }
        let end = listing.offset + got;
        if got < listing.limit || end >= answer.total {
            return Ok(names);
        }
        listing.offset = end - 1;
    }
}

/// Mirrors the WIT `error` variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    NotFound(String),
    Invalid(String),
    SchemaConflict(String),
    Query(String),
    Backend(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotFound(m) => write!(f, "not found: {m}"),
            StoreError::Invalid(m) => write!(f, "invalid: {m}"),
            StoreError::SchemaConflict(m) => write!(f, "schema conflict: {m}"),
            StoreError::Query(m) => write!(f, "query: {m}"),
            StoreError::Backend(m) => write!(f, "backend: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// The store as the application logic sees it: `wit/store.wit`, synchronously.
pub trait Store {
    fn put_container(&mut self, info: ContainerInfo) -> Result<ContainerInfo, StoreError>;
    fn get_container(&mut self, name: &str) -> Result<Option<ContainerInfo>, StoreError>;
    /// `get_container` of each name, in one call where the store can.
    fn get_containers(&mut self, names: &[&str]) -> Result<Vec<Option<ContainerInfo>>, StoreError> {
        names.iter().map(|name| self.get_container(name)).collect()
    }
    fn list_containers(&mut self) -> Result<Vec<String>, StoreError>;
    fn put_rows(&mut self, container: &str, rows: Vec<Row>) -> Result<u64, StoreError>;
    /// Rows into several containers in one write (`multi-put`).
    fn multi_put(&mut self, batches: Vec<(String, Vec<Row>)>) -> Result<u64, StoreError>;
    fn query(&mut self, container: &str, tql: &str) -> Result<QueryResult, StoreError>;
    /// `aggregates` over each of `ranges` of the row key, in one call where
    /// the store can (`aggregate-ranges`); by default one `query` per range.
    fn aggregate_ranges(
        &mut self,
        container: &str,
        aggregates: &str,
        ranges: &[KeyRange],
    ) -> Result<RangeAggregates, StoreError> {
        let info = self.get_container(container)?.ok_or_else(|| {
            StoreError::NotFound(format!("container `{container}` does not exist"))
        })?;
        aggregate_ranges_by_query(&info, aggregates, ranges, |tql| self.query(container, tql))
    }
}

/// One device's rows between decoding and storing (`batch` in `wit/store.wit`):
/// typed columns, the `timestamp` key first, and rows in column order.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Batch {
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
}

/// Why the transform pipeline did not let a batch through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The transform that refused, trapped or overran its limits.
    pub transform: String,
    pub reason: String,
}

/// The transforms between decoding and storing (`cromflag:iot/pipeline`).
pub trait Pipeline {
    /// Runs the component's transforms on `batch`, in order.
    fn run(&mut self, device: &str, batch: Batch) -> Result<Batch, Rejection>;
}

/// A pipeline without transforms: every batch goes through as it is.
pub struct NoTransforms;

impl Pipeline for NoTransforms {
    fn run(&mut self, _device: &str, batch: Batch) -> Result<Batch, Rejection> {
        Ok(batch)
    }
}

/// The earliest and latest instants GridDB can store in a TIMESTAMP
/// (1970-01-01T00:00:00.000Z ..= 9999-12-31T23:59:59.999Z).
pub const TIMESTAMP_RANGE: std::ops::RangeInclusive<i64> = 0..=253_402_300_799_999;

/// Whether `name` is a container name this stack accepts: ASCII letters, digits and
/// `_`, not starting with a digit, at most 256 characters. GridDB allows more, but
/// its WebAPI cannot address names with `-`, `.`, `/` or `=`, and every name here
/// must work with both backends.
pub fn is_valid_container_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && !name.as_bytes()[0].is_ascii_digit()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `name` as a TQL double-quoted identifier, matched exactly.
pub fn tql_name(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as a TQL string literal (single quotes, inner quotes doubled).
pub fn tql_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

// The schema and row checks every store applies (the backends in
// cromflag-store, and the logic's test store), in one place.

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

/// The checks of a container about to be created, every store's: its name,
/// at least one column, column names, and the row key its kind needs.
pub fn check_new_container(info: &ContainerInfo) -> Result<(), StoreError> {
    if !is_valid_container_name(&info.name) {
        return Err(StoreError::Invalid(format!(
            "invalid container name `{}`: use 1 to 256 ASCII letters, digits or `_`, not starting with a digit",
            info.name
        )));
    }
    let Some(first) = info.columns.first() else {
        return Err(StoreError::Invalid(format!(
            "container `{}` has no columns",
            info.name
        )));
    };
    for (i, column) in info.columns.iter().enumerate() {
        check_column_name(&column.name, &info.columns[..i])?;
    }
    match info.kind {
        ContainerKind::TimeSeries
            if !info.row_key || first.column_type != ColumnType::Timestamp =>
        {
            Err(StoreError::Invalid(format!(
                "time series `{}` needs a TIMESTAMP row key as its first column",
                info.name
            )))
        }
        ContainerKind::Collection
            if info.row_key
                && !matches!(
                    first.column_type,
                    ColumnType::String
                        | ColumnType::Integer
                        | ColumnType::Long
                        | ColumnType::Timestamp
                ) =>
        {
            Err(StoreError::Invalid(format!(
                "a row key must be STRING, INTEGER, LONG or TIMESTAMP, not {}",
                first.column_type
            )))
        }
        _ => Ok(()),
    }
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
        Value::Timestamp(v) if !TIMESTAMP_RANGE.contains(v) => {
            Err(format!("{v} is outside the TIMESTAMP range"))
        }
        value if value.column_type() == Some(ty) => Ok(()),
        value => Err(format!(
            "a {} value does not fit a {ty} column",
            value.column_type().map_or("null", ColumnType::name)
        )),
    }
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
