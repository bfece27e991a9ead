//! The `griddb` backend end to end: host A runs with `store = "griddb"`
//! pointed at host B's `--webapi` listener, so every component call of A
//! crosses real HTTP into B's store. B is a cromflag host rather than a GridDB
//! cluster (none can run here); `tests/webapi.rs` pins B's answers to the
//! WebAPI's documented shapes, so what works against B works against GridDB.

use cromflag_tests::access::{bearer, cli, insert_as, token_of};
use cromflag_tests::cron::cromflag_with_env;
use cromflag_tests::mqtt::Publisher;
use cromflag_tests::sse::Stream;
use cromflag_tests::{
    fetch_rows, get, insert_sample, insert_sample_as, path_segment, post, repo_root, wait_until,
    webapi_tql, Answer, Host, WEBAPI_ADMIN,
};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use tempfile::TempDir;

/// Host B: the embedded store, serving the WebAPI on a port the kernel
/// picks; A reaches it through `webapi_port(&b)`.
fn start_b(data: &Path, env: &[(&str, &str)]) -> Host {
    start_b_on(data, 0, env)
}

/// Host B, serving the WebAPI on `port` (0: the kernel's pick).
fn start_b_on(data: &Path, port: u16, env: &[(&str, &str)]) -> Host {
    let webapi = format!("127.0.0.1:{port}");
    Host::start_with_env(
        &repo_root().join("spin.toml"),
        data,
        &["--webapi", &webapi],
        env,
    )
}

/// The port of B's WebAPI.
fn webapi_port(b: &Host) -> u16 {
    b.webapi_addr.expect("B serves the WebAPI").port()
}

/// The variables that point a host at B's WebAPI on `port`.
fn griddb_env(port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("SPIN_VARIABLE_STORE", "griddb".into()),
        (
            "SPIN_VARIABLE_GRIDDB_URL",
            format!("http://127.0.0.1:{port}/griddb"),
        ),
        // Fail fast in tests: a call gives up after 5 s.
        ("SPIN_VARIABLE_GRIDDB_TIMEOUT_SECS", "5".into()),
    ]
}

