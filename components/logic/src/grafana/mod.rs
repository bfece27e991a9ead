//! The JSON-datasource protocol under `/grafana` (simPod's `simpod-json-datasource`,
//! a superset of the older SimpleJSON), over the fetch API.
//!
//! A metric is `<device>.<column>`, the device by its id (see `parse_target` for
//! ids and columns that hold a `.`); a target holding a multi-value variable
//! stands for a series per value (`targets`). Series come
//! back as stored rows when the range holds at most `maxDataPoints` of them,
//! and otherwise as buckets of the fetch API's aggregation, `intervalMs` wide
//! or wider, so a panel never gets more points than it can draw. A target with
//! a `payload.annotation` asks for a device's events (`events`) as a table
//! Grafana's annotation support reads. Ranges are `from <= t < to`, as `/fetch`'s.

mod events;
pub(crate) mod targets;

use crate::error::ApiError;
use crate::fetch::{self, Agg, FetchQuery, Interval};
use crate::model::{tql_name, ColumnType, ContainerInfo, Store, Value, TIMESTAMP_RANGE};
use events::Kind;
use serde_json::{json, Value as Json};

const AGGS: [&str; 6] = ["avg", "min", "max", "sum", "count", "stddev"];

/// The most values one `/variable`, `/tag-values` or `/search` answer holds:
/// a fleet of 100,000 devices is searched (`devices/<text>`, or a JSON
/// variable query's `search`), never listed whole.
pub const MOST_VALUES: u64 = 1000;

/// Answers one `/grafana/...` request: `path` is what follows `/grafana`.
pub fn handle(
    store: &mut impl Store,
    method: &str,
    path: &str,
    body: &[u8],
    max_limit: u64,
) -> Result<Json, ApiError> {
    if method.eq_ignore_ascii_case("GET") && matches!(path, "" | "/") {
        return Ok(json!({ "status": "ok", "datasource": "cromflag" }));
    }
    if !method.eq_ignore_ascii_case("POST") {
        // The health check is the one GET; every other route is a POST.
        let allowed = if matches!(path, "" | "/") {
            "GET"
        } else {
            "POST"
        };
        return Err(ApiError::new(
            405,
            "method not allowed",
            json!({ "method": method, "allowed": [allowed] }),
        ));
    }
    let request: Json = match body {
        [] => json!({}),
        _ => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request("the body is not JSON", json!({ "reason": e.to_string() }))
        })?,
    };
    match path {
        "/metrics" => metrics(store),
        "/metric-payload-options" | "/options" => Ok(payload_options(&request)),
        "/query" => query(store, &request, max_limit),
        "/variable" => variable(store, &request),
        "/tag-keys" => Ok(json!([{ "type": "string", "text": "device" }])),
        "/tag-values" => tag_values(store, &request),
        "/search" => search(store, &request),
        "/annotations" => annotations(store, &request),
        _ => Err(ApiError::not_found(
            "no such route",
            json!({ "path": format!("/grafana{path}") }),
        )),
    }
}

/// Every device, from the `devices` collection.
fn devices(store: &mut impl Store) -> Result<Vec<String>, ApiError> {
    Ok(crate::report::scan::devices(store)?)
}

/// `(device, numeric column names)` for every device with a time series.
fn numeric_columns(store: &mut impl Store) -> Result<Vec<(String, Vec<String>)>, ApiError> {
    let mut out = Vec::new();
    for device in devices(store)? {
        if let Some(info) = store.get_container(&crate::device::container_of(&device))? {
            let columns = info.columns[1..]
                .iter()
                .filter(|c| c.column_type.is_numeric())
                .map(|c| c.name.clone())
                .collect();
            out.push((device, columns));
        }
    }
    Ok(out)
}

/// `POST /metrics`: each `<device>.<column>`, with the aggregate as a payload.
fn metrics(store: &mut impl Store) -> Result<Json, ApiError> {
    let mut metrics = Vec::new();
    for (device, columns) in numeric_columns(store)? {
        for column in columns {
            metrics.push(json!({
                "label": format!("{device} {column}"),
                "value": format!("{device}.{column}"),
                "payloads": [{
                    "label": "Aggregate",
                    "name": "agg",
                    "type": "select",
                    "placeholder": "avg, when points must be bucketed",
                    "options": AGGS.map(|a| json!({ "label": a, "value": a })),
                }],
            }));
        }
    }
    Ok(Json::Array(metrics))
}

/// `POST /metric-payload-options` (and `/options`, its older name).
fn payload_options(request: &Json) -> Json {
    match request["name"].as_str() {
        Some("agg") => Json::Array(
            AGGS.iter()
                .map(|a| json!({ "label": a, "value": a }))
                .collect(),
        ),
        _ => json!([]),
    }
}

