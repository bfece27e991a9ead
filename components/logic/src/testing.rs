//! `MemoryStore`: a `Store` in memory for the unit tests of the insert and api
//! paths, so they can assert on what was stored rather than on what was asked.
//!
//! It keeps the contract every backend shares (`crates/store`): a container
//! grows by appending columns, and a column keeps its type; rows are checked
//! against their container (arity, types, a key that is not null) before
//! anything is written, and a `multi-put` writes all of its batches or none;
//! rows with an equal row key replace each other. Names are matched
//! case-insensitively, as GridDB does.
//!
//! Its `query` evaluates only the statements fetch issues for plain reads:
//! `SELECT * | <columns> [WHERE <key> <op> TO_TIMESTAMP_MS(<ms>) [AND …]]
//! [ORDER BY <key> ASC|DESC] [LIMIT <n>]`. Anything else is a `Query` error
//! naming the statement, so a test can never pass on a query it misread.

use crate::model::{
    Column, ColumnType, ContainerInfo, QueryResult, Row, Store, StoreError, Value, TIMESTAMP_RANGE,
};

/// One container and its rows, in key order when it has a row key.
struct Stored {
    info: ContainerInfo,
    rows: Vec<Row>,
}

#[derive(Default)]
pub struct MemoryStore {
    containers: Vec<Stored>,
    /// Every write that succeeded (`put-rows` as a one-batch `multi-put`), in order.
    pub writes: Vec<Vec<(String, Vec<Row>)>>,
    /// Makes the next write fail with this error, writing nothing.
    pub fail_next_write: Option<StoreError>,
}

impl MemoryStore {
    /// An empty store whose first write fails with `error`.
    pub fn failing_first_write(error: StoreError) -> MemoryStore {
        MemoryStore {
            fail_next_write: Some(error),
            ..MemoryStore::default()
        }
    }

    /// The schema of container `name`, if it exists.
    pub fn info(&self, name: &str) -> Option<&ContainerInfo> {
        self.find(name).map(|s| &s.info)
    }

    /// The rows of container `name` as a read would return them (null in
    /// columns added after a row was written); none if it does not exist.
    pub fn rows(&self, name: &str) -> Vec<Row> {
        let Some(stored) = self.find(name) else {
            return Vec::new();
        };
        let width = stored.info.columns.len();
        let padded = |row: &Row| {
            let mut row = row.clone();
            row.resize(width, Value::Null);
            row
        };
        stored.rows.iter().map(padded).collect()
    }

    /// Every container's name, in the order they were created.
    pub fn names(&self) -> Vec<&str> {
        self.containers
            .iter()
            .map(|s| s.info.name.as_str())
            .collect()
    }

    /// How many rows all containers hold together.
    pub fn row_count(&self) -> usize {
        self.containers.iter().map(|s| s.rows.len()).sum()
    }

    fn find(&self, name: &str) -> Option<&Stored> {
        self.containers
            .iter()
            .find(|s| s.info.name.eq_ignore_ascii_case(name))
    }

    fn find_mut(&mut self, name: &str) -> Option<&mut Stored> {
        self.containers
            .iter_mut()
            .find(|s| s.info.name.eq_ignore_ascii_case(name))
    }
}

impl Store for MemoryStore {
    fn put_container(&mut self, wanted: ContainerInfo) -> Result<ContainerInfo, StoreError> {
        let Some(stored) = self.find_mut(&wanted.name) else {
            check_new_columns(&wanted.columns)?;
            self.containers.push(Stored {
                info: wanted.clone(),
                rows: Vec::new(),
            });
            return Ok(wanted);
        };
        let info = &mut stored.info;
        if info.kind != wanted.kind || info.row_key != wanted.row_key {
            return Err(StoreError::SchemaConflict(format!(
                "container `{}` is a {}, not a {}",
                info.name, info.kind, wanted.kind
            )));
        }
        for column in &wanted.columns {
            match info.column_index(&column.name) {
                Some(at) if info.columns[at].column_type != column.column_type => {
                    return Err(StoreError::SchemaConflict(format!(
                        "column `{}` is {}, not {}",
                        info.columns[at].name, info.columns[at].column_type, column.column_type
                    )))
                }
                Some(_) => {}
                None => info.columns.push(column.clone()),
            }
        }
        Ok(info.clone())
    }

    fn get_container(&mut self, name: &str) -> Result<Option<ContainerInfo>, StoreError> {
        Ok(self.info(name).cloned())
    }

    fn list_containers(&mut self) -> Result<Vec<String>, StoreError> {
        Ok(self.names().into_iter().map(str::to_owned).collect())
    }

