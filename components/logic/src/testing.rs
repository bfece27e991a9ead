//! `MemoryStore`: a `Store` in memory for the unit tests of the insert and api
//! paths, so they can assert on what was stored rather than on what was asked.
//!
//! It keeps the contract every backend shares, with the backends' own checks
//! (`added_columns`, `check_column_name`, `check_rows` of cromflag-model): a
//! container grows by appending columns, and a column keeps its type; rows are
//! checked against their container before anything is written, and a
//! `multi-put` writes all of its batches or none; rows with an equal row key
//! replace each other. Names are matched case-insensitively, as GridDB does.
//!
//! Its `query` evaluates only the statements fetch issues for plain reads:
//! `SELECT * | <columns> [WHERE <condition> [AND …]] [ORDER BY <key> ASC|DESC]
//! [LIMIT <n> [OFFSET <m>]]`, a condition being `<key> <op>
//! TO_TIMESTAMP_MS(<ms>)` or `<string column> [NOT] LIKE '<pattern>' [ESCAPE
//! '<c>']` (GridDB's: case-sensitive, whole string, an empty pattern matching
//! nothing), or a comparison of another column with a literal of its type (a
//! STRING with a string, a TIMESTAMP with `TO_TIMESTAMP_MS(<ms>)`), `<column>
//! IS [NOT] NULL`, and `OR` of these (SQL's three-valued logic: a comparison
//! with NULL is unknown, and an unknown row is not selected). Anything else is
//! a `Query` error naming the statement, so a test can never pass on a query it
//! misread.

use crate::model::{
    added_columns, check_column_name, check_rows, ColumnType, ContainerInfo, QueryResult, Row,
    Store, StoreError, Value,
};
use cromflag_tql::types::resolve_column;
use cromflag_tql::{CompareOp, Expr, Limit, Literal, Name, Selection};

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
            for (at, column) in wanted.columns.iter().enumerate() {
                check_column_name(&column.name, &wanted.columns[..at])?;
            }
            self.containers.push(Stored {
                info: wanted.clone(),
                rows: Vec::new(),
            });
            return Ok(wanted);
        };
        let added = added_columns(&stored.info, &wanted)?;
        stored.info.columns.extend(added);
        Ok(stored.info.clone())
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
            .filter(|row| statement.likes.iter().all(|like| like.passes(row)))
            .filter(|row| {
                statement
                    .conditions
                    .iter()
                    .all(|c| c.test(row) == Some(true))
            })
            .collect();
        if statement.descending {
            rows.reverse();
        }
        rows.drain(..statement.offset.min(rows.len()));
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
    /// `LIKE` conditions, all of which a row passes.
    likes: Vec<Like>,
    /// Other conditions on a row's values, all of which must be true.
    conditions: Vec<Condition>,
    descending: bool,
    limit: usize,
    offset: usize,
}

/// `<column> [NOT] LIKE <pattern> [ESCAPE <escape>]`.
struct Like {
    column: usize,
    pattern: String,
    escape: Option<char>,
    negated: bool,
}

impl Like {
    /// Whether `row` passes: a NULL never does (nor passes `NOT LIKE`).
    fn passes(&self, row: &Row) -> bool {
        match row.get(self.column) {
            Some(Value::String(text)) => self.matches(text) != self.negated,
            _ => false,
        }
    }

    /// GridDB's `LIKE`: `%` any run, `_` one character, `escape` making the
    /// next one literal; the whole string, case-sensitive; `''` matches nothing.
    fn matches(&self, text: &str) -> bool {
        enum Token {
            Any,
            One,
            Char(char),
        }
        let mut tokens = Vec::new();
        let mut chars = self.pattern.chars();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                c if Some(c) == self.escape => Token::Char(chars.next().unwrap_or(c)),
                '%' => Token::Any,
                '_' => Token::One,
                c => Token::Char(c),
            });
        }
        if tokens.is_empty() {
            return false;
        }
        let text: Vec<char> = text.chars().collect();
        // matched[j]: the tokens so far match the first j characters.
        let mut matched = vec![false; text.len() + 1];
        matched[0] = true;
        for token in &tokens {
            let mut next = vec![false; text.len() + 1];
            for j in 0..=text.len() {
                next[j] = match token {
                    Token::Any => matched[j] || (j > 0 && next[j - 1]),
                    Token::One => j > 0 && matched[j - 1],
                    Token::Char(c) => j > 0 && matched[j - 1] && text[j - 1] == *c,
                };
            }
            matched = next;
        }
        matched[text.len()]
    }
}

/// A condition on a row's values other than its key range and `LIKE`.
enum Condition {
    /// `<column> <op> <literal>`, the literal of the column's type.
    Compare {
        column: usize,
        op: CompareOp,
        value: Value,
    },
    /// `<column> IS [NOT] NULL`.
    IsNull {
        column: usize,
        negated: bool,
    },
    Or(Box<Condition>, Box<Condition>),
    And(Box<Condition>, Box<Condition>),
}

