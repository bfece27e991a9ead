//! Adds a DOUBLE column with the dew point (°C), computed from a temperature
//! (°C) and a relative humidity (%) column with the Magnus formula:
//!
//! ```text
//! γ  = ln(RH / 100) + a·T / (b + T)
//! Td = b·γ / (a − γ)
//! ```
//!
//! with a = 17.62 and b = 243.12 °C, the constants of Sonntag (1990) as the
//! WMO recommends them for water (good to ±0.35 °C from −45 °C to 60 °C).
//! Nothing is rounded.
//!
//! Variables: `temperature` (default `temperature`) and `humidity` (default
//! `humidity`), the input columns (matched case-insensitively); `output`
//! (default `dew_point`), the new column. The dew point is null where an input
//! is null or not a number, or RH ≤ 0. A batch lacking an input column
//! gets a column of nulls (the device may report humidity only sometimes); a
//! batch that already has the output column is an error (it would be overwritten).

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use cromflag_transform::{export_transform, variable, Batch, ColumnType, Transform, Value};

/// Magnus coefficient a (dimensionless), Sonntag 1990, over water.
const A: f64 = 17.62;
/// Magnus coefficient b (°C), Sonntag 1990, over water.
const B: f64 = 243.12;

struct DewPoint;

impl Transform for DewPoint {
    fn transform(_device: &str, batch: Batch) -> Result<Batch, String> {
        let temperature = variable("temperature").unwrap_or_else(|| "temperature".into());
        let humidity = variable("humidity").unwrap_or_else(|| "humidity".into());
        let output = variable("output").unwrap_or_else(|| "dew_point".into());
        add_dew_point(batch, &temperature, &humidity, &output)
    }
}

export_transform!(DewPoint);

/// The dew point (°C) at `t` °C and `rh` % relative humidity; `None` for
/// `rh ≤ 0` (ln is undefined) or a non-finite result.
pub fn dew_point(t: f64, rh: f64) -> Option<f64> {
    // `rh <= 0.0` would let NaN through.
    if rh.is_nan() || rh <= 0.0 {
        return None;
    }
    let gamma = libm::log(rh / 100.0) + A * t / (B + t);
    let td = B * gamma / (A - gamma);
    td.is_finite().then_some(td)
}

fn add_dew_point(
    mut batch: Batch,
    temperature: &str,
    humidity: &str,
    output: &str,
) -> Result<Batch, String> {
    if batch.column(output).is_some() {
        return Err(format!(
            "dew-point: the batch already has a column {output:?}; set the variable `output` to another name"
        ));
    }
    let t = batch.column(temperature);
    let rh = batch.column(humidity);
    batch.add_column(output, ColumnType::Double, |b, row| {
        let t = t.and_then(|c| b.f64_at(row, c));
        let rh = rh.and_then(|c| b.f64_at(row, c));
        match (t, rh) {
            (Some(t), Some(rh)) => dew_point(t, rh).map_or(Value::Null, Value::Double),
            _ => Value::Null,
        }
    });
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cromflag_transform::testing::set_variable;

    fn readings() -> Batch {
        Batch::builder()
            .column("timestamp", ColumnType::Timestamp)
            .column("Temperature", ColumnType::Float)
            .column("humidity", ColumnType::Integer)
            .row([Value::Timestamp(1), 25f32.into(), 60i32.into()])
            .row([Value::Timestamp(2), Value::Null, 60i32.into()])
            .row([Value::Timestamp(3), 25f32.into()])
            .row([Value::Timestamp(4), 25f32.into(), 0i32.into()])
            .build()
    }

    #[test]
    fn magnus() {
        // 25 °C at 60 % RH: 16.69 °C (Magnus with these constants).
        let td = dew_point(25.0, 60.0).unwrap();
        assert!((td - 16.69).abs() < 0.01, "{td}");
        // Saturated air: the dew point is the temperature.
        assert!((dew_point(10.0, 100.0).unwrap() - 10.0).abs() < 1e-9);
        assert_eq!(dew_point(10.0, 0.0), None);
        assert_eq!(dew_point(10.0, -3.0), None);
    }

    #[test]
    fn adds_a_column() {
        let out = add_dew_point(readings(), "temperature", "humidity", "dew_point").unwrap();
        assert_eq!(out.columns.len(), 4);
        assert_eq!(out.columns[3].type_, ColumnType::Double);
        assert!(matches!(out.rows[0][3], Value::Double(d) if (d - 16.69).abs() < 0.01));
        for row in &out.rows[1..] {
            assert_eq!(row.len(), 4);
            assert!(row[3].is_null());
        }
        assert!(add_dew_point(out, "temperature", "humidity", "DEW_POINT").is_err());
    }

    #[test]
    fn the_columns_are_variables() {
        set_variable("output", "td");
        let out = DewPoint::transform("d", readings()).unwrap();
        assert_eq!(out.columns[3].name, "td");
        assert_eq!(
            out.rows[0][3],
            Value::Double(dew_point(25.0, 60.0).unwrap())
        );
        // An input it does not find: a column of nulls.
        set_variable("humidity", "rh");
        let out = DewPoint::transform("d", readings()).unwrap();
        assert!(out.rows.iter().all(|row| row[3].is_null()));
    }
}
