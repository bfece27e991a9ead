//! The events a device's annotations show, found in the store: motion (rows
//! whose BOOL `motion` is true), low battery (documents in `messages`
//! reporting `batt_lvl` under `LOW_BATTERY`, at the time of their last row),
//! and alarms (the host's `alarms` collection, read by `report::scan::alarms`:
//! each alarm open at some time in the range, as a region from when it was
//! raised to when it was cleared, or to the range's end while it is open).
//! Both annotation paths read them here: simpod's annotation targets on
//! `/query` (a table) and SimpleJSON's legacy `/annotations` (a list).

use crate::error::ApiError;
use crate::insert::MESSAGES;
use crate::model::{tql_name, tql_string, ColumnType, ContainerInfo, Store, Value};
use serde_json::Value as Json;

/// Battery levels below this are annotated (as the report's default threshold).
pub const LOW_BATTERY: f64 = 20.0;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Motion,
    LowBattery,
    Alarm,
}

impl Kind {
    /// The words a query names kinds with, as `parse` reads them.
    pub const WORDS: &'static str = "`motion`, `battery`, `alarms` or `all`";

    /// The kinds a query word names: `motion`, `battery`, `alarms`, or every
    /// one for `all`.
    pub fn parse(word: &str) -> Option<&'static [Kind]> {
        match word {
            "motion" => Some(&[Kind::Motion]),
            "battery" => Some(&[Kind::LowBattery]),
            "alarms" => Some(&[Kind::Alarm]),
            "all" => Some(&[Kind::Motion, Kind::LowBattery, Kind::Alarm]),
            _ => None,
        }
    }
}

/// One event of one device.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub time: i64,
    /// The end of a region (an alarm); `None` for an instant.
    pub time_end: Option<i64>,
    pub title: String,
    pub text: String,
    /// The tags before the device's id, which follows them: `motion`,
    /// `battery`, or `alarm`, the rule and the severity.
    pub tags: Vec<String>,
}

impl Event {
    fn instant(time: i64, title: &str, tag: &str, text: String) -> Event {
        Event {
            time,
            time_end: None,
            title: title.to_owned(),
            text,
            tags: vec![tag.to_owned()],
        }
    }
}

/// The `kinds` of events of `device` (its time series `info`) in
/// `from <= time < to` (an alarm: open at some time in it, so raised before
/// `from` when it was open then), oldest first.
pub fn find(
    store: &mut impl Store,
    device: &str,
    info: &ContainerInfo,
    kinds: &[Kind],
    from: i64,
    to: i64,
) -> Result<Vec<Event>, ApiError> {
    let mut events = Vec::new();
    if kinds.contains(&Kind::Motion) {
        events.extend(motion(store, device, info, from, to)?);
    }
    if kinds.contains(&Kind::LowBattery) {
        events.extend(low_battery(store, device, from, to)?);
    }
    if kinds.contains(&Kind::Alarm) {
        events.extend(alarms(store, device, from, to)?);
    }
    events.sort_by_key(|e| e.time);
    Ok(events)
}

fn motion(
    store: &mut impl Store,
    device: &str,
    info: &ContainerInfo,
    from: i64,
    to: i64,
) -> Result<Vec<Event>, ApiError> {
    let Some(index) = info
        .column_index("motion")
        .filter(|&i| info.columns[i].column_type == ColumnType::Bool)
    else {
        return Ok(Vec::new());
    };
    let key = tql_name(&info.columns[0].name);
    let tql = format!(
        "SELECT {key} WHERE {} AND {key} >= TO_TIMESTAMP_MS({from}) AND {key} < TO_TIMESTAMP_MS({to}) ORDER BY {key} LIMIT 10000",
        tql_name(&info.columns[index].name)
    );
    let rows = store.query(&info.name, &tql)?.rows;
    Ok(rows
        .iter()
        .filter_map(|row| match row.first() {
            Some(Value::Timestamp(ms)) => Some(Event::instant(
                *ms,
                "Motion",
                "motion",
                format!("{device}: motion detected"),
            )),
            _ => None,
        })
        .collect())
}

fn low_battery(
    store: &mut impl Store,
    device: &str,
    from: i64,
    to: i64,
) -> Result<Vec<Event>, ApiError> {
    if store.get_container(MESSAGES)?.is_none() {
        return Ok(Vec::new());
    }
    let tql = format!(
        "SELECT last_ts, deviceinfo WHERE device = {} AND last_ts >= TO_TIMESTAMP_MS({from}) \
         AND last_ts < TO_TIMESTAMP_MS({to}) ORDER BY last_ts LIMIT 10000",
        tql_string(device)
    );
    let mut events = Vec::new();
    for row in store.query(MESSAGES, &tql)?.rows {
        let (Some(Value::Timestamp(ms)), Some(Value::String(text))) = (row.first(), row.get(1))
        else {
            continue;
        };
        let level = serde_json::from_str::<Json>(text)
            .ok()
            .and_then(|info| info["batt_lvl"].as_f64());
        if let Some(level) = level.filter(|l| *l < LOW_BATTERY) {
            events.push(Event::instant(
                *ms,
                "Low battery",
                "battery",
                format!("{device}: battery {level} (below {LOW_BATTERY})"),
            ));
        }
    }
    Ok(events)
}

/// `device`'s alarms open at some time in the range, each a region from when
/// it was raised to when it was cleared, or to `to` while it is open.
fn alarms(
    store: &mut impl Store,
    device: &str,
    from: i64,
    to: i64,
) -> Result<Vec<Event>, ApiError> {
    Ok(crate::report::scan::alarms(store, device, from, to)?
        .into_iter()
        .map(|alarm| {
            let value = alarm
                .value
                .as_deref()
                .map_or(String::new(), |v| format!(", value {v}"));
            Event {
                time: alarm.raised,
                time_end: Some(alarm.cleared.unwrap_or(to).max(alarm.raised)),
                title: format!("Alarm: {} ({})", alarm.rule, alarm.severity),
                text: format!(
                    "{device}: {} alarm, {}, {}{value}",
                    alarm.rule, alarm.severity, alarm.state
                ),
                tags: vec!["alarm".to_owned(), alarm.rule, alarm.severity],
            }
        })
        .collect())
}