    fn put_rows(&mut self, container: &str, rows: Vec<Row>) -> Result<u64, StoreError> {
        self.multi_put(vec![(container.to_owned(), rows)])
    }

    fn multi_put(&mut self, batches: Vec<(String, Vec<Row>)>) -> Result<u64, StoreError> {
        if let Some(error) = self.fail_next_write.take() {
            return Err(error);
        }
        // Everything is checked before the first row is written.
        for (name, rows) in &batches {
            let stored = self
                .find(name)
                .ok_or_else(|| StoreError::NotFound(format!("container `{name}`")))?;
            check_rows(&stored.info, rows)?;
        }
        let mut written = 0;
        for (name, rows) in &batches {
            let stored = self.find_mut(name).expect("checked above");
            for row in rows {
                let mut row = row.clone();
                row.resize(stored.info.columns.len(), Value::Null);
                upsert(stored, row);
                written += 1;
            }
        }
        self.writes.push(batches);
        Ok(written)
    }

    fn query(&mut self, container: &str, tql: &str) -> Result<QueryResult, StoreError> {
        let stored = self
            .find(container)
            .ok_or_else(|| StoreError::NotFound(format!("container `{container}`")))?;
        let statement = Statement::parse(tql, &stored.info)
            .ok_or_else(|| StoreError::Query(format!("MemoryStore does not evaluate `{tql}`")))?;
        let mut rows: Vec<&Row> = stored
            .rows
            .iter()
            .filter(|row| statement.key_range.contains(&key_ms(row)))
            .collect();
        if statement.descending {
            rows.reverse();
        }
        rows.truncate(statement.limit);
        Ok(QueryResult {
            columns: statement
                .columns
                .iter()
                .map(|&i| stored.info.columns[i].clone())
                .collect(),
            rows: rows
                .into_iter()
                // A row stored before its container grew is null in the new columns.
                .map(|row| {
                    let value = |i: usize| row.get(i).cloned().unwrap_or(Value::Null);
                    statement.columns.iter().map(|&i| value(i)).collect()
                })
                .collect(),
        })
    }
}

/// New columns: named, each name once (case-insensitively).
fn check_new_columns(columns: &[Column]) -> Result<(), StoreError> {
    for (at, column) in columns.iter().enumerate() {
        let repeated = columns[..at]
            .iter()
            .any(|c| c.name.eq_ignore_ascii_case(&column.name));
        if column.name.is_empty() || repeated {
            return Err(StoreError::Invalid(format!(
                "column name `{}`",
                column.name
            )));
        }
    }
    Ok(())
}

/// At most one value per column, each null or of its column's type, the
/// row key present and in the TIMESTAMP range when it is one.
fn check_rows(info: &ContainerInfo, rows: &[Row]) -> Result<(), StoreError> {
    for (r, row) in rows.iter().enumerate() {
        if row.len() > info.columns.len() {
            return Err(StoreError::Invalid(format!(
                "row {r} of `{}` has {} values for {} columns",
                info.name,
                row.len(),
                info.columns.len()
            )));
        }
        if info.row_key && row.first().is_none_or(Value::is_null) {
            return Err(StoreError::Invalid(format!("row {r}: null row key")));
        }
        for (value, column) in row.iter().zip(&info.columns) {
            let fits = match value {
                Value::Null => true,
                Value::Timestamp(ms) => {
                    column.column_type == ColumnType::Timestamp && TIMESTAMP_RANGE.contains(ms)
                }
                value => value.column_type() == Some(column.column_type),
            };
            if !fits {
                return Err(StoreError::Invalid(format!(
                    "row {r}, column `{}` ({}): {value:?}",
                    column.name, column.column_type
                )));
            }
        }
    }
    Ok(())
}

/// Adds `row`, replacing the row with its key; rows stay in key order.
fn upsert(stored: &mut Stored, row: Row) {
    if !stored.info.row_key {
        stored.rows.push(row);
        return;
    }
    let key = &row[0];
    let at = stored
        .rows
        .iter()
        .position(|r| key_order(&r[0], key).is_ge())
        .unwrap_or(stored.rows.len());
    match stored.rows.get(at) {
        Some(existing) if existing[0] == *key => stored.rows[at] = row,
        _ => stored.rows.insert(at, row),
    }
}

fn key_order(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Timestamp(a), Value::Timestamp(b)) => a.cmp(b),
        (Value::String(a), Value::String(b)) => a.cmp(b),
        (Value::Long(a), Value::Long(b)) => a.cmp(b),
        (Value::Integer(a), Value::Integer(b)) => a.cmp(b),
        (a, b) => panic!("MemoryStore orders keys of one type, not {a:?} and {b:?}"),
    }
}

