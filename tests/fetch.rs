//! The fetch API beyond the sample's range query: paging with a cursor, order,
//! columns, aggregation into time buckets (with fills and time zones), output
//! formats, and the device endpoints — against the real binary and store.

use cromflag_tests::{
    device_once_seen, get, get_accepting, insert_sample, insert_sample_as, post, sample_payload,
    Answer, Host,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tempfile::TempDir;

fn rows_of(answer: &Answer) -> Vec<Value> {
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json().as_array().cloned().expect("an array of rows")
}

fn sample_rows() -> Vec<Value> {
    let doc: Value = serde_json::from_slice(&sample_payload()).unwrap();
    doc["tsdata"].as_array().unwrap().clone()
}

/// Posts `rows` (objects with a `timestamp`) for `device`, in batches.
fn insert_rows(host: &Host, device: &str, rows: &[Value]) {
    for batch in rows.chunks(5000) {
        let doc = json!({ "deviceinfo": { "deviceid": device }, "tsdata": batch });
        let answer = post(
            &host.url(&format!("/insert/{device}")),
            "application/json",
            doc.to_string().as_bytes(),
        );
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
}

fn header(answer: &Answer, name: &str) -> Option<String> {
    answer.header_values(name).first().map(|v| v.to_string())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[test]
fn the_sample_averages_to_79_5_in_one_minute_bucket() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    assert_eq!(insert_sample(&host).status, 200);
    let rows = rows_of(&get(
        &host.url("/fetch/sample?agg=avg&interval=1m&columns=temperature")
    ));
    // The six rows span 50 s from the first one: one bucket, (78+82+81+80+79+77)/6.
    assert_eq!(
        rows,
        [json!({ "timestamp": 1582046738255i64, "temperature": 79.5 })]
    );

    // Every aggregate, by hand over temperature 78 82 81 80 79 77.
    let one = |agg: &str| {
        rows_of(&get(&host.url(&format!(
            "/fetch/sample?agg={agg}&interval=1h&columns=temperature"
        ))))[0]["temperature"]
            .clone()
    };
    assert_eq!(one("min"), json!(77.0));
    assert_eq!(one("max"), json!(82.0));
    assert_eq!(one("sum"), json!(477.0));
    assert_eq!(one("count"), json!(6));
    // Sample standard deviation (GridDB's STDDEV): sqrt(17.5 / 5).
    let stddev = one("stddev").as_f64().unwrap();
    assert!((stddev - (17.5f64 / 5.0).sqrt()).abs() < 1e-12, "{stddev}");

    // 10-second buckets: one row each. From 20 s before the first row, two
    // buckets are empty: left out, or filled.
    let tens = rows_of(&get(
        &host.url("/fetch/sample?agg=avg&interval=10s&columns=temperature")
    ));
    let temps: Vec<f64> = tens
        .iter()
        .map(|r| r["temperature"].as_f64().unwrap())
        .collect();
    assert_eq!(temps, [78.0, 82.0, 81.0, 80.0, 79.0, 77.0]);
    let url = "/fetch/sample?agg=avg&interval=10s&columns=temperature&from=1582046718255&to=1582046798255";
    let omitted = rows_of(&get(&host.url(url)));
    assert_eq!(omitted.len(), 6);
    let nulls = rows_of(&get(&host.url(&format!("{url}&fill=null"))));
    assert_eq!(nulls.len(), 8);
    assert_eq!(
        nulls[0],
        json!({ "timestamp": 1582046718255i64, "temperature": null })
    );
    let previous = rows_of(&get(&host.url(&format!("{url}&fill=previous"))));
    assert_eq!(previous[7]["temperature"], json!(77.0));
    assert_eq!(previous[0]["temperature"], Value::Null);

    // Buckets count only the rows of `from <= timestamp < to`: a minute bucket
    // runs past `to` (the row at `to` is out), a day bucket starts before `from`.
    let (first, last) = (1582046738255i64, 1582046788255i64);
    for interval in ["1m", "1d"] {
        let url = format!(
            "/fetch/sample?agg=count&interval={interval}&columns=temperature&from={}&to={last}",
            first + 1
        );
        let counts: Vec<i64> = rows_of(&get(&host.url(&url)))
            .iter()
            .map(|r| r["temperature"].as_i64().unwrap())
            .collect();
        assert_eq!(counts.iter().sum::<i64>(), 4, "{interval}: {counts:?}");
    }
}

#[test]
fn a_cursor_pages_through_every_row_exactly_once() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    assert_eq!(insert_sample(&host).status, 200);

    let first = get(&host.url("/fetch/sample?limit=2"));
    let page = rows_of(&first);
    assert_eq!(page, sample_rows()[..2]);
    let cursor = header(&first, "x-next-cursor").expect("a cursor");
    let link = header(&first, "link").expect("a link");
    assert_eq!(
        link,
        format!("</fetch/sample?limit=2&cursor={cursor}>; rel=\"next\"")
    );
    // The rest, from the cursor.
    let rest = get(&host.url(&format!("/fetch/sample?cursor={cursor}")));
    assert_eq!(rows_of(&rest), sample_rows()[2..]);
    assert_eq!(header(&rest, "link"), None);

    // Descending, with a projection; the row key always comes first.
    let desc = rows_of(&get(
        &host.url("/fetch/sample?order=desc&limit=3&columns=humidity,motion")
    ));
    assert_eq!(
        desc,
        [
            json!({ "timestamp": 1582046788255i64, "humidity": 66.0, "motion": false }),
            json!({ "timestamp": 1582046778255i64, "humidity": 70.0, "motion": false }),
            json!({ "timestamp": 1582046768255i64, "humidity": 77.0, "motion": true }),
        ]
    );

    // 100,000 rows, walked by their links in both orders: each exactly once.
    let base = 1_600_000_000_000i64;
    let rows: Vec<Value> = (0..100_000i64)
        .map(|i| json!({ "timestamp": base + i * 1000, "v": i }))
        .collect();
    insert_rows(&host, "many", &rows);
    for order in ["asc", "desc"] {
        let mut seen = Vec::with_capacity(100_000);
        let mut next = Some(format!("/fetch/many?limit=7777&order={order}&columns=v"));
        while let Some(path) = next {
            let answer = get(&host.url(&path));
            seen.extend(rows_of(&answer).iter().map(|r| r["v"].as_i64().unwrap()));
            next = header(&answer, "link").map(|l| {
                l.trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap()
                    .to_owned()
            });
        }
        assert_eq!(seen.len(), 100_000, "{order}");
        if order == "desc" {
            seen.reverse();
        }
        assert!(
            seen.iter().enumerate().all(|(i, v)| *v == i as i64),
            "{order}: rows out of place"
        );
    }
    // Without `limit`, a page holds 10,000 rows.
    let page = get(&host.url("/fetch/many"));
    assert_eq!(rows_of(&page).len(), 10_000);
    assert!(header(&page, "link").is_some());
}

#[test]
fn bad_parameters_are_400s_naming_them() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    assert_eq!(insert_sample(&host).status, 200);
    for (query, parameter) in [
        ("limit=0", "limit"),
        ("limit=100001", "limit"),
        ("cursor=zz", "cursor"),
        ("order=sideways", "order"),
        ("columns=nope", "columns"),
        ("columns=temperature,temperature", "columns"),
        ("agg=median&interval=1m", "agg"),
        ("agg=avg&interval=1y", "interval"),
        ("agg=avg", "agg"),
        ("agg=avg&interval=1m&fill=zero", "fill"),
        ("agg=avg&interval=1ms&from=0&to=1582046798255", "interval"),
        ("agg=avg&interval=1d&tz=Atlantis", "tz"),
        ("format=xml", "format"),
        ("from=yesterday", "from"),
        ("colour=red", "colour"),
    ] {
        let answer = get(&host.url(&format!("/fetch/sample?{query}")));
        assert_eq!(answer.status, 400, "{query}: {}", answer.text());
        assert_eq!(
            answer.json()["detail"]["parameter"],
            parameter,
            "{query}: {}",
            answer.text()
        );
    }
}

