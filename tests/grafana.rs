//! Grafana against the real binary: the JSON-datasource protocol under
//! `/grafana` (request shapes from simPod's openapi.yaml and SimpleJSON's
//! README), and the request Infinity makes of `/fetch`.

use cromflag_tests::grafana::{self, Format, VarValue};
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

/// The sample, then a later document from the same device reporting a battery at 12 %.
fn host_with_low_battery(dir: &TempDir) -> Host {
    let host = sample_host(dir);
    let low = json!({
        "deviceinfo": { "deviceid": "sample", "batt_lvl": 12, "fw_ver": "12345.009" },
        "tsdata": [{ "timestamp": 1582050000000i64, "temperature": 70.0, "motion": false }]
    });
    let stored = post(
        &host.url("/insert/sample"),
        "application/json",
        low.to_string().as_bytes(),
    );
    assert_eq!(stored.status, 200, "{}", stored.text());
    host
}

#[test]
fn annotations_mark_motion_and_low_battery() {
    let dir = TempDir::new().unwrap();
    let host = host_with_low_battery(&dir);
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

/// The device variable at fleet size: simpod's variable query lists at most
/// 1,000 devices, and narrows them by a search (`devices/<text>`, or with
/// "Raw JSON" `search` and `limit`), typically a text-box variable's value
/// interpolated as simpod does (`regex` or `json`). `/tag-values` and legacy
/// `/search` answer device ids the same way.
#[test]
fn the_device_variable_is_searched_and_capped() {
    let dir = TempDir::new().unwrap();
    let host = Host::start(dir.path());
    let mut ids: Vec<String> = (0..30).map(|i| format!("dev-{i:02}")).collect();
    ids.extend(["sensor.kitchen", "kitchen (old)", "100%"].map(String::from));
    for id in &ids {
        assert_eq!(insert_sample_as(&host, id).status, 200, "{id}");
    }
    ids.sort();
    let range = json!({ "from": "2020-02-18T00:00:00.000Z", "to": "2020-02-18T23:59:59.999Z", "raw": { "from": "now-24h", "to": "now" } });
    let values = |answer: Value| -> Vec<String> {
        answer
            .as_array()
            .expect("an array")
            .iter()
            .map(|v| {
                assert_eq!(v["__text"], v["__value"], "{v}");
                v["__value"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    let variable = |query: &str, raw_json: bool, filter: &str| {
        let vars = [("filter", VarValue::One(filter.to_owned()))];
        let body = grafana::simpod_variable_request(query, raw_json, &vars, &range);
        values(grafana(&host, "/variable", body))
    };
    assert_eq!(variable("devices", false, ""), ids);
    // A text-box variable `filter` in the query text.
    assert_eq!(
        variable("devices/$filter", false, "sensor.kit"),
        ["sensor.kitchen"]
    );
    assert_eq!(
        variable("devices/$filter", false, "kitchen ("),
        ["kitchen (old)"]
    );
    assert_eq!(variable("devices/$filter", false, "%"), ["100%"]);
    assert_eq!(
        variable("devices/$filter", false, "dev-1"),
        ids[11..21].to_vec()
    );
    let raw = r#"{"target": "devices", "search": $filter, "limit": 3}"#;
    assert_eq!(variable(raw, true, "dev-2"), ["dev-20", "dev-21", "dev-22"]);
    assert_eq!(variable(raw, true, ""), ids[..3].to_vec());
    assert_eq!(
        variable(
            r#"{"target": "devices", "search": $filter}"#,
            true,
            "kitchen"
        ),
        ["kitchen (old)", "sensor.kitchen"]
    );
    // A device's columns, as before.
    assert!(variable("sensor.kitchen", false, "").contains(&"temperature".to_owned()));
    // A limit past the cap, or not a number, is a 400 naming the field.
    for (payload, field) in [
        (
            json!({ "target": "devices", "limit": 1001 }),
            "payload.limit",
        ),
        (
            json!({ "target": "devices", "limit": "all" }),
            "payload.limit",
        ),
        (
            json!({ "target": "devices", "search": ["a", "b"] }),
            "payload.search",
        ),
    ] {
        let answer = post(
            &host.url("/grafana/variable"),
            "application/json",
            json!({ "payload": payload, "range": range })
                .to_string()
                .as_bytes(),
        );
        assert_eq!(answer.status, 400, "{payload}: {}", answer.text());
        assert_eq!(answer.json()["detail"]["field"], field, "{}", answer.text());
    }
    let tags = grafana(&host, "/tag-values", json!({ "key": "device" }));
    assert_eq!(tags.as_array().unwrap().len(), ids.len());
    assert_eq!(tags[0], json!({ "text": ids[0] }));
    // Legacy `/search` (simpod's `metricFindQuery` before `/variable`).
    assert_eq!(
        grafana(
            &host,
            "/search",
            json!({ "type": "query", "target": "devices/dev-0" })
        ),
        json!([
            "dev-00", "dev-01", "dev-02", "dev-03", "dev-04", "dev-05", "dev-06", "dev-07",
            "dev-08", "dev-09"
        ])
    );
    assert_eq!(
        grafana(&host, "/search", json!({ "target": "sensor.kitchen.temp" })),
        json!(["sensor.kitchen.temperature"])
    );
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

/// The shipped dashboard, run as Grafana runs it. The device variable's query
/// goes through Infinity's `migrateLegacyQuery` (a query without the
/// `queryType: "infinity"` wrapper would become an empty legacy query: no
/// devices) and its `interpolateQuery` / `GetQueryURL`; its first value is the
/// variable's value; every panel query, interpolated with it in `glob` as
/// Infinity does, answers rows with the columns it selects, typed as declared.
/// (Sources: see `cromflag_tests::grafana`.)
#[test]
fn the_shipped_dashboard_works_as_infinity_runs_it() {
    let dir = TempDir::new().unwrap();
    let host = sample_host(&dir);
    let dashboard = shipped_dashboard();
    let variable = &dashboard["templating"]["list"][0];
    assert_eq!(variable["name"], "device");
    assert_eq!(variable["datasource"]["type"], INFINITY);
    let migrated = grafana::migrate_legacy_variable_query(&variable["query"]);
    assert_eq!(migrated["queryType"], "infinity", "{migrated}");
    let query = &migrated["infinityQuery"];
    let path = grafana::infinity_request_path(query, &[]);
    let devices: Vec<Value> = infinity_rows(&host, query, &path)
        .iter()
        .map(|row| row[query["columns"][0]["selector"].as_str().unwrap()].clone())
        .collect();
    assert_eq!(devices, [json!("sample")]);

    // Grafana picks the first value; the range is Feb 18 2020, 60 s per point.
    let vars = [
        (
            "device",
            VarValue::One(devices[0].as_str().unwrap().to_owned()),
        ),
        ("__from", VarValue::One("1581984000000".into())),
        ("__to", VarValue::One("1582070400000".into())),
        ("__interval_ms", VarValue::One("60000".into())),
    ];
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        assert_eq!(panel["datasource"]["type"], INFINITY);
        for target in panel["targets"].as_array().unwrap() {
            // The fields Infinity's current editor saves for a backend JSON query.
            assert_eq!(
                (&target["type"], &target["source"], &target["parser"]),
                (&json!("json"), &json!("url"), &json!("backend")),
                "{target}"
            );
            assert!(
                target["format"] == "timeseries" || target["format"] == "table",
                "{target}"
            );
            assert_eq!(target["url_options"]["method"], "GET");
            let path = grafana::infinity_request_path(target, &vars);
            let rows = infinity_rows(&host, target, &path);
            assert!(!rows.is_empty(), "{path}: no rows");
            checked += 1;
        }
    }
    assert_eq!(checked, 4);
}

/// The shipped dashboard with several devices picked, and with "All": the
/// variable is multi-value with "All" and no `allValue`, so Grafana renders
/// either as `{sample,sensor.kitchen}` (`glob`, Infinity's format) and Go sends
/// it as `%7Bsample,sensor.kitchen%7D`. Every time-series panel gets the rows
/// of both devices, each with its `device` (a string column of the panel), in
/// ascending time: the long frame Infinity's backend parser turns into a series
/// per device (`PostProcessFrame`, grafana-infinity-datasource
/// pkg/infinity/postprocess.go: for format `timeseries`, a long frame goes
/// through the SDK's `data.LongToWide`, whose string fields become labels and
/// which needs the time field sorted ascending). A device's rows are those it
/// answers alone.
#[test]
fn the_shipped_dashboard_gives_a_series_per_device_for_several_and_all() {
    let dir = TempDir::new().unwrap();
    let host = sample_host(&dir);
    assert_eq!(insert_sample_as(&host, "sensor.kitchen").status, 200);
    let dashboard = shipped_dashboard();
    let variable = &dashboard["templating"]["list"][0];
    assert_eq!(
        (&variable["multi"], &variable["includeAll"]),
        (&json!(true), &json!(true)),
        "{variable}"
    );
    assert!(
        variable.get("allValue").is_none_or(Value::is_null),
        "{variable}"
    );
    let migrated = grafana::migrate_legacy_variable_query(&variable["query"]);
    let query = &migrated["infinityQuery"];
    let path = grafana::infinity_request_path(query, &[]);
    let selector = query["columns"][0]["selector"].as_str().unwrap();
    let mut all: Vec<String> = infinity_rows(&host, query, &path)
        .iter()
        .map(|row| row[selector].as_str().unwrap().to_owned())
        .collect();
    all.sort();
    assert_eq!(all, ["sample", "sensor.kitchen"]);
    let range = |device: VarValue| {
        [
            ("device", device),
            ("__from", VarValue::One("1581984000000".into())),
            ("__to", VarValue::One("1582070400000".into())),
            ("__interval_ms", VarValue::One("60000".into())),
        ]
    };
    let picked = VarValue::Many(vec!["sample".into(), "sensor.kitchen".into()]);
    for value in [picked, VarValue::Many(all.clone())] {
        let vars = range(value);
        let mut checked = 0;
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                if target["format"] != "timeseries" {
                    continue;
                }
                let path = grafana::infinity_request_path(target, &vars);
                assert!(
                    path.starts_with("/fetch/%7Bsample,sensor.kitchen%7D?"),
                    "{path}"
                );
                let rows = infinity_rows(&host, target, &path);
                let times: Vec<i64> = rows
                    .iter()
                    .map(|row| row["timestamp"].as_i64().unwrap())
                    .collect();
                assert!(times.windows(2).all(|w| w[0] <= w[1]), "{path}: {times:?}");
                let mut listed_rows = 0;
                for device in &all {
                    let alone = range(VarValue::One(device.clone()));
                    let alone = infinity_rows(
                        &host,
                        target,
                        &grafana::infinity_request_path(target, &alone),
                    );
                    assert!(!alone.is_empty(), "{device}");
                    let listed: Vec<Value> = rows
                        .iter()
                        .filter(|row| row["device"] == json!(device))
                        .map(|row| {
                            let mut row = row.clone();
                            row.as_object_mut().unwrap().remove("device");
                            row
                        })
                        .collect();
                    assert_eq!(listed, alone, "{path}: {device}");
                    listed_rows += listed.len();
                }
                assert_eq!(rows.len(), listed_rows, "{path}");
                checked += 1;
            }
        }
        assert_eq!(checked, 3);
    }
}

const INFINITY: &str = "yesoreyeram-infinity-datasource";
const SIMPOD: &str = "simpod-json-datasource";

fn shipped_dashboard() -> Value {
    let path = cromflag_tests::repo_root().join("grafana/dashboards/cromflag.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The rows an Infinity backend query reads at `path`: the root array (the
/// dashboard sets no `root_selector`), each with every declared column, an
/// epoch-ms integer for `timestamp_epoch`, a number for `number`.
fn infinity_rows(host: &Host, query: &Value, path: &str) -> Vec<Value> {
    assert_eq!(query["root_selector"], "", "{query}");
    let answer = get(&host.url(path));
    assert_eq!(answer.status, 200, "{path}: {}", answer.text());
    let rows = answer.json().as_array().cloned().expect("a root array");
    for row in &rows {
        for column in query["columns"].as_array().unwrap() {
            let value = &row[column["selector"].as_str().unwrap()];
            let typed = match column["type"].as_str().unwrap() {
                "timestamp_epoch" => value.is_i64(),
                "number" => value.is_number(),
                // A single device's rows carry no `device` (the fetch API as
                // it was): Infinity's parser reads the missing field as null,
                // which the SDK's `data.LongToWide` takes as the label ""
                // (grafana-plugin-sdk-go data/time_series.go): one series.
                "string" if column["selector"] == "device" && !path.contains("%7B") => {
                    value.is_null()
                }
                "string" => value.is_string(),
                other => panic!("a column type the dashboard should not use: {other}"),
            };
            assert!(typed, "{path}: {column} in {row}");
        }
    }
    rows
}

/// Grafana's `glob` and `regex` formats, as the tests' interpolation renders them.
#[test]
fn interpolation_follows_the_format_registry() {
    let one = [("device", VarValue::One("sensor.kitchen".into()))];
    let glob = |text: &str, vars: grafana::Vars| grafana::interpolate(text, vars, Format::Glob);
    let regex = |text: &str, vars: grafana::Vars| grafana::interpolate(text, vars, Format::Regex);
    assert_eq!(glob("${device}.t", &one), "sensor.kitchen.t");
    assert_eq!(regex("$device.t", &one), "sensor\\.kitchen.t");
    let many = [("device", VarValue::Many(vec!["a".into(), "b".into()]))];
    assert_eq!(glob("/fetch/${device}", &many), "/fetch/{a,b}");
    assert_eq!(regex("${device}.t", &many), "(a|b).t");
    assert_eq!(regex("$nobody", &many), "$nobody");
}

/// A `/query` request as Grafana's annotation support makes it for a
/// dashboard's annotation entry: `standardAnnotationSupport.ts` turns the
/// entry into its query, simpod's `processTargets` keeps it only if it has a
/// `target` and interpolates it (`regex` format), over Feb 18 2020.
fn simpod_annotation_request(annotation: &Value, vars: grafana::Vars) -> Value {
    let query = grafana::annotation_query(annotation);
    let targets = grafana::simpod_targets(&[query], vars);
    assert_eq!(targets.len(), 1, "simpod drops {annotation}: no `target`");
    query_request(json!(targets), 1000)
}

/// The events Grafana's `getAnnotationsFromData` makes of `/query`'s answer:
/// the time field (by name, else the first `time` field) and the text field
/// (by name, else the first `string` field) must both exist, or there are none.
/// Returns `(time, text)` of each row.
fn annotation_events(answer: &Value) -> Vec<(i64, String)> {
    let frames = answer.as_array().unwrap();
    assert_eq!(frames.len(), 1, "{answer}");
    let frame = &frames[0];
    assert_eq!(frame["type"], "table", "{frame}");
    let columns = frame["columns"].as_array().unwrap();
    let find = |name: &str, kind: &str| {
        let by_name = columns
            .iter()
            .position(|c| c["text"].as_str().unwrap().eq_ignore_ascii_case(name));
        by_name.or_else(|| columns.iter().position(|c| c["type"] == kind))
    };
    let time = find("time", "time").expect("a time field");
    let text = find("text", "string").expect("a text field");
    assert_eq!(columns[time]["type"], "time");
    assert_eq!(columns[text]["type"], "string");
    frame["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let text = row[text].as_str().expect("the text is a string");
            (row[time].as_i64().expect("epoch ms"), text.to_owned())
        })
        .collect()
}

/// Must show: the shipped dashboard's motion annotation, run as Grafana and
/// simpod run it for `sample` over Feb 18 2020, answers the motion event as a
/// table with a time and a string text column; its low-battery annotation
/// answers the document that reported 12 %.
#[test]
fn the_shipped_dashboard_annotations_work_as_simpod_runs_them() {
    let dir = TempDir::new().unwrap();
    let host = host_with_low_battery(&dir);
    let dashboard = shipped_dashboard();
    let annotations = dashboard["annotations"]["list"].as_array().unwrap();
    let vars = [("device", VarValue::One("sample".into()))];
    let mut found = Vec::new();
    for annotation in annotations {
        assert_eq!(annotation["datasource"]["type"], SIMPOD);
        let request = simpod_annotation_request(annotation, &vars);
        let answer = grafana(&host, "/query", request);
        found.push((annotation["name"].clone(), annotation_events(&answer)));
    }
    assert_eq!(
        found,
        [
            (
                json!("Motion"),
                vec![(1582046768255, "sample: motion detected".to_owned())]
            ),
            (
                json!("Low battery"),
                vec![(1582050000000, "sample: battery 12 (below 20)".to_owned())]
            ),
            // No alarm was raised (no inactivity timeout here).
            (json!("Alarms"), vec![]),
        ]
    );
    // Tags come as one comma-separated string: Grafana splits them on `,`.
    let motion = grafana(
        &host,
        "/query",
        simpod_annotation_request(&annotations[0], &vars),
    );
    assert_eq!(
        motion[0]["columns"][3],
        json!({ "text": "Tags", "type": "string" })
    );
    assert_eq!(motion[0]["rows"][0][3], "motion,sample");
}

/// A multi-value (or "All") device variable: simpod sends `(a|b)` (`regex`),
/// SimpleJSON `{a,b}` (`glob`); either stands for a series per device, and
/// an annotation target for the events of each.
#[test]
fn multi_value_variables_give_a_series_per_device() {
    let dir = TempDir::new().unwrap();
    let host = sample_host(&dir);
    assert_eq!(insert_sample_as(&host, "sensor.kitchen").status, 200);
    let both = [(
        "device",
        VarValue::Many(vec!["sample".into(), "sensor.kitchen".into()]),
    )];
    let panel = [json!({ "target": "$device.temperature", "refId": "A" })];
    let simpod = grafana::simpod_targets(&panel, &both);
    assert_eq!(simpod[0]["target"], r"(sample|sensor\.kitchen).temperature");
    let glob = grafana::interpolate("${device}.temperature", &both, Format::Glob);
    assert_eq!(glob, "{sample,sensor.kitchen}.temperature");
    for targets in [json!(simpod), json!([{ "target": glob, "refId": "A" }])] {
        let answer = grafana(&host, "/query", query_request(targets, 1000));
        let series: Vec<(&str, usize)> = answer
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let points = s["datapoints"].as_array().unwrap().len();
                (s["target"].as_str().unwrap(), points)
            })
            .collect();
        assert_eq!(
            series,
            [("sample.temperature", 6), ("sensor.kitchen.temperature", 6)]
        );
    }
    // One value in `regex` is escaped: `sensor\.kitchen` is that device.
    let one = [("device", VarValue::One("sensor.kitchen".into()))];
    let answer = grafana(
        &host,
        "/query",
        query_request(json!(grafana::simpod_targets(&panel, &one)), 1000),
    );
    assert_eq!(answer[0]["target"], "sensor.kitchen.temperature");
    // The motion annotation for both devices: each one's event.
    let annotation = &shipped_dashboard()["annotations"]["list"][0];
    let answer = grafana(
        &host,
        "/query",
        simpod_annotation_request(annotation, &both),
    );
    let texts: Vec<String> = annotation_events(&answer)
        .into_iter()
        .map(|e| e.1)
        .collect();
    assert_eq!(
        texts,
        ["sample: motion detected", "sensor.kitchen: motion detected"]
    );
    // A value no device has is still a 404 naming it.
    let none = grafana::interpolate("{sample,nobody}.temperature", &both, Format::Glob);
    let answer = post(
        &host.url("/grafana/query"),
        "application/json",
        query_request(json!([{ "target": none, "refId": "A" }]), 1000)
            .to_string()
            .as_bytes(),
    );
    assert_eq!(answer.status, 404, "{}", answer.text());
    assert_eq!(answer.json()["detail"]["device"], "nobody");
}

/// `/grafana/query` ranges are `from <= t < to`, as `/fetch`'s; a table target
/// naming a column gives that column; a BOOL column is no series; a 405 says
/// which method the path takes.
#[test]
fn query_edges_follow_the_fetch_api() {
    let dir = TempDir::new().unwrap();
    let host = sample_host(&dir);
    let (first, last) = (1582046738255i64, 1582046788255i64);
    let iso = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let mut request = query_request(
        json!([{ "target": "sample.temperature", "refId": "A" }]),
        1000,
    );
    request["range"] = json!({ "from": iso(first), "to": iso(last) });
    let points = grafana(&host, "/query", request.clone());
    let times: Vec<i64> = points[0]["datapoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_i64().unwrap())
        .collect();
    assert_eq!(times.first(), Some(&first));
    assert_eq!(times.len(), 5, "the row at `to` is out: {times:?}");
    let fetched = get(&host.url(&format!("/fetch/sample?from={first}&to={last}"))).json();
    assert_eq!(fetched.as_array().unwrap().len(), times.len());

    let table = grafana(
        &host,
        "/query",
        query_request(
            json!([{ "target": "sample.temperature", "refId": "T", "type": "table" }]),
            1000,
        ),
    );
    assert_eq!(
        table[0]["columns"],
        json!([{ "text": "Time", "type": "time" }, { "text": "temperature", "type": "number" }])
    );
    assert_eq!(table[0]["rows"][0], json!([first, 78.0]));

    let boolean = post(
        &host.url("/grafana/query"),
        "application/json",
        query_request(json!([{ "target": "sample.motion", "refId": "A" }]), 1000)
            .to_string()
            .as_bytes(),
    );
    assert_eq!(boolean.status, 400, "{}", boolean.text());
    assert_eq!(boolean.json()["detail"]["column"], "motion");

    // Buckets start on whole multiples of their width and count only the
    // rows of the range: 30 s buckets from 17:25:30.123, the first keyed 17:25:30.
    let mut counted = query_request(
        json!([{ "target": "sample.temperature", "refId": "A", "payload": { "agg": "count" } }]),
        3,
    );
    counted["range"] =
        json!({ "from": "2020-02-18T17:25:30.123Z", "to": "2020-02-18T17:26:30.123Z" });
    let buckets = grafana(&host, "/query", counted);
    let buckets: Vec<(i64, i64)> = buckets[0]["datapoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[1].as_i64().unwrap(), p[0].as_i64().unwrap()))
        .collect();
    assert_eq!(
        buckets,
        [(1582046730000, 3), (1582046760000, 3)],
        "(start, rows) of each bucket"
    );
    // The range's end is exclusive in every bucket: a 20 s range ending on a row.
    let mut clipped = query_request(
        json!([{ "target": "sample.temperature", "refId": "A", "payload": { "agg": "count" } }]),
        1,
    );
    clipped["range"] = json!({ "from": iso(first), "to": iso(first + 20_000) });
    let clipped = grafana(&host, "/query", clipped);
    assert_eq!(clipped[0]["datapoints"], json!([[2, 1582046730000i64]]));

    // Ranges beyond the TIMESTAMP range are refused without the store's words.
    let mut ancient = query_request(json!([{ "target": "sample.temperature" }]), 10);
    ancient["range"] = json!({ "from": "0001-01-01T00:00:00Z", "to": "2020-01-01T00:00:00Z" });
    let refused = post(
        &host.url("/grafana/query"),
        "application/json",
        ancient.to_string().as_bytes(),
    );
    assert_eq!(refused.status, 400);
    assert_eq!(refused.json()["detail"]["field"], "range.from");
    assert!(!refused.text().contains("TQL"), "{}", refused.text());

    let wrong_method = get(&host.url("/grafana/query"));
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.header_values("allow"), ["POST"]);
}

/// An annotation as Grafana makes it of `/query`'s table: the fields
/// `getAnnotationsFromData` (standardAnnotationSupport.ts) reads by name, any
/// case (`time`, `timeEnd`, `title`, `text`, and `tags` split on `,`; a null
/// value is left out), and `isRegion` as `translateQueryResult` sets it
/// (`Boolean(timeEnd && time !== timeEnd)`).
#[derive(Debug, PartialEq)]
struct Annotation {
    time: i64,
    time_end: Option<i64>,
    is_region: bool,
    title: String,
    text: String,
    tags: Vec<String>,
}

fn annotations_of(answer: &Value) -> Vec<Annotation> {
    let frame = &answer.as_array().unwrap()[0];
    let columns = frame["columns"].as_array().unwrap();
    let field = |name: &str| {
        columns
            .iter()
            .position(|c| c["text"].as_str().unwrap().eq_ignore_ascii_case(name))
    };
    let (time, end) = (field("time").unwrap(), field("timeEnd").unwrap());
    assert_eq!(columns[end]["type"], "time", "{frame}");
    let (title, text, tags) = (
        field("title").unwrap(),
        field("text").unwrap(),
        field("tags").unwrap(),
    );
    frame["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let time = row[time].as_i64().expect("epoch ms");
            let time_end = row[end].as_i64();
            Annotation {
                time,
                time_end,
                is_region: time_end.is_some_and(|end| end != time),
                title: row[title].as_str().unwrap().to_owned(),
                text: row[text].as_str().unwrap().to_owned(),
                tags: row[tags]
                    .as_str()
                    .unwrap()
                    .split(',')
                    .map(str::to_owned)
                    .collect(),
            }
        })
        .collect()
}

/// Must show: the inactivity alarm the host raises for `sample` (a 2 s
/// timeout, then silence) is, through the shipped dashboard's Alarms entry
/// run as Grafana and simpod run it over the last hour, one region from when
/// it was raised to the range's end while it is open, then to when it was
/// cleared once the device sends again; tagged `alarm`, `inactivity`,
/// `warning` and the device, its title and text naming rule, severity, state
/// and value.
#[test]
fn the_shipped_dashboard_shows_an_alarm_as_a_region() {
    use chrono::{Duration, SecondsFormat, Utc};
    use cromflag_tests::wait_until;
    let dir = TempDir::new().unwrap();
    let host = Host::start_inactive_after_2s(dir.path());
    assert_eq!(insert_sample(&host).status, 200);
    let alarms = |state: &str| {
        let answer = get(&host.url(&format!("/alarms?device=sample&state={state}")));
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer.json()["alarms"].as_array().unwrap().clone()
    };
    let alarm = wait_until("the inactivity alarm", || alarms("open").first().cloned());
    let raised = alarm["raised"].as_i64().unwrap();
    let value = alarm["value"].as_str().unwrap().to_owned();

    let dashboard = shipped_dashboard();
    let entry = dashboard["annotations"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "Alarms")
        .expect("an Alarms annotation")
        .clone();
    assert_eq!(entry["datasource"]["type"], SIMPOD);
    let vars = [("device", VarValue::One("sample".into()))];
    // The time picker's "Last 1 hour": ISO instants, its raw text beside them.
    let last_hour = || {
        let now = Utc::now();
        let iso = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut request = simpod_annotation_request(&entry, &vars);
        let (from, to) = (iso(now - Duration::hours(1)), iso(now));
        request["range"] =
            json!({ "from": from, "to": to, "raw": { "from": "now-1h", "to": "now" } });
        request["rangeRaw"] = json!({ "from": "now-1h", "to": "now" });
        (request, now.timestamp_millis())
    };

    let (request, to) = last_hour();
    let open = annotations_of(&grafana(&host, "/query", request));
    let tags = ["alarm", "inactivity", "warning", "sample"]
        .map(String::from)
        .to_vec();
    assert_eq!(
        open,
        [Annotation {
            time: raised,
            time_end: Some(to),
            is_region: true,
            title: "Alarm: inactivity (warning)".to_owned(),
            text: format!("sample: inactivity alarm, warning, raised, value {value}"),
            tags: tags.clone(),
        }]
    );

    // The device sends again: the alarm clears, and its region ends there.
    assert_eq!(insert_sample(&host).status, 200);
    let cleared = wait_until("the alarm cleared", || alarms("cleared").first().cloned());
    let cleared_at = cleared["cleared"].as_i64().unwrap();
    let (request, _) = last_hour();
    let mut region = annotations_of(&grafana(&host, "/query", request));
    // Silent again for 2 s, the device may have raised a next alarm since.
    region.retain(|a| a.time <= cleared_at);
    assert_eq!(
        region,
        [Annotation {
            time: raised,
            time_end: Some(cleared_at),
            is_region: true,
            title: "Alarm: inactivity (warning)".to_owned(),
            text: format!("sample: inactivity alarm, warning, cleared, value {value}"),
            tags,
        }]
    );
}
