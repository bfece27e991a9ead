//! Property tests of query strings and the fetch API's parameters: the strict
//! parser (`query::parse`, `percent_decode`, `preferred`), `FetchQuery::parse`
//! with every parameter (from, to, limit, cursor, order, columns, agg,
//! interval, fill, tz, format), cursors, and `api::handle_fetch` and
//! `api::handle_grafana` (the JSON datasource's request bodies) over a store
//! that holds one empty time series.
//!
//! Why: a query string is text anyone can send, percent-escaped or not, and
//! the fetch API turns it into TQL and time buckets. Whatever it holds, the
//! answer must be a 4xx naming the parameter, never a panic (a trap, then a
//! 500, in the component). The properties:
//!
//! - arbitrary query strings parse or fail with a 400, and what parses keeps
//!   the rules (only allowed keys, each once);
//! - percent-encoding any text and decoding it gives the text back;
//! - near-valid fetch queries (every parameter, values at and past their
//!   edges, repeated and unknown keys, random escapes) and arbitrary cursors
//!   parse or fail with a 4xx, and what parses is consistent;
//! - a cursor as a response hands it out reads back as the same key;
//! - the fetch endpoint answers every such query with a 200 or a 4xx;
//! - the Grafana endpoints answer arbitrary bodies and near-valid requests
//!   (ranges at the ends of time, huge or negative sizes, unknown targets)
//!   with a 200 or a 4xx.
//!
//! Failures are not persisted to files: a case a property finds is kept as an
//! explicit test below (see `regressions`).

use cromflag_logic::api::{handle_fetch, handle_grafana, Request, Response};
use cromflag_logic::fetch::{FetchQuery, Order, DEFAULT_MAX_LIMIT};
use cromflag_logic::model::{
    Column, ColumnType, ContainerInfo, ContainerKind, QueryResult, Row, Store, StoreError,
    TIMESTAMP_RANGE,
};
use cromflag_logic::query;
use cromflag_logic::ApiError;
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{json, Value as Json};

/// The most buckets and rows a query may ask for here: small, so that a
/// property's fetches stay quick.
const MAX_LIMIT: u64 = 500;

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

fn assert_client_error(err: &ApiError, input: &str) {
    assert!(
        (400..=499).contains(&err.status),
        "status {} for {input:?}: {err:?}",
        err.status
    );
}

/// `text` with the bytes `escape` picks written as `%XX`.
fn percent_encode(text: &str, escape: impl Fn(usize, u8) -> bool) -> String {
    text.bytes()
        .enumerate()
        .map(|(i, b)| {
            if escape(i, b) || matches!(b, b'%' | b'+' | b'&' | b'=') || !b.is_ascii() {
                format!("%{b:02X}")
            } else {
                char::from(b).to_string()
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Query strings
// ---------------------------------------------------------------------------

/// Query-string-like text: keys and values from a few names and symbols.
fn query_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,60}",
        "([a-z%0-9+]{0,6}(=[a-zA-Z0-9%+=,./-]{0,8})?&?){0,6}",
    ]
}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn query_strings_parse_strictly_or_are_a_400(text in query_text()) {
        let allowed = ["from", "to", "a", "%"];
        match query::parse(Some(&text), &allowed) {
            Ok(pairs) => {
                for (i, (key, _)) in pairs.iter().enumerate() {
                    prop_assert!(allowed.contains(&key.as_str()), "{key} from {text:?}");
                    prop_assert!(pairs[..i].iter().all(|(k, _)| k != key), "{key} twice");
                }
            }
            Err(err) => prop_assert_eq!(err.status, 400),
        }
    }

    #[test]
    fn percent_decoding_inverts_percent_encoding(
        text in ".{0,40}",
        escapes in proptest::collection::vec(any::<bool>(), 40),
    ) {
        let encoded = percent_encode(&text, |i, _| escapes[i % escapes.len()]);
        prop_assert_eq!(query::percent_decode(&encoded), text);
    }

    #[test]
    fn accept_headers_pick_an_offered_type_or_none(accept in ".{0,60}") {
        let offered = [("application/json", 1), ("text/csv", 2)];
        let picked = query::preferred(Some(&accept), &offered);
        prop_assert!(picked.is_none_or(|p| offered.iter().any(|(_, v)| *v == p)));
    }
}