/// A row's key as epoch milliseconds, for range conditions; 0 for a key
/// that is no timestamp (no range condition is then accepted, see `parse`).
fn key_ms(row: &Row) -> i64 {
    match row.first() {
        Some(Value::Timestamp(ms)) => *ms,
        _ => 0,
    }
}

/// The statements `MemoryStore::query` evaluates, read.
struct Statement {
    /// Indexes of the selected columns, in result order.
    columns: Vec<usize>,
    /// The row keys the `WHERE` conditions let through.
    key_range: std::ops::RangeInclusive<i64>,
    descending: bool,
    limit: usize,
}

impl Statement {
    /// `None` for anything outside the grammar in the module's doc.
    fn parse(tql: &str, info: &ContainerInfo) -> Option<Statement> {
        let tokens = tokens(tql)?;
        let mut tokens = tokens.iter().map(String::as_str).peekable();
        let keyword =
            |token: Option<&str>, word: &str| token.is_some_and(|t| t.eq_ignore_ascii_case(word));
        if !keyword(tokens.next(), "select") {
            return None;
        }
        let column = |name: &str| info.column_index(name.trim_matches('"'));
        let mut columns = Vec::new();
        if tokens.peek() == Some(&"*") {
            tokens.next();
            columns.extend(0..info.columns.len());
        } else {
            loop {
                columns.push(column(tokens.next()?)?);
                if tokens.peek() != Some(&",") {
                    break;
                }
                tokens.next();
            }
        }
        let timestamp_key =
            info.row_key && info.columns.first()?.column_type == ColumnType::Timestamp;
        let mut statement = Statement {
            columns,
            key_range: i64::MIN..=i64::MAX,
            descending: false,
            limit: usize::MAX,
        };
        if keyword(tokens.peek().copied(), "where") {
            tokens.next();
            loop {
                if column(tokens.next()?)? != 0 || !timestamp_key {
                    return None;
                }
                let op = tokens.next()?;
                let ms: i64 = tokens
                    .next()?
                    .strip_prefix("TO_TIMESTAMP_MS(")?
                    .strip_suffix(')')?
                    .parse()
                    .ok()?;
                let (low, high) = statement.key_range.clone().into_inner();
                statement.key_range = match op {
                    ">=" => low.max(ms)..=high,
                    ">" => low.max(ms.checked_add(1)?)..=high,
                    "<=" => low..=high.min(ms),
                    "<" => low..=high.min(ms.checked_sub(1)?),
                    _ => return None,
                };
                if !keyword(tokens.peek().copied(), "and") {
                    break;
                }
                tokens.next();
            }
        }
        if keyword(tokens.peek().copied(), "order") {
            tokens.next();
            if !keyword(tokens.next(), "by") || column(tokens.next()?)? != 0 || !info.row_key {
                return None;
            }
            statement.descending = match tokens.next()? {
                d if d.eq_ignore_ascii_case("desc") => true,
                a if a.eq_ignore_ascii_case("asc") => false,
                _ => return None,
            };
        }
        if keyword(tokens.peek().copied(), "limit") {
            tokens.next();
            statement.limit = tokens.next()?.parse().ok()?;
        }
        tokens.next().is_none().then_some(statement)
    }
}

/// `tql` as words, double-quoted names (quotes kept, `""` undone), commas and
/// comparison operators; `None` for a character outside those.
fn tokens(tql: &str) -> Option<Vec<String>> {
    let mut tokens = Vec::new();
    let mut chars = tql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            ',' => tokens.push(",".to_owned()),
            '<' | '>' | '=' => {
                let mut op = c.to_string();
                if chars.next_if_eq(&'=').is_some() {
                    op.push('=');
                }
                tokens.push(op);
            }
            '"' => {
                let mut name = String::from('"');
                loop {
                    match chars.next()? {
                        '"' if chars.next_if_eq(&'"').is_some() => name.push('"'),
                        '"' => break,
                        c => name.push(c),
                    }
                }
                name.push('"');
                tokens.push(name);
            }
            c if c.is_alphanumeric() || "_*()-".contains(c) => {
                let mut word = c.to_string();
                while let Some(c) = chars.next_if(|c| c.is_alphanumeric() || "_*()-".contains(*c)) {
                    word.push(c);
                }
                tokens.push(word);
            }
            _ => return None,
        }
    }
    Some(tokens)
}
