//! Report periods: days, ISO weeks and months aligned to local midnight in a
//! time zone, with daylight-saving changes handled by the IANA database
//! (chrono-tz). A period is `[start, end)`; a local day may last 23 or 25 hours.

use super::body::Period;
use chrono::{
    DateTime, Datelike, Days, Months, NaiveDate, NaiveTime, SecondsFormat, TimeZone, Utc,
};
use chrono_tz::Tz;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granularity {
    Day,
    /// ISO week, Monday to Monday.
    Week,
    Month,
}

/// A period as local dates: `[first, next)` in `tz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalPeriod {
    pub granularity: Granularity,
    pub tz: Tz,
    pub first: NaiveDate,
    pub next: NaiveDate,
}

impl LocalPeriod {
    /// The latest period of `granularity` that has ended at `at` (in `tz`): the
    /// day before, the week before, or the month before the one `at` falls in.
    pub fn last_complete(granularity: Granularity, tz: Tz, at: DateTime<Utc>) -> LocalPeriod {
        let current = LocalPeriod::containing(granularity, tz, at.with_timezone(&tz).date_naive());
        current.previous()
    }

    /// The period of `granularity` that contains the local date `date`.
    pub fn containing(granularity: Granularity, tz: Tz, date: NaiveDate) -> LocalPeriod {
        let first = match granularity {
            Granularity::Day => date,
            Granularity::Week => date - Days::new(u64::from(date.weekday().num_days_from_monday())),
            Granularity::Month => date.with_day(1).expect("day 1 exists in every month"),
        };
        LocalPeriod {
            granularity,
            tz,
            first,
            next: step(granularity, first, true),
        }
    }

    /// The period just before this one.
    pub fn previous(self) -> LocalPeriod {
        LocalPeriod {
            first: step(self.granularity, self.first, false),
            next: self.first,
            ..self
        }
    }

    pub fn start(&self) -> DateTime<Tz> {
        local_midnight(self.tz, self.first)
    }

    pub fn end(&self) -> DateTime<Tz> {
        local_midnight(self.tz, self.next)
    }

    /// `2020-02-18`, `2020-W08` or `2020-02`.
    pub fn label(&self) -> String {
        match self.granularity {
            Granularity::Day => self.first.format("%Y-%m-%d").to_string(),
            Granularity::Week => {
                let week = self.first.iso_week();
                format!("{}-W{:02}", week.year(), week.week())
            }
            Granularity::Month => self.first.format("%Y-%m").to_string(),
        }
    }

    pub fn to_body(&self) -> Period {
        let (start, end) = (self.start(), self.end());
        Period {
            label: self.label(),
            start: rfc3339(&start),
            end: rfc3339(&end),
            start_ms: start.timestamp_millis(),
            end_ms: end.timestamp_millis(),
            time_zone: self.tz.name().to_owned(),
            hours: (end - start).num_seconds() as f64 / 3600.0,
        }
    }
}

fn step(granularity: Granularity, date: NaiveDate, forward: bool) -> NaiveDate {
    let stepped = match (granularity, forward) {
        (Granularity::Day, true) => date.checked_add_days(Days::new(1)),
        (Granularity::Day, false) => date.checked_sub_days(Days::new(1)),
        (Granularity::Week, true) => date.checked_add_days(Days::new(7)),
        (Granularity::Week, false) => date.checked_sub_days(Days::new(7)),
        (Granularity::Month, true) => date.checked_add_months(Months::new(1)),
        (Granularity::Month, false) => date.checked_sub_months(Months::new(1)),
    };
    stepped.expect("report periods stay far inside chrono's date range")
}

/// The first instant of the local date `date` in `tz`. Where midnight does not
/// exist (a DST change at 00:00, as in some American zones), the day starts at
/// the first local time that does; where it exists twice, at the earlier one.
pub fn local_midnight(tz: Tz, date: NaiveDate) -> DateTime<Tz> {
    let mut time = date.and_time(NaiveTime::MIN);
    // A DST gap is at most a few hours; step through it a quarter hour at a time.
    for _ in 0..4 * 24 {
        if let Some(instant) = tz.from_local_datetime(&time).earliest() {
            return instant;
        }
        time += chrono::Duration::minutes(15);
    }
    unreachable!("no time zone skips a whole day at midnight")
}

