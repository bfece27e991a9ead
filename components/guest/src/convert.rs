//! The data model's values, columns and rows between `cromflag_logic`'s
//! model and the WIT-generated `cromflag:iot/types`, both ways: for the
//! store and pipeline imports here, and for components that export the
//! store (`griddb-store`), whose bindings share these types. Query results
//! cross column-major (`column-data`): the model's `to_columns` and
//! `from_columns` turn rows into columns and back, and here the columns only
//! move between the two sets of types.

use crate::cromflag::iot::types as wit;
use cromflag_logic::model as m;

pub fn column_to_wit(c: m::Column) -> wit::Column {
    wit::Column {
        name: c.name,
        type_: type_to_wit(c.column_type),
    }
}

pub fn row_to_wit(row: m::Row) -> wit::Row {
    row.into_iter().map(value_to_wit).collect()
}

pub fn column_from_wit(c: wit::Column) -> m::Column {
    m::Column::new(c.name, type_from_wit(c.type_))
}

fn type_to_wit(t: m::ColumnType) -> wit::ColumnType {
    match t {
        m::ColumnType::Bool => wit::ColumnType::Bool,
        m::ColumnType::String => wit::ColumnType::String,
        m::ColumnType::Byte => wit::ColumnType::Byte,
        m::ColumnType::Short => wit::ColumnType::Short,
        m::ColumnType::Integer => wit::ColumnType::Integer,
        m::ColumnType::Long => wit::ColumnType::Long,
        m::ColumnType::Float => wit::ColumnType::Float,
        m::ColumnType::Double => wit::ColumnType::Double,
        m::ColumnType::Timestamp => wit::ColumnType::Timestamp,
        m::ColumnType::Blob => wit::ColumnType::Blob,
    }
}

fn type_from_wit(t: wit::ColumnType) -> m::ColumnType {
    match t {
        wit::ColumnType::Bool => m::ColumnType::Bool,
        wit::ColumnType::String => m::ColumnType::String,
        wit::ColumnType::Byte => m::ColumnType::Byte,
        wit::ColumnType::Short => m::ColumnType::Short,
        wit::ColumnType::Integer => m::ColumnType::Integer,
        wit::ColumnType::Long => m::ColumnType::Long,
        wit::ColumnType::Float => m::ColumnType::Float,
        wit::ColumnType::Double => m::ColumnType::Double,
        wit::ColumnType::Timestamp => m::ColumnType::Timestamp,
        wit::ColumnType::Blob => m::ColumnType::Blob,
    }
}

pub fn value_to_wit(v: m::Value) -> wit::Value {
    match v {
        m::Value::Null => wit::Value::Null,
        m::Value::Bool(v) => wit::Value::Bool(v),
        m::Value::String(v) => wit::Value::String(v),
        m::Value::Byte(v) => wit::Value::Byte(v),
        m::Value::Short(v) => wit::Value::Short(v),
        m::Value::Integer(v) => wit::Value::Integer(v),
        m::Value::Long(v) => wit::Value::Long(v),
        m::Value::Float(v) => wit::Value::Float(v),
        m::Value::Double(v) => wit::Value::Double(v),
        m::Value::Timestamp(v) => wit::Value::Timestamp(v),
        m::Value::Blob(v) => wit::Value::Blob(v),
    }
}

pub fn value_from_wit(v: wit::Value) -> m::Value {
    match v {
        wit::Value::Null => m::Value::Null,
        wit::Value::Bool(v) => m::Value::Bool(v),
        wit::Value::String(v) => m::Value::String(v),
        wit::Value::Byte(v) => m::Value::Byte(v),
        wit::Value::Short(v) => m::Value::Short(v),
        wit::Value::Integer(v) => m::Value::Integer(v),
        wit::Value::Long(v) => m::Value::Long(v),
        wit::Value::Float(v) => m::Value::Float(v),
        wit::Value::Double(v) => m::Value::Double(v),
        wit::Value::Timestamp(v) => m::Value::Timestamp(v),
        wit::Value::Blob(v) => m::Value::Blob(v),
    }
}

pub fn row_from_wit(row: wit::Row) -> m::Row {
    row.into_iter().map(value_from_wit).collect()
}

pub fn column_data_to_wit(data: m::ColumnData) -> wit::ColumnData {
    use m::ColumnValues as M;
    use wit::ColumnValues as W;
    wit::ColumnData {
        values: match data.values {
            M::Bool(v) => W::Bool(v),
            M::String(v) => W::String(v),
            M::Byte(v) => W::Byte(v),
            M::Short(v) => W::Short(v),
            M::Integer(v) => W::Integer(v),
            M::Long(v) => W::Long(v),
            M::Float(v) => W::Float(v),
            M::Double(v) => W::Double(v),
            M::Timestamp(v) => W::Timestamp(v),
            M::Blob(v) => W::Blob(v),
        },
        nulls: data.nulls,
    }
}

pub fn column_data_from_wit(data: wit::ColumnData) -> m::ColumnData {
    use m::ColumnValues as M;
    use wit::ColumnValues as W;
    m::ColumnData {
        values: match data.values {
            W::Bool(v) => M::Bool(v),
            W::String(v) => M::String(v),
            W::Byte(v) => M::Byte(v),
            W::Short(v) => M::Short(v),
            W::Integer(v) => M::Integer(v),
            W::Long(v) => M::Long(v),
            W::Float(v) => M::Float(v),
            W::Double(v) => M::Double(v),
            W::Timestamp(v) => M::Timestamp(v),
            W::Blob(v) => M::Blob(v),
        },
        nulls: data.nulls,
    }
}
