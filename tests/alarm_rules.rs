//! Threshold rules and webhook delivery of alarms, through the real host:
//! readings posted to `/insert/<device>`, alarms read back from `GET
//! /alarms`, webhooks received by a real HTTP server in the test.

use cromflag_tests::{
    get, insert_sample, post, repo_manifest_with, repo_root, sample_payload, Host,
};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// A host of the repository's manifest with `rules` appended, its data in
/// `dir`.
fn start(dir: &Path, rules: &str) -> Host {
    Host::start_with(&repo_manifest_with(dir, rules), &dir.join("data"), &[])
}

/// `hot` waits a minute of readings and clears 2° below its line; `humid`
/// fires at once and tells the test that a document was judged.
const RULES: &str = r#"
[[application.tool.cromflag.alarms.rule]]
name = "hot"
when = "temperature > 35"
for = "60s"
hysteresis = 2
severity = "critical"

[[application.tool.cromflag.alarms.rule]]
name = "humid"
when = "humidity > 90"
"#;

/// The sample document for `device` with one row per (seconds after
/// `BASE`, temperature, humidity).
fn readings(device: &str, rows: &[(i64, f64, f64)]) -> Vec<u8> {
    let mut doc: Value = serde_json::from_slice(&sample_payload()).unwrap();
    doc["deviceinfo"]["deviceid"] = json!(device);
    let template = doc["tsdata"][0].clone();
    doc["tsdata"] = rows
        .iter()
        .map(|&(secs, temperature, humidity)| {
            let mut row = template.clone();
            row["timestamp"] = json!(BASE + secs * 1000);
            row["temperature"] = json!(temperature);
            row["humidity"] = json!(humidity);
            row
        })
        .collect();
    doc.to_string().into_bytes()
}

/// 2020-02-19T00:00:00Z.
const BASE: i64 = 1_582_070_400_000;

