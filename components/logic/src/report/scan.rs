//! Reading what reports are made of, a page at a time: a device's rows over a
//! period, the `messages` log, the device list, and a device's alarms over a
//! period (the `alarms` collection the host writes, also read for Grafana's
//! alarm annotations). Nothing here holds more than one page of rows, whatever
//! the period's size, except the alarms (a device raises few).

use crate::insert::{DEVICES, DEVICE_ID_FIELD, MESSAGES};
use crate::model::{tql_name, tql_string, ColumnType, ContainerInfo, Store, StoreError, Value};
use std::collections::BTreeMap;

/// Rows read per query.
pub const PAGE: usize = 1000;

/// Running statistics of one numeric column.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Accumulator {
    pub count: u64,
    /// The sum, for an exact mean of integer-valued data.
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    /// Welford's running mean and sum of squared deviations, for the variance.
    mean: f64,
    m2: f64,
}

impl Accumulator {
    pub fn add(&mut self, x: f64) {
        if self.count == 0 {
            self.min = x;
            self.max = x;
        }
        self.count += 1;
        self.sum += x;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// The population standard deviation.
    pub fn stddev(&self) -> Option<f64> {
        (self.count > 0).then(|| (self.m2 / self.count as f64).max(0.0).sqrt())
    }
}

/// What one pass over a device's rows in `[start, end)` found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceScan {
    pub rows: u64,
    pub first: Option<i64>,
    pub last: Option<i64>,
    /// `(from, to)` row timestamps around each gap longer than the threshold.
    pub gaps: Vec<(i64, i64)>,
    /// Every numeric column in schema order, with its type name.
    pub columns: Vec<(String, ColumnType, Accumulator)>,
    pub motion_events: u64,
}

/// Scans `device`'s rows with `start_ms <= timestamp < end_ms`, oldest first,
/// paging on the row key.
pub fn scan_device(
    store: &mut impl Store,
    info: &ContainerInfo,
    start_ms: i64,
    end_ms: i64,
    gap_threshold_ms: f64,
    motion_column: &str,
) -> Result<DeviceScan, StoreError> {
    let key = tql_name(&info.columns[0].name);
    let numeric: Vec<usize> = (1..info.columns.len())
        .filter(|&i| info.columns[i].column_type.is_numeric())
        .collect();
    let motion = info
        .column_index(motion_column)
        .filter(|&i| info.columns[i].column_type == ColumnType::Bool);
    let mut scan = DeviceScan {
        columns: numeric
            .iter()
            .map(|&i| {
                (
                    info.columns[i].name.clone(),
                    info.columns[i].column_type,
                    Accumulator::default(),
                )
            })
            .collect(),
        ..DeviceScan::default()
    };

    let mut after: Option<i64> = None;
    loop {
        let lower = match after {
            None => format!("{key} >= TO_TIMESTAMP_MS({start_ms})"),
            Some(ms) => format!("{key} > TO_TIMESTAMP_MS({ms})"),
        };
        let tql = format!(
            "SELECT * WHERE {lower} AND {key} < TO_TIMESTAMP_MS({end_ms}) ORDER BY {key} ASC LIMIT {PAGE}"
        );
        let page = store.query(&info.name, &tql)?;
        for row in &page.rows {
            let Some(Value::Timestamp(ts)) = row.first() else {
                return Err(StoreError::Backend(format!(
                    "`{}`: a row without its timestamp",
                    info.name
                )));
            };
            let ts = *ts;
            if let Some(previous) = scan.last {
                if (ts - previous) as f64 > gap_threshold_ms {
                    scan.gaps.push((previous, ts));
                }
            }
            scan.first.get_or_insert(ts);
            scan.last = Some(ts);
            scan.rows += 1;
            for (slot, &i) in numeric.iter().enumerate() {
                if let Some(x) = row.get(i).and_then(Value::as_f64) {
                    scan.columns[slot].2.add(x);
                }
            }
            if let Some(Value::Bool(true)) = motion.and_then(|i| row.get(i)) {
                scan.motion_events += 1;
            }
        }
        if page.rows.len() < PAGE {
            return Ok(scan);
        }
        after = scan.last;
    }
}

