//! TQL's time: the UTC calendar arithmetic of TIMESTAMPADD/TIMESTAMPDIFF and
//! the text of `TIMESTAMP('…')`.
//!
//! The one piece of semantics every backend needs to answer identically, so
//! it lives here and not in each backend: the embedded store folds constant
//! time functions with it, and checks its SQLite calendar against it.

use crate::{error, TimeUnit};
use cromflag_model::{StoreError, TIMESTAMP_RANGE};

/// `ms + amount × unit` (TIMESTAMPADD), with UTC calendar arithmetic for YEAR
/// and MONTH: the day of month is clamped to the target month's length, so
/// Jan 31 + 1 MONTH is Feb 28 (or 29). `None` when the result leaves the
/// TIMESTAMP range.
pub fn timestamp_add(unit: TimeUnit, ms: i64, amount: i64) -> Option<i64> {
    let result = match unit.months() {
        None => ms.checked_add(amount.checked_mul(unit.fixed_ms()?)?)?,
        Some(per_unit) => {
            let months = amount.checked_mul(per_unit)?;
            let start = chrono::DateTime::from_timestamp_millis(ms)?;
            let magnitude = chrono::Months::new(u32::try_from(months.unsigned_abs()).ok()?);
            let moved = if months >= 0 {
                start.checked_add_months(magnitude)?
            } else {
                start.checked_sub_months(magnitude)?
            };
            moved.timestamp_millis()
        }
    };
    TIMESTAMP_RANGE.contains(&result).then_some(result)
}

/// `left − right` in whole `unit`s, truncated toward zero (TIMESTAMPDIFF).
/// For YEAR and MONTH it is the largest whole number of units that can be
/// added to `right` (with [`timestamp_add`]) without passing `left`, so the
/// two functions agree: Jan 31 → Feb 29 is one MONTH.
pub fn timestamp_diff(unit: TimeUnit, left: i64, right: i64) -> i64 {
    let Some(per_unit) = unit.months() else {
        // Both are in TIMESTAMP_RANGE, so the difference cannot overflow.
        return (left - right) / unit.fixed_ms().unwrap_or(1);
    };
    let month_index = |ms: i64| {
        use chrono::Datelike;
        let date = chrono::DateTime::from_timestamp_millis(ms).expect("in range");
        i64::from(date.year()) * 12 + i64::from(date.month0())
    };
    let mut months = month_index(left) - month_index(right);
    // The calendar difference can overshoot by one when the day or time of
    // `left` is earlier in its month than `right`'s.
    let lands = |m: i64| timestamp_add(TimeUnit::Month, right, m);
    if months > 0 && lands(months).is_none_or(|t| t > left) {
        months -= 1;
    } else if months < 0 && lands(months).is_none_or(|t| t < left) {
        months += 1;
    }
    months / per_unit
}

/// Parses `YYYY-MM-DDThh:mm:ss[.fraction](Z|±hh:mm|±hhmm)` to epoch ms,
/// truncating the fraction to milliseconds (TIMESTAMP's precision).
pub(crate) fn parse_timestamp(text: &str) -> Result<i64, StoreError> {
    let invalid = || {
        error(format_args!(
            "TIMESTAMP('{text}') is not a valid timestamp: \
             expected 'YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm|±hhmm)'"
        ))
    };
    let ms = timestamp_millis(text.as_bytes()).ok_or_else(invalid)?;
    if !TIMESTAMP_RANGE.contains(&ms) {
        return Err(error(format_args!(
            "TIMESTAMP('{text}') is outside the TIMESTAMP range (1970-01-01 to 9999-12-31 UTC)"
        )));
    }
    Ok(ms)
}

