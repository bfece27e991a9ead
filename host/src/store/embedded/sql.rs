//! Translation of a parsed TQL [`Statement`] into one parameterised SQLite query.
//!
//! This module owns what a query *means* against one container: it resolves
//! column names against the container's schema, enforces GridDB's typing rules
//! for comparisons and conditions, gives `NOW()` its value, and writes SQL for
//! the storage layout (one table per container, container column `i` stored as
//! SQL column `c{i}`, BOOL as 0/1, TIMESTAMP as epoch ms).
//!
//! Every literal travels as a bound parameter. The only text written into the
//! SQL string is our own keywords, the validated `c{i}` names and the table
//! name the caller passes in (already quoted), so user input cannot inject SQL.

use crate::store::tql::{CompareOp, Expr, Literal, Name, Selection, SortKey, Statement};
use cromflag_logic::{ColumnType, ContainerInfo, ContainerKind, StoreError};
use rusqlite::types::Value as SqlValue;
use std::fmt;

/// One SQLite query ready to prepare and run.
#[derive(Clone, Debug, PartialEq)]
pub struct SqlQuery {
    /// `SELECT c.. FROM <table> [WHERE …] ORDER BY … [LIMIT ? [OFFSET ?]]`.
    pub sql: String,
    /// Values for the `?` placeholders, in order.
    pub params: Vec<SqlValue>,
    /// The container column index of each result column, in result order.
    pub columns: Vec<usize>,
}

/// Translates `stmt` for the container `info`, stored in the SQLite table
/// `table` (passed already quoted). `now_ms` is the value of every `NOW()` in
/// the statement, so one query sees one instant.
pub fn translate(
    stmt: &Statement,
    info: &ContainerInfo,
    table: &str,
    now_ms: i64,
) -> Result<SqlQuery, StoreError> {
    if let Some(from) = &stmt.from {
        // Container names are case-insensitive in GridDB, quoted or not.
        if !from.text.eq_ignore_ascii_case(&info.name) {
            return Err(error(format_args!(
                "FROM names container '{}', but the query is on container '{}'",
                from.text, info.name
            )));
        }
    }
    let mut t = Translator {
        info,
        now_ms,
        params: Vec::new(),
    };
    let columns: Vec<usize> = match &stmt.selection {
        Selection::All => (0..info.columns.len()).collect(),
        Selection::Columns(names) => names
            .iter()
            .map(|name| t.resolve(name))
            .collect::<Result<_, _>>()?,
    };
    if columns.is_empty() {
        return Err(error(format_args!(
            "container '{}' has no columns",
            info.name
        )));
    }
    let list: Vec<String> = columns.iter().map(|i| format!("c{i}")).collect();
    let mut sql = format!("SELECT {} FROM {table}", list.join(", "));

    if let Some(filter) = &stmt.filter {
        let condition = t.condition(filter, "WHERE")?;
        sql.push_str(" WHERE ");
        sql.push_str(&condition);
    }

    sql.push_str(" ORDER BY ");
    sql.push_str(&t.order_by(&stmt.order_by)?);

    if let Some(limit) = stmt.limit {
        sql.push_str(" LIMIT ?");
        t.params.push(count_param("LIMIT", limit.count)?);
        if let Some(offset) = limit.offset {
            sql.push_str(" OFFSET ?");
            t.params.push(count_param("OFFSET", offset)?);
        }
    }

    Ok(SqlQuery {
        sql,
        params: t.params,
        columns,
    })
}

fn error(message: impl fmt::Display) -> StoreError {
    StoreError::Query(format!("TQL: {message}"))
}

fn count_param(clause: &str, n: u64) -> Result<SqlValue, StoreError> {
    i64::try_from(n)
        .map(SqlValue::Integer)
        .map_err(|_| error(format_args!("{clause} {n} is out of range")))
}

/// Translated SQL for one expression, with its TQL type. `None` is the type of
/// the NULL literal, which compares with anything.
struct Typed {
    sql: String,
    ty: Option<ColumnType>,
}

impl Typed {
    fn boolean(sql: String) -> Typed {
        Typed {
            sql,
            ty: Some(ColumnType::Bool),
        }
    }
}

struct Translator<'a> {
    info: &'a ContainerInfo,
    now_ms: i64,
    /// Parameters in the order their `?` appear in the SQL. Every method
    /// emits its SQL left to right as it pushes, which keeps the two in step.
    params: Vec<SqlValue>,
}