/// A `<device>.<column>` target (or a `<device>` alone, for a table), checked
/// against the store: the device's id, its time series and the column.
///
/// Device ids and column names may both hold a `.`, so each `.` is tried as
/// the separator from the left (the first is the usual case), then the whole
/// target as a device: the first reading that names a device and, if any, one
/// of its columns wins.
fn parse_target<'t>(
    store: &mut impl Store,
    target: &'t str,
) -> Result<(&'t str, ContainerInfo, Option<String>), ApiError> {
    let splits = target
        .match_indices('.')
        .map(|(i, _)| (&target[..i], Some(&target[i + 1..])));
    let mut unknown_column = None;
    for (device, column) in splits.chain([(target, None)]) {
        let Ok(info) = fetch::time_series(store, device) else {
            continue;
        };
        let Some(name) = column else {
            return Ok((device, info, None));
        };
        match info.column_index(name).filter(|&i| i > 0) {
            Some(index) => {
                let name = info.columns[index].name.clone();
                return Ok((device, info, Some(name)));
            }
            None => {
                unknown_column.get_or_insert_with(|| {
                    ApiError::bad_request(
                        "unknown column",
                        json!({ "target": target, "column": name }),
                    )
                });
            }
        }
    }
    let device = target.split_once('.').map_or(target, |(device, _)| device);
    Err(unknown_column.unwrap_or_else(|| {
        ApiError::not_found(
            "unknown device",
            json!({ "device": device, "target": target }),
        )
    }))
}

/// The request's range in epoch ms: `range.from`/`range.to` are ISO 8601,
/// within the TIMESTAMP range (as `/fetch` takes them), so that no store query
/// is asked for what it cannot hold.
fn range(request: &Json) -> Result<(i64, i64), ApiError> {
    let instant = |field: &str| {
        let text = request["range"][field].as_str().unwrap_or_default();
        let ms = chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| t.timestamp_millis())
            .map_err(|_| {
                ApiError::bad_request(
                    "range needs ISO 8601 `from` and `to`",
                    json!({ "field": format!("range.{field}"), "got": text }),
                )
            })?;
        if !TIMESTAMP_RANGE.contains(&ms) {
            return Err(ApiError::bad_request(
                "the range reaches beyond the TIMESTAMP range (1970-01-01 to 9999-12-31 UTC)",
                json!({ "field": format!("range.{field}"), "got": text }),
            ));
        }
        Ok(ms)
    };
    let (from, to) = (instant("from")?, instant("to")?);
    if from > to {
        return Err(ApiError::bad_request(
            "range.from is after range.to",
            json!({ "from": from, "to": to }),
        ));
    }
    Ok((from, to))
}

/// What one plain target names: the device, its time series and, if any, the column.
struct Named {
    target: String,
    device: String,
    info: ContainerInfo,
    column: Option<String>,
}

/// The series `text` names: itself when it names one, else one per reading
/// of the multi-value forms it holds (each must name one).
fn resolve(store: &mut impl Store, text: &str) -> Result<Vec<Named>, ApiError> {
    let named = |store: &mut _, target: &str| {
        parse_target(store, target).map(|(device, info, column)| Named {
            target: target.to_owned(),
            device: device.to_owned(),
            info,
            column,
        })
    };
    match named(store, text) {
        Ok(one) => Ok(vec![one]),
        Err(err) => {
            let readings = targets::readings(text)?;
            if readings.len() == 1 && readings[0] == text {
                return Err(err);
            }
            readings.iter().map(|r| named(store, r)).collect()
        }
    }
}

/// `POST /query`: a series per time-series target (and per value of a
/// multi-value variable in it), a table per table or annotation target.
fn query(store: &mut impl Store, request: &Json, max_limit: u64) -> Result<Json, ApiError> {
    let (from, to) = range(request)?;
    let max_points = request["maxDataPoints"]
        .as_u64()
        .filter(|n| *n > 0)
        .unwrap_or(1000)
        .min(max_limit);
    let interval_ms = request["intervalMs"]
        .as_i64()
        .filter(|n| *n > 0)
        .unwrap_or(1);
    let device_filter = adhoc_device(request);
    let mut out = Vec::new();
    for target in request["targets"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let Some(name) = target["target"].as_str().filter(|t| !t.is_empty()) else {
            continue;
        };
        if target["hide"].as_bool() == Some(true) {
            continue;
        }
        if let Some(kind) = target["payload"].get("annotation") {
            out.push(annotation_table(store, target, name, kind, from, to)?);
            continue;
        }
        for named in resolve(store, name)? {
            if device_filter.as_ref().is_some_and(|d| *d != named.device) {
                continue;
            }
            let base = FetchQuery {
                from: Some(from),
                to: Some(to),
                columns: named.column.clone().map(|c| vec![c]),
                ..FetchQuery::default()
            };
            match &named.column {
                Some(column) if target["type"] != "table" => {
                    let range = (from, to, interval_ms, max_points);
                    let series = series(store, target, &named, column, base, range, max_limit)?;
                    out.push(series);
                }
                _ => {
                    let q = FetchQuery {
                        limit: Some(max_points),
                        ..base
                    };
                    out.push(table(store, target, &named.info, &q, max_limit)?);
                }
            }
        }
    }
    Ok(Json::Array(out))
}