#[test]
fn daily_buckets_follow_berlin_across_the_march_dst_change() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    // One row an hour from 2021-03-27 00:00 to 2021-03-29 23:00 Berlin time
    // (23:00 UTC on the 26th to 21:00 UTC on the 29th): clocks skipped 02:00 on the 28th.
    let start = 1_616_799_600_000i64; // 2021-03-26T23:00:00Z
    let end = 1_617_051_600_000i64; // 2021-03-29T21:00:00Z
    let rows: Vec<Value> = (0..)
        .map(|h| start + h * 3_600_000)
        .take_while(|ts| *ts <= end)
        .map(|ts| json!({ "timestamp": ts, "v": 1 }))
        .collect();
    assert_eq!(rows.len(), 24 + 23 + 24);
    insert_rows(&host, "berlin", &rows);
    let days = rows_of(&get(
        &host.url("/fetch/berlin?agg=count&interval=1d&tz=Europe%2FBerlin&columns=v")
    ));
    assert_eq!(
        days,
        [
            json!({ "timestamp": 1_616_799_600_000i64, "v": 24 }), // 27th, from 00:00 CET
            json!({ "timestamp": 1_616_886_000_000i64, "v": 23 }), // 28th, 23 hours
            json!({ "timestamp": 1_616_968_800_000i64, "v": 24 }), // 29th, from 00:00 CEST
        ]
    );
    // In UTC the same rows fall into four days.
    let utc = rows_of(&get(
        &host.url("/fetch/berlin?agg=count&interval=1d&columns=v")
    ));
    assert_eq!(
        utc.iter()
            .map(|d| d["v"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [1, 24, 24, 22]
    );
}

#[test]
fn csv_and_messagepack_decode_to_the_same_rows() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    assert_eq!(insert_sample(&host).status, 200);
    let json_rows = rows_of(&get(&host.url("/fetch/sample")));

    let packed = get_accepting(&host.url("/fetch/sample"), "application/msgpack");
    assert_eq!(packed.status, 200);
    assert_eq!(packed.content_type, "application/msgpack");
    let unpacked: Value = rmp_serde::from_slice(&packed.body).unwrap();
    assert_eq!(unpacked.as_array().unwrap(), &json_rows);
    assert_eq!(
        get(&host.url("/fetch/sample?format=msgpack")).body,
        packed.body
    );

    let csv = get(&host.url("/fetch/sample?format=csv"));
    assert!(csv.content_type.starts_with("text/csv"));
    let text = csv.text();
    let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let decoded: Vec<Value> = lines
        .map(|line| {
            let object = header
                .iter()
                .zip(line.split(','))
                .map(|(name, cell)| {
                    (
                        (*name).to_owned(),
                        serde_json::from_str::<Value>(cell).unwrap(),
                    )
                })
                .collect::<serde_json::Map<_, _>>();
            Value::Object(object)
        })
        .collect();
    assert_eq!(decoded, json_rows);
    assert_eq!(
        get_accepting(&host.url("/fetch/sample"), "text/csv").body,
        csv.body
    );
}

