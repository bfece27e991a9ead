//! The read API for third-party apps: `GET /fetch/<device>` (rows in a time
//! range, paged with a cursor, or aggregated into time buckets), `GET
//! /fetch/devices` (and the other collections: paged in key order, devices
//! searchable by id, with their health: `health`), `GET
//! /devices/<device>/latest` and `/schema`.
//!
//! Every parameter is parsed before anything is read, and only numbers,
//! checked column names and quoted, escaped `search` patterns reach the TQL
//! (the original sample pasted `from`/`to` into its query text, which allowed
//! injection).

use crate::device::{self, Fetched};
use crate::encode::{self, Format};
use crate::error::ApiError;
use crate::insert::DEVICES;
use crate::model::{
    tql_name, tql_string, Column, ColumnType, ContainerInfo, ContainerKind, KeyRange, Row, Store,
    Value, TIMESTAMP_RANGE,
};
use crate::query;
use crate::report::period::{Granularity, LocalPeriod};
use chrono::DateTime;
use chrono_tz::Tz;
use serde_json::json;

pub mod health;

/// Rows per response unless `limit` says otherwise.
pub const DEFAULT_LIMIT: u64 = 10_000;
/// The largest `limit` (and number of buckets) unless the component's
/// `fetch_max_limit` variable says otherwise.
pub const DEFAULT_MAX_LIMIT: u64 = 100_000;

const PARAMETERS: [&str; 11] = [
    "from", "to", "limit", "cursor", "order", "columns", "agg", "interval", "fill", "tz", "format",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agg {
    Avg,
    Min,
    Max,
    Sum,
    Count,
    Stddev,
}

impl Agg {
    fn tql(self) -> &'static str {
        match self {
            Agg::Avg => "AVG",
            Agg::Min => "MIN",
            Agg::Max => "MAX",
            Agg::Sum => "SUM",
            Agg::Count => "COUNT",
            Agg::Stddev => "STDDEV",
        }
    }
}

/// A bucket width: `n` fixed units, or one calendar day, week or month.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interval {
    Millis(i64),
    Calendar(Granularity),
}

/// What fills a bucket without rows (without `fill`, it is left out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    Omit,
    Null,
    Previous,
    Linear,
}

/// The parsed query of `GET /fetch/<device>`.
#[derive(Clone, Debug, PartialEq)]
pub struct FetchQuery {
    /// `from` inclusive, `to` exclusive, epoch ms.
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub limit: Option<u64>,
    /// The row key after which (in `order`) the page starts.
    pub cursor: Option<i64>,
    pub order: Order,
    pub columns: Option<Vec<String>>,
    pub agg: Option<(Agg, Interval)>,
    pub fill: Fill,
    pub tz: Tz,
    pub format: Option<Format>,
    /// Where fixed-width buckets count from, at or before `from` (no query
    /// parameter: the JSON datasource puts them on whole multiples of their
    /// width, so a panel's points stay put as its range moves). Default `from`.
    pub origin: Option<i64>,
}

impl Default for FetchQuery {
    fn default() -> Self {
        FetchQuery {
            from: None,
            to: None,
            limit: None,
            cursor: None,
            order: Order::Asc,
            columns: None,
            agg: None,
            fill: Fill::Omit,
            tz: Tz::UTC,
            format: None,
            origin: None,
        }
    }
}

impl FetchQuery {
    /// Parses a query string strictly: each parameter at most once, each value checked.
    pub fn parse(text: Option<&str>, max_limit: u64) -> Result<FetchQuery, ApiError> {
        let mut q = FetchQuery::default();
        let (mut agg, mut interval, mut cursor) = (None, None, None);
        let mut fill_given = false;
        for (key, value) in query::parse(text, &PARAMETERS)? {
            let invalid = |expected: &str| query::invalid(&key, &value, expected);
            match key.as_str() {
                "from" | "to" => {
                    let ms = value
                        .parse::<i64>()
                        .ok()
                        .filter(|ms| TIMESTAMP_RANGE.contains(ms))
                        .ok_or_else(|| invalid("an integer number of epoch milliseconds"))?;
                    *(if key == "from" {
                        &mut q.from
                    } else {
                        &mut q.to
                    }) = Some(ms);
                }
                "limit" => {
                    let expected = format!("an integer from 1 to {max_limit}");
                    q.limit = Some(
                        value
                            .parse::<u64>()
                            .ok()
                            .filter(|n| (1..=max_limit).contains(n))
                            .ok_or_else(|| invalid(&expected))?,
                    );
                }
                "cursor" => cursor = Some(value.clone()),
                "order" => {
                    q.order = match value.as_str() {
                        "asc" => Order::Asc,
                        "desc" => Order::Desc,
                        _ => return Err(invalid("asc or desc")),
                    }
                }
                "columns" => {
                    let names: Vec<String> =
                        value.split(',').map(|c| c.trim().to_owned()).collect();
                    if names.iter().any(|n| n.is_empty()) {
                        return Err(invalid("column names separated by commas"));
                    }
                    q.columns = Some(names);
                }
                "agg" => {
                    agg = Some(match value.as_str() {
                        "avg" => Agg::Avg,
                        "min" => Agg::Min,
                        "max" => Agg::Max,
                        "sum" => Agg::Sum,
                        "count" => Agg::Count,
                        "stddev" => Agg::Stddev,
                        _ => return Err(invalid("avg, min, max, sum, count or stddev")),
                    })
                }
                "interval" => {
                    interval = Some(parse_interval(&value).ok_or_else(|| {
                        invalid(
                            "a whole number and a unit: ms, s, m, h, or 1d, 1w, 1M (e.g. 10s, 1h)",
                        )
                    })?)
                }
                "fill" => {
                    fill_given = true;
                    q.fill = match value.as_str() {
                        "null" => Fill::Null,
                        "previous" => Fill::Previous,
                        "linear" => Fill::Linear,
                        _ => return Err(invalid("null, previous or linear")),
                    }
                }
                "tz" => {
                    q.tz = value
                        .parse()
                        .map_err(|_| invalid("an IANA time zone such as Europe/Berlin"))?
                }
                _ => {
                    q.format = Some(match value.as_str() {
                        "json" => Format::Json,
                        "msgpack" => Format::MsgPack,
                        "csv" => Format::Csv,
                        _ => return Err(invalid("json, msgpack or csv")),
                    })
                }
            }
        }
        let needs = |parameter: &str, other: &str| {
            ApiError::bad_request(
                format!("`{parameter}` needs `{other}`"),
                json!({ "parameter": parameter }),
            )
        };
        q.agg = match (agg, interval) {
            (Some(agg), Some(interval)) => Some((agg, interval)),
            (None, None) => None,
            (Some(_), None) => return Err(needs("agg", "interval")),
            (None, Some(_)) => return Err(needs("interval", "agg")),
        };
        if fill_given && q.agg.is_none() {
            return Err(needs("fill", "agg"));
        }
        if let Some(text) = cursor {
            if q.agg.is_some() {
                return Err(ApiError::bad_request(
                    "`cursor` pages rows, not buckets",
                    json!({ "parameter": "cursor" }),
                ));
            }
            q.cursor = Some(parse_cursor(&text, q.order)?);
        }
        if let (Some(from), Some(to)) = (q.from, q.to) {
            if from > to {
                return Err(ApiError::bad_request(
                    "`from` is after `to`",
                    json!({ "parameter": "from", "from": from, "to": to }),
                ));
            }
        }
        Ok(q)
    }
}

/// `10s`, `1m`, `250ms`, `1h`, or one calendar `1d`, `1w`, `1M`.
fn parse_interval(text: &str) -> Option<Interval> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    let n: i64 = digits.parse().ok().filter(|n| *n > 0)?;
    let fixed = |unit_ms: i64| n.checked_mul(unit_ms).map(Interval::Millis);
    match unit {
        "ms" => fixed(1),
        "s" => fixed(1000),
        "m" => fixed(60_000),
        "h" => fixed(3_600_000),
        "d" if n == 1 => Some(Interval::Calendar(Granularity::Day)),
        "w" if n == 1 => Some(Interval::Calendar(Granularity::Week)),
        "M" if n == 1 => Some(Interval::Calendar(Granularity::Month)),
        _ => None,
    }
}

