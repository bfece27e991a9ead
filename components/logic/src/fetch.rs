//! The fetch operation: a device's rows in a time range, or the `devices` list.
//!
//! The original sample pasted `from`/`to` into TQL text, which allowed injection;
//! here they are parsed as integers first and only numbers reach the query.

use crate::error::ApiError;
use crate::insert::DEVICES;
use crate::json::RowObjects;
use crate::model::{is_valid_container_name, Store, TIMESTAMP_RANGE};
use serde_json::json;

/// The time range of `GET /fetch/<device>?from=<ms>&to=<ms>`: `from` inclusive,
/// `to` exclusive, both optional.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub from: Option<i64>,
    pub to: Option<i64>,
}

impl TimeRange {
    /// Parses a query string strictly: only `from` and `to`, each at most once,
    /// each an integer number of epoch milliseconds.
    pub fn parse(query: Option<&str>) -> Result<TimeRange, ApiError> {
        let mut range = TimeRange::default();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match key {
                "from" => &mut range.from,
                "to" => &mut range.to,
                _ => {
                    return Err(ApiError::bad_request(
                        "unknown query parameter",
                        json!({ "parameter": key, "allowed": ["from", "to"] }),
                    ))
                }
            };
            if slot.is_some() {
                return Err(ApiError::bad_request(
                    "query parameter given twice",
                    json!({ "parameter": key }),
                ));
            }
            let ms = value
                .parse::<i64>()
                .ok()
                .filter(|ms| TIMESTAMP_RANGE.contains(ms))
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid query parameter",
                        json!({
                            "parameter": key,
                            "got": value,
                            "expected": "an integer number of epoch milliseconds",
                        }),
                    )
                })?;
            *slot = Some(ms);
        }
        Ok(range)
    }

    fn is_empty(&self) -> bool {
        self.from.is_none() && self.to.is_none()
    }
}

/// The JSON body for `GET /fetch/<device>`: an array of row objects.
pub fn fetch(store: &mut impl Store, device: &str, range: TimeRange) -> Result<Vec<u8>, ApiError> {
    let unknown = || ApiError::not_found("unknown device", json!({ "device": device }));
    if !is_valid_container_name(device) {
        return Err(unknown());
    }
    let info = store.get_container(device)?.ok_or_else(unknown)?;
    let is_devices = info.name.eq_ignore_ascii_case(DEVICES);
    if is_devices && !range.is_empty() {
        return Err(ApiError::bad_request(
            "`from` and `to` do not apply to the devices list",
            json!({ "parameter": if range.from.is_some() { "from" } else { "to" } }),
        ));
    }
    let mut tql = String::from("select *");
    if !is_devices {
        // The row key of a time series is its first column.
        let key = info.columns[0].name.replace('"', "\"\"");
        let mut conditions = Vec::new();
        if let Some(from) = range.from {
            conditions.push(format!("\"{key}\" >= TO_TIMESTAMP_MS({from})"));
        }
        if let Some(to) = range.to {
            conditions.push(format!("\"{key}\" < TO_TIMESTAMP_MS({to})"));
        }
        if !conditions.is_empty() {
            tql.push_str(" where ");
            tql.push_str(&conditions.join(" and "));
        }
    }
    let result = store.query(&info.name, &tql)?;
    Ok(RowObjects {
        columns: &result.columns,
        rows: &result.rows,
    }
    .to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_strictly() {
        assert_eq!(TimeRange::parse(None).unwrap(), TimeRange::default());
        assert_eq!(
            TimeRange::parse(Some("from=1&to=2")).unwrap(),
            TimeRange {
                from: Some(1),
                to: Some(2)
            }
        );
        for bad in [
            "from=1&from=2",
            "from=x",
            "from=1)%20or%20(1=1",
            "limit=5",
            "to=",
            "from=-1",
            "to=1.5",
        ] {
            let err = TimeRange::parse(Some(bad)).unwrap_err();
            assert_eq!(err.status, 400, "{bad}");
        }
    }
}