#[test]
fn a_device_has_its_latest_row_and_its_schema() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    assert_eq!(insert_sample(&host).status, 200);
    let latest = get(&host.url("/devices/sample/latest"));
    assert_eq!(latest.status, 200, "{}", latest.text());
    assert_eq!(latest.json(), sample_rows()[5]);
    let schema = get(&host.url("/devices/sample/schema")).json();
    assert_eq!(schema["device"], "sample");
    assert_eq!(schema["container"], "sample");
    assert_eq!(schema["type"], "TIME_SERIES");
    assert_eq!(
        schema["columns"][0],
        json!({ "name": "timestamp", "type": "TIMESTAMP" })
    );
    assert!(schema["columns"]
        .as_array()
        .unwrap()
        .contains(&json!({ "name": "motion", "type": "BOOL" })));
    assert_eq!(get(&host.url("/devices/nobody/latest")).status, 404);
    assert_eq!(get(&host.url("/devices/sample/history")).status, 404);
    assert_eq!(get(&host.url("/devices/sample/schema?x=1")).status, 400);
}

/// `/fetch/{a,b}` (how Grafana's `glob` format, which Infinity uses, renders a
/// multi-value variable) answers the rows of each listed device, each with its
/// `device` after the key, in key order (ties in the order listed); `agg`
/// buckets each device on its own. A device answers as before; an id that
/// looks like a list is read as itself when it is a device. An unknown device
/// is a 404 naming it, more than 100 devices or a `cursor` a 400.
#[test]
fn a_list_of_devices_answers_the_rows_of_each() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    assert_eq!(insert_sample(&host).status, 200);
    assert_eq!(insert_sample_as(&host, "other").status, 200);
    let url = |path: &str| host.url(path);
    let with = |row: &Value, device: &str| {
        let mut row = row.as_object().unwrap().clone();
        let key = row.remove("timestamp").unwrap();
        let mut out = serde_json::Map::new();
        out.insert("timestamp".into(), key);
        out.insert("device".into(), json!(device));
        out.extend(row);
        Value::Object(out)
    };
    for query in [
        "",
        "?agg=avg&interval=1h&columns=temperature",
        "?order=desc&columns=humidity,temperature",
    ] {
        let sample = rows_of(&get(&url(&format!("/fetch/sample{query}"))));
        let other = rows_of(&get(&url(&format!("/fetch/other{query}"))));
        assert!(!sample.is_empty() && sample.iter().all(|r| r.get("device").is_none()));
        let both = rows_of(&get(&url(&format!("/fetch/%7Bsample,other%7D{query}"))));
        let expected: Vec<Value> = sample
            .iter()
            .zip(&other)
            .flat_map(|(s, o)| [with(s, "sample"), with(o, "other")])
            .collect();
        assert_eq!(both, expected, "{query}");
    }
    let sample = rows_of(&get(&url("/fetch/sample")));
    let csv = get_accepting(&url("/fetch/%7Bsample,other%7D"), "text/csv");
    assert!(
        csv.text().starts_with("timestamp,device,"),
        "{}",
        csv.text()
    );
    assert_eq!(csv.text().lines().count(), 1 + 2 * sample.len());

    let unknown = get(&url("/fetch/%7Bsample,nobody%7D"));
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    assert_eq!(unknown.json()["detail"]["device"], "nobody");
    let paged = get(&url("/fetch/%7Bsample,other%7D?cursor=a1582046748255"));
    assert_eq!(paged.status, 400, "{}", paged.text());
    let small = get(&url("/fetch/%7Bsample,other%7D?limit=3"));
    assert_eq!(small.status, 400, "{}", small.text());
    let many: Vec<String> = (0..101).map(|i| format!("d{i}")).collect();
    let too_many = get(&url(&format!("/fetch/%7B{}%7D", many.join(","))));
    assert_eq!(too_many.status, 400, "{}", too_many.text());
    assert_eq!(too_many.json()["detail"]["most"], 100);

    // A device whose id looks like a list is read as itself.
    assert_eq!(insert_sample_as(&host, "{sample,other}").status, 200);
    let itself = rows_of(&get(&url("/fetch/%7Bsample,other%7D")));
    assert_eq!(itself, sample);
}