/// A cursor is the last row key of the previous page and the order it was read in.
fn cursor_text(order: Order, key: i64) -> String {
    match order {
        Order::Asc => format!("a{key}"),
        Order::Desc => format!("d{key}"),
    }
}

fn parse_cursor(text: &str, order: Order) -> Result<i64, ApiError> {
    let invalid = || {
        query::invalid(
            "cursor",
            text,
            "a cursor from a previous response's Link header",
        )
    };
    // Split after the first character, not byte: a cursor may start with a
    // multi-byte character, and splitting inside it panicked.
    let first = text.chars().next().map_or(0, char::len_utf8);
    let (direction, key) = text.split_at(first);
    let key: i64 = key.parse().map_err(|_| invalid())?;
    match (direction, order) {
        ("a", Order::Asc) | ("d", Order::Desc) => Ok(key),
        ("a", Order::Desc) | ("d", Order::Asc) => Err(ApiError::bad_request(
            "the cursor belongs to the other order",
            json!({ "parameter": "cursor", "order": if order == Order::Asc { "asc" } else { "desc" } }),
        )),
        _ => Err(invalid()),
    }
}

/// A response body with its type and any extra headers.
#[derive(Debug)]
pub struct Output {
    pub format: Format,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

/// `GET /fetch/<name>?...`: `name` (percent-decoded) is a device id, or one of
/// the containers `/fetch` reads by name (`devices`, `_rejected`, …);
/// `path_with_query` rebuilds the next page's link.
pub fn fetch(
    store: &mut impl Store,
    name: &str,
    path_with_query: &str,
    accept: Option<&str>,
    max_limit: u64,
) -> Result<Output, ApiError> {
    let query_text = path_with_query.split_once('?').map(|(_, q)| q);
    // A bad device id is reported after the query's errors and after a
    // `{a,b}` list had its chance.
    let device = match Fetched::of(name) {
        Ok(Fetched::Container(container)) => {
            return fetch_container(store, container, path_with_query, accept, max_limit)
        }
        Ok(Fetched::Device(id)) => Ok(id),
        Err(e) => Err(e),
    };
    let q = FetchQuery::parse(query_text, max_limit)?;
    let format = q.format.unwrap_or_else(|| encode::negotiate(accept));
    if name.contains('{') && !names_one(store, name)? {
        if let Some(devices) = listed_devices(name)? {
            return fetch_many(store, &devices, &q, format, max_limit);
        }
    }
    let info = time_series(store, device?)?;
    time_series_page(store, &info, &q, path_with_query, format, max_limit)
}

/// `GET /fetch/<container>` for one of the stack's own containers: a
/// collection is listed a page at a time in key order (`ListQuery`), a time
/// series (`_rejected`) is read as a device's rows are (`FetchQuery`).
fn fetch_container(
    store: &mut impl Store,
    container: &'static str,
    path_with_query: &str,
    accept: Option<&str>,
    max_limit: u64,
) -> Result<Output, ApiError> {
    let query_text = path_with_query.split_once('?').map(|(_, q)| q);
    let info = match store.get_container(container)? {
        Some(info) => info,
        // Before the first insert the device list exists, empty.
        None if container == DEVICES => {
            let q = ListQuery::parse(query_text, container, max_limit)?;
            let format = q.format.unwrap_or_else(|| encode::negotiate(accept));
            return Ok(Output {
                format,
                body: encode::rows(format, &[], &[]),
                headers: Vec::new(),
            });
        }
        None => {
            return Err(ApiError::not_found(
                "nothing stored yet",
                json!({ "container": container }),
            ))
        }
    };
    if info.kind == ContainerKind::TimeSeries {
        let q = FetchQuery::parse(query_text, max_limit)?;
        let format = q.format.unwrap_or_else(|| encode::negotiate(accept));
        return time_series_page(store, &info, &q, path_with_query, format, max_limit);
    }
    let q = ListQuery::parse(query_text, container, max_limit)?;
    let format = q.format.unwrap_or_else(|| encode::negotiate(accept));
    if !is_keyed_by_text(&info) {
        // No key to page on (none of the stack's collections is so): listed whole.
        if q != (ListQuery {
            format: q.format,
            ..ListQuery::default()
        }) {
            return Err(ApiError::bad_request(
                "a collection without a STRING row key is listed whole: only `format` applies",
                json!({ "container": info.name }),
            ));
        }
        let result = store.query(&info.name, "select *")?;
        return Ok(Output {
            format,
            body: encode::rows(format, &result.columns, &result.rows),
            headers: Vec::new(),
        });
    }
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT.min(max_limit));
    let page = key_page(
        store,
        &info,
        "*",
        q.search.as_deref(),
        q.cursor.as_ref(),
        limit,
    )?;
    let (columns, rows) = match container {
        DEVICES => health::with_health(store, page.columns, page.rows)?,
        _ => (page.columns, page.rows),
    };
    Ok(Output {
        format,
        body: encode::rows(format, &columns, &rows),
        headers: next_headers(path_with_query, page.next.map(|c| c.text())),
    })
}

/// A page of a time series' rows (or its buckets), with the next page's link.
fn time_series_page(
    store: &mut impl Store,
    info: &ContainerInfo,
    q: &FetchQuery,
    path_with_query: &str,
    format: Format,
    max_limit: u64,
) -> Result<Output, ApiError> {
    let selection = select(store, info, q, max_limit)?;
    let cursor = selection.last_key.map(|last| cursor_text(q.order, last));
    Ok(Output {
        format,
        body: encode::rows(format, &selection.columns, &selection.rows),
        headers: next_headers(path_with_query, cursor),
    })
}

/// `Link: <…>; rel="next"` and `X-Next-Cursor` when another page follows.
fn next_headers(path_with_query: &str, cursor: Option<String>) -> Vec<(&'static str, String)> {
    let Some(cursor) = cursor else {
        return Vec::new();
    };
    let link = format!("<{}>; rel=\"next\"", next_link(path_with_query, &cursor));
    vec![("link", link), ("x-next-cursor", cursor)]
}

// ---------------------------------------------------------------------------
// Collections: `devices` and the stack's other keyed collections, in pages
// ---------------------------------------------------------------------------

const LIST_PARAMETERS: [&str; 4] = ["limit", "cursor", "search", "format"];

/// The parsed query of `GET /fetch/<collection>` (`devices`, `messages`,
/// `reports`, `_cron_runs`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListQuery {
    pub limit: Option<u64>,
    /// Where the page starts: after the cursor's row.
    pub cursor: Option<KeyCursor>,
    /// Only rows whose key (the device id) contains this text; `devices` only.
    pub search: Option<String>,
    pub format: Option<Format>,
}

impl ListQuery {
    /// Parses a query string strictly, as `FetchQuery::parse` does: each
    /// parameter at most once, each value checked, anything else a 400 naming it.
    pub fn parse(
        text: Option<&str>,
        container: &str,
        max_limit: u64,
    ) -> Result<ListQuery, ApiError> {
        let mut q = ListQuery::default();
        for (key, value) in query::parse(text, &LIST_PARAMETERS)? {
            let invalid = |expected: &str| query::invalid(&key, &value, expected);
            match key.as_str() {
                "limit" => {
                    let expected = format!("an integer from 1 to {max_limit}");
                    q.limit = Some(
                        value
                            .parse::<u64>()
                            .ok()
                            .filter(|n| (1..=max_limit).contains(n))
                            .ok_or_else(|| invalid(&expected))?,
                    );
                }
                "cursor" => {
                    q.cursor = Some(KeyCursor::parse(&value).ok_or_else(|| {
                        invalid("a cursor from a previous response's Link header")
                    })?)
                }
                "search" => {
                    if container != DEVICES {
                        return Err(ApiError::bad_request(
                            "`search` finds devices by id: only /fetch/devices takes it",
                            json!({ "parameter": "search", "container": container }),
                        ));
                    }
                    if !is_valid_search(&value) {
                        return Err(invalid(SEARCH_EXPECTED));
                    }
                    // An empty search (a cleared search box) finds every device.
                    q.search = Some(value.clone()).filter(|s| !s.is_empty());
                }
                _ => {
                    q.format = Some(match value.as_str() {
                        "json" => Format::Json,
                        "msgpack" => Format::MsgPack,
                        "csv" => Format::Csv,
                        _ => return Err(invalid("json, msgpack or csv")),
                    })
                }
            }
        }
        Ok(q)
    }
}

