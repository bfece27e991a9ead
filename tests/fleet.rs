//! The embedded store's layout, pinned through the HTTP API and the WebAPI
//! alone (no SQL, no file layout), so the same tests hold before and after a
//! change of how SQLite keeps containers:
//!
//! - a data directory written by an older release (tests/fixtures/old-layout,
//!   made by tests/fixtures/make-old-layout.sh with the 686ee6e release: one
//!   SQLite table per container) opens, answers every recorded request as it
//!   did, takes new writes, and does so again after a restart;
//! - 20,000 devices are listed, fetched back, and kept across a restart;
//! - devices that start with the same schema do not see each other's later
//!   columns, even when one column name gets two types in two devices.

use cromflag_tests::fleet::{all_pages, all_rows, call, client, in_parallel, next_link};
use cromflag_tests::mqtt::Publisher;
use cromflag_tests::{path_segment, repo_root, Answer, Host};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tempfile::TempDir;

/// The WebAPI's credentials and cluster in the repository's `spin.toml`.
const WEBAPI_USER: &str = "admin";
const WEBAPI_PASSWORD: &str = "admin";
const WEBAPI_CLUSTER: &str = "defaultCluster";

/// 2024-03-01T00:00:00Z, where the fixture's device rows start.
const FIXTURE_T0: i64 = 1_709_251_200_000;

/// Starts the repository's `spin.toml` on `data_dir`, also serving the WebAPI.
fn start(data_dir: &Path) -> Host {
    Host::start_with(
        &repo_root().join("spin.toml"),
        data_dir,
        &["--webapi", "127.0.0.1:0"],
    )
}

fn json_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

/// POSTs `doc` to `/insert/<device>`, expecting `200 True`.
fn insert(agent: &ureq::Agent, host: &Host, device: &str, doc: &Value) {
    let url = host.url(&format!("/insert/{}", path_segment(device)));
    let answer = call(agent, "POST", &url, None, Some(&json_bytes(doc)));
    assert_eq!(
        (answer.status, answer.text().as_str()),
        (200, "True"),
        "insert {device}: {doc}"
    );
}

/// GETs `path`, expecting 200 and JSON.
fn get_json(agent: &ureq::Agent, host: &Host, path: &str) -> Value {
    let answer = call(agent, "GET", &host.url(path), None, None);
    assert_eq!(answer.status, 200, "GET {path}: {}", answer.text());
    answer.json()
}

// ---------------------------------------------------------------------------
// An old data directory
// ---------------------------------------------------------------------------

/// One recorded request and its answer (an entry of expected.json).
struct Recorded<'a>(&'a Value);