/// RFC 3339 with milliseconds and the zone's offset, e.g. `2020-02-18T17:25:38.255+00:00`.
pub fn rfc3339<T: TimeZone>(instant: &DateTime<T>) -> String
where
    T::Offset: std::fmt::Display,
{
    instant.to_rfc3339_opts(SecondsFormat::Millis, false)
}

/// An epoch-millisecond instant as RFC 3339 in `tz`.
pub fn ms_to_rfc3339(tz: Tz, ms: i64) -> String {
    match DateTime::from_timestamp_millis(ms) {
        Some(utc) => rfc3339(&utc.with_timezone(&tz)),
        None => ms.to_string(),
    }
}

/// Parses a time zone setting: an IANA name such as `Europe/Paris`, or `UTC`.
pub fn parse_time_zone(name: &str) -> Option<Tz> {
    name.trim().parse::<Tz>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_last_complete_day_week_and_month() {
        let tick = at("2020-02-19T00:05:00Z");
        let day = LocalPeriod::last_complete(Granularity::Day, Tz::UTC, tick).to_body();
        assert_eq!(day.label, "2020-02-18");
        assert_eq!(day.start, "2020-02-18T00:00:00.000+00:00");
        assert_eq!(day.end, "2020-02-19T00:00:00.000+00:00");
        assert_eq!(day.hours, 24.0);
        // 2020-02-19 is a Wednesday of ISO week 8: the last complete week is 7.
        let week = LocalPeriod::last_complete(Granularity::Week, Tz::UTC, tick).to_body();
        assert_eq!(week.label, "2020-W07");
        assert_eq!(week.start, "2020-02-10T00:00:00.000+00:00");
        let month = LocalPeriod::last_complete(Granularity::Month, Tz::UTC, tick).to_body();
        assert_eq!(month.label, "2020-01");
        assert_eq!(month.end, "2020-02-01T00:00:00.000+00:00");
        // Exactly at midnight, the day that just ended is the one reported.
        let midnight =
            LocalPeriod::last_complete(Granularity::Day, Tz::UTC, at("2020-02-19T00:00:00Z"));
        assert_eq!(midnight.label(), "2020-02-18");
    }

    #[test]
    fn days_across_dst_changes_last_23_and_25_hours() {
        let paris: Tz = "Europe/Paris".parse().unwrap();
        // Clocks went forward on 2020-03-29 and back on 2020-10-25 in Paris.
        let spring = LocalPeriod::containing(
            Granularity::Day,
            paris,
            NaiveDate::from_ymd_opt(2020, 3, 29).unwrap(),
        );
        let body = spring.to_body();
        assert_eq!(body.hours, 23.0);
        assert_eq!(body.start, "2020-03-29T00:00:00.000+01:00");
        assert_eq!(body.end, "2020-03-30T00:00:00.000+02:00");
        let autumn = LocalPeriod::containing(
            Granularity::Day,
            paris,
            NaiveDate::from_ymd_opt(2020, 10, 25).unwrap(),
        );
        assert_eq!(autumn.to_body().hours, 25.0);
        // A tick at 00:30 local (22:30 UTC the day before) closes the local day.
        let tick = at("2020-03-29T22:30:00Z");
        assert_eq!(
            LocalPeriod::last_complete(Granularity::Day, paris, tick).label(),
            "2020-03-29"
        );
    }

    #[test]
    fn a_midnight_that_does_not_exist_starts_the_day_at_one() {
        // Santiago skipped 2022-09-11 00:00–01:00.
        let santiago: Tz = "America/Santiago".parse().unwrap();
        let day = LocalPeriod::containing(
            Granularity::Day,
            santiago,
            NaiveDate::from_ymd_opt(2022, 9, 11).unwrap(),
        );
        assert_eq!(day.to_body().start, "2022-09-11T01:00:00.000-03:00");
        assert_eq!(day.to_body().hours, 23.0);
    }

    #[test]
    fn time_zone_names() {
        assert_eq!(parse_time_zone("UTC"), Some(Tz::UTC));
        assert!(parse_time_zone("Europe/Paris").is_some());
        assert_eq!(parse_time_zone("Mars/Olympus"), None);
    }
}
