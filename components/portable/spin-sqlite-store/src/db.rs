//! The database as Spin gives it: one `fermyon:spin/sqlite` connection to
//! the application's `default` database, one statement per `execute`.
//! This module owns the values' way in and out (model values and
//! cromflag-tql's parameters → Spin's values; Spin's values → cells for
//! [`exec::value_from_cell`]), transactions, and running cromflag-tql's
//! executor over the connection ([`Fetch`]).

use crate::fermyon::spin::sqlite::{self, Connection};
use cromflag_model::{Column, Row, StoreError, Value};
use cromflag_tql::exec::{self, Cell, Fetch};
use cromflag_tql::sql::SqlParam;

/// The database label in the component's `sqlite_databases`: the
/// application's own file, which `spin up` creates under `.spin/`.
const DATABASE: &str = "default";

pub struct Db {
    conn: Connection,
}

fn error(e: sqlite::Error) -> StoreError {
    StoreError::Backend(match e {
        sqlite::Error::NoSuchDatabase => {
            format!("spin-sqlite-store: no SQLite database `{DATABASE}`")
        }
        sqlite::Error::AccessDenied => format!(
            "spin-sqlite-store: this component may not use the SQLite database `{DATABASE}` \
             (list it in `sqlite_databases`)"
        ),
        sqlite::Error::InvalidConnection => "SQLite: invalid connection".to_owned(),
        sqlite::Error::DatabaseFull => "SQLite: database full".to_owned(),
        sqlite::Error::Io(message) => message,
    })
}

/// A model value bound in the storage class the layout keeps it in (as the
/// embedded store's codec binds it).
pub fn value_to_sql(value: &Value) -> sqlite::Value {
    match value {
        Value::Null => sqlite::Value::Null,
        Value::Bool(v) => sqlite::Value::Integer(i64::from(*v)),
        Value::String(v) => sqlite::Value::Text(v.clone()),
        Value::Byte(v) => sqlite::Value::Integer(i64::from(*v)),
        Value::Short(v) => sqlite::Value::Integer(i64::from(*v)),
        Value::Integer(v) => sqlite::Value::Integer(i64::from(*v)),
        Value::Long(v) | Value::Timestamp(v) => sqlite::Value::Integer(*v),
        Value::Float(v) => sqlite::Value::Real(f64::from(*v)),
        Value::Double(v) => sqlite::Value::Real(*v),
        Value::Blob(v) => sqlite::Value::Blob(v.clone()),
    }
}

fn param_to_sql(param: &SqlParam) -> sqlite::Value {
    match param {
        SqlParam::Null => sqlite::Value::Null,
        SqlParam::Integer(v) => sqlite::Value::Integer(*v),
        SqlParam::Real(v) => sqlite::Value::Real(*v),
        SqlParam::Text(v) => sqlite::Value::Text(v.clone()),
    }
}

pub fn cell(value: &sqlite::Value) -> Cell<'_> {
    match value {
        sqlite::Value::Null => Cell::Null,
        sqlite::Value::Integer(v) => Cell::Integer(*v),
        sqlite::Value::Real(v) => Cell::Real(*v),
        sqlite::Value::Text(v) => Cell::Text(v.as_bytes()),
        sqlite::Value::Blob(v) => Cell::Blob(v),
    }
}

impl Db {
    pub fn open() -> Result<Db, StoreError> {
        let conn = Connection::open(DATABASE).map_err(error)?;
        Ok(Db { conn })
    }

    /// Runs one statement; its result rows, each a list of values.
    pub fn execute(
        &self,
        statement: &str,
        parameters: &[sqlite::Value],
    ) -> Result<Vec<Vec<sqlite::Value>>, StoreError> {
        let result = self.conn.execute(statement, parameters).map_err(error)?;
        Ok(result.rows.into_iter().map(|row| row.values).collect())
    }

    /// Runs `work` in one write transaction: every statement or none. Each
    /// `execute` commits on its own otherwise; IMMEDIATE takes the write
    /// lock first, so that two instances changing the catalog queue rather
    /// than fail half-way.
    pub fn transaction<T>(
        &self,
        work: impl FnOnce(&Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.execute("BEGIN IMMEDIATE", &[])?;
        match work(self).and_then(|value| self.execute("COMMIT", &[]).map(|_| value)) {
            Ok(value) => Ok(value),
            Err(e) => {
                // The error that matters is the first; a failed rollback
                // leaves nothing committed either.
                let _ = self.execute("ROLLBACK", &[]);
                Err(e)
            }
        }
    }
}

impl Fetch for Db {
    fn fetch(
        &self,
        sql: &str,
        params: &[SqlParam],
        columns: &[Column],
    ) -> Result<Vec<Row>, StoreError> {
        let params: Vec<sqlite::Value> = params.iter().map(param_to_sql).collect();
        self.execute(sql, &params)?
            .iter()
            .map(|row| {
                if row.len() < columns.len() {
                    return Err(StoreError::Backend(format!(
                        "SQLite answered {} columns where {} were asked for",
                        row.len(),
                        columns.len()
                    )));
                }
                columns
                    .iter()
                    .zip(row)
                    .map(|(column, value)| exec::value_from_cell(cell(value), column.column_type))
                    .collect()
            })
            .collect()
    }
}