/// A table target's rows (all columns, or the target's one) with typed columns.
fn table(
    store: &mut impl Store,
    target: &Json,
    info: &ContainerInfo,
    q: &FetchQuery,
    max_limit: u64,
) -> Result<Json, ApiError> {
    let selection = fetch::select(store, info, q, max_limit)?;
    let columns: Vec<Json> = selection
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let kind = match c.column_type {
                _ if i == 0 => "time",
                t if t.is_numeric() => "number",
                ColumnType::Bool => "boolean",
                _ => "string",
            };
            json!({ "text": if i == 0 { "Time".to_owned() } else { c.name.clone() }, "type": kind })
        })
        .collect();
    let rows: Vec<Json> = selection
        .rows
        .iter()
        .map(|r| Json::Array(r.iter().map(cell).collect()))
        .collect();
    Ok(json!({ "type": "table", "columns": columns, "rows": rows, "refId": target["refId"] }))
}

/// One column of one device as datapoints: the stored rows while the range
/// holds at most `max_points` of them, else buckets.
fn series(
    store: &mut impl Store,
    target: &Json,
    named: &Named,
    column: &str,
    base: FetchQuery,
    (from, to, interval_ms, max_points): (i64, i64, i64, u64),
    max_limit: u64,
) -> Result<Json, ApiError> {
    let info = &named.info;
    let index = info.column_index(column).expect("parse_target found it");
    if info.columns[index].column_type == ColumnType::Bool {
        return Err(ApiError::bad_request(
            "a BOOL column is not a series: datapoints are numbers",
            json!({ "target": named.target, "column": column, "use": "a table target, or the motion annotation" }),
        ));
    }
    let count = count_rows(store, info, from, to)?;
    let q = if count <= max_points {
        FetchQuery {
            limit: Some(max_points),
            ..base
        }
    } else {
        let agg = match target["payload"]["agg"].as_str().unwrap_or("avg") {
            "min" => Agg::Min,
            "max" => Agg::Max,
            "sum" => Agg::Sum,
            "count" => Agg::Count,
            "stddev" => Agg::Stddev,
            _ => Agg::Avg,
        };
        let span = (to - from).max(1) as u64;
        let width = interval_ms.max(span.div_ceil(max_points) as i64);
        FetchQuery {
            agg: Some((agg, Interval::Millis(width))),
            // Buckets start on whole multiples of the width: the same points
            // whatever `from` the refresh brings (the first one holds only
            // the rows from `from` on).
            origin: Some(from - from.rem_euclid(width)),
            ..base
        }
    };
    let selection = fetch::select(store, info, &q, max_limit)?;
    let datapoints: Vec<Json> = selection
        .rows
        .iter()
        .map(|row| json!([cell(&row[1]), cell(&row[0])]))
        .collect();
    Ok(json!({ "target": named.target, "refId": target["refId"], "datapoints": datapoints }))
}

/// An annotation target (`payload.annotation`: `motion`, `battery`, `alarms`
/// or `all`; `target`: the device, or several in a multi-value form) as the
/// table Grafana's `getAnnotationsFromData` reads: a time field, a string
/// `text`, a `title`, `tags` as one comma-separated string (it splits them on
/// `,`), and `timeEnd` (the field it reads by that name, any case), set for
/// an alarm: Grafana draws an event whose `timeEnd` differs from its `time`
/// as a region (`translateQueryResult`), and skips a null one.
fn annotation_table(
    store: &mut impl Store,
    target: &Json,
    text: &str,
    kind: &Json,
    from: i64,
    to: i64,
) -> Result<Json, ApiError> {
    let kinds = kind.as_str().and_then(Kind::parse).ok_or_else(|| {
        ApiError::bad_request(
            format!("payload.annotation is {}", Kind::WORDS),
            json!({ "got": kind }),
        )
    })?;
    let mut events = Vec::new();
    for (device, info) in annotated_devices(store, text)? {
        for event in events::find(store, &device, &info, kinds, from, to)? {
            events.push((event, device.clone()));
        }
    }
    events.sort_by_key(|(e, _)| e.time);
    let rows: Vec<Json> = events
        .iter()
        .map(|(e, device)| {
            json!([
                e.time,
                e.title,
                e.text,
                format!("{},{device}", e.tags.join(",")),
                e.time_end
            ])
        })
        .collect();
    Ok(json!({
        "type": "table",
        "refId": target["refId"],
        "columns": [
            { "text": "Time", "type": "time" },
            { "text": "Title", "type": "string" },
            { "text": "Text", "type": "string" },
            { "text": "Tags", "type": "string" },
            { "text": "TimeEnd", "type": "time" },
        ],
        "rows": rows,
    }))
}

