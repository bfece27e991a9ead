//! Grafana against the real binary: the JSON-datasource protocol under
//! `/grafana` (request shapes from simPod's openapi.yaml and SimpleJSON's
//! README), and the request Infinity makes of `/fetch`.

use cromflag_tests::{get, insert_sample, insert_sample_as, post, sample_payload, Host};
use serde_json::{json, Value};
use tempfile::TempDir;

fn grafana(host: &Host, path: &str, body: Value) -> Value {
    let answer = post(
        &host.url(&format!("/grafana{path}")),
        "application/json",
        body.to_string().as_bytes(),
    );
    assert_eq!(answer.status, 200, "{path}: {}", answer.text());
    assert!(answer.content_type.starts_with("application/json"));
    answer.json()
}

/// The `value`s (`<device>.<column>`) of a `/metrics` answer.
fn metric_values(metrics: &Value) -> Vec<&str> {
    let metrics = metrics.as_array().expect("an array of metrics");
    metrics
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect()
}

/// `POST /variable` for a device: its numeric columns, as Grafana's variables.
fn variable_columns(host: &Host, device: &str) -> Vec<Value> {
    let columns = grafana(
        host,
        "/variable",
        json!({ "payload": { "target": device } }),
    );
    columns.as_array().cloned().expect("an array of values")
}

fn sample_host(dir: &TempDir) -> Host {
    let host = Host::start(dir.path());
    assert_eq!(insert_sample(&host).status, 200);
    host
}

/// A `/query` request as Grafana sends it (openapi.yaml's fields), over Feb 18 2020.
fn query_request(targets: Value, max_points: u64) -> Value {
    json!({
        "panelId": 1,
        "range": {
            "from": "2020-02-18T00:00:00.000Z",
            "to": "2020-02-18T23:59:59.999Z",
            "raw": { "from": "2020-02-18T00:00:00.000Z", "to": "2020-02-18T23:59:59.999Z" }
        },
        "rangeRaw": { "from": "2020-02-18T00:00:00.000Z", "to": "2020-02-18T23:59:59.999Z" },
        "interval": "30s",
        "intervalMs": 30000,
        "maxDataPoints": max_points,
        "targets": targets,
        "scopedVars": { "__interval": { "text": "30s", "value": "30s" }, "__interval_ms": { "text": 30000, "value": 30000 } },
        "adhocFilters": []
    })
}

