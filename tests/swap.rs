//! Live changes on a running host, from the outside: a component file copied
//! over its `source`, a broken one, manifest edits that add and remove a route,
//! and uploads on `POST /admin/components/<id>`.
//!
//! "A new build" of a component is made by copying a built `.wasm`, or the
//! probe fixture with its build text replaced (same length, so the binary stays
//! valid) — different bytes that answer differently.

use cromflag_tests::{component, get, insert_sample, post, wait_until, Answer, Host};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tempfile::TempDir;

/// The probe fixture as build `n` (1..=9999): its answer is `{"build": "probe-build-000n"}`.
fn probe_build(n: u32) -> Vec<u8> {
    let bytes = std::fs::read(component("probe")).unwrap();
    let (from, to) = (b"probe-build-0001", format!("probe-build-{n:04}"));
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("the probe's build text is in its data section");
    let mut patched = bytes.clone();
    patched[at..at + from.len()].copy_from_slice(to.as_bytes());
    patched
}

/// A manifest whose `insert` route runs the component at `insert_source`,
/// with `/fetch/...` for reading back and `extra` appended.
fn manifest(dir: &Path, insert_source: &Path, extra: &str) -> PathBuf {
    let text = format!(
        "spin_manifest_version = 2\n[application]\nname = \"swap-test\"\n\
         [variables]\nadmin_token = {{ default = \"\" }}\n\
         [[trigger.http]]\nroute = \"/insert/...\"\ncomponent = \"insert\"\n\
         [[trigger.http]]\nroute = \"/fetch/...\"\ncomponent = \"fetch\"\n\
         [component.insert]\nsource = {:?}\n\
         [component.fetch]\nsource = {:?}\n\
         {extra}",
        insert_source.display().to_string(),
        component("fetch").display().to_string(),
    );
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Copies `bytes` over `path` in place, as `cp` does (not an atomic rename):
/// the host may see the file half-written, and must cope.
fn copy_over(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

fn build_of(answer: &Answer) -> Option<String> {
    let body: Value = serde_json::from_slice(&answer.body).ok()?;
    body["build"].as_str().map(str::to_owned)
}

#[test]
fn the_insert_component_is_replaced_twice_under_load_without_a_failed_request() {
    let dir = TempDir::new().unwrap();
    let source = dir.path().join("insert.wasm");
    std::fs::copy(component("insert"), &source).unwrap();
    let manifest = manifest(dir.path(), &source, "");
    let host = Host::start_with(&manifest, &dir.path().join("data"), &[]);
    assert_eq!(insert_sample(&host).text(), "True");

    // A client posts continuously and keeps every answer.
    let answers: Arc<Mutex<Vec<(u16, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (answers, stop, url) = (answers.clone(), stop.clone(), host.url("/insert/sample"));
        let body = cromflag_tests::sample_payload();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let answer = post(&url, "application/json", &body);
                answers.lock().unwrap().push((answer.status, answer.text()));
            }
        })
    };
    let seen = |text: &str| {
        let text = text.to_owned();
        let answers = answers.clone();
        wait_until(&format!("an answer `{text}`"), move || {
            answers
                .lock()
                .unwrap()
                .iter()
                .any(|(_, t)| *t == text)
                .then_some(())
        })
    };
    seen("True");
    // First swap: a build that answers something else.
    copy_over(&source, &probe_build(2));
    seen(r#"{"build":"probe-build-0002"}"#);
    // Second swap: the collector again.
    copy_over(&source, &std::fs::read(component("insert")).unwrap());
    let swapped_back = answers.lock().unwrap().len();
    wait_until("the collector answering again", || {
        let answers = answers.lock().unwrap();
        answers[swapped_back..]
            .iter()
            .any(|(_, t)| t == "True")
            .then_some(())
    });
    // Some more load on the last version, then stop.
    let settled = answers.lock().unwrap().len();
    wait_until("more answers", || {
        (answers.lock().unwrap().len() > settled + 20).then_some(())
    });
    stop.store(true, Ordering::SeqCst);
    client.join().unwrap();

    let answers = answers.lock().unwrap();
    let failed: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status != 200)
        .collect();
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    // Versions follow each other in order: v1 answers, then v2, then v1 again,
    // never mixed back once a newer one answered.
    let phases: Vec<&str> = answers
        .iter()
        .map(|(_, t)| if t == "True" { "insert" } else { "probe" })
        .fold(Vec::new(), |mut phases, phase| {
            if phases.last() != Some(&phase) {
                phases.push(phase);
            }
            phases
        });
    assert_eq!(
        phases,
        ["insert", "probe", "insert"],
        "{} answers",
        answers.len()
    );
    host.wait_for_log("component swapped", 2);
    let log = host.log();
    assert!(log.contains("component=insert"), "{log}");
    assert!(log.contains(" old=") && log.contains(" new="), "{log}");
}