/// What a device search may be: no id is longer, or holds a control character.
pub const SEARCH_EXPECTED: &str = "text of at most 128 bytes without control characters";

/// Whether `text` is a device search (`SEARCH_EXPECTED`).
pub fn is_valid_search(text: &str) -> bool {
    text.len() <= device::MAX_ID_BYTES && !text.chars().any(char::is_control)
}

/// Where a page of a keyed collection starts: after the row whose key is
/// `last`, the `position`-th row (from 1, in key order, among those the
/// search finds) when the cursor was made.
///
/// GridDB's TQL cannot compare strings by order (`deviceid > 'x'` is refused:
/// only `=`, `<>` and `LIKE` apply to STRING), so a page is read with `ORDER
/// BY <key> LIMIT … OFFSET <position - 1>`, and the key makes sure it starts
/// right after `last` even when rows were added in between (see `key_page`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyCursor {
    pub position: u64,
    pub last: String,
}

impl KeyCursor {
    /// `k<position>.<last as unpadded base64url>`: only URL-safe characters
    /// (`A-Za-z0-9-_.`), whatever the key holds (`,`, `{`, `%`, spaces,
    /// non-ASCII), so it goes into a URL's query as it is.
    pub fn text(&self) -> String {
        use base64::Engine as _;
        let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.last.as_bytes());
        format!("k{}.{key}", self.position)
    }

    /// The cursor `text` stands for; `None` unless it is one `text` made.
    pub fn parse(text: &str) -> Option<KeyCursor> {
        use base64::Engine as _;
        let (position, key) = text.strip_prefix('k')?.split_once('.')?;
        if position.is_empty() || !position.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let position = position.parse::<u64>().ok().filter(|p| *p >= 1)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(key)
            .ok()?;
        let last = String::from_utf8(bytes).ok()?;
        Some(KeyCursor { position, last })
    }
}

/// Whether `info` is a collection keyed by a STRING column, which `key_page` pages.
fn is_keyed_by_text(info: &ContainerInfo) -> bool {
    info.row_key && info.columns.first().map(|c| c.column_type) == Some(ColumnType::String)
}

/// The `LIKE` pattern (with `ESCAPE '\'`) of keys containing `text`: its `%`,
/// `_` and `\` taken literally.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// One page of a keyed collection.
pub struct KeyPage {
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
    /// When more rows follow the page: where the next one starts.
    pub next: Option<KeyCursor>,
}

/// Rows read per query while finding where a page starts, when rows were
/// added before the cursor's row since it was made.
const SEEK_PAGE: u64 = 1000;

/// Up to `limit` rows of the keyed collection `info` (its `selection`: `*` or
/// TQL column names, the key first) in key order, those whose key contains
/// `search`, from after `cursor`.
///
/// The page is one query, `ORDER BY <key> LIMIT <limit + 2> OFFSET
/// <position - 1>`, whose first row must be the cursor's: rows are never
/// removed (the `Store` has no delete), so when it is not, rows were added
/// before it, and the page starts after the cursor's key wherever that now is
/// (rows are looked through from its old position on, `SEEK_PAGE` at a time).
/// Each row is thus listed once, in key order, however the collection grows
/// between pages; a row added before the cursor is not listed (as in any
/// keyset paging).
pub fn key_page(
    store: &mut impl Store,
    info: &ContainerInfo,
    selection: &str,
    search: Option<&str>,
    cursor: Option<&KeyCursor>,
    limit: u64,
) -> Result<KeyPage, ApiError> {
    let key = tql_name(&info.columns[0].name);
    let filter = match search {
        Some(text) => format!(
            " WHERE {key} LIKE {} ESCAPE '\\'",
            tql_string(&contains_pattern(text))
        ),
        None => String::new(),
    };
    let mut read = |count: u64, offset: u64| {
        let offset = match offset {
            0 => String::new(),
            n => format!(" OFFSET {n}"),
        };
        let tql = format!("SELECT {selection}{filter} ORDER BY {key} ASC LIMIT {count}{offset}");
        store.query(&info.name, &tql)
    };
    let (start, mut result) = match cursor {
        None => (0, read(limit + 1, 0)?),
        Some(cursor) => {
            let mut result = read(limit + 2, cursor.position - 1)?;
            if result.rows.first().and_then(|row| key_text(row)) == Some(cursor.last.as_str()) {
                result.rows.remove(0);
                (cursor.position, result)
            } else {
                let start = seek(&mut read, cursor)?;
                (start, read(limit + 1, start)?)
            }
        }
    };
    let mut next = None;
    if result.rows.len() as u64 > limit {
        result.rows.truncate(limit as usize);
        let last = result.rows.last().and_then(|row| key_text(row));
        next = last.map(|last| KeyCursor {
            position: start + limit,
            last: last.to_owned(),
        });
    }
    Ok(KeyPage {
        columns: result.columns,
        rows: result.rows,
        next,
    })
}

fn key_text(row: &Row) -> Option<&str> {
    match row.first() {
        Some(Value::String(key)) => Some(key),
        _ => None,
    }
}

/// How many rows sort at or before `cursor.last` (where the page after it
/// starts), looking from the cursor's old position on; from the start when
/// the row there already sorts after it (the cursor came with another
/// `search`). Keys compare by their UTF-8 bytes, as both stores sort them.
fn seek(
    read: &mut impl FnMut(u64, u64) -> Result<crate::model::QueryResult, crate::model::StoreError>,
    cursor: &KeyCursor,
) -> Result<u64, ApiError> {
    let mut offset = cursor.position - 1;
    loop {
        let rows = read(SEEK_PAGE, offset)?.rows;
        let first_after = rows.first().and_then(|row| key_text(row)) > Some(cursor.last.as_str());
        if offset > 0 && (rows.is_empty() || first_after) {
            offset = 0;
            continue;
        }
        for (i, row) in rows.iter().enumerate() {
            match key_text(row).unwrap_or_default().cmp(cursor.last.as_str()) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return Ok(offset + i as u64 + 1),
                std::cmp::Ordering::Greater => return Ok(offset + i as u64),
            }
        }
        offset += rows.len() as u64;
        if (rows.len() as u64) < SEEK_PAGE {
            return Ok(offset);
        }
    }
}

/// Up to `limit` device ids in id order, those containing `search` if given,
/// and whether more follow (for Grafana's device lists). None before the
/// first insert.
pub fn device_ids(
    store: &mut impl Store,
    search: Option<&str>,
    limit: u64,
) -> Result<(Vec<String>, bool), ApiError> {
    let Some(info) = store.get_container(DEVICES)? else {
        return Ok((Vec::new(), false));
    };
    let key = tql_name(&info.columns[0].name);
    let page = key_page(store, &info, &key, search, None, limit)?;
    let ids = page
        .rows
        .iter()
        .filter_map(|row| key_text(row).map(str::to_owned))
        .collect();
    Ok((ids, page.next.is_some()))
}

/// At most this many devices in one `/fetch/{a,b,…}`.
pub const MOST_DEVICES: usize = 100;

/// Whether `name` is a readable container or an existing device's id: then it
/// is read as itself, even when it looks like a list (ids may hold `{`, `,`).
fn names_one(store: &mut impl Store, name: &str) -> Result<bool, ApiError> {
    Ok(match Fetched::of(name) {
        Ok(Fetched::Container(_)) => true,
        Ok(Fetched::Device(id)) => time_series(store, id).is_ok(),
        Err(_) => false,
    })
}