// ---------------------------------------------------------------------------
// The device list: `/fetch/devices` in pages, searched by id
// ---------------------------------------------------------------------------

/// Ids with what a URL's query, a `LIKE` pattern or a TQL literal treat
/// specially, and non-ASCII ones.
const AWKWARD_IDS: [&str; 12] = [
    "a,b",
    "{sample,other}",
    "100%",
    "100x",
    "a b",
    "capteur-été",
    "🌡️ kitchen",
    "x&cursor=k1.YQ",
    "it's",
    "back\\slash",
    "a_b",
    "axb",
];

/// Inserts the sample as each of `ids`, a few at a time.
fn insert_devices(host: &Host, ids: &[String]) {
    for chunk in ids.chunks(16) {
        std::thread::scope(|scope| {
            for id in chunk {
                scope.spawn(move || {
                    let answer = insert_sample_as(host, id);
                    assert_eq!(answer.status, 200, "{id}: {}", answer.text());
                });
            }
        });
    }
}

/// The path of a `Link: <path>; rel="next"` header.
fn link_target(link: &str) -> String {
    let (target, rest) = link
        .strip_prefix('<')
        .and_then(|l| l.split_once('>'))
        .unwrap_or_else(|| panic!("not a link: {link}"));
    assert_eq!(rest, "; rel=\"next\"", "{link}");
    target.to_owned()
}

/// Walks `/fetch/devices?<query>` by its links: the ids of every page, in
/// order. Every page but the last has a link whose cursor is `X-Next-Cursor`,
/// and holds `limit` devices.
fn walk_devices(host: &Host, query: &str, limit: usize) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut next = Some(format!("/fetch/devices?{query}"));
    while let Some(path) = next.take() {
        let answer = get(&host.url(&path));
        let ids: Vec<String> = rows_of(&answer)
            .iter()
            .map(|row| row["deviceid"].as_str().expect("a deviceid").to_owned())
            .collect();
        if let Some(link) = header(&answer, "link") {
            let cursor = header(&answer, "x-next-cursor").expect("a cursor beside the link");
            let target = link_target(&link);
            assert!(target.ends_with(&format!("&cursor={cursor}")), "{target}");
            assert_eq!(ids.len(), limit, "{path}: a page before the last is full");
            next = Some(target);
        } else {
            assert_eq!(header(&answer, "x-next-cursor"), None);
        }
        pages.push(ids);
        assert!(pages.len() < 1000, "the pages never end");
    }
    pages
}

