//! Turning scans into report documents: the daily and weekly device reports
//! and the monthly invoice. Pure functions of what `scan` read and the settings.

use super::body::{
    Alarm, Battery, ColumnStats, DeviceReport, Gap, Invoice, InvoiceLine, MeanChange, Party,
    Period, ReportKind, Usage, WeekChange,
};
use super::money::{quantity_text, Money};
use super::period::{ms_to_rfc3339, LocalPeriod};
use super::scan::{self, DeviceScan};
use super::settings::{Billing, Settings};
use chrono::Days;

/// The daily or weekly report of `device` from its scan of `period`.
/// `state` is the device's last reported metadata and when it was received;
/// `alarms` those open at some time in the period.
pub fn device_report(
    kind: ReportKind,
    device: &str,
    period: &LocalPeriod,
    scan: &DeviceScan,
    state: Option<&(i64, serde_json::Map<String, serde_json::Value>)>,
    alarms: &[scan::Alarm],
    settings: &Settings,
) -> DeviceReport {
    let tz = settings.time_zone;
    let battery = state.and_then(|(received, info)| {
        let level = info.get(&settings.battery_field)?.as_f64()?;
        Some(Battery {
            level,
            threshold: settings.battery_low_threshold,
            low: level < settings.battery_low_threshold,
            reported: ms_to_rfc3339(tz, *received),
        })
    });
    let firmware = state.and_then(|(_, info)| match info.get(&settings.firmware_field)? {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    });
    DeviceReport {
        kind,
        device: device.to_owned(),
        period: period.to_body(),
        rows: scan.rows,
        first: scan.first.map(|ms| ms_to_rfc3339(tz, ms)),
        last: scan.last.map(|ms| ms_to_rfc3339(tz, ms)),
        gap_threshold_secs: settings.gap_threshold_secs,
        gaps: scan
            .gaps
            .iter()
            .map(|&(from, to)| Gap {
                from: ms_to_rfc3339(tz, from),
                to: ms_to_rfc3339(tz, to),
                seconds: (to - from) as f64 / 1000.0,
            })
            .collect(),
        columns: scan
            .columns
            .iter()
            .map(|(name, column_type, acc)| ColumnStats {
                name: name.clone(),
                column_type: column_type.name().to_owned(),
                count: acc.count,
                min: (acc.count > 0).then_some(acc.min),
                max: (acc.count > 0).then_some(acc.max),
                mean: acc.mean(),
                stddev: acc.stddev(),
            })
            .collect(),
        motion_column: settings.motion_column.clone(),
        motion_events: scan.motion_events,
        battery,
        firmware,
        change: None,
        alarms: alarms
            .iter()
            .map(|alarm| Alarm {
                id: alarm.id.clone(),
                rule: alarm.rule.clone(),
                severity: alarm.severity.clone(),
                state: alarm.state.clone(),
                raised: ms_to_rfc3339(tz, alarm.raised),
                cleared: alarm.cleared.map(|ms| ms_to_rfc3339(tz, ms)),
                value: alarm.value.clone(),
            })
            .collect(),
    }
}

/// How `this` week compares with the `previous` one.
pub fn week_change(this: &DeviceReport, previous: &DeviceReport) -> WeekChange {
    let difference = |a: u64, b: u64| a as i64 - b as i64;
    WeekChange {
        previous: previous.period.label.clone(),
        previous_rows: previous.rows,
        rows: difference(this.rows, previous.rows),
        rows_percent: (previous.rows > 0)
            .then(|| difference(this.rows, previous.rows) as f64 * 100.0 / previous.rows as f64),
        previous_motion_events: previous.motion_events,
        motion_events: difference(this.motion_events, previous.motion_events),
        columns: this
            .columns
            .iter()
            .map(|column| {
                let previous_mean = previous
                    .columns
                    .iter()
                    .find(|c| c.name == column.name)
                    .and_then(|c| c.mean);
                MeanChange {
                    name: column.name.clone(),
                    previous_mean,
                    mean: column.mean,
                    delta: column.mean.zip(previous_mean).map(|(m, p)| m - p),
                }
            })
            .collect(),
    }
}

/// The invoice of `device` for the month `period`, billing `usage`.
pub fn invoice(device: &str, period: &LocalPeriod, usage: Usage, billing: &Billing) -> Invoice {
    let currency = &billing.currency;
    let mut lines = Vec::new();
    let mut subtotal = Money::default();
    let mut line =
        |description: String, quantity: u64, per: u64, unit: &str, price: super::money::Decimal| {
            let amount = currency.amount(quantity, price, per);
            subtotal = subtotal + amount;
            lines.push(InvoiceLine {
                description,
                quantity: quantity_text(quantity, per),
                unit: unit.to_owned(),
                unit_price: price.to_text_min(currency.minor_digits),
                amount: currency.format(amount),
            });
        };
    let month = period.label();
    if !billing.price_per_device_month.is_zero() {
        line(
            format!("Device {device}, {month}"),
            1,
            1,
            "device-month",
            billing.price_per_device_month,
        );
    }
    if !billing.price_per_thousand_messages.is_zero() {
        let description = format!("Messages received ({} messages)", usage.messages);
        line(
            description,
            usage.messages,
            1000,
            "1,000 messages",
            billing.price_per_thousand_messages,
        );
    }
    if !billing.price_per_thousand_rows.is_zero() {
        let description = format!("Telemetry rows stored ({} rows)", usage.rows);
        line(
            description,
            usage.rows,
            1000,
            "1,000 rows",
            billing.price_per_thousand_rows,
        );
    }
    let tax = currency.percent_of(subtotal, billing.tax_rate);
    let issue = period.next;
    let due = issue
        .checked_add_days(Days::new(u64::from(billing.payment_terms_days)))
        .unwrap_or(issue);
    let notes = if billing.notes.is_empty() {
        format!(
            "Payment due within {} days of the invoice date.",
            billing.payment_terms_days
        )
    } else {
        billing.notes.clone()
    };
    Invoice {
        kind: ReportKind::Invoice,
        number: invoice_number(device, period),
        device: device.to_owned(),
        period: period.to_body(),
        issue_date: issue.to_string(),
        due_date: due.to_string(),
        currency: currency.code.clone(),
        issuer: Party {
            name: billing.issuer_name.clone(),
            address: billing.issuer_address.clone(),
        },
        customer: Party {
            name: if billing.customer_name.is_empty() {
                format!("Owner of device {device}")
            } else {
                billing.customer_name.clone()
            },
            address: billing.customer_address.clone(),
        },
        usage,
        lines,
        subtotal: currency.format(subtotal),
        tax_label: billing.tax_label.clone(),
        tax_rate: billing.tax_rate.to_text(),
        tax: currency.format(tax),
        total: currency.format(subtotal + tax),
        notes,
    }
}

/// Stable for the same device and month: `INV-2020-02-sample`.
pub fn invoice_number(device: &str, period: &LocalPeriod) -> String {
    format!("INV-{}-{device}", period.label())
}

/// The report id: `daily-sample-2020-02-18`. Device names have no `-`, so the
/// parts never run together.
pub fn report_id(kind: ReportKind, device: &str, period: &Period) -> String {
    format!("{}-{device}-{}", kind.name(), period.label)
}