/// The devices a path segment lists in Grafana's `glob` form, `{a,b,…}` (how
/// Infinity puts a multi-value or "All" variable into a URL), each once, in
/// order; `None` when it lists none (no `{…}` group, or a single reading equal
/// to the text). The reading is `grafana::targets`' (the one `/grafana`
/// targets use). More than `MOST_DEVICES` devices is a 400.
pub fn listed_devices(name: &str) -> Result<Option<Vec<String>>, ApiError> {
    if !name.contains('{') {
        return Ok(None);
    }
    let readings = crate::grafana::targets::readings(name)?;
    if readings.len() == 1 && readings[0] == name {
        return Ok(None);
    }
    let mut devices: Vec<String> = Vec::new();
    for reading in readings {
        if !devices.contains(&reading) {
            devices.push(reading);
        }
    }
    if devices.len() > MOST_DEVICES {
        return Err(ApiError::bad_request(
            "too many devices in one fetch",
            json!({ "devices": devices.len(), "most": MOST_DEVICES }),
        ));
    }
    Ok(Some(devices))
}

/// `GET /fetch/{a,b,…}`: the rows (or buckets) `q` asks of each listed device,
/// each row with a `device` column after the key, merged in key order (ties in
/// the order listed). This is the "long" shape Grafana's data frames know: the
/// Infinity datasource's backend parser, for `format: "timeseries"`, turns a
/// frame with a time field and a string field into one series per string value
/// (`PostProcessFrame` in grafana-infinity-datasource's
/// pkg/infinity/postprocess.go calls the plugin SDK's `data.LongToWide`, which
/// makes string fields labels and needs the time field sorted ascending:
/// grafana-plugin-sdk-go data/time_series.go). Columns are the union of the
/// devices' (a column a device lacks is null in its rows; a column named
/// `device` is a 400). Such an answer is
/// not paged: a `cursor` is a 400, and so is an answer of more than `limit`
/// rows (buckets are bounded per device, as for one device alone). An unknown
/// device is a 404 naming it.
fn fetch_many(
    store: &mut impl Store,
    devices: &[String],
    q: &FetchQuery,
    format: Format,
    max_limit: u64,
) -> Result<Output, ApiError> {
    if q.cursor.is_some() {
        return Err(ApiError::bad_request(
            "a fetch of several devices is not paged",
            json!({ "parameter": "cursor", "devices": devices }),
        ));
    }
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT.min(max_limit));
    let mut selections = Vec::with_capacity(devices.len());
    for device in devices {
        let info = time_series(store, device)?;
        selections.push(select(store, &info, q, max_limit)?);
    }
    let mut columns: Vec<Column> = Vec::new();
    for selection in &selections {
        for (i, column) in selection.columns.iter().enumerate() {
            if i > 0 && column.name == "device" {
                return Err(ApiError::bad_request(
                    "a listed device has a column named `device`: fetch it alone",
                    json!({ "column": column.name }),
                ));
            }
            if columns.is_empty() {
                columns.push(column.clone());
                columns.push(Column::new("device", ColumnType::String));
            } else if i > 0 && !columns[2..].iter().any(|c| c.name == column.name) {
                columns.push(column.clone());
            }
        }
    }
    let mut rows: Vec<(usize, Row)> = Vec::new();
    for (d, selection) in selections.into_iter().enumerate() {
        let more = selection.last_key.is_some();
        let positions: Vec<usize> = (selection.columns.iter().enumerate())
            .map(|(i, c)| match i {
                0 => 0,
                _ => {
                    2 + columns[2..]
                        .iter()
                        .position(|u| u.name == c.name)
                        .expect("in the union")
                }
            })
            .collect();
        for row in selection.rows {
            let mut out = vec![Value::Null; columns.len()];
            out[1] = Value::String(devices[d].clone());
            for (value, &at) in row.into_iter().zip(&positions) {
                out[at] = value;
            }
            rows.push((d, out));
        }
        if more || (q.agg.is_none() && rows.len() as u64 > limit) {
            return Err(ApiError::bad_request(
                "too many rows for one answer of several devices",
                json!({ "limit": limit, "devices": devices, "hint": "narrow from/to, raise limit or aggregate" }),
            ));
        }
    }
    let key = |row: &Row| match row.first() {
        Some(Value::Timestamp(t)) => *t,
        _ => i64::MIN,
    };
    // Stable: rows of one key stay in the order the devices are listed.
    rows.sort_by_key(|(d, row)| match q.order {
        Order::Asc => (key(row), *d as i64),
        Order::Desc => (-key(row).max(i64::MIN + 1), *d as i64),
    });
    let rows: Vec<Row> = rows.into_iter().map(|(_, row)| row).collect();
    Ok(Output {
        format,
        body: encode::rows(format, &columns, &rows),
        headers: Vec::new(),
    })
}

/// What a fetch query selected from a time series.
pub struct Selection {
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
    /// When more rows follow the page: the key of its last row.
    pub last_key: Option<i64>,
}

/// The rows (a page of them) or the buckets `q` asks of the time series `info`.
pub fn select(
    store: &mut impl Store,
    info: &ContainerInfo,
    q: &FetchQuery,
    max_limit: u64,
) -> Result<Selection, ApiError> {
    let selected = select_columns(info, q.columns.as_deref())?;
    if let Some((agg, interval)) = q.agg {
        let (columns, rows) = aggregate(store, info, &selected, q, agg, interval, max_limit)?;
        return Ok(Selection {
            columns,
            rows,
            last_key: None,
        });
    }
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT.min(max_limit));
    let key = tql_name(&info.columns[0].name);
    let mut conditions = range_conditions(&key, q.from, q.to);
    match (q.cursor, q.order) {
        (Some(after), Order::Asc) => conditions.push(format!("{key} > TO_TIMESTAMP_MS({after})")),
        (Some(after), Order::Desc) => conditions.push(format!("{key} < TO_TIMESTAMP_MS({after})")),
        (None, _) => {}
    }
    let selection = match &q.columns {
        None => "*".to_owned(),
        Some(_) => selected
            .iter()
            .map(|&i| tql_name(&info.columns[i].name))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let direction = if q.order == Order::Asc { "ASC" } else { "DESC" };
    // One row more than asked tells whether another page follows.
    let tql = format!(
        "SELECT {selection}{} ORDER BY {key} {direction} LIMIT {}",
        where_clause(&conditions),
        limit + 1
    );
    let mut result = store.query(&info.name, &tql)?;
    let mut last_key = None;
    if result.rows.len() as u64 > limit {
        result.rows.truncate(limit as usize);
        if let Some(Value::Timestamp(last)) = result.rows.last().and_then(|row| row.first()) {
            last_key = Some(*last);
        }
    }
    Ok(Selection {
        columns: result.columns,
        rows: result.rows,
        last_key,
    })
}

/// Indexes of the columns to return: the row key first, then those asked for
/// (all when `names` is `None`). An unknown or repeated name is a 400.
fn select_columns(info: &ContainerInfo, names: Option<&[String]>) -> Result<Vec<usize>, ApiError> {
    let Some(names) = names else {
        return Ok((0..info.columns.len()).collect());
    };
    let mut selected = vec![0];
    for name in names {
        let index = info.column_index(name).ok_or_else(|| {
            let known: Vec<&str> = info.columns.iter().map(|c| c.name.as_str()).collect();
            ApiError::bad_request(
                "unknown column",
                json!({ "parameter": "columns", "column": name, "columns": known }),
            )
        })?;
        if index != 0 && selected.contains(&index) {
            return Err(query::invalid("columns", name, "each column once"));
        }
        if index != 0 {
            selected.push(index);
        }
    }
    Ok(selected)
}

