//! The `reports` collection: one row per report, keyed by its id, so that
//! re-running a period replaces its report instead of adding another.

use super::body::{ReportBody, ReportKind, StoredReport};
use super::period::ms_to_rfc3339;
use super::scan::PAGE;
use crate::model::{
    tql_string, Column, ColumnType, ContainerInfo, ContainerKind, Row, Store, StoreError, Value,
};
use chrono_tz::Tz;

pub const REPORTS: &str = "reports";

/// Rows written per `put-rows`: bounds the memory of one write, however many
/// devices a tick covers.
const WRITE_BATCH: usize = 256;

pub fn reports_container() -> ContainerInfo {
    let column = Column::new;
    ContainerInfo {
        name: REPORTS.to_owned(),
        kind: ContainerKind::Collection,
        columns: vec![
            column("id", ColumnType::String),
            column("kind", ColumnType::String),
            column("device", ColumnType::String),
            column("period_start", ColumnType::Timestamp),
            column("period_end", ColumnType::Timestamp),
            column("generated_at", ColumnType::Timestamp),
            column("time_zone", ColumnType::String),
            column("body", ColumnType::String),
        ],
        row_key: true,
    }
}

/// One report, ready to store.
pub struct NewReport {
    pub id: String,
    pub kind: ReportKind,
    pub device: String,
    pub body: ReportBody,
}

/// Upserts `reports`, creating the collection on first use.
pub fn write(
    store: &mut impl Store,
    reports: Vec<NewReport>,
    generated_at_ms: i64,
) -> Result<(), StoreError> {
    if reports.is_empty() {
        return Ok(());
    }
    let wanted = reports_container();
    if store.get_container(REPORTS)?.as_ref() != Some(&wanted) {
        store.put_container(wanted)?;
    }
    let mut batch: Vec<Row> = Vec::with_capacity(WRITE_BATCH);
    for report in reports {
        let period = match &report.body {
            ReportBody::Device(device) => &device.period,
            ReportBody::Invoice(invoice) => &invoice.period,
        };
        batch.push(vec![
            Value::String(report.id),
            Value::String(report.kind.name().to_owned()),
            Value::String(report.device),
            Value::Timestamp(period.start_ms),
            Value::Timestamp(period.end_ms),
            Value::Timestamp(generated_at_ms),
            Value::String(period.time_zone.clone()),
            Value::String(serde_json::to_string(&report.body).expect("report bodies serialize")),
        ]);
        if batch.len() == WRITE_BATCH {
            store.put_rows(REPORTS, std::mem::take(&mut batch))?;
        }
    }
    if !batch.is_empty() {
        store.put_rows(REPORTS, batch)?;
    }
    Ok(())
}

/// The filters of `GET /reports`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub kind: Option<ReportKind>,
    pub device: Option<String>,
    /// Reports whose period starts at or after this instant (epoch ms)...
    pub from: Option<i64>,
    /// ...and before this one.
    pub to: Option<i64>,
    pub limit: u64,
    pub offset: u64,
}

/// A report without its body, as `GET /reports` lists it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Listed {
    pub id: String,
    pub kind: String,
    pub device: String,
    pub period_start: String,
    pub period_end: String,
    pub generated_at: String,
    pub time_zone: String,
}

/// Reports matching `filter`, newest period first.
pub fn list(store: &mut impl Store, filter: &Filter) -> Result<Vec<Listed>, StoreError> {
    if store.get_container(REPORTS)?.is_none() {
        return Ok(Vec::new());
    }
    let mut conditions = Vec::new();
    if let Some(kind) = filter.kind {
        conditions.push(format!("kind = {}", tql_string(kind.name())));
    }
    if let Some(device) = &filter.device {
        conditions.push(format!("device = {}", tql_string(device)));
    }
    if let Some(from) = filter.from {
        conditions.push(format!("period_start >= TO_TIMESTAMP_MS({from})"));
    }
    if let Some(to) = filter.to {
        conditions.push(format!("period_start < TO_TIMESTAMP_MS({to})"));
    }
    let condition = match conditions.is_empty() {
        true => String::new(),
        false => format!(" WHERE {}", conditions.join(" AND ")),
    };
    let tql = format!(
        "SELECT id, kind, device, period_start, period_end, generated_at, time_zone{condition} \
         ORDER BY period_start DESC, id ASC LIMIT {} OFFSET {}",
        filter.limit.min(PAGE as u64),
        filter.offset
    );
    let result = store.query(REPORTS, &tql)?;
    Ok(result
        .rows
        .iter()
        .filter_map(|row| match &row[..] {
            [Value::String(id), Value::String(kind), Value::String(device), Value::Timestamp(start), Value::Timestamp(end), Value::Timestamp(generated), Value::String(zone)] =>
            {
                let tz: Tz = zone.parse().unwrap_or(Tz::UTC);
                Some(Listed {
                    id: id.clone(),
                    kind: kind.clone(),
                    device: device.clone(),
                    period_start: ms_to_rfc3339(tz, *start),
                    period_end: ms_to_rfc3339(tz, *end),
                    generated_at: ms_to_rfc3339(Tz::UTC, *generated),
                    time_zone: zone.clone(),
                })
            }
            _ => None,
        })
        .collect())
}

/// The report `id`, if it exists.
pub fn get(store: &mut impl Store, id: &str) -> Result<Option<StoredReport>, StoreError> {
    if store.get_container(REPORTS)?.is_none() {
        return Ok(None);
    }
    let tql = format!(
        "SELECT id, kind, device, period_start, period_end, generated_at, time_zone, body WHERE id = {}",
        tql_string(id)
    );
    let result = store.query(REPORTS, &tql)?;
    let Some(row) = result.rows.first() else {
        return Ok(None);
    };
    let [Value::String(id), Value::String(kind), Value::String(device), Value::Timestamp(start), Value::Timestamp(end), Value::Timestamp(generated), Value::String(zone), Value::String(body)] =
        &row[..]
    else {
        return Err(StoreError::Backend(format!(
            "report `{id}` has an unexpected shape"
        )));
    };
    let corrupt = |what: &str| StoreError::Backend(format!("report `{id}`: {what}"));
    let tz: Tz = zone.parse().map_err(|_| corrupt("unknown time zone"))?;
    Ok(Some(StoredReport {
        id: id.clone(),
        kind: ReportKind::from_name(kind).ok_or_else(|| corrupt("unknown kind"))?,
        device: device.clone(),
        period_start: ms_to_rfc3339(tz, *start),
        period_end: ms_to_rfc3339(tz, *end),
        generated_at: ms_to_rfc3339(Tz::UTC, *generated),
        time_zone: zone.clone(),
        body: serde_json::from_str(body).map_err(|e| corrupt(&format!("unreadable body: {e}")))?,
    }))
}