// ---------------------------------------------------------------------------
// Fetch queries
// ---------------------------------------------------------------------------

/// Values at and past the edges of every fetch parameter.
fn value_for(key: &'static str) -> BoxedStrategy<String> {
    let max_ts = *TIMESTAMP_RANGE.end();
    let number = prop_oneof![
        Just(0i128),
        Just(-1),
        Just(1),
        Just(i128::from(max_ts)),
        Just(i128::from(max_ts + 1)),
        Just(i128::from(i64::MAX)),
        Just(i128::from(i64::MAX) + 1),
        Just(i128::from(u64::MAX)),
        Just(i128::from(i64::MIN)),
        (0..=max_ts).prop_map(i128::from),
        (0..=MAX_LIMIT as i128 + 1),
    ]
    .prop_map(|n| n.to_string());
    let text = ".{0,12}".boxed();
    match key {
        "from" | "to" | "limit" => {
            prop_oneof![4 => number, 1 => text, 1 => Just("1.5".into())].boxed()
        }
        "cursor" => prop_oneof![
            (
                prop_oneof![Just("a"), Just("d"), Just("x"), Just("é"), Just("")],
                number
            )
                .prop_map(|(direction, key)| format!("{direction}{key}")),
            text,
        ]
        .boxed(),
        "order" => prop_oneof![Just("asc".into()), Just("desc".into()), text].boxed(),
        "columns" => prop_oneof![
            Just("temp".into()),
            Just("temp,motion".into()),
            Just("TEMP,temp".into()),
            Just("timestamp,label".into()),
            Just("a,,b".into()),
            text,
        ]
        .boxed(),
        "agg" => prop_oneof![
            Just("avg"),
            Just("min"),
            Just("max"),
            Just("sum"),
            Just("count"),
            Just("stddev"),
            Just("median"),
        ]
        .prop_map(str::to_owned)
        .boxed(),
        "interval" => (
            prop_oneof![
                Just("0".to_owned()),
                Just("1".to_owned()),
                Just("9223372036854775807".to_owned()),
                Just("99999999999999999999".to_owned()),
                "[0-9]{1,6}",
            ],
            prop_oneof![
                Just("ms"),
                Just("s"),
                Just("m"),
                Just("h"),
                Just("d"),
                Just("w"),
                Just("M"),
                Just("y"),
                Just(""),
                Just("é"),
            ],
        )
            .prop_map(|(n, unit)| format!("{n}{unit}"))
            .boxed(),
        "fill" => prop_oneof![Just("null"), Just("previous"), Just("linear"), Just("zero"),]
            .prop_map(str::to_owned)
            .boxed(),
        "tz" => prop_oneof![
            Just("UTC"),
            Just("Europe/Berlin"),
            Just("America/Sao_Paulo"),
            Just("Pacific/Kiritimati"),
            Just("Australia/Lord_Howe"),
            Just("Mars/Olympus"),
            Just(""),
        ]
        .prop_map(str::to_owned)
        .boxed(),
        "format" => prop_oneof![Just("json"), Just("msgpack"), Just("csv"), Just("xml")]
            .prop_map(str::to_owned)
            .boxed(),
        _ => text,
    }
}

const KEYS: [&str; 13] = [
    "from", "to", "limit", "cursor", "order", "columns", "agg", "interval", "fill", "tz", "format",
    "FROM", "nope",
];

/// A fetch query string: up to seven parameters (a key may repeat), each value
/// near its edges, some bytes percent-escaped.
fn fetch_query() -> impl Strategy<Value = String> {
    let pair = proptest::sample::select(&KEYS[..])
        .prop_flat_map(|key| (Just(key), value_for(key), any::<bool>()));
    proptest::collection::vec(pair, 0..7).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(key, value, escape)| {
                format!(
                    "{key}={}",
                    percent_encode(&value, |i, _| escape && i % 2 == 0)
                )
            })
            .collect::<Vec<_>>()
            .join("&")
    })
}