fn send(host: &Host, device: &str, rows: &[(i64, f64, f64)]) {
    let answer = post(
        &host.url(&format!("/insert/{device}")),
        "application/json",
        &readings(device, rows),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
}

fn alarms(host: &Host, query: &str) -> Vec<Value> {
    let answer = get(&host.url(&format!("/alarms{query}")));
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["alarms"].as_array().unwrap().clone()
}

/// Polls until `check` holds for `/alarms{query}`'s list, within 10 s.
fn wait_until(
    host: &Host,
    query: &str,
    what: &str,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = alarms(host, query);
        if check(&listed) {
            return listed;
        }
        assert!(Instant::now() < deadline, "{what}; have {listed:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn of_rule<'a>(listed: &'a [Value], rule: &str) -> Vec<&'a Value> {
    listed.iter().filter(|a| a["rule"] == rule).collect()
}

#[test]
fn a_threshold_held_for_its_duration_fires_once_and_clears_past_its_hysteresis() {
    let dir = TempDir::new().unwrap();
    let host = start(dir.path(), RULES);
    let query = "?device=oven";

    // A 10 s spike over 35 does not last the minute; `humid` (the last
    // reading) shows the document was judged.
    send(
        &host,
        "oven",
        &[(0, 20.0, 50.0), (10, 40.0, 50.0), (20, 20.0, 95.0)],
    );
    let listed = wait_until(&host, query, "humid raised by the spike's document", |l| {
        of_rule(l, "humid").len() == 1
    });
    assert_eq!(
        of_rule(&listed, "hot"),
        Vec::<&Value>::new(),
        "a spike fired"
    );

    // Over 35 from 100 s to 200 s: fires once, at the reading 61 s in.
    send(
        &host,
        "oven",
        &[
            (100, 36.0, 50.0),
            (130, 37.0, 50.0),
            (161, 38.0, 50.0),
            (200, 39.0, 50.0),
        ],
    );
    // The rules judge a document one after the other: `hot` first, then
    // `humid`, whose clearing therefore says the document was judged.
    let listed = wait_until(
        &host,
        query,
        "humid cleared by the breach's document",
        |l| of_rule(l, "humid")[0]["state"] == "cleared",
    );
    assert_eq!(of_rule(&listed, "hot").len(), 1, "{listed:#?}");
    let hot = of_rule(&listed, "hot")[0].clone();
    assert_eq!(
        (
            &hot["state"],
            &hot["severity"],
            &hot["value"],
            &hot["device"]
        ),
        (
            &json!("raised"),
            &json!("critical"),
            &json!("38"),
            &json!("oven")
        )
    );

    // 34 is under the line but within the hysteresis: still open.
    send(&host, "oven", &[(300, 34.0, 95.0)]);
    let listed = wait_until(
        &host,
        query,
        "humid raised again by the 34° document",
        |l| of_rule(l, "humid").len() == 2,
    );
    assert_eq!(of_rule(&listed, "hot"), [&hot], "34° changed the hot alarm");

    // 33 is 2 under: cleared, and never a second hot alarm.
    send(&host, "oven", &[(310, 33.0, 50.0)]);
    let listed = wait_until(&host, query, "hot cleared at 33°", |l| {
        of_rule(l, "hot")
            .first()
            .is_some_and(|a| a["state"] == "cleared")
    });
    assert_eq!(of_rule(&listed, "hot").len(), 1);
    assert_eq!(of_rule(&listed, "hot")[0]["id"], hot["id"]);
    assert!(
        of_rule(&listed, "hot")[0]["cleared"].as_i64().unwrap() >= hot["raised"].as_i64().unwrap()
    );

    // The filters, as the store applies them: once the last document is
    // judged (humid, after hot), every alarm is cleared.
    let all = wait_until(&host, query, "every alarm cleared", |l| {
        l.len() == 3 && l.iter().all(|a| a["state"] == "cleared")
    });
    assert_eq!(alarms(&host, "?device=oven&state=cleared"), all);
    assert_eq!(
        alarms(&host, "?device=oven&state=open"),
        Vec::<Value>::new()
    );
    assert_eq!(alarms(&host, "?device=kiln"), Vec::<Value>::new());
    let second = all[1]["raised"].as_i64().unwrap();
    assert_eq!(
        alarms(&host, &format!("?device=oven&since={second}")),
        all[..2]
    );
}

/// The breaches waiting out their `for`, as the host stored them
/// (`_alarm_pending`), read through the host's own WebAPI as a GridDB client
/// would: (key, since) of each row, `since` null when none is under way.
fn pending(host: &Host) -> Vec<(String, Value)> {
    let (status, answer) = host.webapi_tql("_alarm_pending", "select *");
    if status == 404 {
        // Not written yet.
        return Vec::new();
    }
    assert_eq!(status, 200, "tql on _alarm_pending: {answer}");
    answer[0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (row[0].as_str().unwrap().to_owned(), row[3].clone()))
        .collect()
}

/// Polls the stored pending breaches until `check` holds, within 10 s.
fn wait_for_pending(host: &Host, what: &str, check: impl Fn(&[(String, Value)]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stored = pending(host);
        if check(&stored) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}; have {stored:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_breach_waiting_out_its_for_survives_a_restart() {
    let dir = TempDir::new().unwrap();
    let manifest = repo_manifest_with(dir.path(), RULES);
    let data = dir.path().join("data");
    // The WebAPI shows what the host stored in `_alarm_pending`.
    let start_with_webapi = || Host::start_with(&manifest, &data, &["--webapi", "127.0.0.1:0"]);

    // Over 35 at 0 s: `hot` waits until a breaching reading 60 s later.
    let host = start_with_webapi();
    send(&host, "kiln", &[(0, 40.0, 50.0)]);
    wait_for_pending(
        &host,
        "hot's breach stored",
        |stored| matches!(stored, [(key, since)] if key == "hot:kiln" && !since.is_null()),
    );
    host.stop();

    // After the restart, the breach goes on from 0 s: 61 s fires it (a
    // breach started over would wait until 121 s).
    let host = start_with_webapi();
    send(&host, "kiln", &[(61, 41.0, 95.0)]);
    let listed = wait_until(&host, "?device=kiln", "humid: the document judged", |l| {
        of_rule(l, "humid").len() == 1
    });
    let hot = of_rule(&listed, "hot");
    assert_eq!(hot.len(), 1, "{listed:#?}");
    assert_eq!(
        (&hot[0]["state"], &hot[0]["value"]),
        (&json!("raised"), &json!("41"))
    );
    // Fired: no breach is pending any more.
    wait_for_pending(
        &host,
        "hot's breach done",
        |stored| matches!(stored, [(key, since)] if key == "hot:kiln" && since.is_null()),
    );
}

#[test]
fn a_rule_naming_a_device_overrides_the_rule_for_every_device() {
    let dir = TempDir::new().unwrap();
    let rules = format!(
        "{RULES}\n[[application.tool.cromflag.alarms.rule]]\nname = \"hot\"\nwhen = \"temperature > 250\"\ndevices = [\"kiln\"]\n"
    );
    let host = start(dir.path(), &rules);
    // 100° for two minutes: hot for the kitchen, not for the kiln.
    let hot_for_two_minutes = [(0, 100.0, 95.0), (60, 100.0, 50.0), (120, 100.0, 50.0)];
    send(&host, "kiln", &hot_for_two_minutes);
    send(&host, "kitchen", &hot_for_two_minutes);
    wait_until(&host, "?device=kitchen", "the kitchen's hot alarm", |l| {
        of_rule(l, "hot").len() == 1
    });
    let kiln = wait_until(&host, "?device=kiln", "the kiln's document judged", |l| {
        of_rule(l, "humid").len() == 1
    });
    assert_eq!(of_rule(&kiln, "hot"), Vec::<&Value>::new());
}

/// What the test's webhook receiver got.
#[derive(Clone, Debug)]
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A webhook receiver on a port of its own: answers each request with the
/// next status of `statuses` (then 200), and keeps what it got.
fn receiver(statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<Received>>>) {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/hooks/alarms",
        server.server_addr().to_ip().unwrap()
    );
    let received = Arc::new(Mutex::new(Vec::new()));
    let kept = received.clone();
    std::thread::spawn(move || {
        let mut statuses = statuses.into_iter();
        for mut request in server.incoming_requests() {
            let mut body = Vec::new();
            request.as_reader().read_to_end(&mut body).unwrap();
            let headers = request
                .headers()
                .iter()
                .map(|h| (h.field.to_string(), h.value.to_string()))
                .collect();
            kept.lock().unwrap().push(Received { headers, body });
            let status = statuses.next().unwrap_or(200);
            let _ = request.respond(tiny_http::Response::empty(status));
        }
    });
    (url, received)
}

fn signature_of(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn deliveries(host: &Host, alarm: &str) -> Vec<Value> {
    let answer = get(&host.url(&format!(
        "/alarms/deliveries?alarm={}",
        cromflag_tests::path_segment(alarm)
    )));
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["deliveries"].as_array().unwrap().clone()
}

#[test]
fn webhooks_are_signed_and_retried_after_a_500() {
    let (url, received) = receiver(vec![500]);
    let dir = TempDir::new().unwrap();
    let host = Host::start_with_env(
        &repo_root().join("spin.toml"),
        &dir.path().join("data"),
        &[],
        &[
            ("SPIN_VARIABLE_INACTIVITY_TIMEOUT", "2s"),
            ("SPIN_VARIABLE_ALARM_WEBHOOK_URL", url.as_str()),
            ("SPIN_VARIABLE_ALARM_WEBHOOK_SECRET", "hook-secret"),
        ],
    );
    assert_eq!(insert_sample(&host).status, 200);
    let alarm = wait_until(&host, "?device=sample", "the inactivity alarm", |l| {
        l.len() == 1
    })[0]
        .clone();
    let alarm_id = alarm["id"].as_str().unwrap().to_owned();

    // The first attempt got 500; the second, a second later, 200.
    let deadline = Instant::now() + Duration::from_secs(15);
    let delivered = loop {
        let delivered = deliveries(&host, &alarm_id);
        if !delivered.is_empty() {
            break delivered;
        }
        assert!(Instant::now() < deadline, "no delivery recorded");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(delivered.len(), 1, "{delivered:#?}");
    assert_eq!(delivered[0]["outcome"], "delivered");
    assert_eq!(delivered[0]["attempts"], 2);
    assert_eq!(delivered[0]["event"], "alarm.raised");
    assert_eq!(delivered[0]["url"], url);
    // `?alarm=` lists that alarm's deliveries only.
    assert_eq!(
        deliveries(&host, &format!("{alarm_id}0")),
        Vec::<Value>::new()
    );

    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 2, "one 500, one retry");
    for got in &received {
        assert_eq!(got.header("content-type"), Some("application/json"));
        assert_eq!(got.header("x-cromflag-event"), Some("alarm.raised"));
        assert_eq!(
            got.header("x-cromflag-delivery"),
            Some(format!("{alarm_id}/raised").as_str())
        );
        let signature = signature_of("hook-secret", &got.body);
        assert_eq!(
            got.header("x-cromflag-signature-256"),
            Some(signature.as_str())
        );
        assert_ne!(signature, signature_of("another secret", &got.body));
        let body: Value = serde_json::from_slice(&got.body).unwrap();
        assert_eq!(body["id"], format!("{alarm_id}/raised"));
        assert_eq!(body["event"], "alarm.raised");
        assert_eq!(body["alarm"], alarm, "the alarm as GET /alarms lists it");
        assert!(body["sent"].as_i64().unwrap() >= alarm["raised"].as_i64().unwrap());
    }
}

#[test]
fn ingest_goes_on_while_the_webhook_receiver_is_down() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/alarms", closed.local_addr().unwrap());
    drop(closed);
    let dir = TempDir::new().unwrap();
    let host = Host::start_with_env(
        &repo_manifest_with(dir.path(), RULES),
        &dir.path().join("data"),
        &[],
        &[
            ("SPIN_VARIABLE_ALARM_WEBHOOK_URL", url.as_str()),
            ("SPIN_VARIABLE_ALARM_WEBHOOK_SECRET", "hook-secret"),
            ("SPIN_VARIABLE_ALARM_WEBHOOK_ATTEMPTS", "3"),
        ],
    );
    // Every document raises or clears `humid`: 200 alarm events queue up
    // behind deliveries that keep failing.
    let started = Instant::now();
    for i in 0..200 {
        let humidity = if i % 2 == 0 { 95.0 } else { 50.0 };
        send(&host, "porch", &[(i, 20.0, humidity)]);
    }
    let sent_in = started.elapsed();
    let answer = get(&host.url("/fetch/porch"));
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json().as_array().map(Vec::len), Some(200));
    let listed = wait_until(&host, "?device=porch", "every humid alarm", |l| {
        l.len() == 100
    });
    assert!(listed.iter().all(|a| a["rule"] == "humid"));

    // The first event's delivery gave up after 3 attempts (1 s, then 2 s apart).
    let first = listed.last().unwrap()["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(15);
    let failed = loop {
        let recorded = deliveries(&host, &first);
        if let Some(failed) = recorded.into_iter().find(|d| d["event"] == "alarm.raised") {
            break failed;
        }
        assert!(Instant::now() < deadline, "no failed delivery recorded");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        (&failed["outcome"], &failed["attempts"]),
        (&json!("failed"), &json!(3))
    );
    assert!(
        failed["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{failed}"
    );
    eprintln!("200 inserts in {sent_in:?} while the receiver was down");
}

#[test]
fn rules_change_live_with_the_manifest() {
    let dir = TempDir::new().unwrap();
    let path = repo_manifest_with(dir.path(), "");
    let host = Host::start_with(&path, &dir.path().join("data"), &[]);
    let without_rules = std::fs::read_to_string(&path).unwrap();
    send(&host, "oven", &[(0, 100.0, 50.0)]);
    std::fs::write(&path, format!("{without_rules}\n{RULES}")).unwrap();

    // Readings of 100° until the new `hot` (no `for` needed: 60 s of
    // readings, one a minute) has fired.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut minute = 1;
    let hot = loop {
        send(&host, "oven", &[(minute * 60, 100.0, 50.0)]);
        minute += 1;
        let listed = alarms(&host, "?device=oven");
        if let Some(hot) = of_rule(&listed, "hot").first() {
            break (*hot).clone();
        }
        assert!(Instant::now() < deadline, "the added rule never fired");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(hot["state"], "raised");

    // The rule removed: its open alarm is cleared.
    std::fs::write(&path, &without_rules).unwrap();
    let listed = wait_until(&host, "?device=oven", "hot cleared with its rule", |l| {
        of_rule(l, "hot")
            .first()
            .is_some_and(|a| a["state"] == "cleared")
    });
    assert_eq!(of_rule(&listed, "hot").len(), 1);
}

/// The original stack's battery check, a day late in its reports, as a rule:
/// `batt_lvl` is device metadata (`deviceinfo`, the `devices` row), judged
/// as each document commits.
#[test]
fn a_rule_watches_device_metadata_such_as_the_battery_level() {
    let dir = TempDir::new().unwrap();
    let rules = format!(
        "{RULES}\n[[application.tool.cromflag.alarms.rule]]\nname = \"battery-low\"\nwhen = \"batt_lvl < 20\"\nhysteresis = 5\n"
    );
    let host = start(dir.path(), &rules);
    let send_battery = |level: i64, minute: i64| {
        let mut doc: Value =
            serde_json::from_slice(&readings("remote", &[(minute * 60, 20.0, 50.0)])).unwrap();
        doc["deviceinfo"]["batt_lvl"] = json!(level);
        let answer = post(
            &host.url("/insert/remote"),
            "application/json",
            doc.to_string().as_bytes(),
        );
        assert_eq!(answer.status, 200, "{}", answer.text());
    };
    let battery = |listed: &[Value]| -> Vec<Value> {
        of_rule(listed, "battery-low")
            .into_iter()
            .cloned()
            .collect()
    };

    send_battery(15, 0);
    let listed = wait_until(&host, "?device=remote", "battery-low raised at 15", |l| {
        battery(l).len() == 1
    });
    let low = battery(&listed)[0].clone();
    assert_eq!(
        (&low["state"], &low["value"]),
        (&json!("raised"), &json!("15"))
    );

    // 22 is back over 20 but within the hysteresis; a humid sentinel after
    // it shows it was judged.
    send_battery(22, 1);
    send(&host, "sentinel", &[(0, 20.0, 95.0)]);
    wait_until(&host, "?device=sentinel", "the sentinel's alarm", |l| {
        l.len() == 1
    });
    assert_eq!(battery(&alarms(&host, "?device=remote")), [low]);

    send_battery(26, 2);
    let listed = wait_until(&host, "?device=remote", "battery-low cleared at 26", |l| {
        battery(l).first().is_some_and(|a| a["state"] == "cleared")
    });
    assert_eq!(battery(&listed).len(), 1);
}