impl Recorded<'_> {
    fn str(&self, key: &str) -> &str {
        self.0[key]
            .as_str()
            .unwrap_or_else(|| panic!("expected.json: no `{key}` in {}", self.0))
    }

    fn api(&self) -> &str {
        self.str("api")
    }

    fn method(&self) -> &str {
        self.str("method")
    }

    fn path(&self) -> &str {
        self.str("path")
    }

    /// The devices (or `all`, the lists) whose data the answer shows.
    fn tags(&self) -> Vec<&str> {
        self.0["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .map(|t| t.as_str().expect("a tag"))
            .collect()
    }

    fn status(&self) -> u16 {
        self.0["status"].as_u64().expect("status") as u16
    }

    /// Every header but `date`, names lower-case, sorted.
    fn headers(&self) -> Vec<(String, String)> {
        let mut headers: Vec<(String, String)> = self.0["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .map(|pair| {
                (
                    pair[0].as_str().unwrap().to_owned(),
                    pair[1].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        headers.sort();
        headers
    }

    fn body(&self) -> Vec<u8> {
        let body = self.str("body");
        match self.str("body_encoding") {
            "text" => body.as_bytes().to_vec(),
            "base64" => {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .expect("a base64 body")
            }
            other => panic!("expected.json: body_encoding {other}"),
        }
    }

    /// `/fetch/devices` and `/fetch/messages`: collections that were listed
    /// whole, in insertion order, and are now being paged in key order. Their
    /// rows are compared as a set, across every page.
    fn is_collection_listing(&self) -> bool {
        let name = self.path().split('?').next().unwrap();
        self.api() == "http" && (name == "/fetch/devices" || name == "/fetch/messages")
    }

    fn describe(&self) -> String {
        format!("{} {} {}", self.api(), self.method(), self.path())
    }
}

struct Fixture {
    /// The parsed expected.json.
    expected: Value,
}

impl Fixture {
    fn dir() -> PathBuf {
        repo_root().join("tests/fixtures/old-layout")
    }

    fn load() -> Fixture {
        let text = std::fs::read(Fixture::dir().join("expected.json")).unwrap();
        Fixture {
            expected: serde_json::from_slice(&text).unwrap(),
        }
    }

    /// A fresh data directory under `parent` holding the fixture's store.
    fn data_dir(parent: &Path) -> PathBuf {
        let data = parent.join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::copy(Fixture::dir().join("cromflag.db"), data.join("cromflag.db")).unwrap();
        data
    }

    fn requests(&self) -> Vec<Recorded<'_>> {
        self.expected["requests"]
            .as_array()
            .expect("requests")
            .iter()
            .map(Recorded)
            .collect()
    }

    /// The recorded JSON answer to `api method path`.
    fn answer(&self, api: &str, method: &str, path: &str) -> Value {
        let recorded = self
            .requests()
            .into_iter()
            .find(|r| r.api() == api && r.method() == method && r.path() == path)
            .unwrap_or_else(|| panic!("expected.json has no {api} {method} {path}"));
        serde_json::from_slice(&recorded.body()).unwrap()
    }
}

/// Sends `recorded`'s request to `host` as it was sent to the old one.
fn replay(agent: &ureq::Agent, host: &Host, recorded: &Recorded) -> Answer {
    let body = recorded.0["request_body"].clone();
    let body = (!body.is_null()).then(|| json_bytes(&body));
    let (url, basic) = match recorded.api() {
        "http" => (host.url(recorded.path()), None),
        "webapi" => (
            format!(
                "{}/v2/{WEBAPI_CLUSTER}/dbs/public{}",
                host.webapi_url(),
                recorded.path()
            ),
            Some((WEBAPI_USER, WEBAPI_PASSWORD)),
        ),
        other => panic!("expected.json: api {other}"),
    };
    call(agent, recorded.method(), &url, basic, body.as_deref())
}

/// Every header but `date` (it is the clock), sorted.
fn headers_of(answer: &Answer) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = answer
        .headers
        .iter()
        .filter(|(name, _)| name != "date")
        .cloned()
        .collect();
    headers.sort();
    headers
}

/// The rows of a listing's body, as JSON values in their text form (JSON,
/// MessagePack) or as lines after the header line (CSV), sorted.
fn listed_rows(content_type: &str, body: &[u8]) -> (Option<String>, Vec<String>) {
    if content_type.contains("csv") {
        let text = String::from_utf8(body.to_vec()).expect("CSV is UTF-8");
        let mut lines = text.lines().map(|l| l.trim_end_matches('\r').to_owned());
        let header = lines.next();
        let mut rows: Vec<String> = lines.filter(|l| !l.is_empty()).collect();
        rows.sort();
        return (header, rows);
    }
    let value: Value = if content_type.contains("msgpack") {
        rmp_serde::from_slice(body).expect("a MessagePack listing")
    } else {
        serde_json::from_slice(body).expect("a JSON listing")
    };
    let mut rows: Vec<String> = value
        .as_array()
        .expect("a listing is an array")
        .iter()
        .map(Value::to_string)
        .collect();
    rows.sort();
    (None, rows)
}

/// A recorded `/fetch/devices` listing as it is answered now: each device
/// followed by its health (`last_seen`, `active`), unknown in an old data
/// dir (no host wrote `_last_seen` there), as JSON or CSV.
fn with_unknown_health(content_type: &str, body: &[u8]) -> Vec<u8> {
    if content_type.contains("csv") {
        let text = String::from_utf8(body.to_vec()).expect("CSV is UTF-8");
        let mut lines = text.split_terminator("\r\n");
        let mut out = format!("{},last_seen,active\r\n", lines.next().expect("a header"));
        for line in lines {
            out.push_str(&format!("{line},,\r\n"));
        }
        return out.into_bytes();
    }
    assert!(content_type.contains("json"), "{content_type}");
    let mut rows: Value = serde_json::from_slice(body).expect("a JSON listing");
    for row in rows.as_array_mut().expect("a listing is an array") {
        row["last_seen"] = Value::Null;
        row["active"] = Value::Null;
    }
    serde_json::to_vec(&rows).unwrap()
}