fn borrowed<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Host A: `store = "griddb"` against B's WebAPI on `port`.
fn start_a(data: &Path, port: u16, extra_env: &[(&'static str, String)]) -> Host {
    let mut env = griddb_env(port);
    env.extend(extra_env.iter().cloned());
    Host::start_with_env(&repo_root().join("spin.toml"), data, &[], &borrowed(&env))
}

/// `POST …/tql` on B with one statement, as it answers (status and body).
fn tql_answer(port: u16, container: &str, stmt: &str) -> (u16, Value) {
    webapi_tql(&format!("http://127.0.0.1:{port}/griddb"), container, stmt)
}

/// `POST …/tql` on B with one statement: its one answer, which must be a 200.
fn tql(port: u16, container: &str, stmt: &str) -> Value {
    let (status, answer) = tql_answer(port, container, stmt);
    assert_eq!(status, 200, "tql {stmt}: {answer}");
    answer[0].clone()
}

/// Every `path` answers 200 through A (store = griddb, over the WebAPI) and
/// the same JSON as through B (the embedded store behind that WebAPI).
/// Every host writes the last-seen times `/fetch/devices` lists once a second
/// after a commit (each host its own): a read through A and one through B
/// may fall on either side of such a write, so a disagreement is read again
/// until those writes are done (5 s).
fn assert_a_and_b_agree(a: &Host, b: &Host, paths: &[&str]) {
    for path in paths {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let (via_a, via_b) = (get(&a.url(path)), get(&b.url(path)));
            assert_eq!(via_a.status, 200, "{path} via A: {}", via_a.text());
            if via_a.json() == via_b.json() || std::time::Instant::now() > deadline {
                assert_eq!(via_a.json(), via_b.json(), "{path}: A and B disagree");
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn count(port: u16, container: &str) -> i64 {
    tql(port, container, "select count(*)")["results"][0][0]
        .as_f64()
        .unwrap() as i64
}

/// A document of `n` rows for `device`, one second apart from `start_ms`.
fn document(device: &str, start_ms: i64, n: usize) -> Vec<u8> {
    let rows: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "timestamp": start_ms + i as i64 * 1000,
                "temperature": 20.0 + (i % 10) as f64,
                "humidity": 50.0,
                "motion": i % 7 == 0,
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "deviceinfo": {"deviceid": device, "fw_ver": "1.0", "batt_lvl": 90},
        "tsdata": rows,
    }))
    .unwrap()
}

/// `cromflag cron run daily-report` for 2020-02-18 (UTC) on `data`, with `env`.
fn run_daily_report_of_2020_02_18(data: &Path, env: Vec<(&'static str, String)>) {
    let output = cromflag_with_env(
        [
            "cron",
            "run",
            "daily-report",
            "--at",
            "2020-02-19T00:05:00Z",
            "--manifest",
            repo_root().join("spin.toml").to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &borrowed(&env),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The body of report `id` as `host` serves it.
fn report_body(host: &Host, id: &str) -> Value {
    let report = get(&host.url(&format!("/reports/{id}")));
    assert_eq!(report.status, 200, "{}", report.text());
    report.json()["body"].clone()
}

/// A report body's min, max and mean of `temperature`.
fn temperature_stats(body: &Value) -> [f64; 3] {
    let temperature = body["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "temperature")
        .unwrap();
    ["min", "max", "mean"].map(|stat| temperature[stat].as_f64().unwrap())
}

fn insert(host: &Host, device: &str, body: &[u8]) -> Answer {
    post(
        &host.url(&format!("/insert/{device}")),
        "application/json",
        body,
    )
}

#[test]
fn the_sample_mqtt_and_a_report_go_through_the_webapi_into_b() {
    let (dir_a, dir_b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let b = start_b(dir_b.path(), &[]);
    let port = webapi_port(&b);
    let a = start_a(dir_a.path(), port, &[]);
    assert!(
        a.log().contains("store: GridDB"),
        "A did not use the griddb store:\n{}",
        a.log()
    );

    // The Must-show: the sample curl into A answers True …
    let answer = insert_sample(&a);
    assert_eq!((answer.status, answer.text().as_str()), (200, "True"));
    // … and B's WebAPI returns its 6 rows.
    let stored = tql(port, "sample", "select *");
    let rows = stored["results"].as_array().unwrap();
    assert_eq!(rows.len(), 6, "{stored:#}");
    let columns: Vec<&str> = stored["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let ts = columns.iter().position(|c| *c == "timestamp").unwrap();
    let temperature = columns.iter().position(|c| *c == "temperature").unwrap();
    assert_eq!(rows[0][ts], "2020-02-18T17:25:38.255Z");
    assert_eq!(rows[0][temperature], 78.0);
    // The devices collection and the messages log went along in the same insert.
    assert_eq!(count(port, "devices"), 1);
    assert_eq!(count(port, "messages"), 1);

    // Every read through A (over the WebAPI) answers what B (embedded) answers:
    // plain rows, a column list, several aggregates per bucket, device listings.
    assert_a_and_b_agree(
        &a,
        &b,
        &[
            "/fetch/sample",
            "/fetch/sample?from=1582046748255&to=1582046778255",
            "/fetch/sample?columns=temperature,motion&order=desc&limit=4",
            "/fetch/sample?agg=avg&interval=20s&columns=temperature,humidity",
            "/fetch/sample?agg=stddev&interval=20s&fill=linear",
            "/fetch/sample?agg=max&interval=5s&fill=previous&from=1582046738255&to=1582046800000",
            "/fetch/sample?agg=sum&interval=1d&tz=Europe/Paris",
            "/fetch/devices",
            "/devices/sample/latest",
            "/devices/sample/schema",
            "/reports",
        ],
    );

    // Ids that are not container names reach GridDB under encoded names, and
    // ids differing only by case under two names, though GridDB ignores case.
    let mut containers = Vec::new();
    for id in ["capteur-été", "Sensor1", "sensor1"] {
        assert_eq!(insert_sample_as(&a, id).status, 200, "{id}");
        let schema = get(&a.url(&format!("/devices/{}/schema", path_segment(id)))).json();
        let container = schema["container"].as_str().unwrap().to_owned();
        assert_eq!(count(port, &container), 6, "{id} in {container}");
        assert_eq!(fetch_rows(&a, id).unwrap().len(), 6, "{id}");
        assert_eq!(fetch_rows(&a, id), fetch_rows(&b, id), "{id}");
        containers.push(container.to_ascii_lowercase());
    }
    containers.dedup();
    assert_eq!(containers.len(), 3, "{containers:?}");

    // MQTT into A's broker ends up in B, and A's live stream shows the rows
    // once GridDB has taken them.
    let mut stream = Stream::open(&a, "m1");
    let mut publisher = Publisher::connect(a.mqtt_port, "griddb-test");
    publisher.publish(
        "devices/m1/telemetry",
        1,
        document("m1", 1_600_000_000_000, 5),
    );
    let (event, data) = stream.next_event();
    assert_eq!(event, "rows");
    let streamed: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(streamed.as_array().unwrap().len(), 5);
    let answer = get(&b.url("/fetch/m1"));
    assert_eq!(answer.json(), streamed, "B holds what A streamed");

    // A report computed by A's report component over the WebAPI, stored in B.
    run_daily_report_of_2020_02_18(dir_a.path(), griddb_env(port));
    let body = report_body(&b, "daily-sample-2020-02-18");
    assert_eq!(body["rows"], 6);
    assert_eq!(temperature_stats(&body), [77.0, 82.0, 79.5]);
    assert_eq!(body["motion_events"], 1);
    // The report of a device whose id is not a container name, by its id.
    let report = get(&b.url("/reports/daily-capteur-%C3%A9t%C3%A9-2020-02-18"));
    assert_eq!(report.status, 200, "{}", report.text());
    assert_eq!(report.json()["device"], "capteur-été");
    assert_eq!(report.json()["body"]["rows"], 6);
    // B maps bodies as strictly as the Java WebAPI (an unknown field is a
    // 400): none of A's requests was refused for its shape.
    assert!(!b.log().contains("does not map"), "{}", b.log());
}

#[test]
fn while_the_webapi_is_down_nothing_is_acknowledged_and_nothing_is_lost() {
    let (dir_a, dir_b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let b = start_b(dir_b.path(), &[]);
    let port = webapi_port(&b);
    let a = start_a(dir_a.path(), port, &[]);
    assert_eq!(insert_sample(&a).status, 200);
    let ready = get(&a.url("/readyz"));
    assert_eq!(ready.status, 200, "{}", ready.text());
    b.stop();

    // B is gone: A is alive but not ready, and says why.
    assert_eq!(get(&a.url("/healthz")).status, 200);
    let not_ready = get(&a.url("/readyz"));
    assert_eq!(not_ready.status, 503, "{}", not_ready.text());
    let report = not_ready.json();
    assert_eq!(report["ready"], false);
    assert_eq!(report["checks"]["store"]["ok"], false);
    assert!(
        report["checks"]["store"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("GridDB WebAPI")),
        "the store check does not name the store: {report}"
    );
    // An insert into A is refused with 503 and says why.
    let late = document("late", 1_600_000_000_000, 20);
    let refused = insert(&a, "late", &late);
    assert_eq!(refused.status, 503, "{}", refused.text());
    let error = refused.json();
    assert!(
        error.to_string().contains("GridDB WebAPI"),
        "the 503 does not name the store: {error}"
    );
    // An MQTT message meanwhile is not acked by A: it is not stored yet.
    let mut publisher = Publisher::connect(a.mqtt_port, "griddb-down");
    publisher.send(
        "devices/queued/telemetry",
        1,
        document("queued", 1_600_000_100_000, 7),
    );
    a.wait_for_log("store unavailable: message kept unacked", 1);
    assert!(
        publisher.wait_acked(1, Duration::from_secs(1)).is_none(),
        "PUBACK before the message was stored"
    );

    // B comes back on the same port and data: the client's retry succeeds,
    // and the queued MQTT message is stored without anyone resending it. (A
    // holds B's URL, so B cannot move; should another process have bound
    // the port meanwhile, B's start fails with its log saying so.)
    let b = start_b_on(dir_b.path(), port, &[]);
    let retried = wait_until("A to accept the retried insert", || {
        let answer = insert(&a, "late", &late);
        (answer.status != 503).then_some(answer)
    });
    assert_eq!((retried.status, retried.text().as_str()), (200, "True"));
    assert_eq!(count(port, "late"), 20);
    // Ready again, by itself.
    let ready = get(&a.url("/readyz"));
    assert_eq!(ready.status, 200, "{}", ready.text());
    wait_until("the queued MQTT message in B", || {
        let answer = get(&b.url("/fetch/queued"));
        (answer.status == 200 && answer.json().as_array().unwrap().len() == 7).then_some(())
    });
    // Its PUBACK follows the commit.
    publisher
        .wait_acked(1, Duration::from_secs(30))
        .expect("the PUBACK once stored");
    // And what was stored before the outage is still there.
    assert_eq!(count(port, "sample"), 6);
}

#[test]
fn a_wrong_password_is_a_clear_error_that_does_not_show_the_password() {
    let (dir_a, dir_b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let b = start_b(dir_b.path(), &[]);
    let port = webapi_port(&b);
    let mut env = griddb_env(port);
    env.push(("SPIN_VARIABLE_GRIDDB_PASSWORD", "hunter2-wrong".into()));
    let output = cromflag_with_env(
        [
            "up",
            "--manifest",
            repo_root().join("spin.toml").to_str().unwrap(),
            "--data-dir",
            dir_a.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--mqtt-broker",
            "off",
        ],
        &borrowed(&env),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "A started with a wrong password");
    assert!(
        stderr.contains("refused user `admin`") && stderr.contains("griddb_password"),
        "unclear error: {stderr}"
    );
    assert!(
        !stderr.contains("hunter2"),
        "the password is in the log: {stderr}"
    );
}

#[test]
fn batches_over_the_request_limit_are_split() {
    let (dir_a, dir_b, dir_c) = (
        TempDir::new().unwrap(),
        TempDir::new().unwrap(),
        TempDir::new().unwrap(),
    );
    // B takes at most 4 kB per put (by the WebAPI's estimate); 500 rows weigh ~17 kB.
    let b = start_b(
        dir_b.path(),
        &[("SPIN_VARIABLE_WEBAPI_MAX_REQUEST_BYTES", "4096")],
    );
    let port = webapi_port(&b);
    let big = document("big", 1_600_000_000_000, 500);

    // A host that would send it in one request is refused by B …
    let unsplit = start_a(
        dir_c.path(),
        port,
        &[("SPIN_VARIABLE_GRIDDB_MAX_REQUEST_BYTES", "1048576".into())],
    );
    let refused = insert(&unsplit, "big", &big);
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(
        refused.text().contains("Too many rows data"),
        "{}",
        refused.text()
    );
    unsplit.stop();

    // … while A, told the limit, splits it and every row arrives.
    let a = start_a(
        dir_a.path(),
        port,
        &[("SPIN_VARIABLE_GRIDDB_MAX_REQUEST_BYTES", "4096".into())],
    );
    let answer = insert(&a, "big", &big);
    assert_eq!((answer.status, answer.text().as_str()), (200, "True"));
    assert_eq!(count(port, "big"), 500);
    let rows = get(&a.url("/fetch/big?limit=1000")).json();
    assert_eq!(rows.as_array().unwrap().len(), 500);
    assert_eq!(rows[499]["temperature"], 29.0);
}

/// Credentials live in the store: two hosts on one GridDB share them. A device
/// added from one host's data directory (the CLI opens GridDB directly) writes
/// through both; its revocation from the other is felt by both within a second.
#[test]
fn hosts_on_one_griddb_share_device_credentials() {
    let dir = TempDir::new().unwrap();
    let b = start_b(&dir.path().join("b"), &[]);
    let port = webapi_port(&b);
    let required = [("SPIN_VARIABLE_ACCESS", "required".to_owned())];
    let mut env = griddb_env(port);
    env.extend(required.iter().cloned());
    let token = token_of(&cli(
        &dir.path().join("a"),
        &["devices", "add", "shared"],
        &borrowed(&env),
    ));
    let a = start_a(&dir.path().join("a"), port, &required);
    let c = start_a(&dir.path().join("c"), port, &required);
    for host in [&a, &c] {
        assert_eq!(insert_as(host, "shared", None).status, 401);
        let stored = insert_as(host, "shared", Some(&bearer(&token)));
        assert_eq!(stored.status, 200, "{}", stored.text());
    }
    // B keeps one credential row, with the token's hash, not the token.
    assert_eq!(count(port, "_credentials"), 1);
    let row = tql(port, "_credentials", "select *");
    assert!(!row.to_string().contains(&token), "{row}");

    cli(
        &dir.path().join("c"),
        &["devices", "revoke", "shared"],
        &borrowed(&env),
    );
    let revoked = std::time::Instant::now();
    for host in [&a, &c] {
        wait_until("the revoked token refused", || {
            (insert_as(host, "shared", Some(&bearer(&token))).status == 401).then_some(())
        });
    }
    assert!(
        revoked.elapsed() < Duration::from_millis(1500),
        "{:?}",
        revoked.elapsed()
    );
}

/// The names of a container's columns, as B's WebAPI describes it.
fn column_names(port: u16, container: &str) -> Vec<String> {
    let url = format!(
        "http://127.0.0.1:{port}/griddb/v2/defaultCluster/dbs/public/containers/{container}/info"
    );
    let info: Value = serde_json::from_str(
        &ureq::get(&url)
            .set("Authorization", WEBAPI_ADMIN)
            .call()
            .unwrap()
            .into_string()
            .unwrap(),
    )
    .unwrap();
    info["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

/// A one-row document for `device` at `ts` with a field the sample lacks.
fn with_pressure(device: &str, ts: i64, pressure: f64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "deviceinfo": {"deviceid": device, "fw_ver": "1.1", "batt_lvl": 80},
        "tsdata": [{"timestamp": ts, "temperature": 21.0, "pressure": pressure}],
    }))
    .unwrap()
}

/// B's multi-container put behaves as the Java WebAPI's (entries in a HashMap:
/// written in no fixed order, one by one, the last entry of a repeated
/// container winning). Inserts into A still arrive whole: a new device with
/// its container, `devices` row and `messages` entry; a new column; and a
/// burst of MQTT messages from several devices, where every PUBACKed message
/// is stored exactly once.
#[test]
fn inserts_arrive_whole_through_the_webapis_unordered_multi_put() {
    const PUBLISHERS: usize = 4;
    const MESSAGES: usize = 500;
    let (dir_a, dir_b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let b = start_b(
        dir_b.path(),
        &[("SPIN_VARIABLE_WEBAPI_MULTI_PUT", "griddb")],
    );
    let port = webapi_port(&b);
    let a = start_a(dir_a.path(), port, &[]);

    assert_eq!(insert_sample(&a).status, 200);
    assert_eq!(count(port, "sample"), 6);
    assert_eq!(count(port, "devices"), 1);
    assert_eq!(count(port, "messages"), 1);
    let answer = insert(
        &a,
        "sample",
        &with_pressure("sample", 1_582_046_800_000, 1013.25),
    );
    assert_eq!((answer.status, answer.text().as_str()), (200, "True"));
    assert!(column_names(port, "sample").contains(&"pressure".to_owned()));
    let pressed = tql(port, "sample", "select * where pressure > 1000");
    assert_eq!(pressed["results"].as_array().unwrap().len(), 1, "{pressed}");
    assert_eq!(count(port, "messages"), 2);

    // Each publisher alternates between two devices, with two rows a message:
    // A's batches name each device container many times over.
    let bursts: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            cromflag_tests::mqtt::publish_burst(
                a.mqtt_port,
                &format!("unordered-{p}"),
                MESSAGES,
                move |i| {
                    let device = format!("u{p}x{}", i % 2);
                    let start = 1_700_000_000_000 + i as i64 * 10_000;
                    (
                        format!("devices/{device}/telemetry"),
                        document(&device, start, 2),
                    )
                },
            )
        })
        .collect();
    let mut acked_total = 0;
    for (p, burst) in bursts.into_iter().enumerate() {
        let acked = burst.join().unwrap();
        assert_eq!(acked.len(), MESSAGES, "publisher {p}: PUBACKs");
        acked_total += acked.len();
        for d in 0..2 {
            let device = format!("u{p}x{d}");
            let sent = acked.iter().filter(|i| *i % 2 == d).count();
            assert_eq!(count(port, &device) as usize, 2 * sent, "{device}");
        }
    }
    // One `messages` entry per acked message, and one device row each.
    assert_eq!(count(port, "messages") as usize, 2 + acked_total);
    assert_eq!(count(port, "devices") as usize, 1 + 2 * PUBLISHERS);
}

/// A WebAPI 5.5 or 5.6 (GridDB Cloud's builds among them) has no `sql/ddl`:
/// A finds out at start-up and adds a column through `sql/update`. One older
/// than 5.5 has neither, nor the multi-container put: A writes one container
/// per request, and refuses a new column with an error that names the release.
#[test]
fn columns_are_added_with_whatever_sql_the_webapi_release_has() {
    let (dir_a, dir_b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let b = start_b(dir_b.path(), &[("SPIN_VARIABLE_WEBAPI_VERSION", "5.6")]);
    let port = webapi_port(&b);
    let a = start_a(dir_a.path(), port, &[]);
    a.wait_for_log("sql/update", 1);
    assert_eq!(insert_sample(&a).status, 200);
    let answer = insert(
        &a,
        "sample",
        &with_pressure("sample", 1_582_046_800_000, 990.5),
    );
    assert_eq!(
        (answer.status, answer.text().as_str()),
        (200, "True"),
        "{}",
        a.log()
    );
    assert!(column_names(port, "sample").contains(&"pressure".to_owned()));
    assert_eq!(
        tql(port, "sample", "select * where pressure < 1000")["results"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    a.stop();
    b.stop();

    let (dir_a, dir_b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let b = start_b(dir_b.path(), &[("SPIN_VARIABLE_WEBAPI_VERSION", "2.2")]);
    let port = webapi_port(&b);
    let a = start_a(dir_a.path(), port, &[]);
    assert_eq!(insert_sample(&a).status, 200, "{}", a.log());
    assert_eq!(count(port, "sample"), 6);
    assert_eq!(count(port, "devices"), 1);
    assert_eq!(count(port, "messages"), 1);
    let refused = insert(
        &a,
        "sample",
        &with_pressure("sample", 1_582_046_800_000, 990.5),
    );
    assert!(
        (400..500).contains(&refused.status),
        "{} {}",
        refused.status,
        refused.text()
    );
    assert!(
        refused
            .text()
            .contains("has neither sql/ddl nor sql/update")
            && refused.text().contains("before 5.5"),
        "{}",
        refused.text()
    );
    assert_eq!(count(port, "sample"), 6, "nothing of the refused insert");
}

/// B answers "Too many result" past 16 KiB of rows by the WebAPI's estimate
/// (its `maxResponseSize`), which 5,000 rows of 25 bytes exceed many times
/// over. A pages its queries: a fetch and a report over the whole container
/// are complete and agree with B's own.
#[test]
fn answers_larger_than_the_webapis_limit_are_paged() {
    const ROWS: usize = 5_000;
    let (dir_a, dir_b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let b = start_b(
        dir_b.path(),
        &[("SPIN_VARIABLE_WEBAPI_MAX_RESPONSE_BYTES", "16384")],
    );
    let port = webapi_port(&b);
    let limit = [(
        "SPIN_VARIABLE_GRIDDB_MAX_RESPONSE_BYTES",
        "16384".to_owned(),
    )];
    let a = start_a(dir_a.path(), port, &limit);
    // 2020-02-18T00:00:00Z, one row a second: all within that day.
    let answer = insert(&a, "big", &document("big", 1_581_984_000_000, ROWS));
    assert_eq!((answer.status, answer.text().as_str()), (200, "True"));

    // The limit bites: B refuses the whole container in one answer.
    let (status, refused) = tql_answer(port, "big", "select *");
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["errorMessage"], "Too many result");

    assert_a_and_b_agree(
        &a,
        &b,
        &[
            "/fetch/big?limit=10000",
            "/fetch/big?limit=10000&order=desc",
            "/fetch/big?limit=10000&columns=temperature",
            "/fetch/big?from=1581984100000&to=1581988000000&limit=10000",
        ],
    );
    assert_eq!(
        get(&a.url("/fetch/big?limit=10000"))
            .json()
            .as_array()
            .unwrap()
            .len(),
        ROWS
    );

    let mut env = griddb_env(port);
    env.extend(limit.iter().cloned());
    run_daily_report_of_2020_02_18(dir_a.path(), env);
    let body = report_body(&b, "daily-big-2020-02-18");
    assert_eq!(body["rows"], ROWS);
    assert_eq!(temperature_stats(&body), [20.0, 29.0, 24.5]);
}

/// A WebAPI with the `timeZone` setting writes timestamps with its offset
/// (`…+09:00`). A reads them back as the same instants.
#[test]
fn a_webapi_time_zone_changes_no_instant() {
    let (dir_a, dir_b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let b = start_b(
        dir_b.path(),
        &[("SPIN_VARIABLE_WEBAPI_TIME_ZONE", "+09:00")],
    );
    let port = webapi_port(&b);
    let a = start_a(dir_a.path(), port, &[]);
    assert_eq!(insert_sample(&a).status, 200);
    let stored = tql(port, "sample", "select * order by timestamp asc limit 1");
    assert_eq!(stored["results"][0][0], "2020-02-19T02:25:38.255+09:00");
    assert_a_and_b_agree(
        &a,
        &b,
        &[
            "/fetch/sample",
            "/fetch/sample?from=1582046748255&to=1582046778255",
            "/fetch/sample?agg=max&interval=10s",
            "/devices/sample/latest",
            "/fetch/devices",
        ],
    );
}

/// `method path` (below `…/dbs/public`) on the WebAPI at `port`, as `admin`:
/// the status and the JSON body (`null` for none).
fn webapi_call(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let url = format!("http://127.0.0.1:{port}/griddb/v2/defaultCluster/dbs/public{path}");
    let request = ureq::request(method, &url).set("Authorization", WEBAPI_ADMIN);
    let response = match body {
        Some(body) => request
            .set("Content-Type", "application/json; charset=UTF-8")
            .send_string(&body.to_string()),
        None => request.call(),
    };
    let (status, text) = match response {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(status, r)) => (status, r.into_string().unwrap()),
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (status, json)
}

/// `GET containers?{query}` on the WebAPI at `port`, which must answer 200.
fn listing(port: u16, query: &str) -> Value {
    let (status, answer) = webapi_call(port, "GET", &format!("/containers?{query}"), None);
    assert_eq!(status, 200, "{query}: {answer}");
    answer
}

/// A listing through A's own `--webapi` is one listing of A's griddb store,
/// which hands the type, sort, offset and limit to B's `GET containers` and
/// answers B's page: the names B's embedded store pages, and its `total`.
#[test]
fn container_listings_are_paged_by_the_webapi_behind() {
    let (dir_a, dir_b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let b = start_b(dir_b.path(), &[]);
    let port_b = webapi_port(&b);
    let env = griddb_env(port_b);
    let a = Host::start_with_env(
        &repo_root().join("spin.toml"),
        dir_a.path(),
        &["--webapi", "127.0.0.1:0"],
        &borrowed(&env),
    );
    assert!(a.log().contains("store: GridDB"), "{}", a.log());
    let port_a = webapi_port(&a);
    // A answers checkConnection with a listing of nothing from B.
    assert_eq!(webapi_call(port_a, "GET", "/checkConnection", None).0, 200);

    // Time series and collections whose names interleave, upper case first
    // in byte order; created through A, so through its griddb store.
    let mut created = Vec::new();
    for i in 0..14 {
        let (name, kind) = match i % 3 {
            0 => (format!("Dev_{i:02}"), "TIME_SERIES"),
            1 => (format!("dev_{i:02}"), "TIME_SERIES"),
            _ => (format!("log_{i:02}"), "COLLECTION"),
        };
        let body = json!({
            "container_name": name,
            "container_type": kind,
            "rowkey": true,
            "columns": [{"name": "ts", "type": "TIMESTAMP"}, {"name": "v", "type": "DOUBLE"}]
        });
        let (status, answer) = webapi_call(port_a, "POST", "/containers", Some(&body));
        assert_eq!(status, 201, "{name}: {answer}");
        created.push(name);
    }

    // Every container (the hosts' own ones too), and each one's kind from
    // its info: what every page below is checked against.
    let all = listing(port_b, "limit=1000");
    let names: Vec<String> = all["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(all["total"], names.len());
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "byte order");
    assert!(created.iter().all(|c| names.contains(c)), "{names:?}");
    let kinds: Vec<String> = names
        .iter()
        .map(|name| {
            let (status, info) =
                webapi_call(port_b, "GET", &format!("/containers/{name}/info"), None);
            assert_eq!(status, 200, "{name}: {info}");
            info["container_type"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(kinds.iter().any(|k| k == "COLLECTION") && kinds.iter().any(|k| k == "TIME_SERIES"));

    for kind in [None, Some("TIME_SERIES"), Some("COLLECTION")] {
        let mut of_kind: Vec<&String> = names
            .iter()
            .zip(&kinds)
            .filter(|(_, k)| kind.is_none_or(|kind| kind == k.as_str()))
            .map(|(n, _)| n)
            .collect();
        let total = of_kind.len();
        for sort in ["ASC", "DESC"] {
            if sort == "DESC" {
                of_kind.reverse();
            }
            for (offset, limit) in [
                (0, 5),
                (3, 4),
                (total - 1, 3),
                (0, 0),
                (2, 1000),
                (total, 2),
                (total + 7, 1),
            ] {
                let mut query = format!("limit={limit}&offset={offset}&sort={sort}");
                if let Some(kind) = kind {
                    query.push_str(&format!("&type={kind}"));
                }
                let expected: Vec<&String> =
                    of_kind.iter().skip(offset).take(limit).copied().collect();
                let answer =
                    json!({"names": expected, "total": total, "offset": offset, "limit": limit});
                assert_eq!(listing(port_b, &query), answer, "B: {query}");
                assert_eq!(listing(port_a, &query), answer, "A: {query}");
            }
        }
    }
}

/// Two hosts on one store (through B's WebAPI) with the same every-2-s
/// trigger: each tick runs once between them, claimed in `_cron_leases`,
/// and its run record names the host that ran it.
#[test]
fn two_hosts_on_one_store_run_each_tick_once() {
    let dir = TempDir::new().unwrap();
    let b = start_b(&dir.path().join("b"), &[]);
    let port = webapi_port(&b);
    let rest = format!(
        "[variables]\nstore = {{ default = \"griddb\" }}\n\
         griddb_url = {{ default = \"http://127.0.0.1:{port}/griddb\" }}\n\
         [[trigger.cron]]\ncomponent = \"daily\"\ncron_expression = \"*/2 * * * * *\"\n{}",
        cromflag_tests::cron::report_component("daily", &[("reports", "daily")], None)
    );
    let manifest = cromflag_tests::cron::manifest(dir.path(), &rest);
    let one = Host::start_with(&manifest, &dir.path().join("one"), &["--host-id", "one"]);
    let two = Host::start_with(&manifest, &dir.path().join("two"), &["--host-id", "two"]);
    cromflag_tests::cron::wait_for_runs(&b, "daily", "ok", 4);
    // Stopped at once (a run cut short stays `running`), then their logs read whole.
    for host in [&one, &two] {
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &host.pid().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
    }
    std::thread::sleep(Duration::from_millis(500));
    let logs = [one.log(), two.log()];

    let runs = cromflag_tests::cron::served_runs(&b, "daily");
    let ok: Vec<&Value> = runs.iter().filter(|r| r["status"] == "ok").collect();
    assert!(ok.len() >= 4, "{runs:#?}");
    for run in &ok {
        // A tick run twice would be one record (its key is the tick) and
        // two finished runs in the logs: each is in exactly one log, the
        // log of the host the record names.
        let tick = chrono::DateTime::from_timestamp_millis(run["tick"].as_i64().unwrap()).unwrap();
        let line = format!("tick={tick}");
        let finished = |log: &str| {
            log.lines()
                .filter(|l| l.contains("cron run ok") && l.contains(&line))
                .count()
        };
        let (on_one, on_two) = (finished(&logs[0]), finished(&logs[1]));
        assert_eq!(
            on_one + on_two,
            1,
            "{run}: {on_one} on one, {on_two} on two"
        );
        let host = if on_one == 1 { "one" } else { "two" };
        assert_eq!(run["host"], host, "{run}");
    }
    // Both wanted the ticks: the one that lost each said so.
    let lost = |log: &str| log.matches("tick claimed by another host").count();
    assert!(lost(&logs[0]) + lost(&logs[1]) >= ok.len(), "{logs:#?}");
}

/// Alarms and last-seen times on the GridDB store: A (store = griddb, over
/// B's WebAPI) raises an inactivity alarm off its commit feed and keeps it
/// in B's `alarms` collection, as the embedded store does.
#[test]
fn alarms_live_in_the_griddb_store() {
    let dir = TempDir::new().unwrap();
    let b = start_b(&dir.path().join("b"), &[]);
    let port = webapi_port(&b);
    let a = start_a(
        &dir.path().join("a"),
        port,
        &[("SPIN_VARIABLE_INACTIVITY_TIMEOUT", "2s".into())],
    );
    assert_eq!(insert_sample(&a).status, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let alarm = loop {
        let listed = get(&a.url("/alarms?device=sample&state=open")).json();
        if let Some(alarm) = listed["alarms"].as_array().and_then(|l| l.first()) {
            break alarm.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no alarm through A");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        (&alarm["rule"], &alarm["state"]),
        (&json!("inactivity"), &json!("raised"))
    );
    let stored = tql(port, "alarms", "select *");
    let rows = stored["results"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{stored}");
    assert_eq!(rows[0][0], alarm["id"]);
    assert_eq!(rows[0][4], "raised");
    let seen = tql(port, "_last_seen", "select *");
    assert_eq!(seen["results"][0][0], "sample", "{seen}");
    assert_eq!(
        seen["results"][0][2], false,
        "inactive past its timeout: {seen}"
    );
}
