//! Device health as the fetch API shows it: when each device was last seen
//! and whether it is active, read from `_last_seen`.
//!
//! The host's alarms (`host/src/alarms/`) keep that collection: `device`
//! (STRING, row key), `last_seen` (TIMESTAMP, when its telemetry last
//! committed) and `active` (BOOL, false once it passed its inactivity
//! timeout). Where no host writes it (under Spin, or before the first
//! evaluation after a device's first insert) a device's health is unknown:
//! both null.
//!
//! `/fetch/devices` lists the health of its page's devices as two more
//! columns, `/devices/<d>/latest` in two headers (`with_health`,
//! `headers`).

use crate::error::ApiError;
use crate::model::{tql_name, tql_string, Column, ColumnType, Row, Store, Value};
use std::collections::HashMap;

/// The collection the host writes devices' health to.
pub const LAST_SEEN: &str = "_last_seen";
/// The header of `/devices/<d>/latest` with the device's last-seen time (ms).
pub const LAST_SEEN_HEADER: &str = "x-device-last-seen";
/// The header of `/devices/<d>/latest` saying whether the device is active.
pub const ACTIVE_HEADER: &str = "x-device-active";

/// Devices read per query: `device = '…' OR …` over n devices is 2n - 1
/// operators, and the TQL parser takes at most 400 in one expression.
const DEVICES_PER_QUERY: usize = 200;

/// One device's health; `None` where it is unknown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// When its telemetry last committed, epoch ms.
    pub last_seen: Option<i64>,
    /// False once it passed its inactivity timeout.
    pub active: Option<bool>,
}

/// The health of each of `devices` that `_last_seen` holds, by device id:
/// one query per `DEVICES_PER_QUERY` devices (never one per device, nor a
/// read of the whole collection), none without the collection.
pub fn of(store: &mut impl Store, devices: &[&str]) -> Result<HashMap<String, Health>, ApiError> {
    let mut found = HashMap::new();
    if devices.is_empty() {
        return Ok(found);
    }
    let Some(info) = store.get_container(LAST_SEEN)? else {
        return Ok(found);
    };
    let key = tql_name(&info.columns[0].name);
    for chunk in devices.chunks(DEVICES_PER_QUERY) {
        let matches: Vec<String> = chunk
            .iter()
            .map(|device| format!("{key} = {}", tql_string(device)))
            .collect();
        let tql = format!("SELECT * WHERE {}", matches.join(" OR "));
        let result = store.query(LAST_SEEN, &tql)?;
        let position = |name: &str| {
            result
                .columns
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(name))
        };
        let (at, active) = (position("last_seen"), position("active"));
        for row in &result.rows {
            let Some(Value::String(device)) = row.first() else {
                continue;
            };
            let health = Health {
                last_seen: at.and_then(|i| match row.get(i) {
                    Some(Value::Timestamp(ms)) => Some(*ms),
                    _ => None,
                }),
                active: active.and_then(|i| match row.get(i) {
                    Some(Value::Bool(active)) => Some(*active),
                    _ => None,
                }),
            };
            found.insert(device.clone(), health);
        }
    }
    Ok(found)
}

/// A page of `devices` rows (the device id first) with two more columns,
/// each device's `last_seen` and `active`, null where unknown. A device's
/// metadata may hold fields of those names (its `deviceinfo`'s fields are
/// columns): then the health columns take the name with `_` before it, as
/// many times as it takes to be free, so nothing the device sent is hidden.
pub fn with_health(
    store: &mut impl Store,
    mut columns: Vec<Column>,
    mut rows: Vec<Row>,
) -> Result<(Vec<Column>, Vec<Row>), ApiError> {
    let ids: Vec<&str> = rows
        .iter()
        .filter_map(|row| match row.first() {
            Some(Value::String(id)) => Some(id.as_str()),
            _ => None,
        })
        .collect();
    let health = of(store, &ids)?;
    let last_seen = free_name(&columns, "last_seen");
    let active = free_name(&columns, "active");
    columns.push(Column::new(&last_seen, ColumnType::Timestamp));
    columns.push(Column::new(&active, ColumnType::Bool));
    for row in &mut rows {
        let known = match row.first() {
            Some(Value::String(id)) => health.get(id).copied().unwrap_or_default(),
            _ => Health::default(),
        };
        row.push(known.last_seen.map_or(Value::Null, Value::Timestamp));
        row.push(known.active.map_or(Value::Null, Value::Bool));
    }
    Ok((columns, rows))
}