/// `row` of `/fetch/devices` without its health (`last_seen`, `active`),
/// which must be unknown (both null) or a send's: a time since `since` (ms),
/// active (no inactivity timeout here). The host writes last-seen times once
/// a second after a commit, so a device just written may show either.
fn without_health(row: &Value, since: i64) -> Value {
    let mut row = row.clone();
    let object = row.as_object_mut().expect("a row is an object");
    let health = (object.remove("last_seen"), object.remove("active"));
    match health {
        (Some(Value::Null), Some(Value::Null)) => {}
        (Some(Value::Number(ms)), Some(Value::Bool(true)))
            if ms.as_i64().is_some_and(|ms| ms >= since) => {}
        other => panic!("health of {row}: {other:?}"),
    }
    row
}

/// How `host`'s answer to `recorded` differs from the recorded one, if it does.
fn difference(agent: &ureq::Agent, host: &Host, recorded: &Recorded) -> Option<String> {
    if recorded.is_collection_listing() {
        let pages = all_pages(agent, host, recorded.path());
        let content_type = &pages[0].content_type;
        let (mut header, mut rows) = (None, Vec::new());
        for page in &pages {
            let (page_header, page_rows) = listed_rows(&page.content_type, &page.body);
            header = header.or(page_header);
            rows.extend(page_rows);
        }
        rows.sort();
        let recorded_type = recorded
            .headers()
            .into_iter()
            .find(|(name, _)| name == "content-type")
            .map(|(_, value)| value)
            .unwrap_or_default();
        let mut recorded_body = recorded.body();
        if recorded.path().split('?').next() == Some("/fetch/devices") {
            recorded_body = with_unknown_health(&recorded_type, &recorded_body);
        }
        let was = (
            recorded.status(),
            recorded_type.clone(),
            listed_rows(&recorded_type, &recorded_body),
        );
        let now = (200, content_type.clone(), (header, rows));
        return (was != now).then(|| {
            format!(
                "{}: the listing differs (in {} pages)\n  was: {was:?}\n  now: {now:?}",
                recorded.describe(),
                pages.len()
            )
        });
    }
    let answer = replay(agent, host, recorded);
    let was = (recorded.status(), recorded.headers(), recorded.body());
    let now = (answer.status, headers_of(&answer), answer.body.clone());
    (was != now).then(|| {
        let (was_body, now_body) = excerpts(&was.2, &now.2);
        format!(
            "{}:\n  was: {} {:?}\n       {was_body}\n  now: {} {:?}\n       {now_body}",
            recorded.describe(),
            was.0,
            was.1,
            now.0,
            now.1,
        )
    })
}

/// Two bodies as text, each cut to the part around where they first differ.
fn excerpts(was: &[u8], now: &[u8]) -> (String, String) {
    const AROUND: usize = 300;
    let first = was
        .iter()
        .zip(now)
        .position(|(a, b)| a != b)
        .unwrap_or(was.len().min(now.len()));
    let start = first.saturating_sub(AROUND);
    let cut = |body: &[u8]| {
        let end = body.len().min(first + AROUND);
        let text = String::from_utf8_lossy(&body[start.min(end)..end]).into_owned();
        let before = if start > 0 { "…" } else { "" };
        let after = if end < body.len() { "…" } else { "" };
        format!(
            "{before}{text}{after} ({} bytes, first difference at {first})",
            body.len()
        )
    };
    (cut(was), cut(now))
}

/// Replays every recorded request that `include` keeps and asserts each
/// answer is the recorded one; returns how many were replayed.
fn assert_answers_as_recorded(
    host: &Host,
    fixture: &Fixture,
    include: impl Fn(&Recorded) -> bool,
) -> usize {
    let agent = client();
    let mut replayed = 0;
    let mut differences = Vec::new();
    for recorded in fixture.requests().iter().filter(|r| include(r)) {
        replayed += 1;
        differences.extend(difference(&agent, host, recorded));
    }
    assert!(
        differences.is_empty(),
        "{} of {replayed} answers differ from the old release's:\n\n{}\n\nhost log:\n{}",
        differences.len(),
        differences.join("\n\n"),
        host.log()
    );
    replayed
}

/// The device written to after the migration, one of the fixture's.
const OLD_DEVICE: &str = "Kitchen";
/// The device made after the migration (not in the fixture).
const NEW_DEVICE: &str = "Neu-Gerät";

