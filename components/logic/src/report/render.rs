//! The CSV and printable-HTML renderings of a stored report, as served next to its
//! JSON. This module owns only presentation: it reads a [`StoredReport`] and never
//! computes a statistic or an amount itself, so the three formats cannot disagree.
//!
//! - CSV (RFC 4180) is for spreadsheets and scripts. A device report is one "long"
//!   table `metric,column,value`, so daily and weekly reports of devices with
//!   different columns share a header (an alarm is a row per field, `alarm_*`,
//!   its id in `column`); an invoice is its line-items table. Numbers keep full
//!   precision (Rust's shortest round-trip form).
//! - HTML is a standalone page meant to be read on screen and printed on A4: inline
//!   style only, no scripts, no external resources. Every piece of report data goes
//!   through [`escape`], since device and party names come from users.

use super::body::{
    Alarm, Battery, ColumnStats, DeviceReport, Gap, Invoice, InvoiceLine, Party, Period,
    ReportBody, ReportKind, StoredReport, WeekChange,
};
use crate::csv::Csv;
use chrono::{DateTime, NaiveDate};

// ---------------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------------

/// The report as RFC 4180 CSV: a header row, then the data rows, CRLF line ends.
pub fn csv(report: &StoredReport) -> String {
    let mut table = Csv::default();
    match &report.body {
        ReportBody::Device(device) => device_csv(&mut table, &report.id, device),
        ReportBody::Invoice(invoice) => invoice_csv(&mut table, invoice),
    }
    table.out
}

/// A row of the long device table: `metric,column,value`.
fn metric(table: &mut Csv, metric: &str, column: &str, value: &str) {
    table.row(&[metric, column, value]);
}

fn device_csv(table: &mut Csv, id: &str, report: &DeviceReport) {
    table.row(&["metric", "column", "value"]);
    metric(table, "report_id", "", id);
    metric(table, "kind", "", report.kind.name());
    metric(table, "device", "", &report.device);
    metric(table, "period", "", &report.period.label);
    metric(table, "period_start", "", &report.period.start);
    metric(table, "period_end", "", &report.period.end);
    metric(table, "time_zone", "", &report.period.time_zone);
    metric(table, "rows", "", &report.rows.to_string());
    metric(table, "first", "", report.first.as_deref().unwrap_or(""));
    metric(table, "last", "", report.last.as_deref().unwrap_or(""));
    metric(
        table,
        "motion_events",
        &report.motion_column,
        &report.motion_events.to_string(),
    );
    let battery = report.battery.as_ref();
    metric(
        table,
        "battery_level",
        "",
        &number(battery.map(|b| b.level)),
    );
    metric(
        table,
        "battery_low",
        "",
        &battery.map(|b| b.low.to_string()).unwrap_or_default(),
    );
    metric(
        table,
        "firmware",
        "",
        report.firmware.as_deref().unwrap_or(""),
    );
    for column in &report.columns {
        let name = column.name.as_str();
        metric(table, "count", name, &column.count.to_string());
        metric(table, "min", name, &number(column.min));
        metric(table, "max", name, &number(column.max));
        metric(table, "mean", name, &number(column.mean));
        metric(table, "stddev", name, &number(column.stddev));
    }
    for gap in &report.gaps {
        let between = format!("{}/{}", gap.from, gap.to);
        metric(table, "gap_seconds", &between, &gap.seconds.to_string());
    }
    for alarm in &report.alarms {
        let id = alarm.id.as_str();
        metric(table, "alarm_rule", id, &alarm.rule);
        metric(table, "alarm_severity", id, &alarm.severity);
        metric(table, "alarm_state", id, &alarm.state);
        metric(table, "alarm_raised", id, &alarm.raised);
        metric(
            table,
            "alarm_cleared",
            id,
            alarm.cleared.as_deref().unwrap_or(OPEN),
        );
        metric(
            table,
            "alarm_value",
            id,
            alarm.value.as_deref().unwrap_or(""),
        );
    }
    if let Some(change) = &report.change {
        metric(table, "previous_period", "", &change.previous);
        metric(table, "rows_change", "", &change.rows.to_string());
        metric(
            table,
            "rows_change_percent",
            "",
            &number(change.rows_percent),
        );
        metric(
            table,
            "motion_events_change",
            "",
            &change.motion_events.to_string(),
        );
        for column in &change.columns {
            metric(table, "mean_change", &column.name, &number(column.delta));
        }
    }
}