/// The devices an annotation target names: the text as an id, else each
/// reading of its multi-value forms.
fn annotated_devices(
    store: &mut impl Store,
    text: &str,
) -> Result<Vec<(String, ContainerInfo)>, ApiError> {
    match fetch::time_series(store, text) {
        Ok(info) => Ok(vec![(text.to_owned(), info)]),
        Err(err) => {
            let readings = targets::readings(text)?;
            if readings.len() == 1 && readings[0] == text {
                return Err(err);
            }
            readings
                .into_iter()
                .map(|device| fetch::time_series(store, &device).map(|info| (device, info)))
                .collect()
        }
    }
}

/// The device an ad hoc filter `device = x` picks, if any.
fn adhoc_device(request: &Json) -> Option<String> {
    let filters = request["adhocFilters"]
        .as_array()
        .or_else(|| request["filters"].as_array())?;
    filters
        .iter()
        .find(|f| f["key"] == "device" && f["operator"] == "=")
        .and_then(|f| f["value"].as_str().map(str::to_owned))
}

fn count_rows(
    store: &mut impl Store,
    info: &ContainerInfo,
    from: i64,
    to: i64,
) -> Result<u64, ApiError> {
    let key = tql_name(&info.columns[0].name);
    let tql = format!(
        "SELECT COUNT(*) WHERE {key} >= TO_TIMESTAMP_MS({from}) AND {key} < TO_TIMESTAMP_MS({to})"
    );
    let result = store.query(&info.name, &tql)?;
    Ok(match result.rows.first().and_then(|r| r.first()) {
        Some(Value::Long(n)) => *n as u64,
        _ => 0,
    })
}

fn cell(value: &Value) -> Json {
    match value {
        Value::Float(_) => value.as_f64().map_or(Json::Null, |f| json!(f)),
        other => serde_json::to_value(crate::json::JsonValue(other)).unwrap_or(Json::Null),
    }
}

/// What a variable query's text asks for when it asks for devices: `devices`
/// (every device, up to the limit) or `devices/<text>` (those whose id
/// contains `text`; no id holds a `/`, so no device is named so). The plugins
/// interpolate variables into the text in Grafana's `regex` format, so
/// `<text>` is read back as `targets::readings` reads a value (`\.` is `.`).
/// `None` for any other text.
fn device_listing(target: &str) -> Result<Option<Option<String>>, ApiError> {
    if target == "devices" {
        return Ok(Some(None));
    }
    let Some(text) = target.strip_prefix("devices/") else {
        return Ok(None);
    };
    match targets::readings(text)?.as_slice() {
        [one] => Ok(Some(
            Some(checked_search(one, "target")?).filter(|s| !s.is_empty()),
        )),
        _ => Err(ApiError::bad_request(
            "a device search is one text, not several values",
            json!({ "field": "target", "got": target }),
        )),
    }
}

/// `text` as a device search, or a 400 naming `field`.
fn checked_search(text: &str, field: &str) -> Result<String, ApiError> {
    if fetch::is_valid_search(text) {
        Ok(text.to_owned())
    } else {
        Err(ApiError::bad_request(
            "invalid device search",
            json!({ "field": field, "got": text, "expected": fetch::SEARCH_EXPECTED }),
        ))
    }
}

/// `POST /variable`: devices; or, for a target naming a device, its numeric
/// columns. simpod sends `{"payload": <query>, "range": …}`: the query is
/// `{"target": "<text>"}`, or with "Raw JSON" on, the JSON object the
/// variable's query text holds, in which `search` (text the ids contain) and
/// `limit` (1 to `MOST_VALUES`, the default) narrow the device list:
/// `{"target": "devices", "search": "kitchen", "limit": 100}`.
fn variable(store: &mut impl Store, request: &Json) -> Result<Json, ApiError> {
    let payload = &request["payload"];
    let target = payload["target"]
        .as_str()
        .or_else(|| request["target"].as_str())
        .unwrap_or("")
        .trim();
    let listing = match target {
        "" => Some(None),
        target => device_listing(target)?,
    };
    let values: Vec<String> = match listing {
        Some(search) => {
            let search = match (search, &payload["search"]) {
                (search, Json::Null) => search,
                (None, Json::String(text)) => {
                    Some(checked_search(text, "payload.search")?).filter(|s| !s.is_empty())
                }
                (Some(_), Json::String(_)) => {
                    return Err(ApiError::bad_request(
                        "a device search in both `target` and `search`",
                        json!({ "field": "payload.search" }),
                    ))
                }
                (_, other) => {
                    return Err(ApiError::bad_request(
                        "payload.search is text the device ids contain",
                        json!({ "field": "payload.search", "got": other }),
                    ))
                }
            };
            let limit = match &payload["limit"] {
                Json::Null => MOST_VALUES,
                limit => limit
                    .as_u64()
                    .filter(|n| (1..=MOST_VALUES).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            format!("payload.limit is an integer from 1 to {MOST_VALUES}"),
                            json!({ "field": "payload.limit", "got": limit }),
                        )
                    })?,
            };
            fetch::device_ids(store, search.as_deref(), limit)?.0
        }
        None => match fetch::time_series(store, target) {
            Ok(info) => info.columns[1..]
                .iter()
                .filter(|c| c.column_type.is_numeric())
                .map(|c| c.name.clone())
                .collect(),
            // Not a device (or no id at all): nothing to list.
            Err(err) if matches!(err.status, 400 | 404) => Vec::new(),
            Err(err) => return Err(err),
        },
    };
    Ok(Json::Array(
        values
            .into_iter()
            .map(|v| json!({ "__text": v, "__value": v }))
            .collect(),
    ))
}