/// Kitchen's document after the migration: a new column (pm25) and a row
/// whose other columns are missing.
fn old_device_doc() -> Value {
    json!({
        "deviceinfo": {"deviceid": OLD_DEVICE, "fw_ver": "2.0.0", "batt_lvl": 80, "location": "Küche (north)"},
        "tsdata": [
            {"timestamp": FIXTURE_T0 + 14_400_000, "temperature": 24.5, "humidity": 50, "motion": false,
             "label": "after", "co2": 500, "note": "written after the migration", "pm25": 12},
            {"timestamp": FIXTURE_T0 + 14_460_000, "temperature": 24.25, "pm25": 13}
        ]
    })
}

/// The new device's rows as `/fetch` answers them.
fn new_device_rows() -> Value {
    json!([
        {"timestamp": FIXTURE_T0, "level": 0.5, "ok": true},
        {"timestamp": FIXTURE_T0 + 1000, "level": 0.75, "ok": false}
    ])
}

fn rows_by(rows: &Value, key: &str) -> BTreeMap<String, Value> {
    rows.as_array()
        .expect("rows")
        .iter()
        .map(|row| (row[key].as_str().expect("a key").to_owned(), row.clone()))
        .collect()
}

/// After `write_after_migration`: the written device has its old rows (the new
/// column null in them) and its new ones; the new device its rows; the lists
/// the old entries and the new ones; and every answer about the other devices
/// is still the recorded one.
fn assert_written_after_migration(
    host: &Host,
    fixture: &Fixture,
    rejected_now: &Value,
    started_ms: i64,
) {
    let agent = client();
    // Kitchen: every old row, pm25 null in each, then the new rows.
    let mut rows = fixture.answer("http", "GET", "/fetch/Kitchen");
    for row in rows.as_array_mut().unwrap() {
        row["pm25"] = Value::Null;
    }
    let new_rows = json!([
        {"timestamp": FIXTURE_T0 + 14_400_000, "temperature": 24.5, "humidity": 50, "motion": false,
         "label": "after", "co2": 500, "note": "written after the migration", "pm25": 12},
        {"timestamp": FIXTURE_T0 + 14_460_000, "temperature": 24.25, "humidity": null, "motion": null,
         "label": null, "co2": null, "note": null, "pm25": 13}
    ]);
    rows.as_array_mut()
        .unwrap()
        .extend(new_rows.as_array().unwrap().iter().cloned());
    let fetched = Value::Array(all_rows(&agent, host, "/fetch/Kitchen?limit=100"));
    assert_eq!(fetched, rows, "Kitchen's rows after the migration");
    let mut schema = fixture.answer("http", "GET", "/devices/Kitchen/schema");
    schema["columns"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "pm25", "type": "LONG"}));
    assert_eq!(get_json(&agent, host, "/devices/Kitchen/schema"), schema);
    assert_eq!(
        get_json(&agent, host, "/devices/Kitchen/latest"),
        new_rows[1]
    );

    // The new device.
    let segment = path_segment(NEW_DEVICE);
    assert_eq!(
        get_json(&agent, host, &format!("/fetch/{segment}")),
        new_device_rows()
    );
    let schema = get_json(&agent, host, &format!("/devices/{segment}/schema"));
    assert_eq!(
        schema["columns"],
        json!([
            {"name": "timestamp", "type": "TIMESTAMP"},
            {"name": "level", "type": "FLOAT"},
            {"name": "ok", "type": "BOOL"}
        ])
    );
    assert!(
        schema["container"]
            .as_str()
            .is_some_and(|c| c.starts_with("b32_")),
        "{schema}"
    );

    // The device list: the old entries (Kitchen's metadata updated) and the new one.
    let mut devices = rows_by(&fixture.answer("http", "GET", "/fetch/devices"), "deviceid");
    devices.insert(
        OLD_DEVICE.into(),
        json!({"deviceid": OLD_DEVICE, "batt_lvl": 80, "fw_ver": "2.0.0", "location": "Küche (north)"}),
    );
    devices.insert(
        NEW_DEVICE.into(),
        json!({"deviceid": NEW_DEVICE, "batt_lvl": 33, "fw_ver": "n1", "location": null}),
    );
    let listed = all_rows(&agent, host, "/fetch/devices");
    assert_eq!(listed.len(), devices.len(), "{listed:?}");
    // Their health: unknown but for the two written (then since the test began).
    let mut health = BTreeMap::new();
    for row in &listed {
        let id = row["deviceid"].as_str().unwrap();
        if id != OLD_DEVICE && id != NEW_DEVICE {
            assert_eq!(
                (&row["last_seen"], &row["active"]),
                (&Value::Null, &Value::Null),
                "{row}"
            );
        }
        health.insert(id.to_owned(), without_health(row, started_ms));
    }
    assert_eq!(health, devices);

    // The message log: every old entry, and one per new document.
    let old_messages = rows_by(&fixture.answer("http", "GET", "/fetch/messages"), "id");
    let messages = rows_by(
        &Value::Array(all_rows(&agent, host, "/fetch/messages")),
        "id",
    );
    for (id, message) in &old_messages {
        assert_eq!(messages.get(id), Some(message), "message {id}");
    }
    let new_devices: Vec<&str> = messages
        .iter()
        .filter(|(id, _)| !old_messages.contains_key(*id))
        .map(|(_, m)| m["device"].as_str().unwrap())
        .collect();
    assert_eq!(new_devices.len(), 2, "{new_devices:?}");
    assert!(new_devices.contains(&OLD_DEVICE) && new_devices.contains(&NEW_DEVICE));

    // `_rejected`: the old entries, then the one rejected after the migration.
    let mut rejected = fixture.answer("http", "GET", "/fetch/_rejected");
    rejected.as_array_mut().unwrap().push(rejected_now.clone());
    assert_eq!(get_json(&agent, host, "/fetch/_rejected"), rejected);

    // The WebAPI sees the new container and Kitchen's new rows.
    let names = fixture.answer("webapi", "GET", "/containers?limit=1000")["names"].clone();
    let root = format!("{}/v2/{WEBAPI_CLUSTER}/dbs/public", host.webapi_url());
    let basic = Some((WEBAPI_USER, WEBAPI_PASSWORD));
    let listed = call(
        &agent,
        "GET",
        &format!("{root}/containers?limit=1000"),
        basic,
        None,
    );
    let listed: BTreeSet<String> = serde_json::from_value(listed.json()["names"].clone()).unwrap();
    let old: BTreeSet<String> = serde_json::from_value(names).unwrap();
    let added: Vec<&String> = listed.difference(&old).collect();
    assert!(old.is_subset(&listed), "{listed:?}");
    assert_eq!(added, [schema["container"].as_str().unwrap()], "{listed:?}");
    let kitchen = get_json(&agent, host, "/devices/Kitchen/schema")["container"].clone();
    let count = call(
        &agent,
        "POST",
        &format!("{root}/tql"),
        basic,
        Some(&json_bytes(
            &json!([{"name": kitchen, "stmt": "select count(*) where pm25 is not null"}]),
        )),
    );
    assert_eq!(count.status, 200, "{}", count.text());
    // The WebAPI answers every aggregate as a DOUBLE, as GridDB's does.
    assert_eq!(count.json()[0]["results"], json!([[2.0]]));

    // Everything else is as recorded.
    let touched = ["all", OLD_DEVICE, NEW_DEVICE, "_rejected"];
    let replayed = assert_answers_as_recorded(host, fixture, |r| {
        !r.tags().iter().any(|tag| touched.contains(tag))
    });
    assert!(replayed > 50, "only {replayed} answers replayed");
}

