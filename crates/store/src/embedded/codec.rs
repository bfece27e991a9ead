//! How container values live in SQLite: one storage class per column type.
//!
//! BOOL → INTEGER 0/1; STRING → TEXT; BYTE/SHORT/INTEGER/LONG → INTEGER;
//! FLOAT/DOUBLE → REAL; TIMESTAMP → INTEGER epoch ms; BLOB → BLOB. Values
//! are bound in that class whatever the column's affinity, so the shared
//! series table can leave its columns untyped (where column `i` is, is
//! `cromflag_tql::layout`'s). Query parameters ([`SqlParam`]) are bound as
//! the storage class they name.

use super::super::{ColumnType, StoreError, Value};
use crate::tql::exec::{self, Cell};
use crate::tql::sql::SqlParam;
use rusqlite::types::{ToSqlOutput, ValueRef};

/// A value ready to bind. The caller has checked that it matches its column.
pub fn to_sql(value: &Value) -> ToSqlOutput<'_> {
    ToSqlOutput::Borrowed(match value {
        Value::Null => ValueRef::Null,
        Value::Bool(v) => ValueRef::Integer(i64::from(*v)),
        Value::String(v) => ValueRef::Text(v.as_bytes()),
        Value::Byte(v) => ValueRef::Integer(i64::from(*v)),
        Value::Short(v) => ValueRef::Integer(i64::from(*v)),
        Value::Integer(v) => ValueRef::Integer(i64::from(*v)),
        Value::Long(v) | Value::Timestamp(v) => ValueRef::Integer(*v),
        Value::Float(v) => ValueRef::Real(f64::from(*v)),
        Value::Double(v) => ValueRef::Real(*v),
        Value::Blob(v) => ValueRef::Blob(v),
    })
}

/// A query parameter of cromflag-tql's translation, ready to bind.
pub fn param_to_sql(param: &SqlParam) -> ToSqlOutput<'_> {
    ToSqlOutput::Borrowed(match param {
        SqlParam::Null => ValueRef::Null,
        SqlParam::Integer(v) => ValueRef::Integer(*v),
        SqlParam::Real(v) => ValueRef::Real(*v),
        SqlParam::Text(v) => ValueRef::Text(v.as_bytes()),
    })
}

/// Reads a stored cell back as a value of column type `ty`
/// (cromflag-tql's [`exec::value_from_cell`], which every store in the
/// layout shares).
pub fn from_sql(cell: ValueRef<'_>, ty: ColumnType) -> Result<Value, StoreError> {
    let cell = match cell {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(v) => Cell::Integer(v),
        ValueRef::Real(v) => Cell::Real(v),
        ValueRef::Text(v) => Cell::Text(v),
        ValueRef::Blob(v) => Cell::Blob(v),
    };
    exec::value_from_cell(cell, ty)
}
