//! The row functions' logic, on rows already read: what TIME_INTERPOLATED
//! and TIME_SAMPLING make of their neighbours, GridDB's sort order (NULL is
//! the largest value), LIMIT/OFFSET on a computed result, and what an
//! aggregation's SQL answer becomes.
//!
//! No I/O: the store reads the few rows each function needs (by key, with
//! SQL) and hands them here, so every backend computes the same answer.

use crate::sql::AggregatePlan;
use crate::{error, AggregateFn, Limit};
use cromflag_model::{Row, StoreError, Value};
use std::cmp::Ordering;

/// Most rows one TIME_SAMPLING may produce (GridDB WebAPI's default maxLimit),
/// so that a one-millisecond interval over years fails instead of exhausting memory.
pub const MAX_SAMPLES: i64 = 1_000_000;

/// An aggregation's rows as TQL answers them: STDDEV is the square root of
/// the variance the SQL computed (SQLite has no SQRT without its math
/// extension); GridDB's single aggregation with no input value gives no row;
/// then the statement's LIMIT.
pub fn finish_aggregates(plan: &AggregatePlan, mut rows: Vec<Row>) -> Vec<Row> {
    for row in &mut rows {
        for (value, output) in row.iter_mut().zip(&plan.outputs) {
            if let (AggregateFn::Stddev, Value::Double(variance)) = (output.function, &*value) {
                *value = Value::Double(variance.sqrt());
            }
        }
    }
    // COUNT is never NULL, so it always gives its row.
    if plan.single && rows.first().is_some_and(|row| row[0].is_null()) {
        rows.clear();
    }
    apply_limit(rows, plan.limit)
}

/// TIME_SAMPLING over the instants `start + k·step ≤ end`, from `rows`: the
/// rows with keys in [start, end] in key order, preceded by the last row
/// before `start` and followed by the first after `end` where they exist.
/// An instant with a row is that row; one between two rows is interpolated
/// ([`interpolate`]); instants before the first row or after the last are
/// skipped (no extrapolation).
pub fn sample(
    rows: &[Row],
    column: Option<usize>,
    start: i64,
    end: i64,
    step: i64,
) -> Result<Vec<Row>, StoreError> {
    let (Some(first), Some(last)) = (rows.first().map(key), rows.last().map(key)) else {
        return Ok(Vec::new());
    };
    // The skipped instants are never visited. i128, because a huge interval
    // must not overflow the arithmetic.
    let (start128, step128) = (i128::from(start), i128::from(step));
    let skipped = ((i128::from(first) - start128).max(0) + step128 - 1) / step128;
    let from = start128 + skipped * step128;
    let to = i128::from(end.min(last));
    if from > to {
        return Ok(Vec::new());
    }
    if (to - from) / step128 >= i128::from(MAX_SAMPLES) {
        return Err(error(format_args!(
            "TIME_SAMPLING would produce more than {MAX_SAMPLES} rows; \
             use a longer interval or a shorter range"
        )));
    }
    // from ≤ to ≤ last, so both fit an i64 now.
    let (from, to) = (from as i64, to as i64);
    let mut samples = Vec::new();
    // `prev` indexes the last row at or before the instant.
    let mut prev = 0;
    let mut instant = from;
    while instant <= to {
        while prev + 1 < rows.len() && key(&rows[prev + 1]) <= instant {
            prev += 1;
        }
        let row = &rows[prev];
        samples.push(if key(row) == instant {
            row.clone()
        } else {
            // key(row) < instant <= last, so a next row exists.
            interpolate(row, &rows[prev + 1], instant, column)
        });
        match instant.checked_add(step) {
            Some(next) => instant = next,
            None => break,
        }
    }
    Ok(samples)
}

/// The row key of a time-series row (column 0, never NULL).
pub fn key(row: &Row) -> i64 {
    match row[0] {
        Value::Timestamp(ms) => ms,
        _ => unreachable!("a time-series row key is a non-null TIMESTAMP"),
    }
}

/// A row at instant `t` between `prev` and `next`: the key is `t`, `column`
/// (if any) is linearly interpolated, everything else is copied from `prev`.
pub fn interpolate(prev: &Row, next: &Row, t: i64, column: Option<usize>) -> Row {
    let mut row = prev.clone();
    row[0] = Value::Timestamp(t);
    if let Some(c) = column {
        let fraction = (t - key(prev)) as f64 / (key(next) - key(prev)) as f64;
        row[c] = lerp(&prev[c], &next[c], fraction);
    }
    row
}