fn invoice_csv(table: &mut Csv, invoice: &Invoice) {
    table.row(&[
        "line",
        "description",
        "quantity",
        "unit",
        "unit_price",
        "amount",
        "currency",
    ]);
    let currency = invoice.currency.as_str();
    for (index, line) in invoice.lines.iter().enumerate() {
        let number = (index + 1).to_string();
        table.row(&[
            &number,
            &line.description,
            &line.quantity,
            &line.unit,
            &line.unit_price,
            &line.amount,
            currency,
        ]);
    }
    // Totals sit in the description and amount columns, with no line number, so a
    // spreadsheet that sums the numbered lines' amounts gets the subtotal.
    let tax = format!("{} {}%", invoice.tax_label, invoice.tax_rate);
    for (label, amount) in [
        ("Subtotal", &invoice.subtotal),
        (tax.as_str(), &invoice.tax),
        ("Total", &invoice.total),
    ] {
        table.row(&["", label, "", "", "", amount, currency]);
    }
}

/// What an alarm's cleared time reads while it is open.
const OPEN: &str = "open";

/// Full precision: `Display` of f64 is the shortest string that reads back to the
/// same value (`79.5`, and `77` rather than `77.0`). Empty when there is no value.
fn number(value: Option<f64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// HTML
// ---------------------------------------------------------------------------------------

/// The report as a standalone HTML page, styled for screen and A4 print.
pub fn html(report: &StoredReport) -> String {
    match &report.body {
        ReportBody::Device(device) => device_html(report, device),
        ReportBody::Invoice(invoice) => invoice_html(invoice),
    }
}

/// Escapes text for use in element content and in quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The shared page: `title` is plain text, `body` is already-escaped HTML.
fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        escape(title)
    )
}