/// Every device in the `devices` collection, in name order.
pub fn devices(store: &mut impl Store) -> Result<Vec<String>, StoreError> {
    if store.get_container(DEVICES)?.is_none() {
        return Ok(Vec::new());
    }
    let mut names = Vec::new();
    for offset in (0..).step_by(PAGE) {
        let tql = format!(
            "SELECT {DEVICE_ID_FIELD} ORDER BY {DEVICE_ID_FIELD} ASC LIMIT {PAGE} OFFSET {offset}"
        );
        let page = store.query(DEVICES, &tql)?;
        names.extend(page.rows.iter().filter_map(|row| match row.first() {
            Some(Value::String(name)) => Some(name.clone()),
            _ => None,
        }));
        if page.rows.len() < PAGE {
            break;
        }
    }
    Ok(names)
}

/// Messages and rows received per device with `start_ms <= received < end_ms`.
pub fn usage(
    store: &mut impl Store,
    start_ms: i64,
    end_ms: i64,
) -> Result<BTreeMap<String, (u64, u64)>, StoreError> {
    let mut usage: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    if store.get_container(MESSAGES)?.is_none() {
        return Ok(usage);
    }
    for offset in (0..).step_by(PAGE) {
        let tql = format!(
            "SELECT device, rows WHERE received >= TO_TIMESTAMP_MS({start_ms}) \
             AND received < TO_TIMESTAMP_MS({end_ms}) ORDER BY id ASC LIMIT {PAGE} OFFSET {offset}"
        );
        let page = store.query(MESSAGES, &tql)?;
        for row in &page.rows {
            if let [Value::String(device), rows] = &row[..] {
                let entry = usage.entry(device.clone()).or_default();
                entry.0 += 1;
                entry.1 += match rows {
                    Value::Long(n) => u64::try_from(*n).unwrap_or(0),
                    _ => 0,
                };
            }
        }
        if page.rows.len() < PAGE {
            break;
        }
    }
    Ok(usage)
}

/// When a message was received (epoch ms), and its `deviceinfo`.
pub type ReceivedInfo = (i64, serde_json::Map<String, serde_json::Value>);

/// The `deviceinfo` of the message that carried `device`'s latest data before
/// `end_ms`, with when it was received: the device's state as of that data.
pub fn last_deviceinfo(
    store: &mut impl Store,
    device: &str,
    end_ms: i64,
) -> Result<Option<ReceivedInfo>, StoreError> {
    if store.get_container(MESSAGES)?.is_none() {
        return Ok(None);
    }
    let tql = format!(
        "SELECT received, deviceinfo WHERE device = {} AND last_ts < TO_TIMESTAMP_MS({end_ms}) \
         ORDER BY last_ts DESC, received DESC LIMIT 1",
        tql_string(device)
    );
    let page = store.query(MESSAGES, &tql)?;
    Ok(match page.rows.first().map(|row| &row[..]) {
        Some([Value::Timestamp(received), Value::String(info)]) => serde_json::from_str(info)
            .ok()
            .map(|info| (*received, info)),
        _ => None,
    })
}

/// The collection the host keeps alarms in (host/src/alarms/ writes it):
/// `id` (`<rule>:<device>:<raised ms>`, the row key), `device`, `rule`,
/// `severity`, `state` (`raised`, `acknowledged`, `cleared`), `value` (what
/// fired it, or null), `raised`, `acknowledged` and `cleared` (TIMESTAMPs,
/// the last two null until they happen).
pub const ALARMS: &str = "alarms";

/// One alarm as read from [`ALARMS`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alarm {
    pub id: String,
    pub rule: String,
    pub severity: String,
    pub state: String,
    pub value: Option<String>,
    /// Epoch ms.
    pub raised: i64,
    /// Epoch ms; `None` while the alarm is open.
    pub cleared: Option<i64>,
}