/// A fetch query string with each parameter at most once (so that more of
/// them get past the parser to the buckets and pages), in any order.
fn distinct_fetch_query() -> impl Strategy<Value = String> {
    let pair = |key: &'static str| {
        value_for(key)
            .prop_map(move |value| format!("{key}={}", percent_encode(&value, |_, _| false)))
    };
    proptest::sample::subsequence(&KEYS[..11], 0..=11)
        .prop_flat_map(move |keys| {
            let pairs: Vec<_> = keys.into_iter().map(pair).collect();
            pairs.prop_shuffle()
        })
        .prop_map(|pairs| pairs.join("&"))
}

/// An aggregation that mostly parses: buckets of a valid width over a range
/// that may touch either end of the TIMESTAMP range, in any of a few zones,
/// so that the endpoint computes its buckets and fills.
fn aggregation_query() -> impl Strategy<Value = String> {
    let max_ts = *TIMESTAMP_RANGE.end();
    let instant = prop_oneof![
        Just(0i64),
        Just(max_ts),
        (0..=max_ts),
        (max_ts - 100 * 86_400_000..=max_ts),
        (0..=100 * 86_400_000i64),
    ];
    let interval = prop_oneof![
        (
            1..=1000u32,
            prop_oneof![Just("ms"), Just("s"), Just("m"), Just("h")]
        )
            .prop_map(|(n, unit)| format!("{n}{unit}")),
        prop_oneof![Just("1d"), Just("1w"), Just("1M")].prop_map(str::to_owned),
    ];
    (
        value_for("agg"),
        interval,
        proptest::option::of((instant.clone(), instant)),
        proptest::option::of(value_for("fill")),
        value_for("tz"),
        value_for("order"),
    )
        .prop_map(|(agg, interval, range, fill, tz, order)| {
            let mut query = format!("agg={agg}&interval={interval}&order={order}");
            query += &format!("&tz={}", percent_encode(&tz, |_, _| false));
            if let Some((a, b)) = range {
                query += &format!("&from={}&to={}", a.min(b), a.max(b));
            }
            if let Some(fill) = fill {
                query += &format!("&fill={fill}");
            }
            query
        })
}

/// What a parsed query must hold, whatever text it came from.
fn check_consistent(q: &FetchQuery, text: &str) {
    if let (Some(from), Some(to)) = (q.from, q.to) {
        assert!(from <= to, "{text}: {q:?}");
    }
    for ms in [q.from, q.to].into_iter().flatten() {
        assert!(TIMESTAMP_RANGE.contains(&ms), "{text}: {q:?}");
    }
    assert!(
        q.limit.is_none_or(|n| (1..=MAX_LIMIT).contains(&n)),
        "{text}"
    );
    assert!(q.cursor.is_none() || q.agg.is_none(), "{text}: {q:?}");
}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn fetch_queries_parse_consistently_or_are_a_client_error(
        text in prop_oneof![fetch_query(), distinct_fetch_query(), query_text()],
    ) {
        match FetchQuery::parse(Some(&text), MAX_LIMIT) {
            Ok(q) => check_consistent(&q, &text),
            Err(err) => assert_client_error(&err, &text),
        }
    }

    #[test]
    fn arbitrary_cursors_parse_or_are_a_400(cursor in ".{0,24}", descending in any::<bool>()) {
        let order = if descending { "desc" } else { "asc" };
        let text = format!("order={order}&cursor={}", percent_encode(&cursor, |_, _| false));
        match FetchQuery::parse(Some(&text), MAX_LIMIT) {
            Ok(q) => prop_assert!(q.cursor.is_some()),
            Err(err) => prop_assert_eq!(err.status, 400, "{:?}", err),
        }
    }

    /// A cursor is the order's letter and the last key of the page.
    #[test]
    fn cursors_read_back_as_their_key(key in any::<i64>(), descending in any::<bool>()) {
        let (order, letter) = if descending { (Order::Desc, "d") } else { (Order::Asc, "a") };
        let text = format!("order={}&cursor={letter}{key}", if descending { "desc" } else { "asc" });
        let q = FetchQuery::parse(Some(&text), MAX_LIMIT).unwrap();
        prop_assert_eq!((q.order, q.cursor), (order, Some(key)));
    }
}

