//! The documents a report run writes: what is stored in the `body` column of the
//! `reports` collection, as JSON, and what the CSV and HTML renderings read back.
//!
//! Instants are RFC 3339 strings in the report's time zone (with its offset), so a
//! reader sees local time and still has the exact instant. Money is a decimal
//! string in the currency's minor units ("12.50"), never a float.

use serde::{Deserialize, Serialize};

/// The kinds of report, as stored in the `kind` column and used in report ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportKind {
    Daily,
    Weekly,
    Invoice,
}

impl ReportKind {
    pub const ALL: [ReportKind; 3] = [ReportKind::Daily, ReportKind::Weekly, ReportKind::Invoice];

    pub fn name(self) -> &'static str {
        match self {
            ReportKind::Daily => "daily",
            ReportKind::Weekly => "weekly",
            ReportKind::Invoice => "invoice",
        }
    }

    pub fn from_name(name: &str) -> Option<ReportKind> {
        ReportKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// One stored report document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReportBody {
    Device(DeviceReport),
    Invoice(Invoice),
}

/// A period a report covers: `[start, end)`, aligned to local midnight in `time_zone`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Period {
    /// `2020-02-18` (a day), `2020-W08` (an ISO week) or `2020-02` (a month).
    pub label: String,
    pub start: String,
    pub end: String,
    /// The same instants in epoch milliseconds.
    pub start_ms: i64,
    pub end_ms: i64,
    /// The IANA name the period is aligned to, e.g. `UTC` or `Europe/Paris`.
    pub time_zone: String,
    /// The length of the period in hours: 23 or 25 for a day with a DST change.
    pub hours: f64,
}

/// The daily or weekly report of one device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceReport {
    /// `daily` or `weekly`.
    pub kind: ReportKind,
    pub device: String,
    pub period: Period,
    /// Rows whose timestamp falls in the period.
    pub rows: u64,
    /// The first and last row timestamps in the period; `None` with no rows.
    pub first: Option<String>,
    pub last: Option<String>,
    /// Gaps between consecutive rows longer than this are listed in `gaps`.
    pub gap_threshold_secs: f64,
    pub gaps: Vec<Gap>,
    /// Statistics of every numeric column, in schema order.
    pub columns: Vec<ColumnStats>,
    /// The BOOL column counted as motion (`motion` unless configured).
    pub motion_column: String,
    /// Rows where that column is true.
    pub motion_events: u64,
    /// The device's battery level as last reported with data up to the period's
    /// end; `None` when never reported.
    pub battery: Option<Battery>,
    /// The firmware version as last reported with data up to the period's end.
    pub firmware: Option<String>,
    /// Weekly reports only: how this week compares with the week before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<WeekChange>,
    /// The device's alarms open at some time in the period (raised in it, or
    /// raised before and not yet cleared at its start), oldest first. Reports
    /// stored before alarms existed read back with none.
    #[serde(default)]
    pub alarms: Vec<Alarm>,
}

/// One alarm in a device report, as the report's run found it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    /// The alarm's id in the `alarms` collection, `<rule>:<device>:<raised ms>`.
    pub id: String,
    /// E.g. `inactivity`.
    pub rule: String,
    /// E.g. `warning`, `critical`.
    pub severity: String,
    /// `raised`, `acknowledged` or `cleared` when the report was made.
    pub state: String,
    pub raised: String,
    /// `None` while the alarm is open (raised or acknowledged).
    pub cleared: Option<String>,
    /// What fired it, as the rule writes it (for inactivity, the epoch ms the
    /// device was last seen).
    pub value: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gap {
    /// The timestamps of the rows on either side of the gap.
    pub from: String,
    pub to: String,
    pub seconds: f64,
}

/// Statistics of one numeric column over the rows that have a value in it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnStats {
    pub name: String,
    /// The GridDB type name, e.g. `FLOAT`.
    #[serde(rename = "type")]
    pub column_type: String,
    /// Rows with a (non-null) value.
    pub count: u64,
    /// `None` when `count` is 0.
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    /// The population standard deviation (divides by `count`).
    pub stddev: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Battery {
    pub level: f64,
    /// The level below which `low` is set (a manifest variable).
    pub threshold: f64,
    pub low: bool,
    /// When the message that reported it was received.
    pub reported: String,
}

/// The change of a weekly report against the week before.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeekChange {
    /// The week before, e.g. `2020-W07`.
    pub previous: String,
    pub previous_rows: u64,
    /// `rows - previous_rows`.
    pub rows: i64,
    /// The change in percent of the week before; `None` when it had no rows.
    pub rows_percent: Option<f64>,
    pub previous_motion_events: u64,
    pub motion_events: i64,
    /// Mean of each numeric column, this week against the week before.
    pub columns: Vec<MeanChange>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeanChange {
    pub name: String,
    pub previous_mean: Option<f64>,
    pub mean: Option<f64>,
    /// `mean - previous_mean`, when both exist.
    pub delta: Option<f64>,
}

/// The monthly invoice of one device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Invoice {
    /// `invoice`.
    pub kind: ReportKind,
    /// Stable for the same device and month, e.g. `INV-2020-02-sample`.
    pub number: String,
    pub device: String,
    /// The billed month.
    pub period: Period,
    /// The date the invoice is dated (the day after the period, local), and the
    /// date payment is due.
    pub issue_date: String,
    pub due_date: String,
    /// ISO 4217 code, e.g. `EUR`.
    pub currency: String,
    pub issuer: Party,
    pub customer: Party,
    /// What was billed: messages and rows received in the month.
    pub usage: Usage,
    pub lines: Vec<InvoiceLine>,
    pub subtotal: String,
    /// E.g. `VAT`.
    pub tax_label: String,
    /// In percent, as configured, e.g. `20`.
    pub tax_rate: String,
    pub tax: String,
    pub total: String,
    /// Free text printed under the totals (payment terms, bank details).
    pub notes: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub name: String,
    /// Lines of the postal address.
    pub address: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Insert documents (HTTP requests or MQTT messages) received in the month.
    pub messages: u64,
    /// Telemetry rows those documents carried.
    pub rows: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceLine {
    pub description: String,
    /// A decimal, e.g. `1` or `0.006` (thousands of rows).
    pub quantity: String,
    /// What one unit is, e.g. `1,000 rows`.
    pub unit: String,
    pub unit_price: String,
    pub amount: String,
}

/// One row of the `reports` collection, as served by `GET /reports/<id>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredReport {
    /// E.g. `daily-sample-2020-02-18`, `weekly-sample-2020-W08`, `invoice-sample-2020-02`.
    pub id: String,
    pub kind: ReportKind,
    pub device: String,
    pub period_start: String,
    pub period_end: String,
    /// When the run that wrote it finished computing, RFC 3339 UTC.
    pub generated_at: String,
    pub time_zone: String,
    pub body: ReportBody,
}
