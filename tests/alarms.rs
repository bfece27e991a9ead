//! Inactivity alarms: raised once when a device stops sending for
//! `inactivity_timeout`, acknowledged, cleared when it sends again; open
//! alarms survive a restart without being raised twice.

use cromflag_tests::access::call;
use cromflag_tests::{get, insert_sample, repo_root, Host};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use tempfile::TempDir;

fn start(data: &Path) -> Host {
    Host::start_with_env(
        &repo_root().join("spin.toml"),
        data,
        &[],
        &[("SPIN_VARIABLE_INACTIVITY_TIMEOUT", "2s")],
    )
}

fn alarms(host: &Host, query: &str) -> Vec<Value> {
    let answer = get(&host.url(&format!("/alarms{query}")));
    assert_eq!(answer.status, 200, "{}", answer.text());
    let listed = answer.json();
    let alarms = listed["alarms"].as_array().unwrap().clone();
    assert_eq!(listed["count"], alarms.len());
    alarms
}

/// Polls `/alarms{query}` until it lists `count` alarms, within `within`.
fn wait_for_alarms(host: &Host, query: &str, count: usize, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let listed = alarms(host, query);
        if listed.len() == count {
            return listed;
        }
        assert!(
            Instant::now() < deadline,
            "{count} alarms for {query} within {within:?}; have {listed:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_silent_device_raises_one_inactivity_alarm_cleared_when_it_sends_again() {
    let dir = TempDir::new().unwrap();
    let host = start(&dir.path().join("data"));
    let sent = chrono::Utc::now().timestamp_millis();
    assert_eq!(insert_sample(&host).status, 200);

    let open = wait_for_alarms(&host, "?device=sample", 1, Duration::from_secs(10));
    let alarm = &open[0];
    assert_eq!(alarm["rule"], "inactivity");
    assert_eq!(alarm["device"], "sample");
    assert_eq!(alarm["state"], "raised");
    assert_eq!(alarm["severity"], "warning");
    let raised = alarm["raised"].as_i64().unwrap();
    assert!(raised - sent >= 2000, "raised after the timeout: {alarm}");
    // The value that fired it: when the device was last seen.
    let last_seen: i64 = alarm["value"].as_str().unwrap().parse().unwrap();
    assert!(last_seen >= sent && last_seen < raised, "{alarm}");
    // One condition, one alarm: later evaluations raise no other.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(alarms(&host, "?device=sample").len(), 1);
    assert_eq!(alarms(&host, "?state=open").len(), 1);

    // Acknowledged by an operator, twice: the same answer.
    let id = alarm["id"].as_str().unwrap();
    let ack = |host: &Host| {
        let path = format!("/alarms/{}/ack", cromflag_tests::path_segment(id));
        call("POST", &host.url(&path), None, b"")
    };
    let acked = ack(&host);
    assert_eq!(acked.status, 200, "{}", acked.text());
    assert_eq!(acked.json()["state"], "acknowledged");
    let again = ack(&host);
    assert_eq!(again.json()["acknowledged"], acked.json()["acknowledged"]);

    // The device sends again: the alarm clears, and stays one alarm.
    assert_eq!(insert_sample(&host).status, 200);
    let cleared = wait_for_alarms(&host, "?state=cleared", 1, Duration::from_secs(5));
    assert_eq!(cleared[0]["id"], alarm["id"]);
    assert!(cleared[0]["cleared"].as_i64().unwrap() >= raised);
    assert_eq!(alarms(&host, "?state=open"), Vec::<Value>::new());
    // A cleared alarm cannot be acknowledged; an unknown one is not found.
    assert_eq!(ack(&host).status, 409);
    let unknown = call("POST", &host.url("/alarms/nothing/ack"), None, b"");
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    let bad = get(&host.url("/alarms?state=sleepy"));
    assert_eq!(bad.status, 400, "{}", bad.text());
}

#[test]
fn open_alarms_survive_a_restart_without_being_raised_twice() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let host = start(&data);
    assert_eq!(insert_sample(&host).status, 200);
    let open = wait_for_alarms(&host, "?state=open", 1, Duration::from_secs(10));
    host.stop();

    let host = start(&data);
    // Evaluations after the restart find the alarm open: no second one.
    std::thread::sleep(Duration::from_millis(3000));
    assert_eq!(alarms(&host, ""), open);
    // The last-seen time came back too: sending clears it.
    assert_eq!(insert_sample(&host).status, 200);
    let cleared = wait_for_alarms(&host, "?state=cleared", 1, Duration::from_secs(5));
    assert_eq!(cleared[0]["id"], open[0]["id"]);
}