/// Writes to an old device and a new one over HTTP, and a bad message over
/// MQTT (into `_rejected`); the rejected row.
fn write_after_migration(host: &Host) -> Value {
    let agent = client();
    insert(&agent, host, OLD_DEVICE, &old_device_doc());
    let rows = new_device_rows();
    insert(
        &agent,
        host,
        NEW_DEVICE,
        &json!({"deviceinfo": {"deviceid": NEW_DEVICE, "fw_ver": "n1", "batt_lvl": 33}, "tsdata": rows}),
    );
    let mut publisher = Publisher::connect(host.mqtt_port, "fleet-migration");
    let bad = json!({"deviceinfo": {"deviceid": NEW_DEVICE}, "tsdata": [{"timestamp": FIXTURE_T0 + 2000, "level": "full"}]});
    let topic = format!("devices/{NEW_DEVICE}/telemetry");
    publisher.publish(&topic, 1, json_bytes(&bad));
    // The PUBACK follows the write to `_rejected`.
    let rejected = get_json(&agent, host, "/fetch/_rejected?order=desc&limit=1");
    let row = rejected[0].clone();
    assert_eq!(row["topic"], json!(topic), "{row}");
    assert!(
        row["error"].as_str().unwrap().contains("type conflict"),
        "{row}"
    );
    row
}