/// `a + (b − a)·fraction` in double precision, converted back to the column's
/// type: integers are truncated toward zero (`as` does exactly that). NULL on
/// either side gives NULL.
fn lerp(a: &Value, b: &Value, fraction: f64) -> Value {
    let (Some(x), Some(y)) = (as_f64(a), as_f64(b)) else {
        return Value::Null;
    };
    let v = x + (y - x) * fraction;
    match a {
        Value::Byte(_) => Value::Byte(v as i8),
        Value::Short(_) => Value::Short(v as i16),
        Value::Integer(_) => Value::Integer(v as i32),
        Value::Long(_) => Value::Long(v as i64),
        Value::Float(_) => Value::Float(v as f32),
        _ => Value::Double(v),
    }
}

/// A number widened exactly to f64 (FLOAT by its binary value, not through
/// its decimal form as `Value::as_f64` does for display): interpolation
/// and ordering work on the stored value.
fn as_f64(value: &Value) -> Option<f64> {
    Some(match *value {
        Value::Byte(v) => f64::from(v),
        Value::Short(v) => f64::from(v),
        Value::Integer(v) => f64::from(v),
        Value::Long(v) => v as f64,
        Value::Float(v) => f64::from(v),
        Value::Double(v) => v,
        _ => return None,
    })
}

/// A stable sort on `(column, descending)` keys with GridDB's NULL-is-largest
/// rule, so that rows equal on every key keep their natural order.
pub fn sort(rows: &mut [Row], keys: &[(usize, bool)]) {
    if keys.is_empty() {
        return;
    }
    rows.sort_by(|a, b| {
        keys.iter()
            .map(|&(c, descending)| {
                let order = compare(&a[c], &b[c]);
                if descending {
                    order.reverse()
                } else {
                    order
                }
            })
            .find(|order| order.is_ne())
            .unwrap_or(Ordering::Equal)
    });
}

/// Orders two values of one column; NULL is the largest value.
fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Greater,
        (_, Value::Null) => Ordering::Less,
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Timestamp(x), Value::Timestamp(y)) => x.cmp(y),
        _ => match (as_f64(a), as_f64(b)) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => Ordering::Equal,
        },
    }
}

