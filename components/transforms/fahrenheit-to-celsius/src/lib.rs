//! Converts one column from degrees Fahrenheit to degrees Celsius:
//! `c = (f − 32) × 5/9`.
//!
//! Variables: `column`, the column to convert (default `temperature`; matched
//! case-insensitively). A FLOAT column stays FLOAT and a DOUBLE stays DOUBLE;
//! an integer column becomes DOUBLE (°C are rarely whole). Nulls stay null, and
//! a batch without the column passes unchanged. A non-numeric column is an
//! error (it cannot be a temperature).

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use cromflag_transform::{export_transform, variable, Batch, ColumnType, Transform, Value};

struct FahrenheitToCelsius;

impl Transform for FahrenheitToCelsius {
    fn transform(_device: &str, batch: Batch) -> Result<Batch, String> {
        let column = variable("column").unwrap_or_else(|| "temperature".into());
        convert(batch, &column)
    }
}

export_transform!(FahrenheitToCelsius);

fn celsius(fahrenheit: f64) -> f64 {
    (fahrenheit - 32.0) * 5.0 / 9.0
}

fn convert(mut batch: Batch, column: &str) -> Result<Batch, String> {
    let Some(col) = batch.column(column) else {
        return Ok(batch);
    };
    let ty = batch.columns[col].type_;
    if !ty.is_numeric() {
        return Err(format!(
            "fahrenheit-to-celsius: column {column:?} is {ty:?}, not a number"
        ));
    }
    for row in 0..batch.rows.len() {
        let converted = match *batch.value(row, col) {
            Value::Null => continue,
            // f32 arithmetic in f64, rounded once.
            Value::Float(f) => Value::Float(celsius(f.into()) as f32),
            ref v => match v.as_f64() {
                Some(f) => Value::Double(celsius(f)),
                None => return Err(format!(
                    "fahrenheit-to-celsius: a value of column {column:?} does not match its type {ty:?}"
                )),
            },
        };
        batch.set(row, col, converted);
    }
    if !matches!(ty, ColumnType::Float | ColumnType::Double) {
        batch.columns[col].type_ = ColumnType::Double;
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cromflag_transform::testing::set_variable;

    fn batch(ty: ColumnType, values: &[Value]) -> Batch {
        let mut batch = Batch::builder()
            .column("timestamp", ColumnType::Timestamp)
            .column("Temperature", ty)
            .column("humidity", ColumnType::Double);
        for (i, v) in values.iter().enumerate() {
            batch = batch.row([Value::Timestamp(i as i64), v.clone(), 40.0.into()]);
        }
        batch.build()
    }

    #[test]
    fn converts_keeping_the_type() {
        let out = convert(
            batch(ColumnType::Double, &[Value::Double(78.0), Value::Null]),
            "temperature",
        )
        .unwrap();
        let Value::Double(c) = out.rows[0][1] else {
            panic!()
        };
        assert!((c - 25.555_555).abs() < 1e-5);
        assert!(out.rows[1][1].is_null());
        assert_eq!(out.rows[0][2], Value::Double(40.0));

        let out = convert(
            batch(ColumnType::Float, &[Value::Float(212.0)]),
            "temperature",
        )
        .unwrap();
        assert_eq!(out.columns[1].type_, ColumnType::Float);
        assert_eq!(out.rows[0][1], Value::Float(100.0));

        let out = convert(
            batch(ColumnType::Integer, &[Value::Integer(32)]),
            "temperature",
        )
        .unwrap();
        assert_eq!(out.columns[1].type_, ColumnType::Double);
        assert_eq!(out.rows[0][1], Value::Double(0.0));
    }

    #[test]
    fn the_column_is_a_variable_defaulting_to_temperature() {
        let input = batch(ColumnType::Double, &[Value::Double(212.0)]);
        let out = FahrenheitToCelsius::transform("d", input.clone()).unwrap();
        assert_eq!(out.rows[0][1], Value::Double(100.0));
        set_variable("column", "humidity");
        let out = FahrenheitToCelsius::transform("d", input).unwrap();
        assert_eq!(out.rows[0][1], Value::Double(212.0));
        assert_eq!(out.rows[0][2], Value::Double(celsius(40.0)));
    }

    #[test]
    fn absent_column_and_short_rows() {
        let mut b = batch(ColumnType::Double, &[Value::Double(50.0)]);
        b.rows[0].truncate(1);
        let out = convert(b, "temperature").unwrap();
        assert!(out.rows[0].len() == 1 || out.rows[0][1].is_null());
        assert!(convert(batch(ColumnType::Double, &[]), "nope").is_ok());
        assert!(convert(batch(ColumnType::String, &[]), "temperature").is_err());
    }
}