#[test]
fn an_old_layout_data_dir_opens_and_answers_the_same() {
    let fixture = Fixture::load();
    let all = fixture.requests().len();
    assert!(all > 100, "expected.json holds {all} answers");
    let dir = TempDir::new().unwrap();
    let data = Fixture::data_dir(dir.path());

    // The first open (a migration, for a store that has another layout).
    let started = Instant::now();
    let host = start(&data);
    eprintln!("old data dir opened in {:?}", started.elapsed());
    assert_eq!(assert_answers_as_recorded(&host, &fixture, |_| true), all);

    // Opened again, unchanged: whatever the first open did is not done twice.
    host.stop();
    let host = start(&data);
    assert_eq!(assert_answers_as_recorded(&host, &fixture, |_| true), all);

    // New writes to an old device and a new one, read back, then again after a restart.
    let written_ms = chrono::Utc::now().timestamp_millis();
    let rejected = write_after_migration(&host);
    assert_written_after_migration(&host, &fixture, &rejected, written_ms);
    host.stop();
    let host = start(&data);
    assert_written_after_migration(&host, &fixture, &rejected, written_ms);
}

// ---------------------------------------------------------------------------
// A fleet
// ---------------------------------------------------------------------------

const FLEET: usize = 20_000;
/// Client threads for the fleet's writes and reads.
const THREADS: usize = 16;
/// 2025-01-01T00:00:00Z.
const FLEET_T0: i64 = 1_735_689_600_000;

/// Device `i`'s id: lower-case ids (containers of that name) and mixed-case
/// ones (`b32_` containers) alternate.
fn fleet_id(i: usize) -> String {
    if i.is_multiple_of(2) {
        format!("fleet-{i:05}")
    } else {
        format!("Fleet-{i:05}")
    }
}

/// Device `i`'s one row, as `/fetch` answers it.
fn fleet_row(i: usize) -> Value {
    json!({"timestamp": FLEET_T0 + i as i64 * 1000, "v": i, "t": 20.5})
}

/// Device `i`'s metadata, as `/fetch/devices` lists it.
fn fleet_device(i: usize) -> Value {
    json!({"deviceid": fleet_id(i), "batt_lvl": i % 101, "fw_ver": format!("f{}", i % 7)})
}

/// Asserts `/fetch/devices`, read to its last page, lists exactly the fleet, once each.
fn assert_fleet_listed(host: &Host, created_ms: i64) {
    let started = Instant::now();
    let pages = all_pages(&client(), host, "/fetch/devices");
    let listed: Vec<Value> = pages
        .iter()
        .flat_map(|page| page.json().as_array().cloned().expect("a page of rows"))
        .collect();
    eprintln!(
        "  listed {} devices in {} pages in {:?}",
        listed.len(),
        pages.len(),
        started.elapsed()
    );
    let mut seen = BTreeMap::new();
    for row in &listed {
        let id = row["deviceid"].as_str().expect("a deviceid").to_owned();
        assert!(seen.insert(id, row.clone()).is_none(), "{row} listed twice");
    }
    let missing: Vec<String> = (0..FLEET)
        .map(fleet_id)
        .filter(|id| !seen.contains_key(id))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {FLEET} listed; missing e.g. {missing:?}",
        listed.len()
    );
    assert_eq!(listed.len(), FLEET, "devices beyond the fleet are listed");
    for i in 0..FLEET {
        assert_eq!(
            without_health(&seen[&fleet_id(i)], created_ms),
            fleet_device(i)
        );
    }
}

/// Asserts each of `devices` fetches back exactly its one row.
fn assert_fleet_fetched(host: &Host, devices: &[usize]) {
    let started = Instant::now();
    in_parallel(THREADS, devices.len(), |agent, n| {
        let i = devices[n];
        let path = format!("/fetch/{}", path_segment(&fleet_id(i)));
        assert_eq!(
            get_json(agent, host, &path),
            json!([fleet_row(i)]),
            "{path}"
        );
    });
    eprintln!(
        "  fetched {} devices in {:?}",
        devices.len(),
        started.elapsed()
    );
}

/// A sample of the fleet: the first, the last and `n` others, pseudo-random
/// from `seed` (printed, to reproduce a failure).
fn sample(n: usize, seed: u64) -> Vec<usize> {
    let mut state = seed | 1;
    let mut picked = BTreeSet::from([0, FLEET - 1]);
    while picked.len() < n + 2 {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        picked.insert((state % FLEET as u64) as usize);
    }
    picked.into_iter().collect()
}