/// `rows` after LIMIT's OFFSET, at most its count.
pub fn apply_limit(rows: Vec<Row>, limit: Option<Limit>) -> Vec<Row> {
    let Some(limit) = limit else {
        return rows;
    };
    let offset = usize::try_from(limit.offset.unwrap_or(0)).unwrap_or(usize::MAX);
    let count = usize::try_from(limit.count).unwrap_or(usize::MAX);
    rows.into_iter().skip(offset).take(count).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(t: i64, v: Value) -> Row {
        vec![Value::Timestamp(t), v]
    }

    #[test]
    fn lerp_keeps_the_column_type() {
        // (a, b, fraction, expected)
        for (a, b, fraction, expected) in [
            (
                Value::Double(1.0),
                Value::Double(3.0),
                0.5,
                Value::Double(2.0),
            ),
            (
                Value::Float(0.0),
                Value::Float(1.0),
                0.25,
                Value::Float(0.25),
            ),
            (Value::Long(0), Value::Long(3), 0.5, Value::Long(1)),
            (
                Value::Integer(0),
                Value::Integer(-3),
                0.5,
                Value::Integer(-1),
            ),
            (Value::Short(10), Value::Short(20), 0.99, Value::Short(19)),
            (Value::Byte(-10), Value::Byte(10), 0.5, Value::Byte(0)),
            (Value::Null, Value::Double(1.0), 0.5, Value::Null),
            (Value::Double(1.0), Value::Null, 0.5, Value::Null),
        ] {
            assert_eq!(
                lerp(&a, &b, fraction),
                expected,
                "lerp({a:?}, {b:?}, {fraction})"
            );
        }
    }

    #[test]
    fn interpolation_copies_all_but_key_and_column() {
        let prev = vec![
            Value::Timestamp(0),
            Value::Double(0.0),
            Value::String("a".into()),
        ];
        let next = vec![
            Value::Timestamp(10),
            Value::Double(10.0),
            Value::String("b".into()),
        ];
        assert_eq!(
            interpolate(&prev, &next, 4, Some(1)),
            [
                Value::Timestamp(4),
                Value::Double(4.0),
                Value::String("a".into())
            ]
        );
        assert_eq!(
            interpolate(&prev, &next, 4, None),
            [
                Value::Timestamp(4),
                Value::Double(0.0),
                Value::String("a".into())
            ]
        );
    }

    #[test]
    fn sampling_interpolates_between_and_never_extrapolates() {
        let rows = [
            row(0, Value::Long(0)),
            row(10, Value::Long(100)),
            row(20, Value::Long(100)),
        ];
        let keys = |samples: Vec<Row>| -> Vec<(i64, Value)> {
            samples
                .into_iter()
                .map(|r| (key(&r), r[1].clone()))
                .collect()
        };
        // (start, end, step, column, expected (key, value))
        let cases = [
            (
                0,
                20,
                5,
                Some(1),
                vec![
                    (0, Value::Long(0)),
                    (5, Value::Long(50)),
                    (10, Value::Long(100)),
                    (15, Value::Long(100)),
                    (20, Value::Long(100)),
                ],
            ),
            // `*`: instants between rows copy the previous row.
            (
                3,
                12,
                4,
                None,
                vec![
                    (3, Value::Long(0)),
                    (7, Value::Long(0)),
                    (11, Value::Long(100)),
                ],
            ),
            // Before the first row and after the last: skipped.
            (
                -10,
                30,
                10,
                Some(1),
                vec![
                    (0, Value::Long(0)),
                    (10, Value::Long(100)),
                    (20, Value::Long(100)),
                ],
            ),
            (21, 30, 1, Some(1), vec![]),
            (5, 4, 1, Some(1), vec![]),
            // A huge step neither overflows nor loops.
            (0, 20, i64::MAX, Some(1), vec![(0, Value::Long(0))]),
        ];
        for (start, end, step, column, expected) in cases {
            assert_eq!(
                keys(sample(&rows, column, start, end, step).unwrap()),
                expected,
                "TIME_SAMPLING({column:?}, {start}, {end}, {step})"
            );
        }
        assert!(sample(&[], Some(1), 0, 10, 1).unwrap().is_empty());
        let far = [row(0, Value::Long(0)), row(MAX_SAMPLES * 2, Value::Long(1))];
        let Err(StoreError::Query(m)) = sample(&far, Some(1), 0, MAX_SAMPLES * 2, 1) else {
            panic!("a million samples and more must be refused");
        };
        assert!(m.contains("TIME_SAMPLING would produce more than"), "{m}");
    }

    #[test]
    fn sorting_puts_null_last_ascending_and_keeps_ties_in_order() {
        let mut rows = vec![
            row(0, Value::Null),
            row(1, Value::Double(2.0)),
            row(2, Value::Double(1.0)),
            row(3, Value::Double(2.0)),
        ];
        let order = |rows: &[Row]| rows.iter().map(key).collect::<Vec<_>>();
        // (keys, expected order of row keys)
        for (keys, expected) in [
            (vec![], [0, 1, 2, 3]),
            (vec![(1, false)], [2, 1, 3, 0]),
            (vec![(1, true)], [0, 1, 3, 2]),
            (vec![(1, false), (0, true)], [2, 3, 1, 0]),
        ] {
            rows.sort_by_key(key);
            sort(&mut rows, &keys);
            assert_eq!(order(&rows), expected, "ORDER BY {keys:?}");
        }
    }

    #[test]
    fn limit_applies_offset_then_count() {
        let rows: Vec<Row> = (0..5).map(|t| row(t, Value::Null)).collect();
        for (limit, expected) in [
            (None, vec![0, 1, 2, 3, 4]),
            (
                Some(Limit {
                    count: 2,
                    offset: None,
                }),
                vec![0, 1],
            ),
            (
                Some(Limit {
                    count: 2,
                    offset: Some(4),
                }),
                vec![4],
            ),
            (
                Some(Limit {
                    count: 0,
                    offset: Some(1),
                }),
                vec![],
            ),
            (
                Some(Limit {
                    count: u64::MAX,
                    offset: Some(u64::MAX),
                }),
                vec![],
            ),
        ] {
            let kept: Vec<i64> = apply_limit(rows.clone(), limit).iter().map(key).collect();
            assert_eq!(kept, expected, "{limit:?}");
        }
    }
}