/// `name`, or `_name`, `__name`, …: the first no column of `columns` has
/// (column names compare case-insensitively).
fn free_name(columns: &[Column], name: &str) -> String {
    let mut free = name.to_owned();
    while columns.iter().any(|c| c.name.eq_ignore_ascii_case(&free)) {
        free.insert(0, '_');
    }
    free
}

/// The headers of `/devices/<device>/latest` that carry its health: only
/// those known (a header is left out rather than sent as `null`).
pub fn headers(
    store: &mut impl Store,
    device: &str,
) -> Result<Vec<(&'static str, String)>, ApiError> {
    let health = of(store, &[device])?.remove(device).unwrap_or_default();
    let mut headers = Vec::new();
    if let Some(ms) = health.last_seen {
        headers.push((LAST_SEEN_HEADER, ms.to_string()));
    }
    if let Some(active) = health.active {
        headers.push((ACTIVE_HEADER, active.to_string()));
    }
    Ok(headers)
}

/// The schema of [`LAST_SEEN`], as the host writes it: per device (the row
/// key), when its telemetry last committed and whether it counts as active
/// (seen within its inactivity timeout).
pub fn last_seen_container() -> crate::model::ContainerInfo {
    crate::model::ContainerInfo {
        name: LAST_SEEN.to_owned(),
        kind: crate::model::ContainerKind::Collection,
        columns: vec![
            Column::new("device", ColumnType::String),
            Column::new("last_seen", ColumnType::Timestamp),
            Column::new("active", ColumnType::Bool),
        ],
        row_key: true,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::testing::MemoryStore;

    /// `_last_seen` as the host writes it, with `seen`: (device, ms, active).
    pub(crate) fn write_last_seen(store: &mut MemoryStore, seen: &[(&str, i64, bool)]) {
        store.put_container(last_seen_container()).unwrap();
        let rows = seen
            .iter()
            .map(|(d, at, active)| {
                vec![
                    Value::String(d.to_string()),
                    Value::Timestamp(*at),
                    Value::Bool(*active),
                ]
            })
            .collect();
        store.put_rows(LAST_SEEN, rows).unwrap();
    }

    #[test]
    fn health_is_read_for_the_devices_asked_in_a_few_queries() {
        let mut store = MemoryStore::default();
        assert_eq!(of(&mut store, &["a"]).unwrap(), HashMap::new());
        // More devices than one query takes; ids a TQL literal must escape.
        let ids: Vec<String> = (0..450)
            .map(|i| format!("d{i:03}"))
            .chain(["it's".to_owned()])
            .collect();
        let seen: Vec<(&str, i64, bool)> = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 0)
            .map(|(i, id)| (id.as_str(), 1000 + i as i64, i % 2 == 0))
            .collect();
        write_last_seen(&mut store, &seen);
        let asked: Vec<&str> = ids.iter().map(String::as_str).collect();
        let health = of(&mut store, &asked).unwrap();
        assert_eq!(health.len(), seen.len());
        for (id, at, active) in &seen {
            let expected = Health {
                last_seen: Some(*at),
                active: Some(*active),
            };
            assert_eq!(health[*id], expected, "{id}");
        }
        // Only the devices asked.
        assert_eq!(of(&mut store, &["d001", "nobody"]).unwrap().len(), 1);
    }

    #[test]
    fn health_columns_never_hide_a_devices_own_fields() {
        let mut store = MemoryStore::default();
        write_last_seen(&mut store, &[("a", 5, false)]);
        let columns = vec![
            Column::new("deviceid", ColumnType::String),
            Column::new("Active", ColumnType::Bool),
            Column::new("_active", ColumnType::String),
        ];
        let rows = vec![
            vec![
                Value::String("a".into()),
                Value::Bool(true),
                Value::String("x".into()),
            ],
            vec![Value::String("b".into()), Value::Null, Value::Null],
        ];
        let (columns, rows) = with_health(&mut store, columns, rows).unwrap();
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["deviceid", "Active", "_active", "last_seen", "__active"]
        );
        assert_eq!(rows[0][3..], [Value::Timestamp(5), Value::Bool(false)]);
        assert_eq!(rows[1][3..], [Value::Null, Value::Null]);
    }

    #[test]
    fn latest_headers_say_only_what_is_known() {
        let mut store = MemoryStore::default();
        assert_eq!(headers(&mut store, "a").unwrap(), []);
        write_last_seen(&mut store, &[("a", 7, true)]);
        assert_eq!(
            headers(&mut store, "a").unwrap(),
            [
                (LAST_SEEN_HEADER, "7".to_owned()),
                (ACTIVE_HEADER, "true".to_owned())
            ]
        );
        assert_eq!(headers(&mut store, "b").unwrap(), []);
    }
}