fn range_conditions(key: &str, from: Option<i64>, to: Option<i64>) -> Vec<String> {
    let mut conditions = Vec::new();
    if let Some(from) = from {
        conditions.push(format!("{key} >= TO_TIMESTAMP_MS({from})"));
    }
    if let Some(to) = to {
        conditions.push(format!("{key} < TO_TIMESTAMP_MS({to})"));
    }
    conditions
}

fn where_clause(conditions: &[String]) -> String {
    match conditions.is_empty() {
        true => String::new(),
        false => format!(" WHERE {}", conditions.join(" AND ")),
    }
}

/// The request's path and query with `cursor` set to `cursor`.
fn next_link(path_with_query: &str, cursor: &str) -> String {
    let (path, query) = path_with_query
        .split_once('?')
        .unwrap_or((path_with_query, ""));
    let mut pairs: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("cursor="))
        .collect();
    let cursor = format!("cursor={cursor}");
    pairs.push(&cursor);
    format!("{path}?{}", pairs.join("&"))
}

/// One row per bucket: the bucket's start, then `agg` of each selected column.
/// The store does the arithmetic: every bucket's TQL aggregates in one
/// `aggregate-ranges` call over the buckets' key ranges.
fn aggregate(
    store: &mut impl Store,
    info: &ContainerInfo,
    selected: &[usize],
    q: &FetchQuery,
    agg: Agg,
    interval: Interval,
    max_buckets: u64,
) -> Result<(Vec<Column>, Vec<Row>), ApiError> {
    // Without `columns`, every numeric column; with it, only numeric ones make sense.
    let value_columns: Vec<&Column> = match q.columns {
        None => info.columns[1..]
            .iter()
            .filter(|c| c.column_type.is_numeric())
            .collect(),
        Some(_) => selected[1..].iter().map(|&i| &info.columns[i]).collect(),
    };
    for column in &value_columns {
        if agg != Agg::Count && !column.column_type.is_numeric() {
            return Err(ApiError::bad_request(
                "only numeric columns can be aggregated",
                json!({ "parameter": "columns", "column": column.name, "type": column.column_type.name() }),
            ));
        }
    }
    let key = tql_name(&info.columns[0].name);
    let Some((from, to)) = agg_range(store, info, &key, q)? else {
        return Ok((agg_columns(info, &value_columns, agg), Vec::new()));
    };
    let origin = q.origin.map_or(from, |origin| origin.min(from));
    let buckets = buckets(origin, to, interval, q.tz, max_buckets)?;

    let selection: Vec<String> = std::iter::once("COUNT(*)".to_owned())
        .chain(
            value_columns
                .iter()
                .map(|c| format!("{}({})", agg.tql(), tql_name(&c.name))),
        )
        .collect();
    // A bucket keyed before `from` (local midnight, an origin) or ending
    // past `to` counts only the rows of `from <= t < to`.
    let ranges: Vec<KeyRange> = buckets
        .iter()
        .map(|&(start, end)| KeyRange {
            start: start.max(from),
            end: end.min(to),
        })
        .collect();
    let answer = store.aggregate_ranges(
        &info.name,
        &format!("SELECT {}", selection.join(", ")),
        &ranges,
    )?;
    let rows: Vec<(i64, Option<Vec<Value>>)> = buckets
        .iter()
        .zip(answer.rows)
        .map(|(&(start, _), row)| {
            let row = row.unwrap_or_default();
            let empty = matches!(row.first(), Some(Value::Long(0)) | None);
            let values =
                (!empty).then(|| row.into_iter().skip(1).map(|v| as_output(agg, v)).collect());
            (start, values)
        })
        .collect();
    let mut rows = fill(rows, q.fill, value_columns.len());
    if q.order == Order::Desc {
        rows.reverse();
    }
    Ok((agg_columns(info, &value_columns, agg), rows))
}

/// The result columns of an aggregation: the key, then one per value column
/// (LONG for counts, DOUBLE for everything else).
fn agg_columns(info: &ContainerInfo, value_columns: &[&Column], agg: Agg) -> Vec<Column> {
    let value_type = if agg == Agg::Count {
        ColumnType::Long
    } else {
        ColumnType::Double
    };
    std::iter::once(info.columns[0].clone())
        .chain(
            value_columns
                .iter()
                .map(|c| Column::new(c.name.clone(), value_type)),
        )
        .collect()
}

fn as_output(agg: Agg, value: Value) -> Value {
    match (agg, value.as_f64()) {
        (Agg::Count, _) | (_, None) => value,
        (_, Some(number)) => Value::Double(number),
    }
}

/// The range to bucket: `from`/`to` as given, else the first row and just past the last.
fn agg_range(
    store: &mut impl Store,
    info: &ContainerInfo,
    key: &str,
    q: &FetchQuery,
) -> Result<Option<(i64, i64)>, ApiError> {
    let mut edge = |direction: &str| -> Result<Option<i64>, ApiError> {
        let tql = format!(
            "SELECT {key}{} ORDER BY {key} {direction} LIMIT 1",
            where_clause(&range_conditions(key, q.from, q.to))
        );
        let result = store.query(&info.name, &tql)?;
        Ok(match result.rows.first().and_then(|r| r.first()) {
            Some(Value::Timestamp(ms)) => Some(*ms),
            _ => None,
        })
    };
    let from = match q.from {
        Some(from) => from,
        None => match edge("ASC")? {
            Some(first) => first,
            None => return Ok(None),
        },
    };
    let to = match q.to {
        Some(to) => to,
        None => match edge("DESC")? {
            Some(last) => last + 1,
            None => return Ok(None),
        },
    };
    Ok((from < to).then_some((from, to)))
}

/// The buckets covering `[from, to)`: fixed widths count from `from`; days,
/// weeks and months run from local midnight in `tz` (23 or 25 hours across DST).
fn buckets(
    from: i64,
    to: i64,
    interval: Interval,
    tz: Tz,
    max: u64,
) -> Result<Vec<(i64, i64)>, ApiError> {
    let too_many = || {
        ApiError::bad_request(
            "too many buckets: use a longer interval or a shorter range",
            json!({ "parameter": "interval", "most": max }),
        )
    };
    let mut buckets = Vec::new();
    match interval {
        Interval::Millis(width) => {
            if ((to - from) as u64).div_ceil(width as u64) > max {
                return Err(too_many());
            }
            let mut start = from;
            while start < to {
                buckets.push((start, start.saturating_add(width)));
                start = start.saturating_add(width);
            }
        }
        Interval::Calendar(granularity) => {
            let local = |ms: i64| {
                DateTime::from_timestamp_millis(ms)
                    .expect("in range")
                    .with_timezone(&tz)
                    .date_naive()
            };
            let mut period = LocalPeriod::containing(granularity, tz, local(from));
            while period.start().timestamp_millis() < to {
                if buckets.len() as u64 >= max {
                    return Err(too_many());
                }
                buckets.push((
                    period.start().timestamp_millis(),
                    period.end().timestamp_millis(),
                ));
                period = LocalPeriod::containing(granularity, tz, period.next);
            }
        }
    }
    Ok(buckets)
}