#[test]
fn twenty_thousand_devices_are_listed_fetched_and_kept() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let host = Host::start(&data);
    let test_started = Instant::now();

    let started = Instant::now();
    let created_ms = chrono::Utc::now().timestamp_millis();
    in_parallel(THREADS, FLEET, |agent, i| {
        let doc = json!({
            "deviceinfo": {"deviceid": fleet_id(i), "batt_lvl": i % 101, "fw_ver": format!("f{}", i % 7)},
            "tsdata": [{"timestamp": FLEET_T0 + i as i64 * 1000, "v": i, "t": 20.5}]
        });
        insert(agent, &host, &fleet_id(i), &doc);
    });
    let took = started.elapsed();
    eprintln!(
        "created {FLEET} devices in {took:?} ({:.0}/s)",
        FLEET as f64 / took.as_secs_f64()
    );
    assert_fleet_listed(&host, created_ms);
    let everyone: Vec<usize> = (0..FLEET).collect();
    assert_fleet_fetched(&host, &everyone);

    // A restart (the process killed, as by a crash) keeps every device.
    host.stop();
    let started = Instant::now();
    let host = Host::start(&data);
    eprintln!("restarted with {FLEET} devices in {:?}", started.elapsed());
    assert_fleet_listed(&host, created_ms);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("  sample seed {seed}");
    assert_fleet_fetched(&host, &sample(500, seed));
    eprintln!("the fleet test took {:?}", test_started.elapsed());
}

// ---------------------------------------------------------------------------
// Devices with the same schema
// ---------------------------------------------------------------------------