/// Black on white with thin rules, so the page prints legibly without backgrounds.
const STYLE: &str = r#"
body { font: 10.5pt/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: #111; background: #fff; max-width: 180mm; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.45em; margin: 0 0 0.8em; font-weight: 650; }
h2 { font-size: 1.05em; margin: 1.8em 0 0.5em; font-weight: 650; }
p { margin: 0.4em 0; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: 0.3em 0.6em; text-align: left; vertical-align: top; border-bottom: 1px solid #ccc; }
th { font-weight: 600; border-bottom: 1.5px solid #333; }
th:first-child, td:first-child { padding-left: 0; }
th:last-child, td:last-child { padding-right: 0; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.muted { color: #555; }
.empty { font-style: italic; color: #555; }
.summary { display: grid; grid-template-columns: max-content 1fr; gap: 0.25em 1.5em; margin: 0; }
.summary dt { color: #555; }
.summary dd { margin: 0; }
.badge { display: inline-block; margin-left: 0.5em; padding: 0 0.4em; border: 1.5px solid #b00020;
  border-radius: 3px; color: #b00020; font-weight: 700; font-size: 0.85em; letter-spacing: 0.05em; }
footer { margin-top: 2.5em; padding-top: 0.6em; border-top: 1px solid #ccc; font-size: 0.85em; color: #555; }
.invoice-head { display: flex; justify-content: space-between; align-items: flex-start; gap: 2em; }
.issuer .name, .bill-to .name { font-weight: 650; }
.invoice-title { text-align: right; }
.invoice-title h1 { font-size: 2em; letter-spacing: 0.15em; margin: 0 0 0.3em; }
.invoice-title table { width: auto; margin-left: auto; }
.invoice-title td { border: none; padding: 0.05em 0 0.05em 1.2em; }
.bill-to { margin-top: 2.2em; }
.label { font-size: 0.8em; text-transform: uppercase; letter-spacing: 0.08em; color: #555; margin-bottom: 0.2em; }
.lines { margin-top: 1.5em; }
.lines td:nth-child(3) { white-space: nowrap; }
.totals { width: auto; margin: 1em 0 0 auto; min-width: 45%; }
.totals td { border-bottom: none; }
.totals .total td { font-weight: 700; border-top: 1.5px solid #111; border-bottom: 3px double #111; }
.notes { margin-top: 2em; white-space: pre-line; }
@media print {
  body { max-width: none; margin: 0; padding: 0; }
  @page { size: A4; margin: 18mm }
  thead { display: table-header-group; }
  tr, .totals, .summary { break-inside: avoid; }
  h2 { break-after: avoid; }
}
"#;

/// A table with a header row; `numeric[i]` right-aligns column `i`. Cells are
/// already-escaped HTML.
fn table(headers: &[&str], numeric: &[bool], rows: &[Vec<String>]) -> String {
    let cell = |tag: &str, index: usize, content: &str| {
        let class = if numeric.get(index) == Some(&true) {
            " class=\"num\""
        } else {
            ""
        };
        format!("<{tag}{class}>{content}</{tag}>")
    };
    let head: String = headers
        .iter()
        .enumerate()
        .map(|(i, h)| cell("th", i, &escape(h)))
        .collect();
    let mut out = format!("<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n");
    for row in rows {
        let cells: String = row
            .iter()
            .enumerate()
            .map(|(i, c)| cell("td", i, c))
            .collect();
        out.push_str(&format!("<tr>{cells}</tr>\n"));
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// An instant from the report, readable (`2020-02-18 10:00:00 +01:00`) with the
/// exact RFC 3339 value kept in the `datetime` attribute. The offset stays visible
/// because an hour repeats on the day clocks go back.
fn instant(rfc3339: &str) -> String {
    let shown = match DateTime::parse_from_rfc3339(rfc3339) {
        Ok(at) => at.format("%Y-%m-%d %H:%M:%S%.f %:z").to_string(),
        Err(_) => rfc3339.to_string(),
    };
    format!(
        "<time datetime=\"{}\">{}</time>",
        escape(rfc3339),
        escape(&shown)
    )
}

/// A count with thousands separators, matching units such as `1,000 rows`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut groups = Vec::new();
    let mut end = digits.len();
    while end > 3 {
        groups.push(&digits[end - 3..end]);
        end -= 3;
    }
    groups.push(&digits[..end]);
    groups.reverse();
    groups.join(",")
}

/// A change with an explicit sign; zero has none.
fn signed_count(n: i64) -> String {
    let sign = match n.signum() {
        1 => "+",
        -1 => "\u{2212}",
        _ => "",
    };
    format!("{sign}{}", grouped(n.unsigned_abs()))
}

/// A change to `decimals` places with an explicit sign. Values that round to zero
/// print without one, so there is no "−0.00".
fn signed_decimal(value: f64, decimals: usize) -> String {
    let magnitude = format!("{:.*}", decimals, value.abs());
    if magnitude.chars().all(|c| c == '0' || c == '.') {
        magnitude
    } else if value < 0.0 {
        format!("\u{2212}{magnitude}")
    } else {
        format!("+{magnitude}")
    }
}

/// Mean and standard deviation are rounded for reading; the CSV and JSON keep
/// full precision.
fn two_decimals(value: Option<f64>) -> String {
    value
        .map(|v| format!("{v:.2}"))
        .unwrap_or_else(|| "—".to_string())
}

fn full_or_dash(value: Option<f64>) -> String {
    value
        .map(|v| v.to_string())
        .unwrap_or_else(|| "—".to_string())
}

/// `3725` seconds as `1 h 2 min 5 s`, for gaps.
fn duration(seconds: f64) -> String {
    let total = seconds.round().max(0.0) as u64;
    let (days, hours, minutes, secs) = (
        total / 86_400,
        total / 3_600 % 24,
        total / 60 % 60,
        total % 60,
    );
    let parts: Vec<String> = [(days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")]
        .into_iter()
        .filter(|&(n, _)| n > 0)
        .map(|(n, unit)| format!("{n} {unit}"))
        .collect();
    if parts.is_empty() {
        "0 s".to_string()
    } else {
        parts.join(" ")
    }
}

// --- Device reports --------------------------------------------------------------------

fn device_html(stored: &StoredReport, report: &DeviceReport) -> String {
    let kind = match report.kind {
        ReportKind::Weekly => "Weekly",
        ReportKind::Daily | ReportKind::Invoice => "Daily",
    };
    let title = format!(
        "{kind} report — {} — {}",
        report.device, report.period.label
    );
    let mut body = format!("<h1>{}</h1>\n", escape(&title));
    body.push_str(&device_summary(report));
    if report.rows == 0 {
        body.push_str("<p class=\"empty\">No data in this period.</p>\n");
    } else {
        body.push_str("<h2>Columns</h2>\n");
        body.push_str(&column_table(&report.columns));
        body.push_str("<h2>Gaps</h2>\n");
        body.push_str(&gap_table(&report.gaps, report.gap_threshold_secs));
    }
    // Alarms say something with no data too: inactivity is no data.
    body.push_str("<h2>Alarms</h2>\n");
    body.push_str(&alarm_table(&report.alarms));
    // The comparison still says something when this week is empty (e.g. rows −100%).
    if let Some(change) = &report.change {
        body.push_str(&format!(
            "<h2>Change against {}</h2>\n",
            escape(&change.previous)
        ));
        body.push_str(&change_table(change, report));
    }
    body.push_str(&format!(
        "<footer>Report {} · generated {}</footer>\n",
        escape(&stored.id),
        instant(&stored.generated_at)
    ));
    page(&title, &body)
}

fn device_summary(report: &DeviceReport) -> String {
    let period = &report.period;
    let or_dash = |value: &Option<String>| value.as_deref().map_or("—".to_string(), instant);
    let entries = [
        (
            "Period",
            format!(
                "{} – {} <span class=\"muted\">({})</span>",
                instant(&period.start),
                instant(&period.end),
                escape(&period.time_zone)
            ),
        ),
        ("Rows", grouped(report.rows)),
        ("First row", or_dash(&report.first)),
        ("Last row", or_dash(&report.last)),
        (
            "Motion events",
            format!(
                "{} <span class=\"muted\">(column {})</span>",
                grouped(report.motion_events),
                escape(&report.motion_column)
            ),
        ),
        ("Battery", battery(report.battery.as_ref())),
        (
            "Firmware",
            report.firmware.as_deref().map_or("—".to_string(), escape),
        ),
    ];
    let mut out = String::from("<dl class=\"summary\">\n");
    for (term, description) in entries {
        out.push_str(&format!("<dt>{term}</dt><dd>{description}</dd>\n"));
    }
    out.push_str("</dl>\n");
    out
}

fn battery(battery: Option<&Battery>) -> String {
    let Some(battery) = battery else {
        return "not reported".to_string();
    };
    // The badge is text with a border, not a coloured background, so it survives
    // printing in black and white.
    let badge = if battery.low {
        format!(
            "<span class=\"badge\" title=\"below {}\">LOW</span>",
            escape(&battery.threshold.to_string())
        )
    } else {
        String::new()
    };
    format!(
        "{}{badge} <span class=\"muted\">(reported {})</span>",
        escape(&battery.level.to_string()),
        instant(&battery.reported)
    )
}

fn column_table(columns: &[ColumnStats]) -> String {
    if columns.is_empty() {
        return "<p class=\"empty\">No numeric columns.</p>\n".to_string();
    }
    let rows: Vec<Vec<String>> = columns
        .iter()
        .map(|c| {
            vec![
                escape(&c.name),
                escape(&c.column_type),
                grouped(c.count),
                escape(&full_or_dash(c.min)),
                escape(&full_or_dash(c.max)),
                two_decimals(c.mean),
                two_decimals(c.stddev),
            ]
        })
        .collect();
    table(
        &["Column", "Type", "Count", "Min", "Max", "Mean", "Std. dev."],
        &[false, false, true, true, true, true, true],
        &rows,
    )
}

fn gap_table(gaps: &[Gap], threshold_secs: f64) -> String {
    if gaps.is_empty() {
        return format!(
            "<p class=\"empty\">No gaps longer than {} s.</p>\n",
            escape(&threshold_secs.to_string())
        );
    }
    let rows: Vec<Vec<String>> = gaps
        .iter()
        .map(|g| {
            vec![
                instant(&g.from),
                instant(&g.to),
                escape(&g.seconds.to_string()),
                escape(&duration(g.seconds)),
            ]
        })
        .collect();
    table(
        &["From", "To", "Seconds", "Length"],
        &[false, false, true, true],
        &rows,
    )
}

fn alarm_table(alarms: &[Alarm]) -> String {
    if alarms.is_empty() {
        return "<p class=\"empty\">No alarms in this period.</p>\n".to_string();
    }
    let rows: Vec<Vec<String>> = alarms
        .iter()
        .map(|a| {
            vec![
                escape(&a.rule),
                escape(&a.severity),
                instant(&a.raised),
                a.cleared.as_deref().map_or(OPEN.to_string(), instant),
                escape(&a.state),
                a.value.as_deref().map_or("—".to_string(), escape),
            ]
        })
        .collect();
    table(
        &["Rule", "Severity", "Raised", "Cleared", "State", "Value"],
        &[false; 6],
        &rows,
    )
}

fn change_table(change: &WeekChange, report: &DeviceReport) -> String {
    let rows_change = match change.rows_percent {
        Some(percent) => format!(
            "{} ({}%)",
            signed_count(change.rows),
            signed_decimal(percent, 1)
        ),
        None => signed_count(change.rows),
    };
    let mut rows = vec![
        vec![
            "Rows".to_string(),
            grouped(change.previous_rows),
            grouped(report.rows),
            rows_change,
        ],
        vec![
            format!("Motion events ({})", escape(&report.motion_column)),
            grouped(change.previous_motion_events),
            grouped(report.motion_events),
            signed_count(change.motion_events),
        ],
    ];
    for column in &change.columns {
        rows.push(vec![
            format!("Mean {}", escape(&column.name)),
            two_decimals(column.previous_mean),
            two_decimals(column.mean),
            column
                .delta
                .map_or("—".to_string(), |d| signed_decimal(d, 2)),
        ]);
    }
    table(
        &["", &change.previous, &report.period.label, "Change"],
        &[false, true, true, true],
        &rows,
    )
}

// --- Invoices --------------------------------------------------------------------------

fn invoice_html(invoice: &Invoice) -> String {
    let title = format!("Invoice {} — {}", invoice.number, invoice.customer.name);
    let mut body = String::new();
    body.push_str(&invoice_head(invoice));
    body.push_str(&bill_to(invoice));
    body.push_str(&format!(
        "<p>Billing period: {}</p>\n",
        escape(&billing_period(&invoice.period))
    ));
    body.push_str(&line_items(&invoice.lines, &invoice.currency));
    body.push_str(&totals(invoice));
    let counted = |n: u64, one: &str, many: &str| {
        format!("{} {}", grouped(n), if n == 1 { one } else { many })
    };
    body.push_str(&format!(
        "<h2>Usage</h2>\n<p>{} received, {} stored.</p>\n",
        counted(invoice.usage.messages, "message", "messages"),
        counted(invoice.usage.rows, "row", "rows")
    ));
    if !invoice.notes.trim().is_empty() {
        body.push_str(&format!(
            "<p class=\"notes\">{}</p>\n",
            escape(&invoice.notes)
        ));
    }
    body.push_str(&format!(
        "<footer>Amounts in {}. Invoice {}.</footer>\n",
        escape(&invoice.currency),
        escape(&invoice.number)
    ));
    page(&title, &body)
}

/// Issuer top-left; "INVOICE", its number and dates top-right.
fn invoice_head(invoice: &Invoice) -> String {
    let facts = [
        ("Invoice no.", &invoice.number),
        ("Issue date", &invoice.issue_date),
        ("Due date", &invoice.due_date),
    ];
    let facts: String = facts
        .iter()
        .map(|(label, value)| {
            format!(
                "<tr><td class=\"muted\">{label}</td><td class=\"num\">{}</td></tr>\n",
                escape(value)
            )
        })
        .collect();
    format!(
        "<header class=\"invoice-head\">\n<div class=\"issuer\">\n{}</div>\n\
         <div class=\"invoice-title\">\n<h1>INVOICE</h1>\n<table>\n{facts}</table>\n</div>\n</header>\n",
        party(&invoice.issuer)
    )
}

fn bill_to(invoice: &Invoice) -> String {
    format!(
        "<section class=\"bill-to\">\n<div class=\"label\">Bill to</div>\n{}\
         <div>Device: {}</div>\n</section>\n",
        party(&invoice.customer),
        escape(&invoice.device)
    )
}

/// A name and its postal address, one line each.
fn party(party: &Party) -> String {
    let mut out = format!("<div class=\"name\">{}</div>\n", escape(&party.name));
    for line in &party.address {
        out.push_str(&format!("<div>{}</div>\n", escape(line)));
    }
    out
}

/// `2020-02-01 – 2020-02-29`: the period is `[start, end)`, but people expect the
/// last day billed, so the end shows as the day before `end`. Both are read from the
/// date part of the stored strings, which are already in the report's time zone.
fn billing_period(period: &Period) -> String {
    let date_part = |rfc3339: &str| rfc3339.split('T').next().unwrap_or_default().to_string();
    let first = date_part(&period.start);
    let end = date_part(&period.end);
    match NaiveDate::parse_from_str(&end, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.pred_opt())
    {
        Some(last) => format!("{first} – {}", last.format("%Y-%m-%d")),
        // Never guess a day: say what the stored end means instead.
        None => format!("{first} – {end} (exclusive)"),
    }
}

fn line_items(lines: &[InvoiceLine], currency: &str) -> String {
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|line| {
            vec![
                escape(&line.description),
                escape(&line.quantity),
                escape(&line.unit),
                escape(&line.unit_price),
                escape(&line.amount),
            ]
        })
        .collect();
    let unit_price = format!("Unit price ({currency})");
    let amount = format!("Amount ({currency})");
    format!(
        "<section class=\"lines\">\n{}</section>\n",
        table(
            &["Description", "Quantity", "Unit", &unit_price, &amount],
            &[false, true, false, true, true],
            &rows,
        )
    )
}

fn totals(invoice: &Invoice) -> String {
    let currency = escape(&invoice.currency);
    let tax = format!("{} ({}%)", invoice.tax_label, invoice.tax_rate);
    let row = |class: &str, label: &str, amount: &str| {
        format!(
            "<tr{class}><td>{}</td><td class=\"num\">{} {currency}</td></tr>\n",
            escape(label),
            escape(amount)
        )
    };
    format!(
        "<table class=\"totals\">\n<tbody>\n{}{}{}</tbody>\n</table>\n",
        row("", "Subtotal", &invoice.subtotal),
        row("", &tax, &invoice.tax),
        row(" class=\"total\"", "Total", &invoice.total)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::body::{MeanChange, Usage};

    fn period(label: &str, start: &str, end: &str, hours: f64) -> Period {
        Period {
            label: label.to_string(),
            start: start.to_string(),
            end: end.to_string(),
            start_ms: 0,
            end_ms: 0,
            time_zone: "UTC".to_string(),
            hours,
        }
    }

    fn stored(kind: ReportKind, id: &str, device: &str, body: ReportBody) -> StoredReport {
        StoredReport {
            id: id.to_string(),
            kind,
            device: device.to_string(),
            period_start: "2020-02-18T00:00:00.000+00:00".to_string(),
            period_end: "2020-02-19T00:00:00.000+00:00".to_string(),
            generated_at: "2020-02-19T00:05:00.000Z".to_string(),
            time_zone: "UTC".to_string(),
            body,
        }
    }

    fn daily(device: &str) -> DeviceReport {
        DeviceReport {
            kind: ReportKind::Daily,
            device: device.to_string(),
            period: period(
                "2020-02-18",
                "2020-02-18T00:00:00.000+00:00",
                "2020-02-19T00:00:00.000+00:00",
                24.0,
            ),
            rows: 6,
            first: Some("2020-02-18T08:00:00.000+00:00".to_string()),
            last: Some("2020-02-18T13:00:00.000+00:00".to_string()),
            gap_threshold_secs: 3600.0,
            gaps: vec![Gap {
                from: "2020-02-18T09:00:00.000+00:00".to_string(),
                to: "2020-02-18T11:05:00.000+00:00".to_string(),
                seconds: 7500.0,
            }],
            columns: vec![ColumnStats {
                name: "temperature".to_string(),
                column_type: "DOUBLE".to_string(),
                count: 6,
                min: Some(77.0),
                max: Some(82.0),
                mean: Some(79.5),
                stddev: Some(1.707825127659933),
            }],
            motion_column: "motion".to_string(),
            motion_events: 2,
            battery: Some(Battery {
                level: 12.5,
                threshold: 20.0,
                low: true,
                reported: "2020-02-18T13:00:00.000+00:00".to_string(),
            }),
            firmware: Some("1.4.2".to_string()),
            change: None,
            alarms: Vec::new(),
        }
    }

    fn daily_report(device: &str) -> StoredReport {
        let id = format!("daily-{device}-2020-02-18");
        stored(
            ReportKind::Daily,
            &id,
            device,
            ReportBody::Device(daily(device)),
        )
    }

    fn party(name: &str, address: &[&str]) -> Party {
        Party {
            name: name.to_string(),
            address: address.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn invoice(issuer: &str) -> StoredReport {
        let line = |description: &str, quantity: &str, unit: &str, price: &str, amount: &str| {
            InvoiceLine {
                description: description.to_string(),
                quantity: quantity.to_string(),
                unit: unit.to_string(),
                unit_price: price.to_string(),
                amount: amount.to_string(),
            }
        };
        let body = Invoice {
            kind: ReportKind::Invoice,
            number: "INV-2020-02-sample".to_string(),
            device: "sample".to_string(),
            period: period(
                "2020-02",
                "2020-02-01T00:00:00.000+00:00",
                "2020-03-01T00:00:00.000+00:00",
                696.0,
            ),
            issue_date: "2020-03-01".to_string(),
            due_date: "2020-03-31".to_string(),
            currency: "EUR".to_string(),
            issuer: party(issuer, &["1 Rue de la Paix", "75002 Paris"]),
            customer: party("Acme Farms", &["Hill Road 5", "Springfield"]),
            usage: Usage {
                messages: 1200,
                rows: 6000,
            },
            lines: vec![
                line("Device subscription", "1", "month", "10.00", "10.00"),
                line("Rows stored", "6", "1,000 rows", "0.0617", "0.37"),
            ],
            subtotal: "10.28".to_string(),
            tax_label: "VAT".to_string(),
            tax_rate: "20".to_string(),
            tax: "2.06".to_string(),
            total: "12.34".to_string(),
            notes: "Payable within 30 days.\nIBAN FR76 0000".to_string(),
        };
        stored(
            ReportKind::Invoice,
            "invoice-sample-2020-02",
            "sample",
            ReportBody::Invoice(body),
        )
    }

    #[test]
    fn device_csv_is_a_long_table_with_full_precision() {
        let text = csv(&daily_report("sample"));
        assert!(text.starts_with("metric,column,value\r\nreport_id,,daily-sample-2020-02-18\r\n"));
        for line in [
            "kind,,daily\r\n",
            "device,,sample\r\n",
            "period,,2020-02-18\r\n",
            "rows,,6\r\n",
            "motion_events,motion,2\r\n",
            "battery_level,,12.5\r\n",
            "battery_low,,true\r\n",
            "firmware,,1.4.2\r\n",
            "count,temperature,6\r\n",
            "min,temperature,77\r\n",
            "max,temperature,82\r\n",
            "mean,temperature,79.5\r\n",
            "stddev,temperature,1.707825127659933\r\n",
            "gap_seconds,2020-02-18T09:00:00.000+00:00/2020-02-18T11:05:00.000+00:00,7500\r\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("previous_period"));
        // Every line, the last included, ends with CRLF and nothing else.
        assert!(text.ends_with("\r\n"));
        assert!(!text.replace("\r\n", "").contains('\n'));
    }

    #[test]
    fn empty_values_are_empty_fields() {
        let mut report = daily("sample");
        report.rows = 0;
        report.first = None;
        report.last = None;
        report.battery = None;
        report.firmware = None;
        report.gaps.clear();
        report.columns[0] = ColumnStats {
            count: 0,
            min: None,
            max: None,
            mean: None,
            stddev: None,
            ..report.columns[0].clone()
        };
        let text = csv(&stored(
            ReportKind::Daily,
            "d",
            "sample",
            ReportBody::Device(report),
        ));
        for line in [
            "\r\nfirst,,\r\n",
            "\r\nlast,,\r\n",
            "\r\nbattery_level,,\r\n",
            "\r\nbattery_low,,\r\n",
            "\r\nfirmware,,\r\n",
            "\r\nmin,temperature,\r\n",
            "\r\nstddev,temperature,\r\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("gap_seconds"));
    }

    #[test]
    fn weekly_csv_ends_with_the_change() {
        let mut report = daily("sample");
        report.kind = ReportKind::Weekly;
        report.change = Some(WeekChange {
            previous: "2020-W07".to_string(),
            previous_rows: 8,
            rows: -2,
            rows_percent: Some(-25.0),
            previous_motion_events: 1,
            motion_events: 1,
            columns: vec![MeanChange {
                name: "temperature".to_string(),
                previous_mean: Some(80.0),
                mean: Some(79.5),
                delta: Some(-0.5),
            }],
        });
        let text = csv(&stored(
            ReportKind::Weekly,
            "w",
            "sample",
            ReportBody::Device(report),
        ));
        assert!(text.contains("kind,,weekly\r\n"));
        assert!(text.ends_with(
            "previous_period,,2020-W07\r\nrows_change,,-2\r\nrows_change_percent,,-25\r\n\
             motion_events_change,,1\r\nmean_change,temperature,-0.5\r\n"
        ));
    }

    #[test]
    fn csv_quotes_commas_quotes_and_line_breaks() {
        let text = csv(&daily_report("north, \"barn\""));
        assert!(
            text.contains("\r\ndevice,,\"north, \"\"barn\"\"\"\r\n"),
            "{text}"
        );
    }

    #[test]
    fn invoice_csv_is_the_line_items_and_totals() {
        let text = csv(&invoice("Cromflag SAS"));
        assert_eq!(
            text,
            "line,description,quantity,unit,unit_price,amount,currency\r\n\
             1,Device subscription,1,month,10.00,10.00,EUR\r\n\
             2,Rows stored,6,\"1,000 rows\",0.0617,0.37,EUR\r\n\
             ,Subtotal,,,,10.28,EUR\r\n\
             ,VAT 20%,,,,2.06,EUR\r\n\
             ,Total,,,,12.34,EUR\r\n"
        );
    }

    #[test]
    fn device_html_is_a_standalone_printable_page() {
        let page = html(&daily_report("sample"));
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("<meta charset=\"utf-8\">"));
        assert!(page.contains("@page { size: A4; margin: 18mm }"));
        assert!(!page.contains("<script"));
        assert!(!page.contains("http"), "no external resources");
        assert!(page.contains("<title>Daily report — sample — 2020-02-18</title>"));
        assert!(page.contains("<td class=\"num\">79.50</td><td class=\"num\">1.71</td>"));
        assert!(page.contains("<td class=\"num\">77</td>"));
        assert!(page.contains(">LOW</span>"));
        assert!(page.contains("2 h 5 min"));
        assert!(page.contains("2020-02-18 08:00:00 +00:00"));
        assert!(!page.contains("No data in this period."));
    }

    #[test]
    fn html_escapes_device_names() {
        let page = html(&daily_report("<script>alert('x')</script>"));
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    }

    #[test]
    fn an_empty_device_report_says_so() {
        let mut report = daily("sample");
        report.rows = 0;
        report.first = None;
        report.last = None;
        report.gaps.clear();
        let page = html(&stored(
            ReportKind::Daily,
            "d",
            "sample",
            ReportBody::Device(report),
        ));
        assert!(page.contains("No data in this period."));
        assert!(!page.contains("<table>"));
    }

    #[test]
    fn weekly_html_compares_with_the_week_before() {
        let mut report = daily("sample");
        report.kind = ReportKind::Weekly;
        report.period.label = "2020-W08".to_string();
        report.gaps.clear();
        report.change = Some(WeekChange {
            previous: "2020-W07".to_string(),
            previous_rows: 8,
            rows: -2,
            rows_percent: Some(-25.0),
            previous_motion_events: 2,
            motion_events: 0,
            columns: vec![MeanChange {
                name: "temperature".to_string(),
                previous_mean: Some(79.0),
                mean: Some(79.5),
                delta: Some(0.5),
            }],
        });
        let page = html(&stored(
            ReportKind::Weekly,
            "w",
            "sample",
            ReportBody::Device(report),
        ));
        assert!(page.contains("Weekly report — sample — 2020-W08"));
        assert!(page.contains("No gaps longer than 3600 s."));
        assert!(page.contains("<th class=\"num\">2020-W07</th><th class=\"num\">2020-W08</th>"));
        assert!(page.contains("\u{2212}2 (\u{2212}25.0%)"));
        assert!(page.contains("<td class=\"num\">+0.50</td>"));
    }

    #[test]
    fn invoice_html_has_what_a_customer_needs() {
        let page = html(&invoice("Cromflag SAS"));
        for needle in [
            "<!DOCTYPE html>",
            "INVOICE",
            "INV-2020-02-sample",
            "2020-03-01",
            "2020-03-31",
            "Bill to",
            "Acme Farms",
            "Device: sample",
            "Billing period: 2020-02-01 – 2020-02-29",
            "<td>VAT (20%)</td>",
            "<tr class=\"total\"><td>Total</td><td class=\"num\">12.34 EUR</td></tr>",
            "1,000 rows",
            "1,200 messages received, 6,000 rows stored.",
            "Payable within 30 days.",
            "Amounts in EUR. Invoice INV-2020-02-sample.",
            "@page { size: A4; margin: 18mm }",
        ] {
            assert!(page.contains(needle), "missing {needle:?}");
        }
    }

    #[test]
    fn html_escapes_party_names() {
        let page = html(&invoice("<script>alert(1)</script> & Sons"));
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; Sons"));
    }

    #[test]
    fn helpers() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1234567), "1,234,567");
        assert_eq!(signed_count(0), "0");
        assert_eq!(signed_count(1500), "+1,500");
        assert_eq!(signed_decimal(-0.001, 2), "0.00");
        assert_eq!(signed_decimal(-1.234, 2), "\u{2212}1.23");
        assert_eq!(duration(59.6), "1 min");
        assert_eq!(duration(90_061.0), "1 d 1 h 1 min 1 s");
        assert_eq!(duration(0.2), "0 s");
        // The exclusive end of a leap-year February, in a zone east of UTC.
        let leap = period(
            "2020-02",
            "2020-02-01T00:00:00+01:00",
            "2020-03-01T00:00:00+01:00",
            0.0,
        );
        assert_eq!(billing_period(&leap), "2020-02-01 – 2020-02-29");
        let odd = period("x", "2020-02-01", "not a date", 0.0);
        assert_eq!(billing_period(&odd), "2020-02-01 – not a date (exclusive)");
        assert_eq!(
            instant("2020-02-18T10:00:00.250+01:00"),
            "<time datetime=\"2020-02-18T10:00:00.250+01:00\">2020-02-18 10:00:00.250 +01:00</time>"
        );
    }
}