// ---------------------------------------------------------------------------
// The fetch endpoint
// ---------------------------------------------------------------------------

/// A store with one time series, `sensor`, and no rows: every query answers
/// an empty result, so fetch runs every step (buckets, fills, pages) on edges
/// the query alone decides.
struct EmptySeries {
    info: ContainerInfo,
}

impl EmptySeries {
    fn new() -> EmptySeries {
        let column = Column::new;
        EmptySeries {
            info: ContainerInfo {
                name: "sensor".into(),
                kind: ContainerKind::TimeSeries,
                columns: vec![
                    column("timestamp", ColumnType::Timestamp),
                    column("temp", ColumnType::Float),
                    column("motion", ColumnType::Bool),
                    column("label", ColumnType::String),
                ],
                row_key: true,
            },
        }
    }
}

impl Store for EmptySeries {
    fn put_container(&mut self, _: ContainerInfo) -> Result<ContainerInfo, StoreError> {
        unreachable!("fetch does not write")
    }
    fn get_container(&mut self, name: &str) -> Result<Option<ContainerInfo>, StoreError> {
        Ok(self
            .info
            .name
            .eq_ignore_ascii_case(name)
            .then(|| self.info.clone()))
    }
    fn list_containers(&mut self) -> Result<Vec<String>, StoreError> {
        Ok(vec![self.info.name.clone()])
    }
    fn put_rows(&mut self, _: &str, _: Vec<Row>) -> Result<u64, StoreError> {
        unreachable!("fetch does not write")
    }
    fn multi_put(&mut self, _: Vec<(String, Vec<Row>)>) -> Result<u64, StoreError> {
        unreachable!("fetch does not write")
    }
    fn query(&mut self, container: &str, tql: &str) -> Result<QueryResult, StoreError> {
        assert!(
            container.eq_ignore_ascii_case(&self.info.name),
            "{container}: {tql}"
        );
        Ok(QueryResult {
            columns: self.info.columns.clone(),
            rows: Vec::new(),
        })
    }
}

/// Asserts that `response` is a 200 or a 4xx.
fn assert_ok_or_client_error(response: &Response, request: &str) {
    assert!(
        response.status == 200 || (400..=499).contains(&response.status),
        "{} for {request}: {}",
        response.status,
        String::from_utf8_lossy(&response.body)
    );
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn the_fetch_endpoint_answers_200_or_a_client_error(
        query in prop_oneof![fetch_query(), distinct_fetch_query(), aggregation_query()],
    ) {
        let path = format!("/fetch/sensor?{query}");
        let request = Request {
            method: "GET",
            path_with_query: &path,
            content_type: None,
            accept: None,
            body: b"",
        };
        let response = handle_fetch(&mut EmptySeries::new(), &request, MAX_LIMIT);
        assert_ok_or_client_error(&response, &path);
    }
}

// ---------------------------------------------------------------------------
// The Grafana endpoints
// ---------------------------------------------------------------------------

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::from),
        any::<i64>().prop_map(Json::from),
        any::<u64>().prop_map(Json::from),
        any::<f64>().prop_map(Json::from),
        ".{0,12}".prop_map(Json::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Json::from),
            proptest::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

