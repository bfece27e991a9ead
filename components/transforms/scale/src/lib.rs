//! Multiplies one column by `factor` and adds `offset`: `y = x × factor +
//! offset`, a linear unit conversion (°C → °F is `factor` 1.8, `offset` 32;
//! hPa → kPa is `factor` 0.1). The template for a new transform: the
//! `Transform` impl reads the variables, `scale` does the work, and the tests
//! run both natively with the SDK's test helpers.
//!
//! Variables: `column` (required; matched case-insensitively), `factor`
//! (default 1) and `offset` (default 0), finite numbers. A FLOAT column stays
//! FLOAT and a DOUBLE stays DOUBLE; an integer column becomes DOUBLE. Nulls
//! stay null, other columns are untouched, and a batch without the column
//! passes unchanged. A missing `column`, a `factor` or `offset` that is not a
//! finite number, or a non-numeric column is a configuration error, and a
//! result too large for its type is an error: each rejects the batch, with
//! the reason.

// no_std in the component (so it imports no WASI, which the host refuses);
// std natively, for `cargo test`.
#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use cromflag_transform::{export_transform, variable, Batch, ColumnType, Transform, Value};

struct Scale;

impl Transform for Scale {
    fn transform(_device: &str, batch: Batch) -> Result<Batch, String> {
        let column = variable("column").filter(|c| !c.trim().is_empty()).ok_or(
            "scale is misconfigured: the variable `column` (the column to scale) is not set",
        )?;
        let factor = number("factor", 1.0)?;
        let offset = number("offset", 0.0)?;
        scale(batch, column.trim(), factor, offset)
    }
}

export_transform!(Scale);

/// The variable `name` as a finite number, or `default` when it is unset.
fn number(name: &str, default: f64) -> Result<f64, String> {
    let Some(text) = variable(name) else {
        return Ok(default);
    };
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!(
            "scale is misconfigured: the variable `{name}` is {text:?}, not a finite number"
        )),
    }
}

/// `column` × `factor` + `offset` in every row of `batch`.
fn scale(mut batch: Batch, column: &str, factor: f64, offset: f64) -> Result<Batch, String> {
    let Some(col) = batch.column(column) else {
        // This device does not report it.
        return Ok(batch);
    };
    let ty = batch.columns[col].type_;
    if !ty.is_numeric() {
        return Err(format!(
            "scale is misconfigured: column {column:?} is {ty:?}, not a number"
        ));
    }
    for row in 0..batch.rows.len() {
        let Some(x) = batch.f64_at(row, col) else {
            continue; // null (or omitted) stays null
        };
        let y = x * factor + offset;
        let scaled = match ty {
            // In f64, rounded once to the column's own precision.
            ColumnType::Float => Value::Float(y as f32),
            _ => Value::Double(y),
        };
        // The store refuses infinities; say which row overflowed instead.
        if !scaled.as_f64().is_some_and(f64::is_finite) {
            return Err(format!(
                "scale: row {row}: {x} × {factor} + {offset} is too large for a {ty:?} column"
            ));
        }
        batch.set(row, col, scaled);
    }
    if ty != ColumnType::Float {
        batch.columns[col].type_ = ColumnType::Double;
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cromflag_transform::testing::set_variable;

    /// Three readings of a `temperature` column of type `ty`, the second null.
    fn readings(ty: ColumnType, first: Value, third: Value) -> Batch {
        Batch::builder()
            .column("timestamp", ColumnType::Timestamp)
            .column("Temperature", ty)
            .column("humidity", ColumnType::Double)
            .row([Value::Timestamp(1), first, 40.0.into()])
            .row([Value::Timestamp(2), Value::Null, 41.0.into()])
            .row([Value::Timestamp(3), third])
            .build()
    }

    #[test]
    fn celsius_to_fahrenheit_through_the_variables() {
        set_variable("column", "temperature");
        set_variable("factor", "1.8");
        set_variable("offset", "32");
        let out = Scale::transform(
            "sensor-1",
            readings(ColumnType::Double, 25.0.into(), (-40.0).into()),
        )
        .unwrap();
        let expected = Batch::builder()
            .column("timestamp", ColumnType::Timestamp)
            .column("Temperature", ColumnType::Double)
            .column("humidity", ColumnType::Double)
            .row([Value::Timestamp(1), 77.0.into(), 40.0.into()])
            .row([Value::Timestamp(2), Value::Null, 41.0.into()])
            .row([Value::Timestamp(3), (-40.0).into()])
            .build();
        assert_eq!(out, expected);
        assert_eq!(out.check(), Ok(()));
    }

    #[test]
    fn defaults_leave_the_values_and_types_alone() {
        set_variable("column", "temperature");
        let batch = readings(ColumnType::Double, 21.5.into(), 0.0.into());
        assert_eq!(Scale::transform("d", batch.clone()).unwrap(), batch);
    }

    #[test]
    fn float_stays_float_and_integers_become_double() {
        let out = scale(
            readings(ColumnType::Float, 1013.25f32.into(), 990f32.into()),
            "temperature",
            0.1,
            0.0,
        )
        .unwrap();
        assert_eq!(out.columns[1].type_, ColumnType::Float);
        assert_eq!(out.rows[0][1], Value::Float(101.325));
        assert_eq!(out.rows[2][1], Value::Float(99.0));

        let out = scale(
            readings(ColumnType::Integer, 3i32.into(), (-2i32).into()),
            "temperature",
            0.5,
            1.0,
        )
        .unwrap();
        assert_eq!(out.columns[1].type_, ColumnType::Double);
        assert_eq!(out.rows[0][1], Value::Double(2.5));
        assert_eq!(out.rows[2][1], Value::Double(0.0));
        assert_eq!(out.check(), Ok(()));
    }

    #[test]
    fn a_batch_without_the_column_passes_unchanged() {
        set_variable("column", "pressure");
        set_variable("factor", "10");
        let batch = readings(ColumnType::Double, 1.0.into(), 2.0.into());
        assert_eq!(Scale::transform("d", batch.clone()).unwrap(), batch);
    }

    #[test]
    fn misconfiguration_rejects_the_batch_saying_what_to_fix() {
        let batch = || readings(ColumnType::Double, 1.0.into(), 2.0.into());
        let unset = Scale::transform("d", batch()).unwrap_err();
        assert!(unset.contains("`column`"), "{unset}");

        set_variable("column", "temperature");
        for (name, bad) in [("factor", "1,8"), ("offset", "inf"), ("factor", "NaN")] {
            set_variable(name, bad);
            let why = Scale::transform("d", batch()).unwrap_err();
            assert!(why.contains(&format!("`{name}` is {bad:?}")), "{why}");
            set_variable(name, "1");
        }

        let text = Batch::builder()
            .column("timestamp", ColumnType::Timestamp)
            .column("temperature", ColumnType::String)
            .row([Value::Timestamp(1), "warm".into()])
            .build();
        let why = Scale::transform("d", text).unwrap_err();
        assert!(why.contains("not a number"), "{why}");
    }

    #[test]
    fn an_overflowing_result_is_an_error_naming_the_row() {
        let why = scale(
            readings(ColumnType::Float, 1.0f32.into(), 1e30f32.into()),
            "temperature",
            1e10,
            0.0,
        )
        .unwrap_err();
        assert!(why.starts_with("scale: row 2:"), "{why}");
    }
}