/// `device`'s alarms open at some time in `[start_ms, end_ms)`: raised before
/// `end_ms` and not cleared before `start_ms` (still open, or cleared later).
/// Oldest first; none when the host never wrote an alarm (no collection).
pub fn alarms(
    store: &mut impl Store,
    device: &str,
    start_ms: i64,
    end_ms: i64,
) -> Result<Vec<Alarm>, StoreError> {
    if store.get_container(ALARMS)?.is_none() {
        return Ok(Vec::new());
    }
    let mut alarms = Vec::new();
    for offset in (0..).step_by(PAGE) {
        // Every name quoted: `value` and `state` are words a dialect may keep.
        let tql = format!(
            "SELECT \"id\", \"rule\", \"severity\", \"state\", \"value\", \"raised\", \"cleared\" \
             WHERE \"device\" = {} AND \"raised\" < TO_TIMESTAMP_MS({end_ms}) \
             AND (\"cleared\" IS NULL OR \"cleared\" >= TO_TIMESTAMP_MS({start_ms})) \
             ORDER BY \"id\" ASC LIMIT {PAGE} OFFSET {offset}",
            tql_string(device)
        );
        let page = store.query(ALARMS, &tql)?;
        for row in &page.rows {
            let text = |i: usize| match row.get(i) {
                Some(Value::String(s)) => Some(s.clone()),
                _ => None,
            };
            let (Some(id), Some(rule), Some(severity), Some(state)) =
                (text(0), text(1), text(2), text(3))
            else {
                continue;
            };
            let Some(Value::Timestamp(raised)) = row.get(5) else {
                continue;
            };
            alarms.push(Alarm {
                id,
                rule,
                severity,
                state,
                value: text(4),
                raised: *raised,
                cleared: match row.get(6) {
                    Some(Value::Timestamp(ms)) => Some(*ms),
                    _ => None,
                },
            });
        }
        if page.rows.len() < PAGE {
            break;
        }
    }
    alarms.sort_by(|a, b| a.raised.cmp(&b.raised).then_with(|| a.id.cmp(&b.id)));
    Ok(alarms)
}

/// Tests: `alarm` of `device` written as the host writes it, the
/// collection made with the host's schema if missing.
/// The schema of [`ALARMS`], as the host creates it.
pub fn alarms_container() -> ContainerInfo {
    use crate::model::{Column, ContainerKind};
    let text = |name: &str| Column::new(name, ColumnType::String);
    let time = |name: &str| Column::new(name, ColumnType::Timestamp);
    ContainerInfo {
        name: ALARMS.to_owned(),
        kind: ContainerKind::Collection,
        columns: vec![
            text("id"),
            text("device"),
            text("rule"),
            text("severity"),
            text("state"),
            text("value"),
            time("raised"),
            time("acknowledged"),
            time("cleared"),
        ],
        row_key: true,
    }
}

#[cfg(test)]
pub(crate) fn put_alarm(store: &mut impl Store, device: &str, alarm: &Alarm) {
    store.put_container(alarms_container()).unwrap();
    let string = |s: &str| Value::String(s.to_owned());
    let row = vec![
        string(&alarm.id),
        string(device),
        string(&alarm.rule),
        string(&alarm.severity),
        string(&alarm.state),
        alarm.value.as_deref().map_or(Value::Null, string),
        Value::Timestamp(alarm.raised),
        Value::Null,
        alarm.cleared.map_or(Value::Null, Value::Timestamp),
    ];
    store.put_rows(ALARMS, vec![row]).unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accumulator_matches_the_textbook_figures() {
        let mut acc = Accumulator::default();
        for x in [78.0, 82.0, 81.0, 80.0, 79.0, 77.0] {
            acc.add(x);
        }
        assert_eq!((acc.count, acc.min, acc.max), (6, 77.0, 82.0));
        assert_eq!(acc.mean(), Some(79.5));
        // Σ(x − 79.5)² = 17.5; population variance 17.5 / 6.
        assert!((acc.stddev().unwrap() - (17.5f64 / 6.0).sqrt()).abs() < 1e-12);
        assert_eq!(Accumulator::default().mean(), None);
    }

    #[test]
    fn float_cells_count_as_their_decimal_text() {
        assert_eq!(Value::Float(0.1).as_f64(), Some(0.1));
        assert_eq!(Value::Long(-3).as_f64(), Some(-3.0));
        assert_eq!(Value::Bool(true).as_f64(), None);
    }
}