/// A Grafana request as the JSON datasource sends it, each field at or past
/// its edges, or any JSON value in its place.
fn grafana_request() -> impl Strategy<Value = Json> {
    let instant = prop_oneof![
        Just("2020-02-18T17:25:38.255Z"),
        Just("1970-01-01T00:00:00Z"),
        Just("0001-01-01T00:00:00Z"),
        Just("9999-12-31T23:59:59.999Z"),
        Just("9999-12-31T23:59:59.999-23:59"),
        Just("2020-02-30T00:00:00Z"),
        Just("yesterday"),
    ]
    .prop_map(Json::from);
    let number = prop_oneof![
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(1)),
        Just(json!(i64::MAX)),
        Just(json!(u64::MAX)),
        Just(json!(1.5)),
        (1..100_000i64).prop_map(Json::from),
    ];
    let target = (
        prop_oneof![
            Just("sensor.temp"),
            Just("sensor.motion"),
            Just("sensor.label"),
            Just("sensor"),
            Just("sensor.timestamp"),
            Just("sensor.nope"),
            Just("other.temp"),
            Just(".temp"),
            Just(""),
            Just("é.x"),
        ],
        prop_oneof![Just("timeserie"), Just("table")],
        prop_oneof![Just("avg"), Just("count"), Just("stddev"), Just("nope")],
        any::<bool>(),
    )
        .prop_map(|(target, kind, agg, hide)| {
            json!({ "target": target, "type": kind, "payload": { "agg": agg }, "hide": hide, "refId": "A" })
        });
    let field = |value: BoxedStrategy<Json>| prop_oneof![6 => value, 1 => any_json()];
    (
        field(
            (instant.clone(), instant)
                .prop_map(|(from, to)| json!({ "from": from, "to": to }))
                .boxed(),
        ),
        field(
            proptest::collection::vec(target, 0..3)
                .prop_map(Json::from)
                .boxed(),
        ),
        field(number.clone().boxed()),
        field(number.boxed()),
        field(
            prop_oneof![
                Just("sensor"),
                Just("motion sensor"),
                Just("battery sensor"),
                Just("a b c")
            ]
            .prop_map(|q| json!({ "query": q }))
            .boxed(),
        ),
    )
        .prop_map(|(range, targets, points, interval, annotation)| {
            json!({
                "range": range,
                "targets": targets,
                "maxDataPoints": points,
                "intervalMs": interval,
                "annotation": annotation,
                "adhocFilters": [{ "key": "device", "operator": "=", "value": "sensor" }],
            })
        })
}

const GRAFANA_PATHS: [&str; 10] = [
    "/grafana",
    "/grafana/query",
    "/grafana/annotations",
    "/grafana/metrics",
    "/grafana/variable",
    "/grafana/search",
    "/grafana/tag-values",
    "/grafana/options",
    "/grafana/nope",
    "/grafanax",
];

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn the_grafana_endpoints_answer_200_or_a_client_error(
        path in proptest::sample::select(&GRAFANA_PATHS[..]),
        method in prop_oneof![4 => Just("POST"), 1 => Just("GET"), 1 => Just("DELETE")],
        body in prop_oneof![
            4 => grafana_request().prop_map(|request| request.to_string().into_bytes()),
            1 => any_json().prop_map(|json| json.to_string().into_bytes()),
            1 => proptest::collection::vec(any::<u8>(), 0..64),
        ],
    ) {
        let request = Request {
            method,
            path_with_query: path,
            content_type: Some("application/json"),
            accept: None,
            body: &body,
        };
        let response = handle_grafana(&mut EmptySeries::new(), &request, MAX_LIMIT);
        assert_ok_or_client_error(&response, &format!("{method} {path} {}", String::from_utf8_lossy(&body)));
    }
}

// ---------------------------------------------------------------------------
// Regressions: inputs the properties found, kept as plain tests
// ---------------------------------------------------------------------------

mod regressions {
    use super::*;

    /// A cursor is split after its first byte, its direction letter; one that
    /// starts with a multi-byte character was split inside it, which panicked.
    #[test]
    fn a_cursor_starting_with_a_multibyte_character_is_a_400() {
        for cursor in ["%C3%A91", "%C3%A9", "%E2%82%AC5"] {
            let text = format!("cursor={cursor}");
            let err = FetchQuery::parse(Some(&text), DEFAULT_MAX_LIMIT).unwrap_err();
            assert_eq!(
                (err.status, err.detail["parameter"].as_str()),
                (400, Some("cursor")),
                "{text}: {err:?}"
            );
        }
    }
}