impl Translator<'_> {
    /// The container column index a name refers to: unquoted names match
    /// case-insensitively (as GridDB does), quoted names exactly.
    fn resolve(&self, name: &Name) -> Result<usize, StoreError> {
        let found = if name.quoted {
            self.info.columns.iter().position(|c| c.name == name.text)
        } else {
            self.info.column_index(&name.text)
        };
        found.ok_or_else(|| {
            let hint = if name.quoted && self.info.column_index(&name.text).is_some() {
                " (a quoted name must match exactly, including case)"
            } else {
                ""
            };
            error(format_args!(
                "unknown column {name} in container '{}'{hint}",
                self.info.name
            ))
        })
    }

    fn bind(&mut self, value: SqlValue) -> String {
        self.params.push(value);
        "?".to_string()
    }

    /// Translates `expr` where a truth value is required: the WHERE clause and
    /// the operands of AND, OR and NOT.
    fn condition(&mut self, expr: &Expr, context: &str) -> Result<String, StoreError> {
        let value = self.value(expr)?;
        match value.ty {
            // A bare BOOL column holds 0/1. Test it explicitly rather than rely
            // on SQLite's integer truthiness, so the SQL says what it means;
            // NULL <> 0 is still NULL, as three-valued logic wants.
            Some(ColumnType::Bool) if matches!(expr, Expr::Column(_)) => {
                Ok(format!("({} <> 0)", value.sql))
            }
            Some(ColumnType::Bool) | None => Ok(value.sql),
            Some(ty) => Err(error(format_args!(
                "{context} requires a boolean condition, but {} is {ty}",
                describe(expr)
            ))),
        }
    }

    /// Translates `expr` as a value (an operand of a comparison, IS NULL or `-`).
    fn value(&mut self, expr: &Expr) -> Result<Typed, StoreError> {
        Ok(match expr {
            Expr::Literal(literal) => {
                let (value, ty) = match literal {
                    Literal::Null => (SqlValue::Null, None),
                    Literal::Integer(n) => (SqlValue::Integer(*n), Some(ColumnType::Long)),
                    Literal::Float(f) => (SqlValue::Real(*f), Some(ColumnType::Double)),
                    Literal::String(s) => (SqlValue::Text(s.clone()), Some(ColumnType::String)),
                    Literal::Timestamp(ms) => (SqlValue::Integer(*ms), Some(ColumnType::Timestamp)),
                };
                Typed {
                    sql: self.bind(value),
                    ty,
                }
            }
            Expr::Now => Typed {
                sql: self.bind(SqlValue::Integer(self.now_ms)),
                ty: Some(ColumnType::Timestamp),
            },
            Expr::Column(name) => {
                let index = self.resolve(name)?;
                Typed {
                    sql: format!("c{index}"),
                    ty: Some(self.info.columns[index].column_type),
                }
            }
            Expr::Neg(operand) => {
                let operand = self.value(operand)?;
                if let Some(ty) = operand.ty.filter(|ty| !ty.is_numeric()) {
                    return Err(error(format_args!(
                        "unary operator '-' is not defined for {ty}"
                    )));
                }
                // The operand is `?`, `cN` or parenthesised, so this never forms `--`.
                Typed {
                    sql: format!("(-{})", operand.sql),
                    ty: operand.ty,
                }
            }
            Expr::Not(operand) => {
                Typed::boolean(format!("(NOT {})", self.condition(operand, "NOT")?))
            }
            Expr::And(left, right) => {
                let left = self.condition(left, "AND")?;
                let right = self.condition(right, "AND")?;
                Typed::boolean(format!("({left} AND {right})"))
            }
            Expr::Or(left, right) => {
                let left = self.condition(left, "OR")?;
                let right = self.condition(right, "OR")?;
                Typed::boolean(format!("({left} OR {right})"))
            }
            Expr::Compare { op, left, right } => self.compare(*op, left, right)?,
            Expr::IsNull { expr, negated } => {
                let operand = self.value(expr)?;
                let not = if *negated { "NOT " } else { "" };
                Typed::boolean(format!("({} IS {not}NULL)", operand.sql))
            }
        })
    }

    fn compare(&mut self, op: CompareOp, left: &Expr, right: &Expr) -> Result<Typed, StoreError> {
        let l = self.value(left)?;
        let r = self.value(right)?;
        if !comparable(op, l.ty, r.ty) {
            let name = |ty: Option<ColumnType>| ty.map_or("NULL", ColumnType::name);
            // The classic mistake: `timestamp > '2024-01-01T00:00:00Z'`.
            let is_string = |e: &Expr| matches!(e, Expr::Literal(Literal::String(_)));
            let hint = match (l.ty, r.ty) {
                (Some(ColumnType::Timestamp), Some(ColumnType::String)) if is_string(right) => {
                    " (wrap the literal in TIMESTAMP('...'))"
                }
                (Some(ColumnType::String), Some(ColumnType::Timestamp)) if is_string(left) => {
                    " (wrap the literal in TIMESTAMP('...'))"
                }
                _ => "",
            };
            return Err(error(format_args!(
                "binary operation '{op}' is not defined for {} and {}{hint}",
                name(l.ty),
                name(r.ty)
            )));
        }
        Ok(Typed::boolean(format!("({} {op} {})", l.sql, r.sql)))
    }

    /// The ORDER BY terms: the user's keys, then the container's natural order
    /// as a tie-breaker so that LIMIT/OFFSET pages are stable.
    fn order_by(&self, keys: &[SortKey]) -> Result<String, StoreError> {
        let mut terms = Vec::new();
        let mut sorted_on_key = false;
        for key in keys {
            let index = self.resolve(&key.column)?;
            if self.info.columns[index].column_type == ColumnType::Blob {
                return Err(error(format_args!(
                    "ORDER BY is not defined for BLOB column {}",
                    key.column
                )));
            }
            // GridDB sorts NULL as the largest value, SQLite as the smallest.
            // Sorting on `IS NULL` (0, then 1) first puts NULLs last ascending
            // and first descending, as GridDB does.
            terms.push(if key.descending {
                format!("(c{index} IS NULL) DESC, c{index} DESC")
            } else {
                format!("(c{index} IS NULL), c{index}")
            });
            sorted_on_key |= index == 0;
        }
        match self.info.kind {
            // c0 is the unique timestamp key: once sorted on it, ties are impossible.
            ContainerKind::TimeSeries if sorted_on_key => {}
            ContainerKind::TimeSeries => terms.push("c0".to_string()),
            ContainerKind::Collection => terms.push("rowid".to_string()),
        }
        Ok(terms.join(", "))
    }
}

