//! The events a device's annotations show, found in the store: motion (rows
//! whose BOOL `motion` is true) and low battery (documents in `messages`
//! reporting `batt_lvl` under `LOW_BATTERY`, at the time of their last row).
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
}

impl Kind {
    /// The kinds a query word names: `motion`, `battery`, or either for `all`.
    pub fn parse(word: &str) -> Option<&'static [Kind]> {
        match word {
            "motion" => Some(&[Kind::Motion]),
            "battery" => Some(&[Kind::LowBattery]),
            "all" => Some(&[Kind::Motion, Kind::LowBattery]),
            _ => None,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Kind::Motion => "Motion",
            Kind::LowBattery => "Low battery",
        }
    }

    pub fn tag(self) -> &'static str {
        match self {
            Kind::Motion => "motion",
            Kind::LowBattery => "battery",
        }
    }
}

/// One event of one device.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub time: i64,
    pub kind: Kind,
    pub text: String,
}

/// The `kinds` of events of `device` (its time series `info`) in
/// `from <= time < to`, oldest first.
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
            Some(Value::Timestamp(ms)) => Some(Event {
                time: *ms,
                kind: Kind::Motion,
                text: format!("{device}: motion detected"),
            }),
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
            events.push(Event {
                time: *ms,
                kind: Kind::LowBattery,
                text: format!("{device}: battery {level} (below {LOW_BATTERY})"),
            });
        }
    }
    Ok(events)
}