/// A few hundred devices, walked in small pages by their links: each exactly
/// once, in id order (UTF-8 byte order), a link on every page but the last;
/// the rows keep the original answer's shape. Without `limit` the first
/// page holds up to 10,000 devices, here all of them.
#[test]
fn the_device_list_pages_through_every_device_once() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    let mut ids: Vec<String> = (0..300).map(|i| format!("dev-{i:03}")).collect();
    ids.extend(AWKWARD_IDS.iter().map(|s| s.to_string()));
    let sent = now_ms();
    insert_devices(&host, &ids);
    let answered = now_ms();
    ids.sort();

    for limit in [7, 100, ids.len()] {
        let pages = walk_devices(&host, &format!("limit={limit}"), limit);
        assert_eq!(pages.len(), ids.len().div_ceil(limit), "{limit}");
        assert_eq!(pages.concat(), ids, "{limit}");
    }
    // One more than fits: a link to an empty last page is never given.
    let pages = walk_devices(&host, &format!("limit={}", ids.len() - 1), ids.len() - 1);
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [ids.len() - 1, 1]
    );

    device_once_seen(&host, &ids[0]);
    let all = get(&host.url("/fetch/devices"));
    assert_eq!(header(&all, "link"), None);
    let rows = rows_of(&all);
    assert_eq!(rows.len(), ids.len());
    // The original answer's fields, then the device's health.
    let doc: Value = serde_json::from_slice(&sample_payload()).unwrap();
    let last_seen = rows[0]["last_seen"].as_i64().expect("a last-seen time");
    assert!(
        (sent..=answered + 1000).contains(&last_seen),
        "{last_seen} not within the inserts ({sent} to {answered})"
    );
    assert_eq!(
        rows[0],
        json!({ "deviceid": ids[0], "batt_lvl": doc["deviceinfo"]["batt_lvl"], "fw_ver": doc["deviceinfo"]["fw_ver"],
                "last_seen": last_seen, "active": true })
    );
    // Other formats page alike.
    let csv = get(&host.url("/fetch/devices?limit=3&format=csv"));
    assert_eq!(csv.text().lines().count(), 1 + 3, "{}", csv.text());
    assert!(header(&csv, "link").unwrap().contains("format=csv"));
}

/// Devices added while a client pages through the list move no page: every
/// device that was there is listed once, in order, and none twice.
#[test]
fn devices_added_while_paging_are_neither_repeated_nor_skipped() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    let ids: Vec<String> = (0..60).map(|i| format!("m{i:02}")).collect();
    insert_devices(&host, &ids);
    let mut seen: Vec<String> = Vec::new();
    let mut next = Some("/fetch/devices?limit=8".to_owned());
    let mut page = 0;
    while let Some(path) = next.take() {
        let answer = get(&host.url(&path));
        seen.extend(
            rows_of(&answer)
                .iter()
                .map(|r| r["deviceid"].as_str().unwrap().to_owned()),
        );
        next = header(&answer, "link").map(|l| link_target(&l));
        page += 1;
        // Before every listed id, among them, and after them all.
        insert_devices(
            &host,
            &[
                format!("a{page:02}"),
                format!("m{:02}x", page * 8 + 3),
                format!("z{page:02}"),
            ],
        );
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "in order, each once");
    assert!(ids.iter().all(|id| seen.contains(id)), "{seen:?}");
    assert!(seen.contains(&"z01".to_owned()) && seen.contains(&"m19x".to_owned()));
}