/// GridDB's comparison rules: BOOL–BOOL, STRING–STRING, numeric–numeric (any
/// widths) and TIMESTAMP–TIMESTAMP, with `<`, `<=`, `>`, `>=` only for numbers
/// and timestamps. NULL compares with anything but BLOB, which never compares.
fn comparable(op: CompareOp, left: Option<ColumnType>, right: Option<ColumnType>) -> bool {
    use ColumnType::{Blob, Bool, String, Timestamp};
    match (left, right) {
        (Some(Blob), _) | (_, Some(Blob)) => false,
        (None, _) | (_, None) => true,
        (Some(l), Some(r)) if l.is_numeric() && r.is_numeric() => true,
        (Some(Timestamp), Some(Timestamp)) => true,
        (Some(l @ (Bool | String)), Some(r)) if l == r => !op.is_ordering(),
        _ => false,
    }
}

/// How an error message refers to an expression.
fn describe(expr: &Expr) -> String {
    match expr {
        Expr::Column(name) => format!("column {name}"),
        Expr::Literal(_) => "the literal".to_string(),
        _ => "the expression".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tql::{self, tests::garbage, tests::XorShift};
    use cromflag_logic::Column;
    use rusqlite::Connection;

    const TABLE: &str = "\"t_3\"";
    /// 2024-01-01T00:00:00Z; row `i` is `i` hours later.
    const BASE: i64 = 1_704_067_200_000;
    const HOUR: i64 = 3_600_000;

    fn device() -> ContainerInfo {
        ContainerInfo {
            name: "device1".into(),
            kind: ContainerKind::TimeSeries,
            columns: vec![
                Column::new("timestamp", ColumnType::Timestamp),
                Column::new("motion", ColumnType::Bool),
                Column::new("temperature", ColumnType::Float),
                Column::new("humidity", ColumnType::Float),
                Column::new("month", ColumnType::Long),
                Column::new("label", ColumnType::String),
            ],
            row_key: true,
        }
    }

    /// The sample device, laid out as the embedded store lays it out.
    /// Row i: (motion, temperature, humidity, month, label).
    fn device_db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE \"t_3\" (c0 INTEGER PRIMARY KEY NOT NULL, c1 INTEGER, c2 REAL, \
             c3 REAL, c4 INTEGER, c5 TEXT)",
        )
        .unwrap();
        type Row = (
            Option<bool>,
            Option<f64>,
            Option<f64>,
            i64,
            Option<&'static str>,
        );
        let rows: [Row; 6] = [
            (Some(true), Some(20.0), Some(40.0), 1, Some("a")),
            (Some(false), Some(22.5), None, 1, None),
            (None, Some(25.0), Some(50.0), 2, Some("b")),
            (Some(true), None, Some(55.0), 2, None),
            (Some(false), Some(18.0), Some(60.0), 3, Some("x")),
            (Some(true), Some(30.0), Some(45.0), 3, Some("x")),
        ];
        // Insert out of order: results must not depend on insertion order.
        for i in [3, 0, 5, 1, 4, 2] {
            let (motion, temperature, humidity, month, label) = rows[i];
            conn.execute(
                "INSERT INTO \"t_3\" VALUES (?, ?, ?, ?, ?, ?)",
                rusqlite::params![
                    BASE + i as i64 * HOUR,
                    motion,
                    temperature,
                    humidity,
                    month,
                    label
                ],
            )
            .unwrap();
        }
        conn
    }

    fn translate_text(tql: &str, info: &ContainerInfo) -> Result<SqlQuery, StoreError> {
        translate(&tql::parse(tql)?, info, TABLE, BASE + 2 * HOUR)
    }

    fn run(conn: &Connection, query: &SqlQuery) -> Vec<Vec<SqlValue>> {
        let mut statement = conn.prepare(&query.sql).unwrap();
        let width = statement.column_count();
        assert_eq!(width, query.columns.len(), "{}", query.sql);
        statement
            .query_map(rusqlite::params_from_iter(&query.params), |row| {
                (0..width).map(|i| row.get::<_, SqlValue>(i)).collect()
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// The row numbers (hours after BASE) that `select * …` returns, in order.
    fn rows(tql: &str) -> Vec<i64> {
        let query = translate_text(tql, &device()).unwrap_or_else(|e| panic!("{tql}: {e}"));
        run(&device_db(), &query)
            .into_iter()
            .map(|row| match row[0] {
                SqlValue::Integer(ms) => (ms - BASE) / HOUR,
                ref other => panic!("c0 is {other:?}"),
            })
            .collect()
    }

    fn fails(tql: &str, needle: &str) {
        match translate_text(tql, &device()) {
            Err(StoreError::Query(m)) => {
                assert!(
                    m.starts_with("TQL: ") && m.contains(needle),
                    "{tql}: {m:?} lacks {needle:?}"
                )
            }
            other => panic!("{tql}: expected an error, got {other:?}"),
        }
    }

    #[test]
    fn sql_shape_and_parameters() {
        let q = translate_text(
            "select temperature, label where label = 'a' and month > 1 limit 5 offset 2",
            &device(),
        )
        .unwrap();
        assert_eq!(
            q.sql,
            "SELECT c2, c5 FROM \"t_3\" WHERE ((c5 = ?) AND (c4 > ?)) ORDER BY c0 LIMIT ? OFFSET ?"
        );
        assert_eq!(
            q.params,
            [
                SqlValue::Text("a".into()),
                SqlValue::Integer(1),
                SqlValue::Integer(5),
                SqlValue::Integer(2)
            ]
        );
        assert_eq!(q.columns, [2, 5]);

        let q = translate_text("select * where motion", &device()).unwrap();
        assert_eq!(
            q.sql,
            "SELECT c0, c1, c2, c3, c4, c5 FROM \"t_3\" WHERE (c1 <> 0) ORDER BY c0"
        );
        assert!(q.params.is_empty());
    }

    #[test]
    fn everything_in_default_order() {
        assert_eq!(rows("select *"), [0, 1, 2, 3, 4, 5]);
        assert_eq!(rows("select * from DEVICE1"), [0, 1, 2, 3, 4, 5]);
        assert_eq!(rows("select * from \"device1\";"), [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn timestamp_ranges() {
        let from = BASE + HOUR;
        let to = BASE + 3 * HOUR;
        assert_eq!(
            rows(&format!(
                "select * where timestamp >= TO_TIMESTAMP_MS({from}) and timestamp < to_timestamp_ms({to})"
            )),
            [1, 2]
        );
        assert_eq!(
            rows("select * where timestamp > TIMESTAMP('2024-01-01T02:00:00Z')"),
            [3, 4, 5]
        );
        assert_eq!(
            rows("select * where timestamp >= timestamp('2024-01-01T02:00:00.001Z')"),
            [3, 4, 5]
        );
        // 10:00 in UTC+9 is 01:00Z.
        assert_eq!(
            rows("select * where timestamp = TIMESTAMP('2024-01-01T10:00:00+09:00')"),
            [1]
        );
        assert_eq!(
            rows("select * where timestamp <= TIMESTAMP('2024-01-01T10:00:00+0900')"),
            [0, 1]
        );
        assert_eq!(
            rows("select * where timestamp > TIMESTAMP('2023-12-31T23:00:00-05:00')"),
            [5]
        );
        // NOW() is the `now_ms` passed in: BASE + 2h here.
        assert_eq!(rows("select * where timestamp < now()"), [0, 1]);
        assert_eq!(rows("select * where now() = timestamp"), [2]);
    }

    #[test]
    fn three_valued_logic() {
        // Row 1 has no humidity, row 3 no temperature: their comparisons are NULL.
        assert_eq!(
            rows("select * where temperature > 19 and humidity > 41"),
            [2, 5]
        );
        assert_eq!(
            rows("select * where humidity > 41 or temperature > 21"),
            [1, 2, 3, 4, 5]
        );
        // NOT NULL is NULL, so rows 1 and 3 never pass either way.
        assert_eq!(rows("select * where not (humidity > 41)"), [0]);
        assert_eq!(
            rows("select * where not (humidity > 100 or temperature > 100)"),
            [0, 2, 4, 5]
        );
        // FALSE AND NULL is FALSE; TRUE OR NULL is TRUE.
        assert_eq!(
            rows("select * where not (temperature > 100 and humidity > 0)"),
            [0, 1, 2, 4, 5]
        );
        // A NULL literal makes every comparison NULL; WHERE NULL passes nothing.
        assert_eq!(rows("select * where temperature = null"), Vec::<i64>::new());
        assert_eq!(rows("select * where null"), Vec::<i64>::new());
        assert_eq!(rows("select * where null or month = 3"), [4, 5]);
        // Mixed numeric widths: LONG column against a float literal.
        assert_eq!(rows("select * where month < 1.5"), [0, 1]);
        assert_eq!(rows("select * where -month = -2"), [2, 3]);
        assert_eq!(rows("select * where month <> 2 and month != 3"), [0, 1]);
        assert_eq!(rows("select * where month == 2"), [2, 3]);
    }

    #[test]
    fn null_tests() {
        assert_eq!(rows("select * where label is null"), [1, 3]);
        assert_eq!(rows("select * where label IS NOT NULL"), [0, 2, 4, 5]);
        assert_eq!(rows("select * where motion is null"), [2]);
        assert_eq!(
            rows("select * where not temperature is null"),
            [0, 1, 2, 4, 5]
        );
        assert_eq!(rows("select * where (humidity > 41) is null"), [1]);
    }

    #[test]
    fn bool_predicates() {
        assert_eq!(rows("select * where motion"), [0, 3, 5]);
        assert_eq!(rows("select * where not motion"), [1, 4]);
        assert_eq!(rows("select * where motion and label = 'x'"), [5]);
        assert_eq!(rows("select * where motion or month = 2"), [0, 2, 3, 5]);
        // BOOL = BOOL, where the right side is a comparison's 0/1/NULL.
        assert_eq!(rows("select * where motion = (temperature > 21)"), [4, 5]);
        assert_eq!(rows("select * where motion <> motion"), Vec::<i64>::new());
    }

    #[test]
    fn ordering_with_nulls() {
        // NULL is the largest value: last ascending, first descending.
        assert_eq!(rows("select * order by temperature"), [4, 0, 1, 2, 5, 3]);
        assert_eq!(
            rows("select * order by temperature asc"),
            [4, 0, 1, 2, 5, 3]
        );
        assert_eq!(
            rows("select * order by temperature desc"),
            [3, 5, 2, 1, 0, 4]
        );
        // Ties fall back to the timestamp key.
        assert_eq!(rows("select * order by label"), [0, 2, 4, 5, 1, 3]);
        assert_eq!(rows("select * order by label desc"), [1, 3, 4, 5, 2, 0]);
        assert_eq!(
            rows("select * order by month desc, humidity"),
            [5, 4, 2, 3, 0, 1]
        );
        assert_eq!(rows("select * order by timestamp desc"), [5, 4, 3, 2, 1, 0]);
        assert_eq!(rows("select * order by motion"), [1, 4, 0, 3, 5, 2]);
    }

    #[test]
    fn limit_and_offset() {
        assert_eq!(rows("select * limit 2"), [0, 1]);
        assert_eq!(rows("select * limit 2 offset 1"), [1, 2]);
        assert_eq!(rows("select * limit 0"), Vec::<i64>::new());
        assert_eq!(rows("select * limit 10 offset 5"), [5]);
        assert_eq!(
            rows("select * where motion order by temperature desc limit 2"),
            [3, 5]
        );
        assert_eq!(rows("select * limit 9223372036854775807 offset 4"), [4, 5]);
    }

    #[test]
    fn column_lists_and_names() {
        let conn = device_db();
        let q = translate_text("select humidity, TEMPERATURE where Month = 3", &device()).unwrap();
        assert_eq!(q.columns, [3, 2]);
        assert_eq!(
            run(&conn, &q),
            [
                [SqlValue::Real(60.0), SqlValue::Real(18.0)],
                [SqlValue::Real(45.0), SqlValue::Real(30.0)]
            ]
        );
        let q = translate_text(
            "select \"label\", label, \"timestamp\" where \"motion\" and \"humidity\" > 50",
            &device(),
        )
        .unwrap();
        assert_eq!(q.columns, [5, 5, 0]);
        assert_eq!(
            run(&conn, &q),
            [[
                SqlValue::Null,
                SqlValue::Null,
                SqlValue::Integer(BASE + 3 * HOUR)
            ]]
        );
        fails("select \"Temperature\"", "unknown column \"Temperature\" in container 'device1' (a quoted name must match exactly");
        fails(
            "select * where pressure > 1",
            "unknown column pressure in container 'device1'",
        );
        fails("select * where true", "unknown column true");
        fails("select * order by nope", "unknown column nope");
        fails(
            "select * from device2",
            "FROM names container 'device2', but the query is on container 'device1'",
        );
    }

    #[test]
    fn injection_attempt_matches_nothing() {
        let tql = "select * where label = 'x'' OR 1=1 --'";
        let q = translate_text(tql, &device()).unwrap();
        assert_eq!(q.params, [SqlValue::Text("x' OR 1=1 --".into())]);
        assert!(!q.sql.contains("OR 1=1"), "{}", q.sql);
        assert_eq!(rows(tql), Vec::<i64>::new());
        // The real 'x' rows are there, so the empty result is not an accident.
        assert_eq!(rows("select * where label = 'x'"), [4, 5]);
        // A quoted name is only ever looked up, never written into the SQL.
        fails(
            "select * where \"label\"\"); DROP TABLE t_3; --\" = 'x'",
            "unknown column",
        );
    }

    #[test]
    fn type_errors() {
        fails(
            "select * where timestamp > '2024-01-01T00:00:00Z'",
            "binary operation '>' is not defined for TIMESTAMP and STRING (wrap the literal in TIMESTAMP('...'))",
        );
        fails(
            "select * where '2024' <= timestamp",
            "'<=' is not defined for STRING and TIMESTAMP (wrap the literal",
        );
        fails(
            "select * where label > 'a'",
            "binary operation '>' is not defined for STRING and STRING",
        );
        fails(
            "select * where motion < motion",
            "binary operation '<' is not defined for BOOL and BOOL",
        );
        fails(
            "select * where (month > 1) >= motion",
            "'>=' is not defined for BOOL and BOOL",
        );
        fails(
            "select * where label = 1",
            "'=' is not defined for STRING and LONG",
        );
        fails(
            "select * where motion = 1",
            "'=' is not defined for BOOL and LONG",
        );
        fails(
            "select * where timestamp = 5",
            "'=' is not defined for TIMESTAMP and LONG",
        );
        fails(
            "select * where timestamp > month",
            "'>' is not defined for TIMESTAMP and LONG",
        );
        fails(
            "select * where label = now()",
            "'=' is not defined for STRING and TIMESTAMP",
        );
        fails(
            "select * where -label = 'a'",
            "unary operator '-' is not defined for STRING",
        );
        fails(
            "select * where -timestamp < 0",
            "unary operator '-' is not defined for TIMESTAMP",
        );
        fails(
            "select * where temperature",
            "WHERE requires a boolean condition, but column temperature is FLOAT",
        );
        fails(
            "select * where 1",
            "WHERE requires a boolean condition, but the literal is LONG",
        );
        fails(
            "select * where motion and month",
            "AND requires a boolean condition, but column month is LONG",
        );
        fails(
            "select * where label or motion",
            "OR requires a boolean condition, but column label is STRING",
        );
        fails(
            "select * where not -temperature",
            "NOT requires a boolean condition, but the expression is FLOAT",
        );
    }

    #[test]
    fn blob_columns() {
        let info = ContainerInfo {
            name: "files".into(),
            kind: ContainerKind::Collection,
            columns: vec![
                Column::new("name", ColumnType::String),
                Column::new("data", ColumnType::Blob),
            ],
            row_key: false,
        };
        let error = |tql: &str| match translate_text(tql, &info) {
            Err(StoreError::Query(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(
            error("select * where data = data").contains("'=' is not defined for BLOB and BLOB")
        );
        assert!(
            error("select * where data = null").contains("'=' is not defined for BLOB and NULL")
        );
        assert!(error("select * order by data")
            .contains("ORDER BY is not defined for BLOB column data"));
        assert!(translate_text("select * where data is not null", &info).is_ok());
    }

    #[test]
    fn collections_keep_insertion_order() {
        let info = ContainerInfo {
            name: "people".into(),
            kind: ContainerKind::Collection,
            columns: vec![
                Column::new("name", ColumnType::String),
                Column::new("age", ColumnType::Integer),
            ],
            row_key: true,
        };
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE \"t_3\" (c0 TEXT PRIMARY KEY NOT NULL, c1 INTEGER);
             INSERT INTO \"t_3\" VALUES ('carol', 30), ('alice', 30), ('bob', NULL), ('dave', 25);",
        )
        .unwrap();
        let names = |tql: &str| -> Vec<String> {
            let q = translate_text(tql, &info).unwrap();
            run(&conn, &q)
                .into_iter()
                .map(|row| match &row[0] {
                    SqlValue::Text(s) => s.clone(),
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        assert_eq!(names("select name"), ["carol", "alice", "bob", "dave"]);
        assert_eq!(
            names("select * order by age"),
            ["dave", "carol", "alice", "bob"]
        );
        assert_eq!(
            names("select * order by age desc limit 2"),
            ["bob", "carol"]
        );
        assert_eq!(
            names("select * where age >= 30 order by name"),
            ["alice", "carol"]
        );
    }

    #[test]
    fn garbage_never_panics() {
        let conn = device_db();
        let info = device();
        let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
        let mut translated = 0;
        for _ in 0..20_000 {
            let text = format!("select * where {}", garbage(&mut rng));
            let Ok(stmt) = tql::parse(&text) else {
                continue;
            };
            match translate(&stmt, &info, TABLE, BASE) {
                Ok(query) => {
                    translated += 1;
                    // Whatever translates must also be valid SQL for SQLite.
                    let mut statement = conn
                        .prepare(&query.sql)
                        .unwrap_or_else(|e| panic!("{text:?} → {}: {e}", query.sql));
                    let rows = statement.query(rusqlite::params_from_iter(&query.params));
                    assert!(rows.is_ok(), "{text:?} → {}", query.sql);
                }
                Err(StoreError::Query(m)) => assert!(m.starts_with("TQL: "), "{m}"),
                Err(other) => panic!("{other:?}"),
            }
        }
        assert!(translated > 0, "the generator never produced a valid query");
    }

    #[test]
    fn deepest_accepted_expressions_run() {
        // The parser's limits keep every accepted query within SQLite's own.
        let conn = device_db();
        let nested = format!(
            "select * where {}motion{}",
            "not (".repeat(30),
            ")".repeat(30)
        );
        let q = translate_text(&nested, &device()).unwrap();
        assert_eq!(run(&conn, &q).len(), 3);
        let chain = format!("select * where month = 0{}", " or month = 1".repeat(199));
        let q = translate_text(&chain, &device()).unwrap();
        assert_eq!(run(&conn, &q).len(), 2);
    }
}
