//! Transform components on the ingest path of the real host: the examples in
//! `components/transforms/`, alone and chained, over HTTP and MQTT, with the
//! stored values checked against the formulas; and misbehaving transforms (a
//! loop, a memory bomb, a trap, a refusal, a WASI import), each of which costs
//! its batch a rejection naming it and nothing else. And what the log tells a
//! transform's author as they enable, misconfigure and rebuild one.

use cromflag_tests::cron::component_entry;
use cromflag_tests::mqtt::Publisher;
use cromflag_tests::{get, insert_sample, sample_payload, wait_for_rows, wait_until, Answer, Host};
use serde_json::Value;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// A manifest with `/insert` (HTTP and MQTT) running `transforms` in order,
/// `/fetch` to read back, and the transform components in `components`.
fn manifest(dir: &Path, transforms: &[&str], components: &str) -> PathBuf {
    let list: Vec<String> = transforms.iter().map(|t| format!("{t:?}")).collect();
    let text = format!(
        "spin_manifest_version = 2\n[application]\nname = \"transform-test\"\n\
         [variables]\nmqtt_address = {{ default = \"\" }}\n\
         [application.trigger.mqtt]\naddress = \"{{{{ mqtt_address }}}}\"\nkeep_alive_interval = \"10\"\n\
         [[trigger.mqtt]]\ncomponent = \"insert\"\ntopic = \"devices/+/telemetry\"\nqos = \"1\"\n\
         [[trigger.http]]\nroute = \"/insert/...\"\ncomponent = \"insert\"\n\
         [[trigger.http]]\nroute = \"/fetch/...\"\ncomponent = \"fetch\"\n\
         {}[component.insert.tool.cromflag]\ntransforms = [{}]\n{}{components}",
        component_entry("insert", "insert", &[], None),
        list.join(", "),
        component_entry("fetch", "fetch", &[], None),
    );
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A host whose insert runs the three examples: °F → °C, dew point, then a
/// range filter keeping temperatures up to `max`.
fn three_example_chain(dir: &Path, max: &str) -> Host {
    let components = [
        component_entry("fahrenheit-to-celsius", "fahrenheit_to_celsius", &[], None),
        component_entry("dew-point", "dew_point", &[], None),
        component_entry(
            "range-filter",
            "range_filter",
            &[("column", "temperature"), ("max", max)],
            None,
        ),
    ]
    .concat();
    let manifest = manifest(
        dir,
        &["fahrenheit-to-celsius", "dew-point", "range-filter"],
        &components,
    );
    Host::start_with(&manifest, &dir.join("data"), &[])
}

fn celsius(f: f64) -> f64 {
    (f - 32.0) * 5.0 / 9.0
}

/// The Magnus formula, with the constants the dew-point example documents.
fn dew_point(t: f64, rh: f64) -> f64 {
    let (a, b) = (17.62, 243.12);
    let gamma = (rh / 100.0).ln() + a * t / (b + t);
    b * gamma / (a - gamma)
}

/// The sample's (temperature °F, humidity %) per row, in order.
fn sample_readings() -> Vec<(i64, f64, f64)> {
    let doc: Value = serde_json::from_slice(&sample_payload()).unwrap();
    doc["tsdata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["timestamp"].as_i64().unwrap(),
                r["temperature"].as_f64().unwrap(),
                r["humidity"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn close(got: &Value, want: f64, tolerance: f64) -> bool {
    got.as_f64().is_some_and(|g| (g - want).abs() <= tolerance)
}

#[test]
fn fahrenheit_to_celsius_stores_the_samples_78_as_25_56() {
    let dir = TempDir::new().unwrap();
    let components = component_entry("fahrenheit-to-celsius", "fahrenheit_to_celsius", &[], None);
    let manifest = manifest(dir.path(), &["fahrenheit-to-celsius"], &components);
    let host = Host::start_with(&manifest, &dir.path().join("data"), &[]);

    let answer = insert_sample(&host);
    assert_eq!((answer.status, answer.text().as_str()), (200, "True"));
    let rows = wait_for_rows(&host, "sample", 6);
    assert!(close(&rows[0]["temperature"], 25.56, 0.01), "{}", rows[0]);
    for (row, (ts, f, _)) in rows.iter().zip(sample_readings()) {
        assert_eq!(row["timestamp"], ts);
        // FLOAT: single precision.
        assert!(
            close(&row["temperature"], celsius(f), 1e-4),
            "{row} for {f} °F"
        );
    }
    // Untouched columns are untouched.
    assert_eq!(rows[0]["humidity"], 75.0);
}

#[test]
fn a_chain_runs_in_order_with_exact_values_over_http_and_mqtt() {
    let dir = TempDir::new().unwrap();
    // In °C, after the conversion: in °F every row would be dropped.
    let host = three_example_chain(dir.path(), "27");
    assert_eq!(insert_sample(&host).text(), "True");

    let kept: Vec<_> = sample_readings()
        .into_iter()
        .filter(|(_, f, _)| celsius(*f) <= 27.0)
        .collect();
    assert_eq!(kept.len(), 4, "82 °F and 81 °F are above 27 °C");
    let check = |rows: &[Value]| {
        assert_eq!(rows.len(), kept.len(), "{rows:#?}");
        for (row, (ts, f, rh)) in rows.iter().zip(&kept) {
            assert_eq!(row["timestamp"], *ts);
            assert!(close(&row["temperature"], celsius(*f), 1e-4), "{row}");
            // Dew point from the converted temperature (a FLOAT: the last
            // digits depend on how its f32 is widened, hence 1e-6).
            let t = row["temperature"].as_f64().unwrap();
            assert!(close(&row["dew_point"], dew_point(t, *rh), 1e-6), "{row}");
        }
    };
    check(&wait_for_rows(&host, "sample", kept.len()));
    // Again: the container now has `dew_point`, and the batch still goes through
    // (a transform sees the document's columns, not the container's).
    assert_eq!(insert_sample(&host).text(), "True");
    check(&wait_for_rows(&host, "sample", kept.len()));

    // MQTT takes the same path.
    let mut publisher = Publisher::connect(host.mqtt_port, "transform-test");
    let doc = String::from_utf8(sample_payload())
        .unwrap()
        .replace("\"sample\"", "\"viamqtt\"");
    publisher.publish("devices/viamqtt/telemetry", 1, doc.into_bytes());
    check(&wait_for_rows(&host, "viamqtt", kept.len()));
}

/// Starts a host whose insert runs the one transform `id` (on `wasm`, with
/// `variables`), posts the sample, and returns the answer and the host.
fn reject_with(dir: &Path, id: &str, wasm: &str, variables: &[(&str, &str)]) -> (Answer, Host) {
    let components = component_entry(id, wasm, variables, None);
    let manifest = manifest(dir, &[id], &components);
    let host = Host::start_with(&manifest, &dir.join("data"), &[]);
    let answer = insert_sample(&host);
    (answer, host)
}

#[test]
fn misbehaving_transforms_reject_their_batch_and_nothing_else() {
    for (id, wasm, variables, reason) in [
        (
            "endless",
            "faulty",
            &[("mode", "loop")][..],
            "ran out of fuel",
        ),
        (
            "hungry",
            "faulty",
            &[("mode", "memory")][..],
            "memory limit",
        ),
        ("crashing", "faulty", &[("mode", "trap")][..], "trapped"),
        (
            "refusing",
            "faulty",
            &[("mode", "refuse")][..],
            "refused the batch: refused on purpose",
        ),
        ("sneaky", "wasi_importer", &[][..], "imports wasi:"),
    ] {
        let dir = TempDir::new().unwrap();
        let started = std::time::Instant::now();
        let (answer, mut host) = reject_with(dir.path(), id, wasm, variables);
        assert_eq!(answer.status, 422, "{id}: {}", answer.text());
        let body = answer.json();
        assert_eq!(body["detail"]["transform"], id, "{body}");
        let why = body["detail"]["reason"].as_str().unwrap();
        assert!(why.contains(reason), "{id}: {why}");
        // Nothing of the batch was stored, and the host answers as before.
        assert_eq!(get(&host.url("/fetch/sample")).status, 404, "{id}");
        assert_eq!(get(&host.url("/fetch/devices")).status, 200, "{id}");
        assert!(host.is_alive(), "{id}");
        // A budget of a few ms per batch: even the loop is stopped quickly.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{id}"
        );
    }
}

#[test]
fn a_rejected_mqtt_batch_goes_to_the_dead_letters_naming_the_transform() {
    let dir = TempDir::new().unwrap();
    let components = component_entry("endless", "faulty", &[("mode", "loop")], None);
    let manifest = manifest(dir.path(), &["endless"], &components);
    let host = Host::start_with(&manifest, &dir.path().join("data"), &[]);
    let mut publisher = Publisher::connect(host.mqtt_port, "transform-dead-letter");
    publisher.publish("devices/sample/telemetry", 1, sample_payload());
    let rejected = wait_for_rows(&host, "_rejected", 1);
    let error = rejected[0]["error"].as_str().unwrap();
    assert!(
        error.contains("endless") && error.contains("ran out of fuel"),
        "{error}"
    );
    assert_eq!(get(&host.url("/fetch/sample")).status, 404);
}

#[test]
fn enabling_a_transform_in_the_running_hosts_manifest_takes_effect_without_a_restart() {
    let dir = TempDir::new().unwrap();
    let components = component_entry("fahrenheit-to-celsius", "fahrenheit_to_celsius", &[], None);
    let path = manifest(dir.path(), &[], &components);
    let host = Host::start_with(&path, &dir.path().join("data"), &[]);
    assert_eq!(insert_sample(&host).text(), "True");
    assert_eq!(wait_for_rows(&host, "sample", 6)[0]["temperature"], 78.0);

    manifest(dir.path(), &["fahrenheit-to-celsius"], &components);
    // The same rows, upserted through the transform once the change is live.
    let rows = wait_until("the transform to convert an insert", || {
        assert_eq!(insert_sample(&host).text(), "True");
        let rows = wait_for_rows(&host, "sample", 6);
        (rows[0]["temperature"] != 78.0).then_some(rows)
    });
    assert!(close(&rows[0]["temperature"], 25.56, 0.01), "{}", rows[0]);
    assert_eq!(rows.len(), 6);
    host.wait_for_log(
        "transform chain changed component=insert old=[] new=[fahrenheit-to-celsius]",
        1,
    );
    host.wait_for_log(
        "transform loaded transform=fahrenheit-to-celsius sha256=",
        1,
    );
}

/// The value of `field=` in the first line of `log` holding `line`.
fn field<'a>(log: &'a str, line: &str, field: &str) -> &'a str {
    let found = log.lines().find(|l| l.contains(line)).expect(line);
    let start = found.find(&format!(" {field}=")).expect(field) + field.len() + 2;
    found[start..].split(' ').next().unwrap()
}

#[test]
fn the_scale_template_runs_and_its_author_sees_each_change_in_the_log() {
    let dir = TempDir::new().unwrap();
    // Relative: resolved against the manifest's directory, not the host's.
    std::fs::copy(
        cromflag_tests::component("scale"),
        dir.path().join("scaler.wasm"),
    )
    .unwrap();
    let scaler = |factor: &str| {
        format!(
            "[component.scaler]\nsource = \"scaler.wasm\"\n[component.scaler.variables]\n\
             column = \"temperature\"\nfactor = {factor:?}\noffset = \"1\"\n"
        )
    };
    let path = manifest(dir.path(), &["scaler"], &scaler("2"));
    let host = Host::start_with(&path, &dir.path().join("data"), &[]);
    assert_eq!(insert_sample(&host).text(), "True");
    let rows = wait_for_rows(&host, "sample", 6);
    for (row, (_, f, _)) in rows.iter().zip(sample_readings()) {
        assert!(
            close(&row["temperature"], f * 2.0 + 1.0, 1e-3),
            "{row} for {f}"
        );
    }
    host.wait_for_log("transform loaded transform=scaler sha256=", 1);
    let loaded = field(&host.log(), "transform loaded transform=scaler", "sha256").to_owned();
    assert_eq!(loaded.len(), 12, "{loaded}");

    // Misconfigured: every batch is rejected, and each rejection is logged.
    manifest(dir.path(), &["scaler"], &scaler("two"));
    let refused = wait_until("the misconfiguration to be live", || {
        let answer = insert_sample(&host);
        (answer.status == 422).then(|| answer.json())
    });
    assert_eq!(refused["detail"]["transform"], "scaler", "{refused}");
    host.wait_for_log(
        "transform rejected a batch transform=scaler device=sample reason=refused the batch: \
         scale is misconfigured: the variable `factor` is \"two\"",
        1,
    );
    let log = host.log();
    let warn = log
        .lines()
        .find(|l| l.contains("transform rejected a batch"))
        .unwrap();
    assert!(warn.contains("WARN"), "{warn}");
    assert!(
        !log.contains("transform chain changed"),
        "the chain is the same:\n{log}"
    );

    // Rebuilt: another build in the same file (faulty, which passes batches
    // through when its `mode` is unset) replaces it, logged with both hashes.
    std::fs::copy(
        cromflag_tests::component("faulty"),
        dir.path().join("scaler.wasm"),
    )
    .unwrap();
    wait_until("the new build to be live", || {
        (insert_sample(&host).status == 200).then_some(())
    });
    host.wait_for_log("transform swapped transform=scaler", 1);
    let log = host.log();
    assert_eq!(
        field(&log, "transform swapped transform=scaler", "old"),
        loaded
    );
    let new = field(&log, "transform swapped transform=scaler", "new");
    assert!(new.len() == 12 && new != loaded, "{new} after {loaded}");
    assert_eq!(log.matches("transform swapped").count(), 1, "{log}");

    // Disabled: the chain's old and new lists.
    manifest(dir.path(), &[], &scaler("2"));
    host.wait_for_log(
        "transform chain changed component=insert old=[scaler] new=[]",
        1,
    );
}

#[test]
fn a_batch_as_large_as_the_body_limit_fits_the_default_budgets() {
    let dir = TempDir::new().unwrap();
    let host = three_example_chain(dir.path(), "100");
    let rows: Vec<Value> = (0..8000)
        .map(|i| {
            serde_json::json!({
                "timestamp": 1_600_000_000_000i64 + i * 1000,
                "temperature": 70.0 + (i % 20) as f64,
                "humidity": 50.0 + (i % 30) as f64,
                "motion": false,
                "illuminance": 100.0,
            })
        })
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({
        "deviceinfo": {"deviceid": "big"},
        "tsdata": rows,
    }))
    .unwrap();
    assert!(body.len() < 1 << 20, "under the default body limit");
    let answer = cromflag_tests::post(&host.url("/insert/big"), "application/json", &body);
    assert_eq!((answer.status, answer.text().as_str()), (200, "True"));
    let stored = cromflag_tests::get(&host.url("/fetch/big?limit=10000")).json();
    assert_eq!(stored.as_array().unwrap().len(), 8000);
    assert!(stored[0]["dew_point"].is_number());
}