/// The shape check and arithmetic of [`parse_timestamp`]; `None` for any other shape
/// or an impossible date or time (February 30th, 24:00).
fn timestamp_millis(b: &[u8]) -> Option<i64> {
    // A fixed-width run of ASCII digits as a number.
    let number = |from: usize, len: usize| -> Option<u32> {
        b.get(from..from + len)?.iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if !separators.iter().all(|&(i, s)| b.get(i) == Some(&s)) {
        return None;
    }
    let (year, month, day) = (number(0, 4)?, number(5, 2)?, number(8, 2)?);
    let (hour, minute, second) = (number(11, 2)?, number(14, 2)?, number(17, 2)?);

    let mut i = 19;
    let mut millis = 0;
    if b.get(i) == Some(&b'.') {
        let digits = b[i + 1..].iter().take_while(|d| d.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        // Keep the first three digits, padded: ".5" is 500 ms, ".123456" is 123 ms.
        let kept = digits.min(3);
        millis = number(i + 1, kept)? * 10u32.pow(3 - kept as u32);
        i += 1 + digits;
    }

    let offset_minutes: i64 = match &b[i..] {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), ..] => {
            let zone = &b[i + 1..];
            let (hours, minutes) = match zone {
                [_, _, b':', _, _] => (number(i + 1, 2)?, number(i + 4, 2)?),
                [_, _, _, _] => (number(i + 1, 2)?, number(i + 3, 2)?),
                _ => return None,
            };
            if hours > 23 || minutes > 59 {
                return None;
            }
            let magnitude = i64::from(hours * 60 + minutes);
            if *sign == b'-' {
                -magnitude
            } else {
                magnitude
            }
        }
        _ => return None,
    };

    let local = chrono::NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?
        .and_hms_milli_opt(hour, minute, second, millis)?;
    // Local time = UTC + offset, so UTC = local - offset.
    Some(local.and_utc().timestamp_millis() - offset_minutes * 60_000)
}
#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        parse_timestamp(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn calendar_arithmetic() {
        let jan31 = ms("2024-01-31T10:00:00.250Z");
        // (unit, start, amount, expected)
        let adds = [
            // Clamped to the end of the shorter month (2024 is a leap year).
            (
                TimeUnit::Month,
                jan31,
                1,
                Some(ms("2024-02-29T10:00:00.250Z")),
            ),
            (
                TimeUnit::Month,
                jan31,
                13,
                Some(ms("2025-02-28T10:00:00.250Z")),
            ),
            (
                TimeUnit::Month,
                ms("2024-03-31T00:00:00Z"),
                -1,
                Some(ms("2024-02-29T00:00:00Z")),
            ),
            (
                TimeUnit::Year,
                ms("2024-02-29T00:00:00Z"),
                1,
                Some(ms("2025-02-28T00:00:00Z")),
            ),
            (TimeUnit::Hour, 0, 2, Some(7_200_000)),
            (TimeUnit::Day, 0, -1, None),
            (TimeUnit::Year, 0, 10_000, None),
            (TimeUnit::Millisecond, 5, i64::MAX, None),
        ];
        for (unit, start, amount, expected) in adds {
            assert_eq!(
                timestamp_add(unit, start, amount),
                expected,
                "TIMESTAMPADD({unit}, {start}, {amount})"
            );
        }

        // (unit, left, right, left − right truncated toward zero)
        let diffs = [
            (TimeUnit::Hour, 7_199_999, 0, 1),
            (TimeUnit::Hour, 0, 7_199_999, -1),
            (TimeUnit::Second, 1_500, 0, 1),
            // Jan 31 + 1 month = Feb 29, so that is one whole month; Feb 28 is not.
            (TimeUnit::Month, ms("2024-02-29T10:00:00.250Z"), jan31, 1),
            (TimeUnit::Month, ms("2024-02-28T10:00:00Z"), jan31, 0),
            (TimeUnit::Month, jan31, ms("2024-03-31T10:00:00.250Z"), -2),
            (TimeUnit::Month, jan31, ms("2024-03-31T10:00:00.251Z"), -2),
            // Mar 31 10:00:00.249 − 2 months is Jan 31 10:00:00.249, before jan31 (.250).
            (TimeUnit::Month, jan31, ms("2024-03-31T10:00:00.249Z"), -1),
            (TimeUnit::Year, ms("2025-01-31T10:00:00.249Z"), jan31, 0),
            (TimeUnit::Year, ms("2026-01-31T10:00:00.250Z"), jan31, 2),
        ];
        for (unit, left, right, expected) in diffs {
            assert_eq!(
                timestamp_diff(unit, left, right),
                expected,
                "TIMESTAMPDIFF({unit}, {left}, {right})"
            );
        }
    }

    #[test]
    fn timestamp_text() {
        let base = 1_704_067_200_000; // 2024-01-01T00:00:00Z
        for (text, ms) in [
            ("2024-01-01T00:00:00Z", base),
            ("2024-01-01T00:00:00.5Z", base + 500),
            ("2024-01-01T00:00:00.123456Z", base + 123),
            ("2024-01-01T09:00:00+09:00", base),
            ("2024-01-01T09:00:00+0900", base),
            ("2023-12-31T19:30:00-04:30", base),
            ("1970-01-01T00:00:00Z", 0),
            ("9999-12-31T23:59:59.999Z", *TIMESTAMP_RANGE.end()),
        ] {
            assert_eq!(parse_timestamp(text), Ok(ms), "{text}");
        }
        // Each through the parser: the message names the text as written.
        for (text, needle) in [
            ("2024-01-01", "is not a valid timestamp"),
            ("2024-01-01T00:00:00", "is not a valid timestamp"),
            ("2024-01-01 00:00:00Z", "is not a valid timestamp"),
            ("2024-1-01T00:00:00Z", "is not a valid timestamp"),
            ("2024-02-30T00:00:00Z", "is not a valid timestamp"),
            ("2024-01-01T24:00:00Z", "is not a valid timestamp"),
            ("2024-01-01T00:00:60Z", "is not a valid timestamp"),
            ("2024-01-01T00:00:00.Z", "is not a valid timestamp"),
            ("2024-01-01T00:00:00+9:00", "is not a valid timestamp"),
            ("2024-01-01T00:00:00+24:00", "is not a valid timestamp"),
            ("2024-01-01T00:00:00Zjunk", "is not a valid timestamp"),
            ("２024-01-01T00:00:00Z", "is not a valid timestamp"),
            ("", "is not a valid timestamp"),
            ("1969-12-31T23:59:59Z", "is outside the TIMESTAMP range"),
            (
                "9999-12-31T23:59:59-01:00",
                "is outside the TIMESTAMP range",
            ),
        ] {
            let query = format!("select * where timestamp('{text}')");
            match crate::parse(&query) {
                Err(StoreError::Query(m)) => assert!(
                    m.starts_with("TQL: ") && m.contains(&format!("TIMESTAMP('{text}') {needle}")),
                    "{query}: {m:?} lacks {needle:?}"
                ),
                other => panic!("{query}: expected a query error, got {other:?}"),
            }
        }
    }
}