/// `POST /tag-values` for the one tag key, `device`: the first `MOST_VALUES`
/// devices in id order.
fn tag_values(store: &mut impl Store, request: &Json) -> Result<Json, ApiError> {
    match request["key"].as_str() {
        Some("device") => Ok(Json::Array(
            fetch::device_ids(store, None, MOST_VALUES)?
                .0
                .into_iter()
                .map(|d| json!({ "text": d }))
                .collect(),
        )),
        _ => Ok(json!([])),
    }
}

/// Legacy `POST /search` (SimpleJSON's, and simpod's variable queries before
/// `/variable`): for `devices` or `devices/<text>`, device ids, as
/// `/variable` lists them; otherwise the metrics whose name contains `target`
/// (ignoring ASCII case). At most `MOST_VALUES` either way: metrics are
/// looked for device by device in id order until the answer is full.
fn search(store: &mut impl Store, request: &Json) -> Result<Json, ApiError> {
    let target = request["target"].as_str().unwrap_or("");
    if let Some(search) = device_listing(target.trim())? {
        let (ids, _) = fetch::device_ids(store, search.as_deref(), MOST_VALUES)?;
        return Ok(Json::Array(ids.into_iter().map(Json::String).collect()));
    }
    let needle = target.to_ascii_lowercase();
    let mut names = Vec::new();
    let Some(info) = store.get_container(crate::insert::DEVICES)? else {
        return Ok(json!([]));
    };
    let key = tql_name(&info.columns[0].name);
    let mut cursor = None;
    loop {
        let page = fetch::key_page(store, &info, &key, None, cursor.as_ref(), SEARCH_PAGE)?;
        for row in &page.rows {
            let Some(Value::String(device)) = row.first() else {
                continue;
            };
            let Some(series) = store.get_container(&crate::device::container_of(device))? else {
                continue;
            };
            for column in series.columns[1..]
                .iter()
                .filter(|c| c.column_type.is_numeric())
            {
                let name = format!("{device}.{}", column.name);
                if name.to_ascii_lowercase().contains(&needle) {
                    names.push(Json::String(name));
                    if names.len() as u64 == MOST_VALUES {
                        return Ok(Json::Array(names));
                    }
                }
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(Json::Array(names)),
        }
    }
}

/// Devices read per query while `/search` looks for metrics.
const SEARCH_PAGE: u64 = 1000;

/// Legacy `POST /annotations` (SimpleJSON): `annotation.query` is
/// `[motion|battery|alarms] <device>`, the events as SimpleJSON's list (an
/// alarm with `isRegion` and `timeEnd`, as its README has them).
fn annotations(store: &mut impl Store, request: &Json) -> Result<Json, ApiError> {
    let (from, to) = range(request)?;
    let annotation = &request["annotation"];
    // The device is the rest of the query: an id may hold spaces.
    let query = annotation["query"].as_str().unwrap_or("").trim();
    let (kinds, device) = match query.split_once(char::is_whitespace) {
        Some((word @ ("motion" | "battery" | "alarms"), device)) => {
            (Kind::parse(word).expect("a kind"), device.trim_start())
        }
        _ => (Kind::parse("all").expect("a kind"), query),
    };
    if device.is_empty() {
        return Err(ApiError::bad_request(
            "annotation.query is `[motion|battery|alarms] <device>`",
            json!({ "got": annotation["query"] }),
        ));
    }
    let info = fetch::time_series(store, device)?;
    let out: Vec<Json> = events::find(store, device, &info, kinds, from, to)?
        .into_iter()
        .map(|e| {
            let mut tags = e.tags.clone();
            tags.push(device.to_owned());
            let mut event = json!({
                "annotation": annotation, "time": e.time, "title": e.title,
                "text": e.text, "tags": tags,
            });
            if let Some(end) = e.time_end {
                event["isRegion"] = json!(end != e.time);
                event["timeEnd"] = json!(end);
            }
            event
        })
        .collect();
    Ok(Json::Array(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Column, ColumnType, ContainerKind, QueryResult, Row, StoreError};

    #[test]
    fn payload_options_list_the_aggregates() {
        let options = payload_options(
            &json!({ "metric": "sample.temperature", "payload": {}, "name": "agg" }),
        );
        assert_eq!(options[0], json!({ "label": "avg", "value": "avg" }));
        assert_eq!(options.as_array().unwrap().len(), 6);
        assert_eq!(payload_options(&json!({ "name": "other" })), json!([]));
    }

    /// Containers only, looked up regardless of case as GridDB does.
    struct Containers(Vec<ContainerInfo>);

    impl Store for Containers {
        fn put_container(&mut self, _: ContainerInfo) -> Result<ContainerInfo, StoreError> {
            unreachable!("targets are only looked up")
        }
        fn get_container(&mut self, name: &str) -> Result<Option<ContainerInfo>, StoreError> {
            let found = self.0.iter().find(|c| c.name.eq_ignore_ascii_case(name));
            Ok(found.cloned())
        }
        fn list_containers(&mut self) -> Result<Vec<String>, StoreError> {
            Ok(self.0.iter().map(|c| c.name.clone()).collect())
        }
        fn put_rows(&mut self, _: &str, _: Vec<Row>) -> Result<u64, StoreError> {
            unreachable!("targets are only looked up")
        }
        fn multi_put(&mut self, _: Vec<(String, Vec<Row>)>) -> Result<u64, StoreError> {
            unreachable!("targets are only looked up")
        }
        fn query(&mut self, _: &str, _: &str) -> Result<QueryResult, StoreError> {
            unreachable!("targets are only looked up")
        }
    }

    fn series(id: &str, columns: &[&str]) -> ContainerInfo {
        ContainerInfo {
            name: crate::device::container_of(id),
            kind: ContainerKind::TimeSeries,
            columns: std::iter::once("timestamp")
                .chain(columns.iter().copied())
                .map(|c| Column::new(c, ColumnType::Double))
                .collect(),
            row_key: true,
        }
    }

    #[test]
    fn targets_name_devices_by_id_whatever_dots_they_hold() {
        let mut store = Containers(vec![
            series("sample", &["temperature"]),
            series("Sample", &["temperature"]),
            series("sensor.kitchen", &["t"]),
            series("a", &["b.c"]),
        ]);
        let mut parse = |target: &str| {
            parse_target(&mut store, target)
                .map(|(device, info, column)| (device.to_owned(), info.name, column))
        };
        let found = |id: &str, column: Option<&str>| {
            Ok((
                id.to_owned(),
                crate::device::container_of(id),
                column.map(str::to_owned),
            ))
        };
        assert_eq!(
            parse("sample.temperature"),
            found("sample", Some("temperature"))
        );
        assert_eq!(
            parse("Sample.temperature"),
            found("Sample", Some("temperature"))
        );
        assert_eq!(
            parse("sensor.kitchen.t"),
            found("sensor.kitchen", Some("t"))
        );
        assert_eq!(parse("sensor.kitchen"), found("sensor.kitchen", None));
        assert_eq!(parse("a.b.c"), found("a", Some("b.c")));
        assert_eq!(parse("sample"), found("sample", None));
        let unknown_column = parse("sample.nope").unwrap_err();
        assert_eq!(
            (unknown_column.status, &unknown_column.detail["column"]),
            (400, &json!("nope"))
        );
        let unknown_device = parse("nobody.temperature").unwrap_err();
        assert_eq!(
            (unknown_device.status, &unknown_device.detail["device"]),
            (404, &json!("nobody"))
        );
    }

    /// A store whose `devices` collection lists `ids` (no time series).
    fn store_with_devices(ids: &[String]) -> crate::testing::MemoryStore {
        let mut store = crate::testing::MemoryStore::default();
        store
            .put_container(ContainerInfo {
                name: crate::insert::DEVICES.to_owned(),
                kind: ContainerKind::Collection,
                columns: crate::insert::devices_columns(),
                row_key: true,
            })
            .unwrap();
        let rows = ids
            .iter()
            .map(|id| vec![Value::String(id.clone()), Value::Null, Value::Null])
            .collect();
        store.put_rows(crate::insert::DEVICES, rows).unwrap();
        store
    }

    fn texts(answer: &Json) -> Vec<&str> {
        answer
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                v["__text"]
                    .as_str()
                    .or(v["text"].as_str())
                    .or(v.as_str())
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn device_variables_are_capped_and_searched() {
        let mut ids: Vec<String> = (0..1500).map(|i| format!("dev{i:04}")).collect();
        ids.extend(["sensor.kitchen", "kitchen (old)", "100%"].map(String::from));
        let mut store = store_with_devices(&ids);
        ids.sort();
        let mut variable =
            |payload: Json| variable(&mut store, &json!({ "payload": payload, "range": {} }));
        // simpod's string query: `{"target": <text>}`.
        let all = variable(json!({ "target": "devices" })).unwrap();
        assert_eq!(texts(&all), ids[..MOST_VALUES as usize]);
        assert_eq!(
            texts(&variable(json!({ "target": "" })).unwrap()).len(),
            MOST_VALUES as usize
        );
        // `devices/<text>`, the text as the `regex` format writes a value.
        assert_eq!(
            texts(&variable(json!({ "target": "devices/sensor\\.kit" })).unwrap()),
            ["sensor.kitchen"]
        );
        assert_eq!(
            texts(&variable(json!({ "target": "devices/kitchen \\(" })).unwrap()),
            ["kitchen (old)"]
        );
        assert_eq!(
            texts(&variable(json!({ "target": "devices/dev149" })).unwrap()),
            [
                "dev1490", "dev1491", "dev1492", "dev1493", "dev1494", "dev1495", "dev1496",
                "dev1497", "dev1498", "dev1499"
            ]
        );
        // Raw JSON: `search` and `limit`.
        assert_eq!(
            texts(&variable(json!({ "target": "devices", "search": "%" })).unwrap()),
            ["100%"]
        );
        assert_eq!(
            texts(&variable(json!({ "target": "devices", "search": "dev1", "limit": 3 })).unwrap()),
            ["dev1000", "dev1001", "dev1002"]
        );
        assert_eq!(
            texts(&variable(json!({ "search": "", "limit": 2 })).unwrap()),
            ["100%", "dev0000"]
        );
        for (bad, field) in [
            (json!({ "target": "devices", "limit": 0 }), "payload.limit"),
            (
                json!({ "target": "devices", "limit": MOST_VALUES + 1 }),
                "payload.limit",
            ),
            (
                json!({ "target": "devices", "limit": "10" }),
                "payload.limit",
            ),
            (
                json!({ "target": "devices", "search": 5 }),
                "payload.search",
            ),
            (
                json!({ "target": "devices", "search": "x".repeat(129) }),
                "payload.search",
            ),
            (
                json!({ "target": "devices/a", "search": "b" }),
                "payload.search",
            ),
            (json!({ "target": "devices/(a|b)" }), "target"),
        ] {
            let err = variable(bad.clone()).unwrap_err();
            assert_eq!(
                (err.status, err.detail["field"].as_str()),
                (400, Some(field)),
                "{bad}"
            );
        }
        // A target naming no device lists nothing.
        assert_eq!(variable(json!({ "target": "nobody" })).unwrap(), json!([]));
        assert_eq!(variable(json!({ "target": "a/b" })).unwrap(), json!([]));
    }

    #[test]
    fn tag_values_and_search_are_capped() {
        let ids: Vec<String> = (0..1200).map(|i| format!("d{i:04}")).collect();
        let mut store = store_with_devices(&ids);
        let values = tag_values(&mut store, &json!({ "key": "device" })).unwrap();
        assert_eq!(texts(&values), ids[..MOST_VALUES as usize]);
        let found = search(
            &mut store,
            &json!({ "type": "query", "target": "devices/d119" }),
        )
        .unwrap();
        assert_eq!(texts(&found), ids[1190..]);
        let all = search(&mut store, &json!({ "target": "devices" })).unwrap();
        assert_eq!(all.as_array().unwrap().len(), MOST_VALUES as usize);
        // No device has a time series here: no metric.
        assert_eq!(
            search(&mut store, &json!({ "target": "d1" })).unwrap(),
            json!([])
        );
    }

    /// simpod's annotation target, `{"annotation": <kind>}` for `target`, in
    /// a `/query` request over `from..to` (ISO 8601).
    fn annotation_query(
        store: &mut impl Store,
        target: &str,
        kind: &str,
        range: (&str, &str),
    ) -> Json {
        let request = json!({
            "range": { "from": range.0, "to": range.1, "raw": { "from": "now-6h", "to": "now" } },
            "targets": [{ "refId": "Anno", "target": target, "payload": { "annotation": kind } }],
        });
        let body = request.to_string();
        handle(store, "POST", "/query", body.as_bytes(), 10_000).unwrap()
    }

    /// Must show: the `alarms` annotation (and `all`) answers each alarm of
    /// the device open at some time in the range as a region, `Time` when it
    /// was raised and `TimeEnd` when it was cleared (the range's end while
    /// open), its title and text naming rule, severity, state and value, its
    /// tags `alarm`, the rule, the severity and the device; no alarms
    /// collection is no alarm. The legacy `/annotations` says `isRegion`.
    #[test]
    fn alarms_are_annotated_as_regions() {
        use crate::report::scan::{put_alarm, Alarm};
        let mut store = store_with_devices(&["sample".to_owned(), "other".to_owned()]);
        store
            .put_container(series("sample", &["temperature"]))
            .unwrap();
        store
            .put_container(series("other", &["temperature"]))
            .unwrap();
        let range = ("2020-02-18T00:00:00.000Z", "2020-02-18T06:00:00.000Z");
        let hour = |h: i64| 1_581_984_000_000 + h * 3_600_000; // 2020-02-18T00:00Z + h
        let empty = annotation_query(&mut store, "sample", "alarms", range);
        assert_eq!(empty[0]["rows"], json!([]));

        let alarm = |rule: &str, device: &str, raised: i64, cleared: Option<i64>| Alarm {
            id: format!("{rule}:{device}:{raised}"),
            rule: rule.to_owned(),
            severity: "warning".to_owned(),
            state: if cleared.is_some() {
                "cleared"
            } else {
                "raised"
            }
            .to_owned(),
            value: Some(format!("{}", raised - 120_000)),
            raised,
            cleared,
        };
        let cleared = alarm("inactivity", "sample", hour(1), Some(hour(2)));
        let open = Alarm {
            severity: "critical".to_owned(),
            value: None,
            ..alarm("temp_high", "sample", hour(-3), None)
        };
        put_alarm(&mut store, "sample", &cleared);
        put_alarm(&mut store, "sample", &open);
        put_alarm(
            &mut store,
            "sample",
            &alarm("inactivity", "sample", hour(-5), Some(hour(-1))),
        );
        put_alarm(
            &mut store,
            "sample",
            &alarm("inactivity", "sample", hour(6), None),
        );
        put_alarm(
            &mut store,
            "other",
            &alarm("inactivity", "other", hour(3), None),
        );

        let answer = annotation_query(&mut store, "sample", "alarms", range);
        assert_eq!(
            answer[0]["columns"],
            json!([
                { "text": "Time", "type": "time" },
                { "text": "Title", "type": "string" },
                { "text": "Text", "type": "string" },
                { "text": "Tags", "type": "string" },
                { "text": "TimeEnd", "type": "time" },
            ])
        );
        assert_eq!(
            answer[0]["rows"],
            json!([
                [
                    hour(-3),
                    "Alarm: temp_high (critical)",
                    "sample: temp_high alarm, critical, raised",
                    "alarm,temp_high,critical,sample",
                    hour(6)
                ],
                [
                    hour(1),
                    "Alarm: inactivity (warning)",
                    format!(
                        "sample: inactivity alarm, warning, cleared, value {}",
                        hour(1) - 120_000
                    ),
                    "alarm,inactivity,warning,sample",
                    hour(2)
                ],
            ])
        );
        assert_eq!(answer[0]["refId"], "Anno");
        // `all` holds them (no motion column, no messages here), and several
        // devices each their own.
        let all = annotation_query(&mut store, "(sample|other)", "all", range);
        let tags: Vec<&str> = all[0]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[3].as_str().unwrap())
            .collect();
        assert_eq!(
            tags,
            [
                "alarm,temp_high,critical,sample",
                "alarm,inactivity,warning,sample",
                "alarm,inactivity,warning,other"
            ]
        );
        let refused = handle(
            &mut store,
            "POST",
            "/query",
            json!({ "range": { "from": range.0, "to": range.1 }, "targets": [{ "target": "sample", "payload": { "annotation": "alarm" } }] })
                .to_string()
                .as_bytes(),
            10_000,
        )
        .unwrap_err();
        assert_eq!(refused.status, 400);
        assert!(refused.error.contains("`alarms`"), "{}", refused.error);

        // SimpleJSON's list.
        let legacy = json!({
            "range": { "from": range.0, "to": range.1 },
            "annotation": { "name": "alarms", "query": "alarms sample" },
        });
        let listed = handle(
            &mut store,
            "POST",
            "/annotations",
            legacy.to_string().as_bytes(),
            10_000,
        )
        .unwrap();
        assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
        assert_eq!(listed[1]["time"], hour(1));
        assert_eq!(listed[1]["timeEnd"], hour(2));
        assert_eq!(listed[1]["isRegion"], true);
        assert_eq!(
            listed[1]["tags"],
            json!(["alarm", "inactivity", "warning", "sample"])
        );
    }

    #[test]
    fn adhoc_filters_pick_a_device() {
        let request =
            json!({ "adhocFilters": [{ "key": "device", "operator": "=", "value": "sample" }] });
        assert_eq!(adhoc_device(&request).as_deref(), Some("sample"));
        assert_eq!(adhoc_device(&json!({})), None);
    }
}