/// `search` lists the devices whose id contains the text, literally (`%`,
/// `_`, `\`, `'` are no wildcards nor quotes), case-sensitively, paged as
/// the whole list is.
#[test]
fn the_device_list_is_searched_by_id() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    let mut ids: Vec<String> = AWKWARD_IDS.iter().map(|s| s.to_string()).collect();
    ids.extend(["Kitchen", "kitchen-2", "my kitchen"].map(String::from));
    ids.extend((0..40).map(|i| format!("kitchen-sensor-{i:02}")));
    insert_devices(&host, &ids);
    let found = |search: &str, limit: usize| -> Vec<String> {
        let query = format!(
            "search={}&limit={limit}",
            cromflag_tests::path_segment(search)
        );
        walk_devices(&host, &query, limit).concat()
    };
    assert_eq!(found("%", 5), ["100%"]);
    assert_eq!(found("_", 5), ["a_b"]);
    assert_eq!(found("\\", 5), ["back\\slash"]);
    assert_eq!(found("'", 5), ["it's"]);
    assert_eq!(found(",", 5), ["a,b", "{sample,other}"]);
    assert_eq!(found("{", 5), ["{sample,other}"]);
    assert_eq!(found("&cursor=", 5), ["x&cursor=k1.YQ"]);
    assert_eq!(found(" ", 5), ["a b", "my kitchen", "🌡️ kitchen"]);
    assert_eq!(found("été", 5), ["capteur-été"]);
    assert_eq!(found("nothing like it", 5), Vec::<String>::new());
    let mut kitchens: Vec<String> = ids
        .iter()
        .filter(|id| id.contains("kitchen"))
        .cloned()
        .collect();
    kitchens.sort();
    assert_eq!(kitchens.len(), 43);
    assert_eq!(found("kitchen", 6), kitchens);
    // A form's `+` for a space, and an empty search (a cleared box): everything.
    let plus = rows_of(&get(&host.url("/fetch/devices?search=my+kitchen")));
    assert_eq!(plus[0]["deviceid"], "my kitchen");
    assert_eq!(
        rows_of(&get(&host.url("/fetch/devices?search="))).len(),
        ids.len()
    );
}

/// Bad `limit`, `cursor` or `search` (and parameters the list does not
/// take) are 400s naming the parameter; so is a `search` of another
/// collection. A cursor of one endpoint is no cursor of the other.
#[test]
fn bad_device_list_parameters_are_400s_naming_them() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    assert_eq!(insert_sample(&host).status, 200);
    let long = "x".repeat(129);
    for (path, parameter) in [
        ("/fetch/devices?limit=0", "limit"),
        ("/fetch/devices?limit=100001", "limit"),
        ("/fetch/devices?limit=ten", "limit"),
        ("/fetch/devices?cursor=zz", "cursor"),
        ("/fetch/devices?cursor=a1582046748255", "cursor"),
        ("/fetch/devices?cursor=k1.%2A%2A", "cursor"),
        ("/fetch/devices?search=a%01b", "search"),
        (&format!("/fetch/devices?search={long}") as &str, "search"),
        ("/fetch/devices?search=a&search=b", "search"),
        ("/fetch/devices?from=1", "from"),
        ("/fetch/devices?order=desc", "order"),
        ("/fetch/devices?format=xml", "format"),
        ("/fetch/messages?search=sample", "search"),
        ("/fetch/sample?cursor=k1.c2FtcGxl", "cursor"),
        ("/fetch/sample?search=x", "search"),
    ] {
        let answer = get(&host.url(path));
        assert_eq!(answer.status, 400, "{path}: {}", answer.text());
        assert_eq!(
            answer.json()["detail"]["parameter"],
            parameter,
            "{path}: {}",
            answer.text()
        );
    }
    // The largest limit is fine, and so is a search of the longest id.
    assert_eq!(get(&host.url("/fetch/devices?limit=100000")).status, 200);
    let longest = "x".repeat(128);
    assert_eq!(
        get(&host.url(&format!("/fetch/devices?search={longest}"))).status,
        200
    );
}

/// The stack's other collections page by their key too (`messages` grows
/// with every document); `_rejected`, a time series, pages as a device does.
#[test]
fn the_other_collections_page_by_their_key() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    let ids: Vec<String> = (0..25).map(|i| format!("d{i:02}")).collect();
    insert_devices(&host, &ids);
    let all = rows_of(&get(&host.url("/fetch/messages")));
    assert_eq!(all.len(), 25);
    let mut seen = Vec::new();
    let mut next = Some("/fetch/messages?limit=4&format=json".to_owned());
    while let Some(path) = next.take() {
        let answer = get(&host.url(&path));
        seen.extend(rows_of(&answer));
        next = header(&answer, "link").map(|l| link_target(&l));
    }
    assert_eq!(seen, all);
    let mut keys: Vec<&str> = all.iter().map(|m| m["id"].as_str().unwrap()).collect();
    let listed = keys.clone();
    keys.sort();
    assert_eq!(keys, listed, "in key order");
}