/// Applies `fill` to buckets without rows (`None` values).
fn fill(buckets: Vec<(i64, Option<Vec<Value>>)>, fill: Fill, width: usize) -> Vec<Row> {
    let nulls = || vec![Value::Null; width];
    let row = |start: i64, values: Vec<Value>| {
        let mut row = Vec::with_capacity(width + 1);
        row.push(Value::Timestamp(start));
        row.extend(values);
        row
    };
    match fill {
        Fill::Omit => buckets
            .into_iter()
            .filter_map(|(start, values)| values.map(|v| row(start, v)))
            .collect(),
        Fill::Null => buckets
            .into_iter()
            .map(|(start, values)| row(start, values.unwrap_or_else(nulls)))
            .collect(),
        Fill::Previous => {
            let mut previous: Option<Vec<Value>> = None;
            buckets
                .into_iter()
                .map(|(start, values)| {
                    if values.is_some() {
                        previous = values.clone();
                    }
                    row(
                        start,
                        values.or_else(|| previous.clone()).unwrap_or_else(nulls),
                    )
                })
                .collect()
        }
        Fill::Linear => {
            let known: Vec<usize> = (0..buckets.len())
                .filter(|&i| buckets[i].1.is_some())
                .collect();
            (0..buckets.len())
                .map(|i| {
                    let (start, values) = &buckets[i];
                    if let Some(values) = values {
                        return row(*start, values.clone());
                    }
                    let before = known.iter().rev().find(|&&k| k < i);
                    let after = known.iter().find(|&&k| k > i);
                    let values = match (before, after) {
                        (Some(&b), Some(&a)) => {
                            let (t0, v0) = (buckets[b].0, buckets[b].1.as_ref().unwrap());
                            let (t1, v1) = (buckets[a].0, buckets[a].1.as_ref().unwrap());
                            let share = (*start - t0) as f64 / (t1 - t0) as f64;
                            v0.iter()
                                .zip(v1)
                                .map(|(x, y)| interpolate(x, y, share))
                                .collect()
                        }
                        _ => nulls(),
                    };
                    row(*start, values)
                })
                .collect()
        }
    }
}

fn interpolate(x: &Value, y: &Value, share: f64) -> Value {
    let number = |v: &Value| match v {
        Value::Double(d) => Some(*d),
        Value::Long(l) => Some(*l as f64),
        _ => None,
    };
    match (number(x), number(y)) {
        (Some(a), Some(b)) => Value::Double(a + (b - a) * share),
        _ => Value::Null,
    }
}

/// `GET /devices/<device>/latest`: the newest row, as one object; the
/// device's health in headers (`health::headers`), not in the object, whose
/// keys are the device's columns (any name, `active` too).
pub fn latest(
    store: &mut impl Store,
    device: &str,
    accept: Option<&str>,
) -> Result<Output, ApiError> {
    let info = time_series(store, device)?;
    let key = tql_name(&info.columns[0].name);
    let result = store.query(&info.name, &format!("SELECT * ORDER BY {key} DESC LIMIT 1"))?;
    let Some(row) = result.rows.first() else {
        return Err(ApiError::not_found(
            "no rows yet",
            json!({ "device": device }),
        ));
    };
    let format = encode::negotiate(accept);
    Ok(Output {
        format,
        body: encode::row(format, &result.columns, row),
        headers: health::headers(store, device)?,
    })
}

/// `GET /devices/<device>/schema`: the device's container (its name, kind and
/// typed columns).
pub fn schema(store: &mut impl Store, device: &str) -> Result<Output, ApiError> {
    let info = time_series(store, device)?;
    let columns: Vec<_> = info
        .columns
        .iter()
        .map(|c| json!({ "name": c.name, "type": c.column_type.name() }))
        .collect();
    let body = json!({
        "device": device,
        "container": info.name,
        "type": info.kind.name(),
        "row_key": info.row_key,
        "columns": columns,
    });
    Ok(Output {
        format: Format::Json,
        body: serde_json::to_vec(&body).expect("JSON serializes"),
        headers: Vec::new(),
    })
}