#[test]
fn a_new_column_for_one_device_is_invisible_in_another() {
    // Three devices with the same first schema; A and B then diverge, C does not.
    let (a, b, c) = ("Twin-A", "twin-b", "twin-c");
    let t0 = FLEET_T0;
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let host = Host::start(&data);
    let agent = client();
    let doc =
        |device: &str, rows: Value| json!({"deviceinfo": {"deviceid": device}, "tsdata": rows});
    for device in [a, b, c] {
        insert(
            &agent,
            &host,
            device,
            &doc(
                device,
                json!([
                    {"timestamp": t0, "temperature": 21.5, "humidity": 40},
                    {"timestamp": t0 + 60_000, "temperature": 21.75, "humidity": 41}
                ]),
            ),
        );
    }
    // A gains co2, then mode as a STRING; B then gains mode as a LONG.
    insert(
        &agent,
        &host,
        a,
        &doc(
            a,
            json!([{"timestamp": t0 + 120_000, "temperature": 22.0, "humidity": 42, "co2": 420}]),
        ),
    );
    insert(
        &agent,
        &host,
        a,
        &doc(
            a,
            json!([{"timestamp": t0 + 180_000, "temperature": 22.25, "humidity": 43, "mode": "eco"}]),
        ),
    );
    insert(
        &agent,
        &host,
        b,
        &doc(
            b,
            json!([{"timestamp": t0 + 120_000, "temperature": 20.5, "humidity": 39, "mode": 3}]),
        ),
    );

    let check = |host: &Host| {
        let schema = |device: &str| {
            get_json(
                &agent,
                host,
                &format!("/devices/{}/schema", path_segment(device)),
            )["columns"]
                .clone()
        };
        let fetch = |query: &str| {
            let answer = call(&agent, "GET", &host.url(query), None, None);
            (answer.status, answer.json())
        };
        let first = |name: &str, type_: &str| json!({"name": name, "type": type_});
        let shared = [
            // The documents' fields in the order serde_json writes them.
            first("timestamp", "TIMESTAMP"),
            first("humidity", "LONG"),
            first("temperature", "FLOAT"),
        ];
        let with = |extra: &[Value]| Value::Array(shared.iter().chain(extra).cloned().collect());
        assert_eq!(
            schema(a),
            with(&[first("co2", "LONG"), first("mode", "STRING")])
        );
        assert_eq!(schema(b), with(&[first("mode", "LONG")]));
        assert_eq!(schema(c), with(&[]));

        // A's old rows have null for its new columns.
        assert_eq!(
            fetch("/fetch/Twin-A"),
            (
                200,
                json!([
                    {"timestamp": t0, "temperature": 21.5, "humidity": 40, "co2": null, "mode": null},
                    {"timestamp": t0 + 60_000, "temperature": 21.75, "humidity": 41, "co2": null, "mode": null},
                    {"timestamp": t0 + 120_000, "temperature": 22.0, "humidity": 42, "co2": 420, "mode": null},
                    {"timestamp": t0 + 180_000, "temperature": 22.25, "humidity": 43, "co2": null, "mode": "eco"}
                ])
            )
        );
        // B's rows have no co2, and its mode is a number.
        assert_eq!(
            fetch("/fetch/twin-b"),
            (
                200,
                json!([
                    {"timestamp": t0, "temperature": 21.5, "humidity": 40, "mode": null},
                    {"timestamp": t0 + 60_000, "temperature": 21.75, "humidity": 41, "mode": null},
                    {"timestamp": t0 + 120_000, "temperature": 20.5, "humidity": 39, "mode": 3}
                ])
            )
        );
        assert_eq!(
            fetch("/devices/twin-b/latest"),
            (
                200,
                json!({"timestamp": t0 + 120_000, "temperature": 20.5, "humidity": 39, "mode": 3})
            )
        );
        assert_eq!(
            fetch("/fetch/twin-c"),
            (
                200,
                json!([
                    {"timestamp": t0, "temperature": 21.5, "humidity": 40},
                    {"timestamp": t0 + 60_000, "temperature": 21.75, "humidity": 41}
                ])
            )
        );
        // Asking B or C for A's column is asking for a column they lack.
        for query in ["/fetch/twin-b?columns=co2", "/fetch/twin-c?columns=mode"] {
            let (status, body) = fetch(query);
            assert_eq!(
                (status, &body["error"]),
                (400, &json!("unknown column")),
                "{query}: {body}"
            );
        }
        // Each device's mode is its own type: B's aggregates, A's does not.
        assert_eq!(
            fetch("/fetch/twin-b?agg=max&interval=1h&columns=mode"),
            (200, json!([{"timestamp": t0, "mode": 3.0}]))
        );
        let (status, body) = fetch("/fetch/Twin-A?agg=max&interval=1h&columns=mode");
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["detail"]["type"], "STRING", "{body}");
        // Both, fetched together.
        assert_eq!(
            fetch("/fetch/%7BTwin-A,twin-b%7D?columns=mode&from=1735689780000"),
            (
                200,
                json!([{"timestamp": t0 + 180_000, "device": "Twin-A", "mode": "eco"}])
            )
        );
    };
    check(&host);

    // A value of the other device's type is refused, for either.
    for (device, mode) in [(a, json!(5)), (b, json!("eco"))] {
        let url = host.url(&format!("/insert/{}", path_segment(device)));
        let body = doc(device, json!([{"timestamp": t0 + 240_000, "mode": mode}]));
        let answer = call(&agent, "POST", &url, None, Some(&json_bytes(&body)));
        assert_eq!(answer.status, 400, "{device}: {}", answer.text());
        assert_eq!(answer.json()["error"], "type conflict", "{}", answer.text());
    }
    check(&host);

    // The same after a restart.
    host.stop();
    let host = Host::start(&data);
    check(&host);

    // And a column added after the restart is A's alone, too.
    insert(
        &agent,
        &host,
        a,
        &doc(a, json!([{"timestamp": t0 + 300_000, "pressure": 1013}])),
    );
    let columns = |device: &str| -> Vec<String> {
        get_json(&agent, &host, &format!("/devices/{device}/schema"))["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(columns("Twin-A").contains(&"pressure".to_owned()));
    assert!(!columns("twin-b").contains(&"pressure".to_owned()));
    assert!(!columns("twin-c").contains(&"pressure".to_owned()));
    assert_eq!(
        get_json(&agent, &host, "/fetch/twin-c?limit=10")
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn next_page_links_are_found_among_others_and_with_commas_in_them() {
    assert_eq!(
        next_link("</fetch/a?limit=2&cursor=a1>; rel=\"next\""),
        Some("/fetch/a?limit=2&cursor=a1")
    );
    assert_eq!(
        next_link("</x?a=1>; rel=\"prev\", </fetch/%7Ba,b%7D?c=d>; rel=\"next\""),
        Some("/fetch/%7Ba,b%7D?c=d")
    );
    assert_eq!(next_link("</x>; rel=next"), Some("/x"));
    assert_eq!(next_link("</x>; rel=\"prev\""), None);
    assert_eq!(next_link(""), None);
}
