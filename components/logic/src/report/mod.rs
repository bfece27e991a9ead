//! Reports: what the cron-triggered report component writes (and, for
//! platforms without cron, `POST /admin/reports/run`: `run`), and what the
//! `/reports` endpoints serve.
//!
//! One tick (`run_tick`) makes, for each configured kind, the report of the
//! latest period that has ended at the tick's time:
//! - `daily`: every device, the day before (local to the configured time zone),
//!   with the alarms open at some time in it;
//! - `weekly`: every device, the ISO week before, with its change against the
//!   week before that;
//! - `invoice`: every device that sent data in the month before, billing the
//!   messages and rows received in that month.
//!
//! Read it as: `settings` (component variables) → `period` (alignment, DST) →
//! `scan` (paged reads) → `build` (documents) → `stored` (the `reports`
//! collection) → `serve` and `render` (HTTP, CSV, HTML); `run` is one tick
//! over HTTP.

pub mod body;
pub mod build;
pub mod money;
pub mod period;
pub mod render;
pub mod run;
pub mod scan;
pub mod serve;
pub mod settings;
pub mod stored;

use crate::model::{ContainerKind, Store, StoreError};
use body::{ReportBody, ReportKind, Usage};
use chrono::{DateTime, Utc};
use period::{Granularity, LocalPeriod};
use settings::Settings;
use stored::NewReport;

/// What one tick wrote: the ids of the reports, in the order written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TickOutcome {
    pub written: Vec<String>,
}

/// What one kind of a tick wrote: the period it covers and its reports.
#[derive(Clone, Debug, PartialEq)]
pub struct KindOutcome {
    pub kind: ReportKind,
    pub period: body::Period,
    /// `(report id, device)`, in the order written.
    pub reports: Vec<(String, String)>,
}

/// Runs one tick at `at`: computes every configured report and upserts them.
/// A failure leaves the reports already written by this tick in place (each is
/// complete on its own) and names what failed.
pub fn run_tick(
    store: &mut impl Store,
    at: DateTime<Utc>,
    settings: &Settings,
    generated_at_ms: i64,
) -> Result<TickOutcome, StoreError> {
    let devices = scan::devices(store)?;
    let mut outcome = TickOutcome::default();
    for &kind in &settings.kinds {
        let written = run_kind_over(store, kind, &devices, at, settings, generated_at_ms)?;
        outcome
            .written
            .extend(written.reports.into_iter().map(|(id, _)| id));
    }
    Ok(outcome)
}

/// Runs what a tick at `at` does for `kind` alone, whatever kinds `settings`
/// lists: `POST /admin/reports/run` (`run`), for platforms without cron.
pub fn run_kind(
    store: &mut impl Store,
    kind: ReportKind,
    at: DateTime<Utc>,
    settings: &Settings,
    generated_at_ms: i64,
) -> Result<KindOutcome, StoreError> {
    let devices = scan::devices(store)?;
    run_kind_over(store, kind, &devices, at, settings, generated_at_ms)
}

/// The reports of `kind` at `at` over `devices`, upserted.
fn run_kind_over(
    store: &mut impl Store,
    kind: ReportKind,
    devices: &[String],
    at: DateTime<Utc>,
    settings: &Settings,
    generated_at_ms: i64,
) -> Result<KindOutcome, StoreError> {
    let granularity = match kind {
        ReportKind::Daily => Granularity::Day,
        ReportKind::Weekly => Granularity::Week,
        ReportKind::Invoice => Granularity::Month,
    };
    let period = LocalPeriod::last_complete(granularity, settings.time_zone, at);
    let reports = match kind {
        ReportKind::Daily => devices
            .iter()
            .map(|device| device_report(store, kind, device, &period, settings))
            .collect::<Result<Vec<_>, _>>()?,
        ReportKind::Weekly => {
            let mut reports = Vec::with_capacity(devices.len());
            for device in devices {
                let mut this = device_report(store, kind, device, &period, settings)?;
                let previous = device_report(store, kind, device, &period.previous(), settings)?;
                if let (ReportBody::Device(this), ReportBody::Device(previous)) =
                    (&mut this.body, previous.body)
                {
                    this.change = Some(build::week_change(this, &previous));
                }
                reports.push(this);
            }
            reports
        }
        ReportKind::Invoice => {
            let body = period.to_body();
            scan::usage(store, body.start_ms, body.end_ms)?
                .into_iter()
                .map(|(device, (messages, rows))| {
                    let usage = Usage { messages, rows };
                    let invoice = build::invoice(&device, &period, usage, &settings.billing);
                    NewReport {
                        id: build::report_id(kind, &device, &invoice.period),
                        kind,
                        device,
                        body: ReportBody::Invoice(invoice),
                    }
                })
                .collect()
        }
    };
    let written = reports
        .iter()
        .map(|r| (r.id.clone(), r.device.clone()))
        .collect();
    stored::write(store, reports, generated_at_ms)?;
    Ok(KindOutcome {
        kind,
        period: period.to_body(),
        reports: written,
    })
}