#[test]
fn a_broken_or_wrong_component_is_refused_and_the_old_one_keeps_serving() {
    let dir = TempDir::new().unwrap();
    let source = dir.path().join("insert.wasm");
    std::fs::copy(component("insert"), &source).unwrap();
    let manifest = manifest(dir.path(), &source, "");
    let host = Host::start_with(&manifest, &dir.path().join("data"), &[]);

    // Not WebAssembly at all.
    copy_over(&source, b"this is not a component");
    host.wait_for_log("new version refused", 1);
    assert_eq!(insert_sample(&host).text(), "True");
    // A real component without the export the route calls (the MQTT-only
    // collector: it exports Spin's handle-message, no wasi:http handler).
    copy_over(&source, &std::fs::read(component("spin_insert")).unwrap());
    host.wait_for_log("new version refused", 2);
    assert!(
        host.log().contains("as an HTTP component"),
        "{}",
        host.log()
    );
    assert_eq!(insert_sample(&host).text(), "True");
    // A good build is still taken afterwards.
    copy_over(&source, &probe_build(7));
    wait_until("the good build", || {
        let answer = post(&host.url("/insert/sample"), "application/json", b"{}");
        (build_of(&answer).as_deref() == Some("probe-build-0007")).then_some(())
    });
}

#[test]
fn manifest_edits_add_and_remove_routes_live() {
    let dir = TempDir::new().unwrap();
    // In a directory of its own, which the host did not watch at start.
    let probe = dir.path().join("later").join("probe.wasm");
    std::fs::create_dir(dir.path().join("later")).unwrap();
    std::fs::write(&probe, probe_build(3)).unwrap();
    let manifest_path = manifest(dir.path(), &component("insert"), "");
    let host = Host::start_with(&manifest_path, &dir.path().join("data"), &[]);
    assert_eq!(get(&host.url("/probe/x")).status, 404);

    let with_probe = format!(
        "[[trigger.http]]\nroute = \"/probe/...\"\ncomponent = \"probe\"\n\
         [component.probe]\nsource = {:?}\n",
        probe.display().to_string()
    );
    manifest(dir.path(), &component("insert"), &with_probe);
    let answer = wait_until("the new route", || {
        let answer = get(&host.url("/probe/x"));
        (answer.status == 200).then_some(answer)
    });
    assert_eq!(build_of(&answer).as_deref(), Some("probe-build-0003"));
    // The routes that were there still work.
    assert_eq!(insert_sample(&host).text(), "True");
    // Its directory is watched from now on: a new build there is taken.
    copy_over(&probe, &probe_build(5));
    wait_until("the probe's new build", || {
        let answer = get(&host.url("/probe/x"));
        (build_of(&answer).as_deref() == Some("probe-build-0005")).then_some(())
    });

    manifest(dir.path(), &component("insert"), "");
    wait_until("the route gone", || {
        (get(&host.url("/probe/x")).status == 404).then_some(())
    });
    assert_eq!(insert_sample(&host).text(), "True");
    // A manifest that does not parse changes nothing.
    std::fs::write(&manifest_path, "this is = not [ toml").unwrap();
    host.wait_for_log("change refused", 1);
    assert_eq!(insert_sample(&host).text(), "True");
}

fn upload(host: &Host, id: &str, token: Option<&str>, bytes: &[u8]) -> Answer {
    let url = host.url(&format!("/admin/components/{id}"));
    let mut request = ureq::post(&url).set("Content-Type", "application/wasm");
    if let Some(token) = token {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    let response = match request.send_bytes(bytes) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("upload: {e}"),
    };
    let status = response.status();
    let text = response.into_string().unwrap();
    Answer {
        status,
        content_type: String::new(),
        headers: Vec::new(),
        body: text.into_bytes(),
    }
}