/// The time-series container of device `device` (its id), or a 404 naming it.
pub fn time_series(store: &mut impl Store, device: &str) -> Result<ContainerInfo, ApiError> {
    device::check(device)?;
    match store.get_container(&device::container_of(device))? {
        Some(info) if info.kind == ContainerKind::TimeSeries => Ok(info),
        _ => Err(ApiError::not_found(
            "unknown device",
            json!({ "device": device }),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FetchQuery, ApiError> {
        FetchQuery::parse(Some(text), DEFAULT_MAX_LIMIT)
    }

    #[test]
    fn the_samples_range_still_parses_strictly() {
        assert_eq!(FetchQuery::parse(None, 10).unwrap(), FetchQuery::default());
        let q = parse("from=1&to=2").unwrap();
        assert_eq!((q.from, q.to), (Some(1), Some(2)));
        for bad in [
            "from=1&from=2",
            "from=x",
            "from=1)%20or%20(1=1",
            "to=",
            "from=-1",
            "to=1.5",
            "from=3&to=2",
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.status, 400, "{bad}");
        }
    }

    #[test]
    fn every_parameter_and_its_bad_values() {
        let q = parse("limit=2&order=desc&columns=a,b&format=csv").unwrap();
        assert_eq!(q.limit, Some(2));
        assert_eq!(q.order, Order::Desc);
        assert_eq!(q.columns, Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(q.format, Some(Format::Csv));
        let q = parse("agg=avg&interval=10s&fill=linear&tz=Europe%2FBerlin").unwrap();
        assert_eq!(q.agg, Some((Agg::Avg, Interval::Millis(10_000))));
        assert_eq!(q.fill, Fill::Linear);
        assert_eq!(q.tz.name(), "Europe/Berlin");
        assert_eq!(
            parse("agg=max&interval=1M").unwrap().agg,
            Some((Agg::Max, Interval::Calendar(Granularity::Month)))
        );
        assert_eq!(parse("cursor=d5&order=desc").unwrap().cursor, Some(5));
        for (bad, parameter) in [
            ("limit=0", "limit"),
            ("limit=100001", "limit"),
            ("order=up", "order"),
            ("columns=a,,b", "columns"),
            ("agg=median&interval=1m", "agg"),
            ("agg=avg&interval=5x", "interval"),
            ("agg=avg&interval=2d", "interval"),
            ("agg=avg", "agg"),
            ("interval=1m", "interval"),
            ("fill=null", "fill"),
            ("agg=avg&interval=1m&fill=zero", "fill"),
            ("tz=Mars%2FOlympus", "tz"),
            ("format=xml", "format"),
            ("cursor=x1", "cursor"),
            ("cursor=a1&order=desc", "cursor"),
            ("cursor=a1&agg=avg&interval=1m", "cursor"),
            ("nope=1", "nope"),
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(
                (err.status, err.detail["parameter"].as_str()),
                (400, Some(parameter)),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn buckets_follow_local_midnight_across_dst() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 2021-03-27 00:00 CET to 2021-03-30 00:00 CEST: clocks went forward on the 28th.
        let from = 1_616_799_600_000; // 2021-03-26T23:00:00Z
        let to = 1_617_055_200_000; // 2021-03-29T22:00:00Z
        let days = buckets(from, to, Interval::Calendar(Granularity::Day), berlin, 100).unwrap();
        let hours: Vec<i64> = days.iter().map(|(s, e)| (e - s) / 3_600_000).collect();
        assert_eq!(hours, [24, 23, 24]);
        assert_eq!(days[1].0, 1_616_886_000_000); // 2021-03-27T23:00:00Z = 28th 00:00 CET
        assert!(buckets(0, 10_000, Interval::Millis(1), Tz::UTC, 100).is_err());
    }

    #[test]
    fn fills() {
        let v = |x: f64| Some(vec![Value::Double(x)]);
        let buckets = vec![
            (0, None),
            (10, v(1.0)),
            (20, None),
            (30, None),
            (40, v(4.0)),
            (50, None),
        ];
        let values = |rows: Vec<Row>| -> Vec<(i64, Value)> {
            rows.into_iter()
                .map(|r| {
                    (
                        match r[0] {
                            Value::Timestamp(t) => t,
                            _ => -1,
                        },
                        r[1].clone(),
                    )
                })
                .collect()
        };
        let d = Value::Double;
        assert_eq!(
            values(fill(buckets.clone(), Fill::Omit, 1)),
            [(10, d(1.0)), (40, d(4.0))]
        );
        assert_eq!(
            values(fill(buckets.clone(), Fill::Null, 1))[0],
            (0, Value::Null)
        );
        assert_eq!(
            values(fill(buckets.clone(), Fill::Previous, 1)),
            [
                (0, Value::Null),
                (10, d(1.0)),
                (20, d(1.0)),
                (30, d(1.0)),
                (40, d(4.0)),
                (50, d(4.0))
            ]
        );
        assert_eq!(
            values(fill(buckets, Fill::Linear, 1)),
            [
                (0, Value::Null),
                (10, d(1.0)),
                (20, d(2.0)),
                (30, d(3.0)),
                (40, d(4.0)),
                (50, Value::Null)
            ]
        );
    }

    #[test]
    fn listed_devices_read_the_glob_form() {
        let listed = |name: &str| listed_devices(name).unwrap();
        assert_eq!(listed("sample"), None);
        assert_eq!(listed("{open"), None);
        assert_eq!(listed("{a}"), Some(vec!["a".to_owned()]));
        assert_eq!(
            listed("{sample,sensor.kitchen,sample}"),
            Some(vec!["sample".to_owned(), "sensor.kitchen".to_owned()])
        );
        let names: Vec<String> = (0..=MOST_DEVICES).map(|i| format!("d{i}")).collect();
        let text = format!("{{{}}}", names.join(","));
        assert_eq!(listed_devices(&text).unwrap_err().status, 400);
        let text = format!("{{{}}}", names[1..].join(","));
        assert_eq!(listed(&text).unwrap().len(), MOST_DEVICES);
    }

    /// Ids with what a URL's query treats specially, and non-ASCII.
    const AWKWARD_IDS: [&str; 10] = [
        "a,b",
        "{sample,other}",
        "100%",
        "a b",
        "capteur-été",
        "🌡️ kitchen",
        "x&cursor=k1.YQ",
        "it's",
        "back\\slash",
        "a_b",
    ];

    #[test]
    fn key_cursors_are_url_safe_and_read_back() {
        for id in AWKWARD_IDS.iter().copied().chain(["", "sample"]) {
            let cursor = KeyCursor {
                position: 7,
                last: id.to_owned(),
            };
            let text = cursor.text();
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
                "{id:?}: {text}"
            );
            assert_eq!(KeyCursor::parse(&text), Some(cursor), "{text}");
            // As a query parameter it arrives unchanged.
            let q = ListQuery::parse(Some(&format!("cursor={text}")), DEVICES, 10).unwrap();
            assert_eq!(q.cursor.unwrap().last, id);
        }
        for bad in [
            "", "k", "k1", "k.YQ", "k0.YQ", "k+1.YQ", "k-1.YQ", "kx.YQ", "k1.!!", "k1.YR", "k1.gA",
            "a5", "d5", "K1.YQ", "k1.YQ==",
        ] {
            assert_eq!(KeyCursor::parse(bad), None, "{bad}");
        }
        // A time-series cursor is not a collection's, nor the other way round.
        assert!(FetchQuery::parse(Some("cursor=k1.YQ"), 10).is_err());
    }

    #[test]
    fn list_queries_parse_strictly() {
        let parse = |text: &str, container: &str| ListQuery::parse(Some(text), container, 100);
        assert_eq!(
            ListQuery::parse(None, DEVICES, 100).unwrap(),
            ListQuery::default()
        );
        let q = parse("limit=5&search=kit%20chen&format=csv", DEVICES).unwrap();
        assert_eq!(
            (q.limit, q.search.as_deref(), q.format),
            (Some(5), Some("kit chen"), Some(Format::Csv))
        );
        assert_eq!(parse("search=", DEVICES).unwrap().search, None);
        assert_eq!(
            parse(&format!("search={}", "é".repeat(64)), DEVICES)
                .unwrap()
                .search,
            Some("é".repeat(64))
        );
        assert!(SEARCH_EXPECTED.contains(&device::MAX_ID_BYTES.to_string()));
        for (bad, container, parameter) in [
            ("limit=0", DEVICES, "limit"),
            ("limit=101", DEVICES, "limit"),
            ("limit=x", DEVICES, "limit"),
            ("cursor=a5", DEVICES, "cursor"),
            ("cursor=k1.%21", DEVICES, "cursor"),
            ("search=%00", DEVICES, "search"),
            ("search=a%0Ab", DEVICES, "search"),
            (&format!("search={}", "x".repeat(129)), DEVICES, "search"),
            ("search=x", "messages", "search"),
            ("format=xml", DEVICES, "format"),
            ("from=1", DEVICES, "from"),
            ("order=desc", DEVICES, "order"),
            ("limit=1&limit=2", DEVICES, "limit"),
        ] {
            let err = parse(bad, container).unwrap_err();
            assert_eq!(
                (err.status, err.detail["parameter"].as_str()),
                (400, Some(parameter)),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn contains_patterns_take_wildcards_literally() {
        assert_eq!(contains_pattern("kitchen"), "%kitchen%");
        assert_eq!(contains_pattern("100%_x\\"), "%100\\%\\_x\\\\%");
    }

    use crate::testing::MemoryStore;

    fn device_row(id: &str) -> Row {
        vec![
            Value::String(id.to_owned()),
            Value::Integer(50),
            Value::Null,
        ]
    }

    /// A store whose `devices` collection lists `ids`.
    fn store_with_devices(ids: &[String]) -> MemoryStore {
        let mut store = MemoryStore::default();
        store
            .put_container(ContainerInfo {
                name: DEVICES.to_owned(),
                kind: ContainerKind::Collection,
                columns: crate::insert::devices_columns(),
                row_key: true,
            })
            .unwrap();
        add_devices(&mut store, ids);
        store
    }

    fn add_devices(store: &mut MemoryStore, ids: &[String]) {
        let rows = ids.iter().map(|id| device_row(id)).collect();
        store.put_rows(DEVICES, rows).unwrap();
    }

    /// Every id `GET /fetch/devices?<query>` lists, following each page's
    /// link; `between` runs after each page. Also checks the headers.
    fn walk(
        store: &mut MemoryStore,
        query: &str,
        mut between: impl FnMut(&mut MemoryStore, usize),
    ) -> Vec<String> {
        let mut ids = Vec::new();
        let mut next = Some(format!("/fetch/devices?{query}"));
        let mut pages = 0;
        while let Some(path) = next.take() {
            let output = fetch(store, DEVICES, &path, None, DEFAULT_MAX_LIMIT).unwrap();
            let rows: serde_json::Value = serde_json::from_slice(&output.body).unwrap();
            let page: Vec<String> = rows
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["deviceid"].as_str().unwrap().to_owned())
                .collect();
            ids.extend(page);
            let header = |name: &str| {
                output
                    .headers
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.clone())
            };
            if let Some(link) = header("link") {
                let cursor = header("x-next-cursor").expect("a cursor beside the link");
                let target = link.strip_prefix('<').unwrap().split_once('>').unwrap().0;
                assert!(target.ends_with(&format!("cursor={cursor}")), "{link}");
                next = Some(target.to_owned());
            }
            pages += 1;
            between(store, pages);
            assert!(pages < 10_000, "the pages never end");
        }
        ids
    }

    #[test]
    fn devices_page_in_id_order_each_once() {
        let mut ids: Vec<String> = (0..250).map(|i| format!("dev-{i:03}")).collect();
        ids.extend(AWKWARD_IDS.iter().map(|s| s.to_string()));
        let mut store = store_with_devices(&ids);
        ids.sort();
        for limit in [1, 7, 100, 259, 260, 261] {
            assert_eq!(
                walk(&mut store, &format!("limit={limit}"), |_, _| {}),
                ids,
                "{limit}"
            );
        }
        // Without a limit, one page of DEFAULT_LIMIT.
        let output = fetch(
            &mut store,
            DEVICES,
            "/fetch/devices",
            None,
            DEFAULT_MAX_LIMIT,
        )
        .unwrap();
        assert!(output.headers.is_empty());
        // The answer's shape is the collection's rows, as before, with the
        // device's health after them (unknown here: no `_last_seen`).
        let rows: serde_json::Value = serde_json::from_slice(&output.body).unwrap();
        assert_eq!(
            rows[0],
            json!({ "deviceid": ids[0], "batt_lvl": 50, "fw_ver": null, "last_seen": null, "active": null })
        );
        // `limit` is capped by the component's maximum.
        assert_eq!(
            fetch(&mut store, DEVICES, "/fetch/devices?limit=11", None, 10)
                .unwrap_err()
                .detail["parameter"],
            "limit"
        );
    }

    #[test]
    fn devices_added_between_pages_move_no_page() {
        let ids: Vec<String> = (0..100).map(|i| format!("m{i:03}")).collect();
        let mut store = store_with_devices(&ids);
        // After each page: a device before every listed one (an `a…` id), one
        // among them, and one after all of them.
        let seen = walk(&mut store, "limit=9", |store, page| {
            add_devices(
                store,
                &[
                    format!("a{page:03}"),
                    format!("m{:03}x", page * 9 + 4),
                    format!("z{page:03}"),
                ],
            );
        });
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique, seen, "in order, each once");
        for id in &ids {
            assert!(seen.contains(id), "{id} missed");
        }
        assert!(!seen.iter().any(|id| id.starts_with('a')));
        // Ids added after the cursor's are listed when their page comes.
        assert!(seen.contains(&"z001".to_owned()));
        assert!(seen.contains(&"m085x".to_owned()));
    }

    #[test]
    fn a_search_finds_ids_containing_it_literally() {
        let mut ids: Vec<String> = AWKWARD_IDS.iter().map(|s| s.to_string()).collect();
        ids.extend(["100x", "axb", "Kitchen", "kitchen-2", "my kitchen"].map(String::from));
        let mut store = store_with_devices(&ids);
        let found = |store: &mut MemoryStore, search: &str| {
            let query: String = format!("limit=2&search={}", device::to_path_segment(search));
            walk(store, &query, |_, _| {})
        };
        assert_eq!(found(&mut store, "%"), ["100%"]);
        assert_eq!(found(&mut store, "_"), ["a_b"]);
        assert_eq!(found(&mut store, "\\"), ["back\\slash"]);
        assert_eq!(found(&mut store, "'"), ["it's"]);
        assert_eq!(found(&mut store, ","), ["a,b", "{sample,other}"]);
        assert_eq!(found(&mut store, "été"), ["capteur-été"]);
        // Case-sensitive, as GridDB's LIKE.
        assert_eq!(
            found(&mut store, "kitchen"),
            ["kitchen-2", "my kitchen", "🌡️ kitchen"]
        );
        assert_eq!(found(&mut store, "nothing"), Vec::<String>::new());
        // A cursor of another search starts after its id all the same.
        let first = fetch(
            &mut store,
            DEVICES,
            "/fetch/devices?limit=1&search=kitchen",
            None,
            DEFAULT_MAX_LIMIT,
        )
        .unwrap();
        let cursor = first
            .headers
            .iter()
            .find(|(n, _)| *n == "x-next-cursor")
            .unwrap()
            .1
            .clone();
        let rest = fetch(
            &mut store,
            DEVICES,
            &format!("/fetch/devices?cursor={cursor}"),
            None,
            DEFAULT_MAX_LIMIT,
        )
        .unwrap();
        let rows: serde_json::Value = serde_json::from_slice(&rest.body).unwrap();
        let mut after: Vec<String> = ids
            .iter()
            .filter(|id| id.as_str() > "kitchen-2")
            .cloned()
            .collect();
        after.sort();
        let listed: Vec<&str> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["deviceid"].as_str().unwrap())
            .collect();
        assert_eq!(listed, after);
    }

    #[test]
    fn device_ids_are_capped_and_say_so() {
        let ids: Vec<String> = (0..30).map(|i| format!("d{i:02}")).collect();
        let mut store = store_with_devices(&ids);
        assert_eq!(
            device_ids(&mut store, None, 10).unwrap(),
            (ids[..10].to_vec(), true)
        );
        assert_eq!(
            device_ids(&mut store, None, 30).unwrap(),
            (ids.clone(), false)
        );
        assert_eq!(
            device_ids(&mut store, Some("2"), 100).unwrap(),
            (
                vec![
                    "d02".into(),
                    "d12".into(),
                    "d20".into(),
                    "d21".into(),
                    "d22".into(),
                    "d23".into(),
                    "d24".into(),
                    "d25".into(),
                    "d26".into(),
                    "d27".into(),
                    "d28".into(),
                    "d29".into()
                ],
                false
            )
        );
        assert_eq!(
            device_ids(&mut MemoryStore::default(), None, 10).unwrap(),
            (Vec::new(), false)
        );
    }

    /// Each listed device's health from `_last_seen`, null where unknown (or
    /// without the collection), in every format; a page reads only its own
    /// devices' health.
    #[test]
    fn the_device_list_shows_each_devices_health() {
        let ids: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let mut store = store_with_devices(&ids);
        let list = |store: &mut MemoryStore, path: &str| {
            let output = fetch(store, DEVICES, path, None, 100).unwrap();
            String::from_utf8(output.body).unwrap()
        };
        let unknown = list(&mut store, "/fetch/devices?limit=1");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&unknown).unwrap(),
            json!([{"deviceid": "a", "batt_lvl": 50, "fw_ver": null, "last_seen": null, "active": null}])
        );
        health::tests::write_last_seen(&mut store, &[("a", 1000, true), ("c", 2000, false)]);
        let rows: serde_json::Value =
            serde_json::from_str(&list(&mut store, "/fetch/devices")).unwrap();
        let health: Vec<_> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["deviceid"].clone(),
                    r["last_seen"].clone(),
                    r["active"].clone(),
                )
            })
            .collect();
        assert_eq!(
            health,
            [
                (json!("a"), json!(1000), json!(true)),
                (json!("b"), json!(null), json!(null)),
                (json!("c"), json!(2000), json!(false)),
            ]
        );
        assert_eq!(
            list(&mut store, "/fetch/devices?search=c&format=csv"),
            "deviceid,batt_lvl,fw_ver,last_seen,active\r\nc,50,,2000,false\r\n"
        );
    }

    #[test]
    fn other_collections_page_too_and_take_no_search() {
        let mut store = store_with_devices(&[]);
        let mut messages = crate::insert::messages_container();
        messages.name = crate::insert::MESSAGES.to_owned();
        store.put_container(messages.clone()).unwrap();
        let rows: Vec<Row> = (0..5)
            .map(|i| {
                let mut row = vec![Value::Null; messages.columns.len()];
                row[0] = Value::String(format!("msg{i}"));
                row
            })
            .collect();
        store.put_rows("messages", rows).unwrap();
        let first = fetch(&mut store, "messages", "/fetch/messages?limit=3", None, 100).unwrap();
        let link = &first.headers.iter().find(|(n, _)| *n == "link").unwrap().1;
        let cursor = KeyCursor {
            position: 3,
            last: "msg2".into(),
        }
        .text();
        assert_eq!(
            link,
            &format!("</fetch/messages?limit=3&cursor={cursor}>; rel=\"next\"")
        );
        let err = fetch(
            &mut store,
            "messages",
            "/fetch/messages?search=m",
            None,
            100,
        )
        .unwrap_err();
        assert_eq!(
            (err.status, err.detail["parameter"].as_str()),
            (400, Some("search"))
        );
        // Before the first insert: an empty device list, parameters checked all the same.
        let mut empty = MemoryStore::default();
        let output = fetch(
            &mut empty,
            DEVICES,
            "/fetch/devices?limit=5&search=x",
            None,
            100,
        )
        .unwrap();
        assert_eq!(output.body, b"[]");
        assert!(fetch(&mut empty, DEVICES, "/fetch/devices?limit=0", None, 100).is_err());
    }

    #[test]
    fn next_links_replace_the_cursor() {
        assert_eq!(
            next_link("/fetch/s?limit=2", "a5"),
            "/fetch/s?limit=2&cursor=a5"
        );
        assert_eq!(
            next_link("/fetch/s?cursor=a1&limit=2", "a5"),
            "/fetch/s?limit=2&cursor=a5"
        );
        assert_eq!(next_link("/fetch/s", "a5"), "/fetch/s?cursor=a5");
    }
}