/// The daily or weekly report of one device over `period`; a device without a
/// time-series container (or without rows) gets a valid, empty report.
fn device_report(
    store: &mut impl Store,
    kind: ReportKind,
    device: &str,
    period: &LocalPeriod,
    settings: &Settings,
) -> Result<NewReport, StoreError> {
    let body = period.to_body();
    let scan = match store.get_container(&crate::device::container_of(device))? {
        Some(info) if info.kind == ContainerKind::TimeSeries => scan::scan_device(
            store,
            &info,
            body.start_ms,
            body.end_ms,
            settings.gap_threshold_secs * 1000.0,
            &settings.motion_column,
        )?,
        _ => scan::DeviceScan::default(),
    };
    let state = scan::last_deviceinfo(store, device, body.end_ms)?;
    let alarms = scan::alarms(store, device, body.start_ms, body.end_ms)?;
    let report = build::device_report(
        kind,
        device,
        period,
        &scan,
        state.as_ref(),
        &alarms,
        settings,
    );
    Ok(NewReport {
        id: build::report_id(kind, device, &report.period),
        kind,
        device: device.to_owned(),
        body: ReportBody::Device(report),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Column, ColumnType, ContainerInfo, Value};
    use crate::testing::MemoryStore;
    use scan::{put_alarm, Alarm};

    /// 2020-02-19T00:05:00+01:00: a daily tick for the 18th in Paris, whose
    /// day runs from 2020-02-17T23:00Z to 2020-02-18T23:00Z.
    const AT: &str = "2020-02-18T23:05:00Z";

    fn ms(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis()
    }

    fn alarm(rule: &str, device: &str, severity: &str, raised: &str) -> Alarm {
        Alarm {
            id: format!("{rule}:{device}:{}", ms(raised)),
            rule: rule.to_owned(),
            severity: severity.to_owned(),
            state: "raised".to_owned(),
            value: None,
            raised: ms(raised),
            cleared: None,
        }
    }

    fn store_with_devices(ids: &[&str]) -> MemoryStore {
        let mut store = MemoryStore::default();
        store
            .put_container(ContainerInfo {
                name: crate::insert::DEVICES.into(),
                kind: ContainerKind::Collection,
                columns: vec![Column::new("deviceid", ColumnType::String)],
                row_key: true,
            })
            .unwrap();
        let rows = ids.iter().map(|id| vec![Value::String((*id).into())]);
        store
            .put_rows(crate::insert::DEVICES, rows.collect())
            .unwrap();
        store
    }

    fn daily_in_paris(store: &mut MemoryStore) -> Vec<body::StoredReport> {
        let settings = Settings::read(|name| match name {
            "reports" => Some("daily".into()),
            "time_zone" => Some("Europe/Paris".into()),
            _ => None,
        })
        .unwrap();
        let at = DateTime::parse_from_rfc3339(AT).unwrap().to_utc();
        let outcome = run_tick(store, at, &settings, ms(AT)).unwrap();
        outcome
            .written
            .iter()
            .map(|id| stored::get(store, id).unwrap().unwrap())
            .collect()
    }

    fn device_body(report: &body::StoredReport) -> &body::DeviceReport {
        match &report.body {
            ReportBody::Device(body) => body,
            ReportBody::Invoice(_) => panic!("a device report"),
        }
    }

    /// Must show: a daily report lists the device's alarms open at some time
    /// in its day (raised in it, or raised before and still open), in the
    /// report's time zone, oldest first, and no other alarm; a device without
    /// alarms has an empty list, and so does a store the host never wrote
    /// alarms to.
    #[test]
    fn a_daily_report_lists_the_alarms_open_in_its_day() {
        let mut store = store_with_devices(&["d1", "quiet"]);
        assert_eq!(device_body(&daily_in_paris(&mut store)[0]).alarms, []);

        let cleared_in_the_day = Alarm {
            state: "cleared".into(),
            value: Some("1582014000000".into()),
            cleared: Some(ms("2020-02-18T10:30:00Z")),
            ..alarm("inactivity", "d1", "warning", "2020-02-18T09:00:00Z")
        };
        let open_since_the_day_before = Alarm {
            state: "acknowledged".into(),
            value: Some("41.5".into()),
            ..alarm("temp_high", "d1", "critical", "2020-02-17T20:00:00Z")
        };
        // Cleared at the day's first instant: it was open then.
        let cleared_at_the_start = Alarm {
            state: "cleared".into(),
            cleared: Some(ms("2020-02-17T23:00:00Z")),
            ..alarm("inactivity", "d1", "warning", "2020-02-17T06:00:00Z")
        };
        let cleared_the_day_before = Alarm {
            state: "cleared".into(),
            cleared: Some(ms("2020-02-17T22:59:59.999Z")),
            ..alarm("inactivity", "d1", "warning", "2020-02-16T10:00:00Z")
        };
        let raised_at_the_end = alarm("inactivity", "d1", "warning", "2020-02-18T23:00:00Z");
        let another_device = alarm("inactivity", "quiet2", "warning", "2020-02-18T12:00:00Z");
        for (device, alarm) in [
            ("d1", &cleared_in_the_day),
            ("d1", &open_since_the_day_before),
            ("d1", &cleared_at_the_start),
            ("d1", &cleared_the_day_before),
            ("d1", &raised_at_the_end),
            ("quiet2", &another_device),
        ] {
            put_alarm(&mut store, device, alarm);
        }

        let reports = daily_in_paris(&mut store);
        let ids: Vec<&str> = reports.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["daily-d1-2020-02-18", "daily-quiet-2020-02-18"]);
        let line = |alarm: &Alarm, raised: &str, cleared: Option<&str>| body::Alarm {
            id: alarm.id.clone(),
            rule: alarm.rule.clone(),
            severity: alarm.severity.clone(),
            state: alarm.state.clone(),
            raised: raised.to_owned(),
            cleared: cleared.map(str::to_owned),
            value: alarm.value.clone(),
        };
        assert_eq!(
            device_body(&reports[0]).alarms,
            [
                line(
                    &cleared_at_the_start,
                    "2020-02-17T07:00:00.000+01:00",
                    Some("2020-02-18T00:00:00.000+01:00")
                ),
                line(
                    &open_since_the_day_before,
                    "2020-02-17T21:00:00.000+01:00",
                    None
                ),
                line(
                    &cleared_in_the_day,
                    "2020-02-18T10:00:00.000+01:00",
                    Some("2020-02-18T11:30:00.000+01:00")
                ),
            ]
        );
        assert_eq!(device_body(&reports[1]).alarms, []);

        // The CSV: a row per field, the alarm's id in `column`; `open` while open.
        let csv = render::csv(&reports[0]);
        let open = &open_since_the_day_before.id;
        let cleared = &cleared_in_the_day.id;
        for line in [
            format!("alarm_rule,{open},temp_high\r\n"),
            format!("alarm_severity,{open},critical\r\n"),
            format!("alarm_state,{open},acknowledged\r\n"),
            format!("alarm_raised,{open},2020-02-17T21:00:00.000+01:00\r\n"),
            format!("alarm_cleared,{open},open\r\n"),
            format!("alarm_value,{open},41.5\r\n"),
            format!("alarm_raised,{cleared},2020-02-18T10:00:00.000+01:00\r\n"),
            format!("alarm_cleared,{cleared},2020-02-18T11:30:00.000+01:00\r\n"),
            format!("alarm_value,{cleared},1582014000000\r\n"),
        ] {
            assert!(csv.contains(&line), "no {line:?} in\n{csv}");
        }
        assert!(!render::csv(&reports[1]).contains("alarm_"));

        // The page: a table of them, times as the report's others.
        let page = render::html(&reports[0]);
        assert!(page.contains("<h2>Alarms</h2>"), "{page}");
        assert!(page.contains(
            "<tr><td>temp_high</td><td>critical</td><td><time datetime=\"2020-02-17T21:00:00.000+01:00\">\
             2020-02-17 21:00:00 +01:00</time></td><td>open</td><td>acknowledged</td><td>41.5</td></tr>"
        ), "{page}");
        assert!(page.contains("2020-02-18 11:30:00 +01:00"));
        assert!(!page.contains("No alarms in this period."));
        let quiet = render::html(&reports[1]);
        assert!(quiet.contains("<h2>Alarms</h2>\n<p class=\"empty\">No alarms in this period.</p>"));
    }

    /// Reports stored before alarms existed read back, with none.
    #[test]
    fn a_report_stored_without_alarms_reads_back() {
        let mut store = store_with_devices(&["d1"]);
        let report = &daily_in_paris(&mut store)[0];
        let mut body = serde_json::to_value(&report.body).unwrap();
        assert_eq!(body["alarms"], serde_json::json!([]));
        body.as_object_mut().unwrap().remove("alarms");
        let read: ReportBody = serde_json::from_value(body).unwrap();
        assert_eq!(read, report.body);
    }
}