/// The same list and search through the `griddb` backend (host A's store is
/// host B's WebAPI, as `tests/griddb.rs` sets up): the TQL the list sends
/// (`ORDER BY … LIMIT … OFFSET …`, `LIKE … ESCAPE`) is what a WebAPI runs.
#[test]
fn the_device_list_pages_and_searches_through_the_webapi() {
    let dir = TempDir::new().unwrap();
    let b = Host::start_with_env(
        &cromflag_tests::repo_root().join("spin.toml"),
        &dir.path().join("b"),
        &["--webapi", "127.0.0.1:0"],
        &[],
    );
    let url = format!("http://127.0.0.1:{}/griddb", b.webapi_addr.unwrap().port());
    let a = Host::start_with_env(
        &cromflag_tests::repo_root().join("spin.toml"),
        &dir.path().join("a"),
        &[],
        &[
            ("SPIN_VARIABLE_STORE", "griddb"),
            ("SPIN_VARIABLE_GRIDDB_URL", &url),
            ("SPIN_VARIABLE_GRIDDB_TIMEOUT_SECS", "5"),
        ],
    );
    let mut ids: Vec<String> = (0..40).map(|i| format!("dev-{i:02}")).collect();
    ids.extend(AWKWARD_IDS.iter().map(|s| s.to_string()));
    insert_devices(&a, &ids);
    ids.sort();
    assert_eq!(walk_devices(&a, "limit=6", 6).concat(), ids);
    let found = |search: &str| -> Vec<String> {
        let query = format!("search={}&limit=2", cromflag_tests::path_segment(search));
        walk_devices(&a, &query, 2).concat()
    };
    assert_eq!(found("%"), ["100%"]);
    assert_eq!(found("_"), ["a_b"]);
    assert_eq!(found("'"), ["it's"]);
    assert_eq!(found("\\"), ["back\\slash"]);
    assert_eq!(
        found("dev-1"),
        (10..20).map(|i| format!("dev-{i}")).collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------
// Device health: when a device was last seen, and whether it is active
// ---------------------------------------------------------------------------

/// Issue 22: `/fetch/devices` lists when each device's telemetry last
/// committed (`last_seen`, ms) and whether it is `active`;
/// `/devices/<d>/latest` says the same in `x-device-last-seen` and
/// `x-device-active`, its body the newest row as before. With a 2 s
/// inactivity timeout the device turns inactive, its last-seen time kept.
#[test]
fn devices_show_when_they_were_last_seen_and_whether_they_are_active() {
    let dir = TempDir::new().unwrap();
    let host = Host::start_inactive_after_2s(dir.path());
    let sent = now_ms();
    assert_eq!(insert_sample(&host).status, 200);
    let answered = now_ms();
    // (listed last_seen, listed active, header last_seen, header active), once `active` is `want`.
    let health_once = |want: bool| -> [Value; 4] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let listed = rows_of(&get(&host.url("/fetch/devices?search=sample")));
            let latest = get(&host.url("/devices/sample/latest"));
            assert_eq!(
                latest.json(),
                sample_rows()[5],
                "the body is the newest row"
            );
            let from_header = |name: &str| {
                header(&latest, name).map_or(Value::Null, |v| serde_json::from_str(&v).unwrap())
            };
            let health = [
                listed[0]["last_seen"].clone(),
                listed[0]["active"].clone(),
                from_header("x-device-last-seen"),
                from_header("x-device-active"),
            ];
            if health[1] == want && health[3] == want {
                return health;
            }
            assert!(
                Instant::now() < deadline,
                "never active = {want} within 10 s: {health:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let active = health_once(true);
    let last_seen = active[0].as_i64().expect("a last-seen time");
    assert!(
        (sent..=answered + 1000).contains(&last_seen),
        "{last_seen} not within the insert ({sent} to {answered})"
    );
    assert_eq!(
        active,
        [json!(last_seen), json!(true), json!(last_seen), json!(true)]
    );

    let inactive = health_once(false);
    assert_eq!(
        inactive,
        [
            json!(last_seen),
            json!(false),
            json!(last_seen),
            json!(false)
        ]
    );
    assert!(
        now_ms() - last_seen > 2000,
        "inactive only after the timeout"
    );
    // CSV lists them as two more columns.
    let csv = get(&host.url("/fetch/devices?search=sample&format=csv")).text();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].ends_with(",last_seen,active"), "{csv}");
    assert!(lines[1].ends_with(&format!(",{last_seen},false")), "{csv}");
}