#[test]
fn query_returns_the_stored_rows_as_datapoints() {
    let dir = TempDir::new().unwrap();
    let host = sample_host(&dir);
    let answer = grafana(
        &host,
        "/query",
        query_request(
            json!([{ "target": "sample.temperature", "refId": "A" }]),
            1000,
        ),
    );
    let doc: Value = serde_json::from_slice(&sample_payload()).unwrap();
    let stored: Vec<Value> = doc["tsdata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!([r["temperature"], r["timestamp"]]))
        .collect();
    assert_eq!(
        answer,
        json!([{ "target": "sample.temperature", "refId": "A", "datapoints": stored }])
    );

    // Fewer points than rows: buckets of the fetch API, averaged. Three points
    // over the day are 8 h buckets; the six rows fall in one: 79.5.
    let bucketed = grafana(
        &host,
        "/query",
        query_request(json!([{ "target": "sample.temperature", "refId": "A" }]), 3),
    );
    assert_eq!(
        bucketed[0]["datapoints"].as_array().unwrap().len(),
        1,
        "{bucketed}"
    );
    assert_eq!(bucketed[0]["datapoints"][0][0], json!(79.5));
    let max = grafana(
        &host,
        "/query",
        query_request(
            json!([{ "target": "sample.temperature", "refId": "A", "payload": { "agg": "max" } }]),
            3,
        ),
    );
    assert_eq!(max[0]["datapoints"][0][0], json!(82.0));

    // A table target: the device's rows with typed columns.
    let table = grafana(
        &host,
        "/query",
        query_request(
            json!([{ "target": "sample", "refId": "B", "type": "table" }]),
            1000,
        ),
    );
    assert_eq!(table[0]["type"], "table");
    assert_eq!(
        table[0]["columns"][0],
        json!({ "text": "Time", "type": "time" })
    );
    assert!(table[0]["columns"]
        .as_array()
        .unwrap()
        .contains(&json!({ "text": "motion", "type": "boolean" })));
    assert_eq!(table[0]["rows"].as_array().unwrap().len(), 6);
    assert_eq!(table[0]["rows"][0][0], json!(1582046738255i64));

    // Ad hoc filters on `device` keep only that device's targets.
    let mut filtered = query_request(
        json!([{ "target": "sample.temperature", "refId": "A" }]),
        1000,
    );
    filtered["adhocFilters"] = json!([{ "key": "device", "operator": "=", "value": "other" }]);
    assert_eq!(grafana(&host, "/query", filtered), json!([]));

    // Errors name what is wrong.
    let bad = post(&host.url("/grafana/query"), "application/json", br#"{"targets":[{"target":"sample.nope"}],"range":{"from":"2020-02-18T00:00:00Z","to":"2020-02-19T00:00:00Z"}}"#);
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["detail"]["column"], "nope");
    assert_eq!(
        post(
            &host.url("/grafana/query"),
            "application/json",
            b"{not json"
        )
        .status,
        400
    );
}

#[test]
fn discovery_endpoints_answer_the_documented_shapes() {
    let dir = TempDir::new().unwrap();
    let host = sample_host(&dir);
    let health = get(&host.url("/grafana"));
    assert_eq!(health.status, 200);
    assert_eq!(get(&host.url("/grafana/")).status, 200);

    let metrics = grafana(&host, "/metrics", json!({ "metric": "", "payload": {} }));
    let values = metric_values(&metrics);
    for column in [
        "day",
        "dayofweek",
        "hour",
        "humidity",
        "illuminance",
        "month",
        "temperature",
    ] {
        assert!(
            values.contains(&format!("sample.{column}").as_str()),
            "{values:?}"
        );
    }
    assert!(
        !values.iter().any(|v| v.ends_with(".motion")),
        "BOOL is not a metric"
    );
    let payloads = &metrics[0]["payloads"][0];
    assert_eq!(
        (payloads["name"].as_str(), payloads["type"].as_str()),
        (Some("agg"), Some("select"))
    );

    let options = grafana(
        &host,
        "/metric-payload-options",
        json!({ "metric": "sample.temperature", "payload": {}, "name": "agg" }),
    );
    assert!(options
        .as_array()
        .unwrap()
        .contains(&json!({ "label": "max", "value": "max" })));

    assert_eq!(
        grafana(
            &host,
            "/variable",
            json!({ "payload": { "target": "devices" }, "range": {} })
        ),
        json!([{ "__text": "sample", "__value": "sample" }])
    );
    let columns = variable_columns(&host, "sample");
    assert!(columns.contains(&json!({ "__text": "temperature", "__value": "temperature" })));
    assert_eq!(
        grafana(&host, "/tag-keys", json!({})),
        json!([{ "type": "string", "text": "device" }])
    );
    assert_eq!(
        grafana(&host, "/tag-values", json!({ "key": "device" })),
        json!([{ "text": "sample" }])
    );
    assert_eq!(
        grafana(&host, "/search", json!({ "target": "temp" })),
        json!(["sample.temperature"])
    );
}

#[test]
fn annotations_mark_motion_and_low_battery() {
    let dir = TempDir::new().unwrap();
    let host = sample_host(&dir);
    // A later document from the same device reports a low battery.
    let low = json!({
        "deviceinfo": { "deviceid": "sample", "batt_lvl": 12, "fw_ver": "12345.009" },
        "tsdata": [{ "timestamp": 1582050000000i64, "temperature": 70.0, "motion": false }]
    });
    assert_eq!(
        post(
            &host.url("/insert/sample"),
            "application/json",
            low.to_string().as_bytes()
        )
        .status,
        200
    );
    let request = |query: &str| {
        json!({
            "range": { "from": "2020-02-18T00:00:00.000Z", "to": "2020-02-18T23:59:59.999Z" },
            "rangeRaw": { "from": "now-1d", "to": "now" },
            "annotation": { "name": "events", "datasource": "cromflag", "enable": true, "iconColor": "red", "query": query }
        })
    };
    let motion = grafana(&host, "/annotations", request("motion sample"));
    assert_eq!(motion.as_array().unwrap().len(), 1, "{motion}");
    assert_eq!(motion[0]["time"], json!(1582046768255i64));
    assert_eq!(motion[0]["title"], "Motion");
    assert_eq!(motion[0]["annotation"]["name"], "events");
    let battery = grafana(&host, "/annotations", request("battery sample"));
    assert_eq!(battery.as_array().unwrap().len(), 1, "{battery}");
    assert_eq!(battery[0]["time"], json!(1582050000000i64));
    assert!(battery[0]["text"].as_str().unwrap().contains("12"));
    assert_eq!(
        grafana(&host, "/annotations", request("sample"))
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// Metrics, queries, variables and annotations name devices by their ids,
/// whatever their containers: ids with a `.`, Unicode, and ids that differ
/// only by case.
#[test]
fn devices_are_named_by_their_ids() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    let ids = ["sensor.kitchen", "capteur-été", "Sample", "sample"];
    for id in ids {
        assert_eq!(insert_sample_as(&host, id).status, 200, "{id}");
    }
    let metrics = grafana(&host, "/metrics", json!({}));
    let values = metric_values(&metrics);
    for id in ids {
        assert!(
            values.contains(&format!("{id}.temperature").as_str()),
            "{values:?}"
        );
    }
    let targets: Vec<Value> = ids
        .iter()
        .map(|id| json!({ "target": format!("{id}.temperature"), "refId": id }))
        .collect();
    let series = grafana(&host, "/query", query_request(json!(targets), 1000));
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(series[i]["target"], format!("{id}.temperature"));
        assert_eq!(series[i]["datapoints"].as_array().unwrap().len(), 6, "{id}");
    }
    // A table target names the device alone, `.` and all.
    let table = grafana(
        &host,
        "/query",
        query_request(
            json!([{ "target": "sensor.kitchen", "type": "table", "refId": "T" }]),
            1000,
        ),
    );
    assert_eq!(table[0]["rows"].as_array().unwrap().len(), 6, "{table}");
    // Ad hoc filters compare ids exactly: `Sample` is not `sample`.
    let mut filtered = query_request(json!(targets), 1000);
    filtered["adhocFilters"] = json!([{ "key": "device", "operator": "=", "value": "Sample" }]);
    let kept = grafana(&host, "/query", filtered);
    assert_eq!(kept.as_array().unwrap().len(), 1, "{kept}");
    assert_eq!(kept[0]["target"], "Sample.temperature");
    let columns = variable_columns(&host, "capteur-été");
    assert!(columns.contains(&json!({ "__text": "temperature", "__value": "temperature" })));
    let annotation = json!({
        "range": { "from": "2020-02-18T00:00:00.000Z", "to": "2020-02-18T23:59:59.999Z" },
        "annotation": { "name": "events", "query": "motion capteur-été" }
    });
    let motion = grafana(&host, "/annotations", annotation);
    assert_eq!(motion.as_array().unwrap().len(), 1, "{motion}");
    assert_eq!(motion[0]["tags"], json!(["motion", "capteur-été"]));
}

/// What Infinity's backend parser reads of a time-series query: the URL with
/// `${__from}`, `${__to}` and `${__interval_ms}` filled in, then an array of
/// objects whose `timestamp` is epoch ms (`timestamp_epoch`) and whose value
/// columns are numbers.
#[test]
fn an_infinity_time_series_query_reads_fetch() {
    let dir = TempDir::new().unwrap();
    let host = sample_host(&dir);
    let (from, to, interval_ms) = (1581984000000i64, 1582070399999i64, 20000);
    let url = format!("/fetch/sample?from={from}&to={to}&agg=avg&interval={interval_ms}ms&columns=temperature,humidity");
    let rows = get(&host.url(&url)).json();
    let rows = rows.as_array().expect("a JSON array at the root");
    assert!(!rows.is_empty());
    for row in rows {
        let object = row.as_object().unwrap();
        assert!(object["timestamp"].is_i64(), "{row}");
        assert!(
            object["temperature"].is_f64() && object["humidity"].is_f64(),
            "{row}"
        );
    }
    // The variable query Infinity makes for the device picker.
    let devices = get(&host.url("/fetch/devices")).json();
    assert_eq!(devices[0]["deviceid"], "sample");
}

/// The shipped dashboard's Infinity queries, with Grafana's variables filled in,
/// work against the stack and yield the columns they select.
#[test]
fn the_shipped_dashboard_queries_work() {
    let dir = TempDir::new().unwrap();
    let host = sample_host(&dir);
    let text = std::fs::read_to_string(
        cromflag_tests::repo_root().join("grafana/dashboards/cromflag.json"),
    )
    .unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            assert_eq!(target["datasource"]["uid"], "cromflag-infinity");
            let mut url = target["url"]
                .as_str()
                .unwrap()
                .replace("${device}", "sample");
            let params: Vec<String> = target["url_options"]["params"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|p| {
                    let value = p["value"]
                        .as_str()
                        .unwrap()
                        .replace("${__from}", "1581984000000")
                        .replace("${__to}", "1582070399999")
                        .replace("${__interval_ms}", "60000");
                    format!("{}={value}", p["key"].as_str().unwrap())
                })
                .collect();
            if !params.is_empty() {
                url = format!("{url}?{}", params.join("&"));
            }
            let answer = get(&host.url(&url));
            assert_eq!(answer.status, 200, "{url}: {}", answer.text());
            let rows = answer.json();
            let first = &rows.as_array().unwrap()[0];
            for column in target["columns"].as_array().unwrap() {
                let selector = column["selector"].as_str().unwrap();
                assert!(
                    !first[selector].is_null(),
                    "{url}: no `{selector}` in {first}"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 4);
}