impl Condition {
    /// `None` for what the module's doc does not list.
    fn read(expr: &Expr, info: &ContainerInfo) -> Option<Condition> {
        let column = |expr: &Expr| match expr {
            Expr::Column(name) => resolve_column(info, name).ok(),
            _ => None,
        };
        Some(match expr {
            Expr::Or(left, right) => Condition::Or(
                Box::new(Condition::read(left, info)?),
                Box::new(Condition::read(right, info)?),
            ),
            Expr::And(left, right) => Condition::And(
                Box::new(Condition::read(left, info)?),
                Box::new(Condition::read(right, info)?),
            ),
            Expr::IsNull { expr, negated } => Condition::IsNull {
                column: column(expr)?,
                negated: *negated,
            },
            Expr::Compare { op, left, right } => {
                let column = column(left)?;
                let value = match (info.columns[column].column_type, right.as_ref()) {
                    (ColumnType::String, Expr::Literal(Literal::String(s))) => {
                        Value::String(s.clone())
                    }
                    (ColumnType::Timestamp, Expr::Literal(Literal::Timestamp(ms))) => {
                        Value::Timestamp(*ms)
                    }
                    _ => return None,
                };
                Condition::Compare {
                    column,
                    op: *op,
                    value,
                }
            }
            _ => return None,
        })
    }

    /// True, false, or unknown (`None`: a comparison with NULL).
    fn test(&self, row: &Row) -> Option<bool> {
        match self {
            Condition::Compare { column, op, value } => {
                let order = match (row.get(*column)?, value) {
                    (Value::String(a), Value::String(b)) => a.cmp(b),
                    (Value::Timestamp(a), Value::Timestamp(b)) => a.cmp(b),
                    _ => return None,
                };
                Some(match op {
                    CompareOp::Eq => order.is_eq(),
                    CompareOp::Ne => order.is_ne(),
                    CompareOp::Lt => order.is_lt(),
                    CompareOp::Le => order.is_le(),
                    CompareOp::Gt => order.is_gt(),
                    CompareOp::Ge => order.is_ge(),
                })
            }
            Condition::IsNull { column, negated } => {
                let null = matches!(row.get(*column), None | Some(Value::Null));
                Some(null != *negated)
            }
            Condition::Or(left, right) => match (left.test(row), right.test(row)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            Condition::And(left, right) => match (left.test(row), right.test(row)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
        }
    }
}

impl Statement {
    /// `None` for anything outside the grammar in the module's doc. The text
    /// is read by the TQL parser every backend uses (`cromflag-tql`).
    fn parse(tql: &str, info: &ContainerInfo) -> Option<Statement> {
        let parsed = cromflag_tql::parse(tql).ok()?;
        let column = |name: &Name| resolve_column(info, name).ok();
        let columns = match &parsed.selection {
            Selection::All => (0..info.columns.len()).collect(),
            Selection::Columns(names) => names.iter().map(column).collect::<Option<_>>()?,
            _ => return None,
        };
        if parsed.from.is_some() {
            return None;
        }
        let timestamp_key =
            info.row_key && info.columns.first()?.column_type == ColumnType::Timestamp;
        let mut statement = Statement {
            columns,
            key_range: i64::MIN..=i64::MAX,
            likes: Vec::new(),
            conditions: Vec::new(),
            descending: false,
            limit: usize::MAX,
            offset: 0,
        };
        let mut conditions: Vec<&Expr> = parsed.filter.iter().collect();
        while let Some(condition) = conditions.pop() {
            let (op, ms) = match condition {
                Expr::And(left, right) => {
                    conditions.extend([left.as_ref(), right.as_ref()]);
                    continue;
                }
                Expr::Like {
                    expr,
                    pattern,
                    escape,
                    negated,
                } => {
                    let string = |e: &Expr| match e {
                        Expr::Literal(Literal::String(s)) => Some(s.clone()),
                        _ => None,
                    };
                    let Expr::Column(name) = expr.as_ref() else {
                        return None;
                    };
                    let column = column(name)?;
                    if info.columns[column].column_type != ColumnType::String {
                        return None;
                    }
                    let escape = match escape.as_deref().map(string) {
                        None => None,
                        Some(Some(e)) if e.chars().count() == 1 => e.chars().next(),
                        Some(_) => return None,
                    };
                    statement.likes.push(Like {
                        column,
                        pattern: string(pattern)?,
                        escape,
                        negated: *negated,
                    });
                    continue;
                }
                Expr::Compare { op, left, right } => match (left.as_ref(), right.as_ref()) {
                    (Expr::Column(name), Expr::Literal(Literal::Timestamp(ms)))
                        if timestamp_key && column(name)? == 0 =>
                    {
                        (*op, *ms)
                    }
                    _ => {
                        statement.conditions.push(Condition::read(condition, info)?);
                        continue;
                    }
                },
                Expr::Or(..) | Expr::IsNull { .. } => {
                    statement.conditions.push(Condition::read(condition, info)?);
                    continue;
                }
                _ => return None,
            };
            let (low, high) = statement.key_range.clone().into_inner();
            statement.key_range = match op {
                CompareOp::Ge => low.max(ms)..=high,
                CompareOp::Gt => low.max(ms.checked_add(1)?)..=high,
                CompareOp::Le => low..=high.min(ms),
                CompareOp::Lt => low..=high.min(ms.checked_sub(1)?),
                CompareOp::Eq | CompareOp::Ne => return None,
            };
        }
        match parsed.order_by.as_slice() {
            [] => {}
            [key] if info.row_key && column(&key.column)? == 0 => {
                statement.descending = key.descending;
            }
            _ => return None,
        }
        if let Some(Limit { count, offset }) = parsed.limit {
            statement.limit = usize::try_from(count).ok()?;
            statement.offset = usize::try_from(offset.unwrap_or(0)).ok()?;
        }
        Some(statement)
    }
}