#[test]
fn uploads_swap_a_component_for_whoever_holds_the_token() {
    let dir = TempDir::new().unwrap();
    let manifest = manifest(dir.path(), &component("insert"), "");
    // Without a token the endpoint does not exist.
    let closed = Host::start_with(&manifest, &dir.path().join("closed"), &[]);
    assert_eq!(upload(&closed, "insert", None, &probe_build(4)).status, 404);
    closed.stop();

    let host = Host::start_with_env(
        &manifest,
        &dir.path().join("data"),
        &[],
        &[("SPIN_VARIABLE_ADMIN_TOKEN", "s3cret-token")],
    );
    assert_eq!(upload(&host, "insert", None, &probe_build(4)).status, 401);
    assert_eq!(
        upload(&host, "insert", Some("wrong"), &probe_build(4)).status,
        401
    );
    assert_eq!(
        upload(&host, "nothing", Some("s3cret-token"), &probe_build(4)).status,
        404
    );
    let refused = upload(&host, "insert", Some("s3cret-token"), b"not wasm");
    assert_eq!(refused.status, 422, "{}", refused.text());
    assert_eq!(insert_sample(&host).text(), "True");

    let answer = upload(&host, "insert", Some("s3cret-token"), &probe_build(4));
    assert_eq!(answer.status, 200, "{}", answer.text());
    let swap = answer.json();
    assert_ne!(swap["old"], swap["new"]);
    assert_eq!(swap["new"].as_str().unwrap().len(), 64);
    // The very next request is served by the upload.
    let next = post(&host.url("/insert/sample"), "application/json", b"{}");
    assert_eq!(build_of(&next).as_deref(), Some("probe-build-0004"));
    assert!(
        !host.log().contains("s3cret-token"),
        "the token is in the log"
    );
}

