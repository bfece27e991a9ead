//! How container values live in SQLite: one storage class per column type.
//!
//! BOOL → INTEGER 0/1; STRING → TEXT; BYTE/SHORT/INTEGER/LONG → INTEGER;
//! FLOAT/DOUBLE → REAL; TIMESTAMP → INTEGER epoch ms; BLOB → BLOB. Values
//! are bound in that class whatever the column's affinity, so the shared
//! series table can leave its columns untyped (where column `i` is, is
//! `cromflag_tql::layout`'s). Query parameters ([`SqlParam`]) are bound as
//! the storage class they name.

use super::super::{ColumnType, StoreError, Value};
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

/// Reads a stored cell back as a value of column type `ty`.
pub fn from_sql(cell: ValueRef<'_>, ty: ColumnType) -> Result<Value, StoreError> {
    let corrupt =
        || StoreError::Backend(format!("stored value {cell:?} does not fit a {ty} column"));
    Ok(match (cell, ty) {
        (ValueRef::Null, _) => Value::Null,
        (ValueRef::Integer(v), ColumnType::Bool) => Value::Bool(v != 0),
        (ValueRef::Integer(v), ColumnType::Byte) => {
            Value::Byte(v.try_into().map_err(|_| corrupt())?)
        }
        (ValueRef::Integer(v), ColumnType::Short) => {
            Value::Short(v.try_into().map_err(|_| corrupt())?)
        }
        (ValueRef::Integer(v), ColumnType::Integer) => {
            Value::Integer(v.try_into().map_err(|_| corrupt())?)
        }
        (ValueRef::Integer(v), ColumnType::Long) => Value::Long(v),
        (ValueRef::Integer(v), ColumnType::Timestamp) => Value::Timestamp(v),
        (ValueRef::Real(v), ColumnType::Float) => Value::Float(v as f32),
        (ValueRef::Real(v), ColumnType::Double) => Value::Double(v),
        (ValueRef::Text(v), ColumnType::String) => {
            Value::String(std::str::from_utf8(v).map_err(|_| corrupt())?.to_owned())
        }
        (ValueRef::Blob(v), ColumnType::Blob) => Value::Blob(v.to_vec()),
        _ => return Err(corrupt()),
    })
}
