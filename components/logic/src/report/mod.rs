//! Reports: what the cron-triggered report component writes (and, for
//! platforms without cron, `POST /admin/reports/run`: `run`), and what the
//! `/reports` endpoints serve.
//!
//! One tick (`run_tick`) makes, for each configured kind, the report of the
//! latest period that has ended at the tick's time:
//! - `daily`: every device, the day before (local to the configured time zone);
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
    let report = build::device_report(kind, device, period, &scan, state.as_ref(), settings);
    Ok(NewReport {
        id: build::report_id(kind, device, &report.period),
        kind,
        device: device.to_owned(),
        body: ReportBody::Device(report),
    })
}
