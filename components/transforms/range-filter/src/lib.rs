//! Drops the rows whose value in one column lies outside `[min, max]`.
//!
//! Variables: `column` (required; matched case-insensitively), `min` and `max`
//! (each optional, a number; a missing bound is unbounded; the bounds are
//! inclusive). Rows with null in the column are kept, and so is every row
//! when the batch lacks the column. A missing `column`, a bound that is not a
//! number, `min > max`, or a non-numeric column is a configuration error: the
//! transform returns it, and the host rejects the batch with that reason.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use cromflag_transform::{export_transform, variable, Batch, Transform};

struct RangeFilter;

impl Transform for RangeFilter {
    fn transform(_device: &str, batch: Batch) -> Result<Batch, String> {
        let column = variable("column").filter(|c| !c.trim().is_empty()).ok_or(
            "range-filter is misconfigured: the variable `column` (the column to filter on) is not set; \
             the batch is rejected until it is",
        )?;
        let min = bound("min")?;
        let max = bound("max")?;
        filter(batch, column.trim(), min, max)
    }
}

export_transform!(RangeFilter);

/// The variable `name` as a bound: unset or empty is `None` (unbounded).
fn bound(name: &str) -> Result<Option<f64>, String> {
    let Some(text) = variable(name).filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    parse_bound(name, &text).map(Some)
}

fn parse_bound(name: &str, text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if !v.is_nan() => Ok(v),
        _ => Err(format!(
            "range-filter is misconfigured: the variable `{name}` is {text:?}, not a number; \
             the batch is rejected until it is fixed"
        )),
    }
}

fn filter(
    mut batch: Batch,
    column: &str,
    min: Option<f64>,
    max: Option<f64>,
) -> Result<Batch, String> {
    if let (Some(lo), Some(hi)) = (min, max) {
        if lo > hi {
            return Err(format!(
                "range-filter is misconfigured: `min` ({lo}) is greater than `max` ({hi}); \
                 the batch is rejected until it is fixed"
            ));
        }
    }
    let Some(col) = batch.column(column) else {
        return Ok(batch);
    };
    let ty = batch.columns[col].type_;
    if !ty.is_numeric() {
        return Err(format!(
            "range-filter is misconfigured: column {column:?} is {ty:?}, not a number; the batch is rejected"
        ));
    }
    let lo = min.unwrap_or(f64::NEG_INFINITY);
    let hi = max.unwrap_or(f64::INFINITY);
    batch
        .rows
        .retain(|row| match row.get(col).and_then(|v| v.as_f64()) {
            // Null (or omitted): kept. NaN is outside every range.
            None => true,
            Some(v) => lo <= v && v <= hi,
        });
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cromflag_transform::testing::set_variable;
    use cromflag_transform::{ColumnType, Value};

    fn batch() -> Batch {
        let mut batch = Batch::builder()
            .column("timestamp", ColumnType::Timestamp)
            .column("Temperature", ColumnType::Double);
        for (i, v) in [Some(-50.0), Some(0.0), None, Some(20.0), Some(99.0)]
            .into_iter()
            .enumerate()
        {
            // A null reading is an omitted trailing value.
            batch = batch.row(
                [Value::Timestamp(i as i64)]
                    .into_iter()
                    .chain(v.map(Value::Double)),
            );
        }
        batch.build()
    }

    fn kept(b: Batch) -> Vec<i64> {
        b.rows
            .iter()
            .map(|r| match r[0] {
                Value::Timestamp(t) => t,
                _ => panic!(),
            })
            .collect()
    }

    #[test]
    fn bounds() {
        assert_eq!(
            kept(filter(batch(), "temperature", Some(0.0), Some(20.0)).unwrap()),
            [1, 2, 3]
        );
        assert_eq!(
            kept(filter(batch(), "temperature", None, Some(0.0)).unwrap()),
            [0, 1, 2]
        );
        assert_eq!(
            kept(filter(batch(), "temperature", Some(21.0), None).unwrap()),
            [2, 4]
        );
        assert_eq!(
            kept(filter(batch(), "temperature", None, None).unwrap()),
            [0, 1, 2, 3, 4]
        );
        assert_eq!(
            kept(filter(batch(), "other", Some(0.0), Some(1.0)).unwrap()),
            [0, 1, 2, 3, 4]
        );
    }

    #[test]
    fn configured_by_variables() {
        let unset = RangeFilter::transform("d", batch()).unwrap_err();
        assert!(unset.contains("`column`"), "{unset}");
        set_variable("column", " temperature ");
        set_variable("min", "0");
        set_variable("max", "");
        assert_eq!(
            kept(RangeFilter::transform("d", batch()).unwrap()),
            [1, 2, 3, 4]
        );
        set_variable("max", "hot");
        let bad = RangeFilter::transform("d", batch()).unwrap_err();
        assert!(bad.contains("`max` is \"hot\""), "{bad}");
    }

    #[test]
    fn errors() {
        assert!(filter(batch(), "temperature", Some(2.0), Some(1.0)).is_err());
        assert!(parse_bound("min", "abc").unwrap_err().contains("`min`"));
        assert_eq!(parse_bound("max", " 1e3 ").unwrap(), 1000.0);
    }
}