/// A manifest with `insert` on MQTT `topic` (through the host's own endpoint) and
/// `/fetch` over HTTP, plus `extra`.
fn mqtt_manifest(dir: &Path, topic: &str, extra: &str) -> PathBuf {
    let text = format!(
        "spin_manifest_version = 2\n[application]\nname = \"swap-mqtt\"\n\
         [variables]\nmqtt_address = {{ default = \"\" }}\n\
         [application.trigger.mqtt]\naddress = \"{{{{ mqtt_address }}}}\"\nkeep_alive_interval = \"10\"\n\
         [[trigger.mqtt]]\ncomponent = \"insert\"\ntopic = {topic:?}\nqos = \"1\"\n\
         [[trigger.http]]\nroute = \"/fetch/...\"\ncomponent = \"fetch\"\n\
         [component.insert]\nsource = {:?}\n[component.fetch]\nsource = {:?}\n{extra}",
        component("insert").display().to_string(),
        component("fetch").display().to_string(),
    );
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn manifest_edits_change_mqtt_subscriptions_and_cron_entries_live() {
    let dir = TempDir::new().unwrap();
    let path = mqtt_manifest(dir.path(), "devices/one/telemetry", "");
    let host = Host::start_with(&path, &dir.path().join("data"), &[]);
    let mut publisher = cromflag_tests::mqtt::Publisher::connect(host.mqtt_port, "swap-mqtt");
    let doc = |device: &str| {
        String::from_utf8(cromflag_tests::sample_payload())
            .unwrap()
            .replace("\"sample\"", &format!("{device:?}"))
            .into_bytes()
    };
    publisher.publish("devices/one/telemetry", 1, doc("one"));
    cromflag_tests::wait_for_rows(&host, "one", 6);

    // A wider topic, and a cron entry that runs every second.
    let cron = format!(
        "[[trigger.cron]]\ncomponent = \"ticker\"\ncron_expression = \"* * * * * *\"\n{}",
        cromflag_tests::cron::report_component("ticker", &[("reports", "daily")], None)
    );
    mqtt_manifest(dir.path(), "devices/+/telemetry", &cron);
    host.wait_for_log("MQTT topic added (manifest changed)", 1);
    publisher.publish("devices/two/telemetry", 1, doc("two"));
    cromflag_tests::wait_for_rows(&host, "two", 6);
    cromflag_tests::cron::wait_for_runs(&host, "ticker", "ok", 1);

    // Both gone again: nothing more is taken, no more ticks run.
    mqtt_manifest(dir.path(), "devices/one/telemetry", "");
    // A reload that only removes is seen nowhere but in the log.
    host.wait_for_log("MQTT topic removed (manifest changed)", 1);
    host.wait_for_log("application reloaded", 2);
    let reloaded = chrono::Utc::now().timestamp_millis();
    // No tick after the reload may start. That takes waiting on the clock:
    // a schedule still running would have recorded a tick of the second
    // after the next by now (2 s, and time to record it).
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let late: Vec<_> = cromflag_tests::cron::served_runs(&host, "ticker")
        .into_iter()
        // A tick due before the reload finished may still have started.
        .filter(|run| run["tick"].as_i64().unwrap() > reloaded + 1000)
        .collect();
    assert_eq!(
        late,
        Vec::<serde_json::Value>::new(),
        "the cron entry still runs"
    );
    // The PUBACK follows the dead letter's commit: the message is decided.
    publisher.publish("devices/three/telemetry", 1, doc("three"));
    assert_eq!(get(&host.url("/fetch/three")).status, 404);
    let rejected = cromflag_tests::fetch_rows(&host, "_rejected").unwrap_or_default();
    assert!(
        rejected
            .iter()
            .any(|row| row["topic"] == "devices/three/telemetry"
                && row["error"]
                    .as_str()
                    .unwrap()
                    .contains("no [[trigger.mqtt]] topic matches")),
        "{rejected:#?}"
    );
}

#[test]
fn with_the_repositorys_manifest_run_as_a_user_runs_it_changes_are_live() {
    // A project as `cromflag up` finds it: spin.toml and target/components/…
    // next to each other, the host started there with relative paths.
    let project = TempDir::new().unwrap();
    let built = project
        .path()
        .join("target/components/wasm32-wasip2/component");
    std::fs::create_dir_all(&built).unwrap();
    for name in [
        "insert",
        "fetch",
        "report",
        "fahrenheit_to_celsius",
        "dew_point",
        "range_filter",
    ] {
        std::fs::copy(component(name), built.join(format!("{name}.wasm"))).unwrap();
    }
    let manifest = project.path().join("spin.toml");
    std::fs::copy(cromflag_tests::repo_root().join("spin.toml"), &manifest).unwrap();
    let host = Host::start_with(Path::new("spin.toml"), &project.path().join("data"), &[]);
    assert_eq!(insert_sample(&host).text(), "True");

    // Copying a new build over a component's source changes the next answer.
    copy_over(&built.join("fetch.wasm"), &probe_build(9));
    let answer = wait_until("the new fetch build", || {
        let answer = get(&host.url("/fetch/sample"));
        build_of(&answer).is_some().then_some(answer)
    });
    assert_eq!(build_of(&answer).as_deref(), Some("probe-build-0009"));
    copy_over(
        &built.join("fetch.wasm"),
        &std::fs::read(component("fetch")).unwrap(),
    );
    wait_until("the collector's reader back", || {
        (get(&host.url("/fetch/sample"))
            .json()
            .as_array()
            .map(Vec::len)
            == Some(6))
        .then_some(())
    });

    // Enabling °F → °C in the manifest: the sample's 78.0 is stored as 25.56.
    let text = std::fs::read_to_string(&manifest).unwrap().replace(
        "transforms = []",
        "transforms = [\"fahrenheit-to-celsius\"]",
    );
    std::fs::write(&manifest, text).unwrap();
    // The same rows, upserted through the transform once the change is live.
    let rows = wait_until("the transform to convert an insert", || {
        assert_eq!(insert_sample(&host).text(), "True");
        let rows = get(&host.url("/fetch/sample")).json();
        (rows[0]["temperature"] != 78.0).then_some(rows)
    });
    let celsius = rows[0]["temperature"].as_f64().unwrap();
    assert!((celsius - 25.56).abs() <= 0.01, "{celsius}");
}
