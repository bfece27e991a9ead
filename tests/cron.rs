//! Cron and reports, against the real binary: `cromflag cron run --at` on fixed
//! data with figures worked out by hand here, schedules firing in a running
//! host, catch-up after downtime, failures, the three representations, and
//! one tick over HTTP (`POST /admin/reports/run`) for platforms without cron.

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use cromflag_tests::cron::{self, component_entry, report_component};
use cromflag_tests::{
    get, get_accepting, insert_sample, post, repo_root, sample_payload, wait_until, Host,
};
use serde_json::{json, Value};
use std::path::Path;
use tempfile::TempDir;

fn ms(rfc3339: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_millis()
}

/// Posts one insert document for `device`; `rows` are `(time, temp, motion)`.
fn insert(host: &Host, device: &str, battery: i64, firmware: &str, rows: &[(&str, i64, bool)]) {
    let tsdata: Vec<Value> = rows
        .iter()
        .map(|(at, temp, motion)| json!({ "timestamp": ms(at), "temp": temp, "motion": motion }))
        .collect();
    let doc = json!({
        "deviceinfo": { "deviceid": device, "batt_lvl": battery, "fw_ver": firmware },
        "tsdata": tsdata,
    });
    let answer = post(
        &host.url(&format!("/insert/{device}")),
        "application/json",
        doc.to_string().as_bytes(),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
}

/// `GET /reports/<id>` as JSON, asserting it exists.
fn report(host: &Host, id: &str) -> Value {
    let answer = get(&host.url(&format!("/reports/{id}")));
    assert_eq!(answer.status, 200, "{id}: {}", answer.text());
    assert!(answer.content_type.starts_with("application/json"));
    answer.json()
}

/// The statistics of column `name` in a device report body.
fn column<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no column {name} in {body:#}"))
}

/// Mean and population standard deviation, the textbook way.
fn mean_and_stddev(values: &[f64]) -> (f64, f64) {
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
    (mean, variance.sqrt())
}

fn assert_close(got: &Value, want: f64) {
    let got = got
        .as_f64()
        .unwrap_or_else(|| panic!("{got} is not a number"));
    assert!((got - want).abs() < 1e-9, "got {got}, want {want}");
}

fn report_ids(host: &Host, query: &str) -> Vec<String> {
    let answer = get(&host.url(&format!("/reports{query}")));
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_sample_gets_its_daily_report_for_2020_02_18() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let manifest = repo_root().join("spin.toml");
    let host = Host::start(&data);
    assert_eq!(insert_sample(&host).status, 200);

    // The data directory belongs to the running host: `cron run` asks it to
    // run the tick (its admin route, with the control token).
    let (record, ok) = cron::run(&manifest, &data, "daily-report", "2020-02-19T00:05:00Z");
    assert!(ok, "{record}");
    assert_eq!(record["status"], "ok");
    assert_eq!(record["manual"], true);
    host.wait_for_log("cron run ok", 1);
    assert!(host.log().contains("(manual)"), "{}", host.log());
    assert_eq!(
        report_ids(&host, "?kind=daily"),
        ["daily-sample-2020-02-18"]
    );
    host.stop();

    // With no host, the command opens the store and runs it itself; the
    // run replaces the period's report.
    let (record, ok) = cron::run(&manifest, &data, "daily-report", "2020-02-19T00:05:00Z");
    assert!(ok, "{record}");
    assert_eq!(record["status"], "ok");
    assert_eq!(record["tick"], ms("2020-02-19T00:05:00Z"));
    assert_eq!(record["manual"], true);

    let host = Host::start(&data);
    let listed = get(&host.url("/reports")).json();
    assert_eq!(listed["count"], 1, "{listed:#}");
    let item = &listed["reports"][0];
    assert_eq!(item["id"], "daily-sample-2020-02-18");
    assert_eq!(item["kind"], "daily");
    assert_eq!(item["device"], "sample");
    assert_eq!(item["period_start"], "2020-02-18T00:00:00.000+00:00");
    assert_eq!(item["period_end"], "2020-02-19T00:00:00.000+00:00");
    assert_eq!(item["links"]["csv"], "/reports/daily-sample-2020-02-18.csv");

    let stored = report(&host, "daily-sample-2020-02-18");
    let body = &stored["body"];
    // By hand from the sample: six rows 10 s apart, temperatures 78 82 81 80 79 77,
    // motion true once, batt_lvl 78, fw_ver 12345.009.
    let doc: Value = serde_json::from_slice(&sample_payload()).unwrap();
    let temps: Vec<f64> = doc["tsdata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["temperature"].as_f64().unwrap())
        .collect();
    assert_eq!(temps, [78.0, 82.0, 81.0, 80.0, 79.0, 77.0]);
    let (mean, stddev) = mean_and_stddev(&temps);
    assert_eq!(mean, 79.5);
    assert_eq!(body["rows"], 6);
    let temperature = column(body, "temperature");
    assert_eq!(temperature["type"], "FLOAT");
    assert_eq!(temperature["count"], 6);
    assert_eq!(temperature["min"], 77.0);
    assert_eq!(temperature["max"], 82.0);
    assert_eq!(temperature["mean"], 79.5);
    assert_close(&temperature["stddev"], stddev);
    assert_eq!(body["motion_events"], 1);
    assert_eq!(body["first"], "2020-02-18T17:25:38.255+00:00");
    assert_eq!(body["last"], "2020-02-18T17:26:28.255+00:00");
    assert_eq!(body["gaps"], json!([]));
    assert_eq!(body["battery"]["level"], 78.0);
    assert_eq!(body["battery"]["low"], false);
    assert_eq!(body["firmware"], "12345.009");
    assert_eq!(body["period"]["hours"], 24.0);

    // CSV, by extension and by Accept.
    let csv = get(&host.url("/reports/daily-sample-2020-02-18.csv"));
    assert_eq!(csv.status, 200);
    assert!(
        csv.content_type.starts_with("text/csv"),
        "{}",
        csv.content_type
    );
    let text = csv.text();
    assert!(text.starts_with("metric,column,value\r\n"), "{text}");
    for line in [
        "rows,,6",
        "min,temperature,77",
        "max,temperature,82",
        "mean,temperature,79.5",
        "motion_events,motion,1",
        "battery_level,,78",
        "firmware,,12345.009",
    ] {
        assert!(
            text.contains(&format!("{line}\r\n")),
            "no `{line}` in\n{text}"
        );
    }
    let by_accept = get_accepting(&host.url("/reports/daily-sample-2020-02-18"), "text/csv");
    assert_eq!(by_accept.body, csv.body);

    // HTML: a page a person can read and print.
    let html = get(&host.url("/reports/daily-sample-2020-02-18.html"));
    assert_eq!(html.status, 200);
    assert!(html.content_type.starts_with("text/html"));
    let page = html.text();
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    for needle in [
        "sample",
        "2020-02-18",
        "temperature",
        "79.50",
        "12345.009",
        "@media print",
    ] {
        assert!(page.contains(needle), "no `{needle}` in the page");
    }
    assert_eq!(
        get_accepting(&host.url("/reports/daily-sample-2020-02-18"), "text/html").body,
        html.body
    );

    // Filters and errors.
    assert_eq!(
        report_ids(&host, "?kind=daily&device=sample"),
        ["daily-sample-2020-02-18"]
    );
    assert_eq!(report_ids(&host, "?kind=weekly"), Vec::<String>::new());
    assert_eq!(
        report_ids(&host, "?from=2020-02-18T00:00:00Z&to=2020-02-19T00:00:00Z").len(),
        1
    );
    assert_eq!(
        report_ids(&host, &format!("?from={}", ms("2020-02-19T00:00:00Z"))).len(),
        0
    );
    let bad = get(&host.url("/reports?kind=hourly"));
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["detail"]["parameter"], "kind");
    let missing = get(&host.url("/reports/daily-sample-1999-01-01"));
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"], "no such report");
    assert_eq!(
        get(&host.url("/reports/daily-sample-2020-02-18.pdf")).status,
        404
    );
}

/// The billing variables of the invoice test.
const BILLING: &[(&str, &str)] = &[
    ("reports", "invoice"),
    ("currency", "EUR"),
    ("price_per_thousand_rows", "250"),
    ("price_per_thousand_messages", "100"),
    ("price_per_device_month", "2.00"),
    ("tax_rate", "20"),
    ("tax_label", "VAT"),
    ("issuer_name", "Acme <IoT> GmbH"),
    ("issuer_address", "1 Sensor Street; 10115 Berlin"),
];

#[test]
fn daily_weekly_and_invoice_figures_match_the_hand_computed_ones() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let components = [
        report_component(
            "daily",
            &[("reports", "daily"), ("gap_threshold_secs", "60")],
            None,
        ),
        report_component("weekly", &[("reports", "weekly")], None),
        report_component("invoice", BILLING, None),
    ]
    .concat();
    let manifest = cron::manifest(dir.path(), &components);

    // Invoices bill what was received in a month: this one, as the test runs.
    let month_before = Utc::now().date_naive().with_day(1).unwrap();
    let host = Host::start_with(&manifest, &data, &[]);
    // Week 7 (Mon 2020-02-10 – Sun 02-16): two rows.
    insert(
        &host,
        "d1",
        15,
        "1.0",
        &[
            ("2020-02-11T08:00:00Z", 5, false),
            ("2020-02-11T08:01:00Z", 15, false),
        ],
    );
    // Week 8: the last millisecond of Monday 02-17, then Tuesday 02-18: three
    // rows with a 270 s gap between the last two.
    insert(
        &host,
        "d1",
        14,
        "1.1",
        &[
            ("2020-02-17T23:59:59.999Z", 100, false),
            ("2020-02-18T08:00:00Z", 10, true),
            ("2020-02-18T08:00:30Z", 20, false),
            ("2020-02-18T08:05:00Z", 30, true),
        ],
    );
    // Wednesday 02-19 at midnight (week 8, not the 18th), and week 9.
    insert(
        &host,
        "d1",
        9,
        "1.2",
        &[
            ("2020-02-19T00:00:00Z", -100, false),
            ("2020-02-25T12:00:00Z", 50, false),
        ],
    );
    // d2 has data only long before. Its document arrives twice (a client retry,
    // an MQTT redelivery): it is one message, billed once.
    for _ in 0..2 {
        insert(
            &host,
            "d2",
            80,
            "2.0",
            &[("2020-01-01T00:00:00Z", 1, false)],
        );
    }
    host.stop();
    let month = Utc::now().date_naive().with_day(1).unwrap();
    assert_eq!(
        month, month_before,
        "the month changed while the test ran: run it again"
    );
    let next_month = month.checked_add_months(Months::new(1)).unwrap();

    let run = |component: &str, at: &str| {
        let (record, ok) = cron::run(&manifest, &data, component, at);
        assert!(ok && record["status"] == "ok", "{record}");
    };
    run("daily", "2020-02-19T00:05:00Z");
    run("weekly", "2020-02-24T00:10:00Z");
    run("invoice", &format!("{next_month}T00:15:00Z"));

    let host = Host::start_with(&manifest, &data, &[]);

    // Daily, 2020-02-18: 10, 20, 30; motion twice; one gap over 60 s.
    let daily = report(&host, "daily-d1-2020-02-18");
    let body = &daily["body"];
    assert_eq!(body["rows"], 3);
    let (mean, stddev) = mean_and_stddev(&[10.0, 20.0, 30.0]);
    let temp = column(body, "temp");
    assert_eq!(
        (temp["type"].as_str(), temp["count"].as_u64()),
        (Some("LONG"), Some(3))
    );
    assert_eq!(
        (temp["min"].as_f64(), temp["max"].as_f64()),
        (Some(10.0), Some(30.0))
    );
    assert_close(&temp["mean"], mean);
    assert_close(&temp["stddev"], stddev);
    assert_eq!(body["motion_events"], 2);
    assert_eq!(
        body["gaps"],
        json!([{ "from": "2020-02-18T08:00:30.000+00:00", "to": "2020-02-18T08:05:00.000+00:00", "seconds": 270.0 }])
    );
    assert_eq!(body["first"], "2020-02-18T08:00:00.000+00:00");
    assert_eq!(body["last"], "2020-02-18T08:05:00.000+00:00");
    // The battery as reported with the day's data (14, below the default 20),
    // not with the later document's (9).
    assert_eq!(body["battery"]["level"], 14.0);
    assert_eq!(body["battery"]["low"], true);
    assert_eq!(body["firmware"], "1.1");

    // A device without data that day still gets its report: valid and empty.
    let empty = &report(&host, "daily-d2-2020-02-18")["body"];
    assert_eq!(empty["rows"], 0);
    assert_eq!(empty["first"], Value::Null);
    assert_eq!(empty["motion_events"], 0);
    assert_eq!(column(empty, "temp")["count"], 0);
    assert_eq!(column(empty, "temp")["mean"], Value::Null);
    let empty_html = get(&host.url("/reports/daily-d2-2020-02-18.html")).text();
    assert!(empty_html.contains("No data in this period."));

    // Weekly, week 8 (02-17 – 02-23): 100, 10, 20, 30, −100 against week 7's 5, 15.
    let weekly = report(&host, "weekly-d1-2020-W08");
    let body = &weekly["body"];
    assert_eq!(body["period"]["start"], "2020-02-17T00:00:00.000+00:00");
    assert_eq!(body["period"]["end"], "2020-02-24T00:00:00.000+00:00");
    assert_eq!(body["rows"], 5);
    let week8 = [100.0, 10.0, 20.0, 30.0, -100.0];
    let (mean8, stddev8) = mean_and_stddev(&week8);
    assert_eq!(mean8, 12.0);
    let temp = column(body, "temp");
    assert_eq!(
        (temp["min"].as_f64(), temp["max"].as_f64()),
        (Some(-100.0), Some(100.0))
    );
    assert_close(&temp["mean"], mean8);
    assert_close(&temp["stddev"], stddev8);
    assert_eq!(body["motion_events"], 2);
    let change = &body["change"];
    assert_eq!(change["previous"], "2020-W07");
    assert_eq!(change["previous_rows"], 2);
    assert_eq!(change["rows"], 3);
    assert_close(&change["rows_percent"], 150.0);
    assert_eq!(change["motion_events"], 2);
    let temp_change = change["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "temp")
        .unwrap();
    assert_close(&temp_change["previous_mean"], 10.0);
    assert_close(&temp_change["delta"], 2.0);

    // Invoices for this month. d1: 3 documents, 8 rows; d2: 1 document, 1 row.
    // d1: rows 8 × 250 / 1000 = 2.00; messages 3 × 100 / 1000 = 0.30; device 2.00;
    //     subtotal 4.30; VAT 20 % = 0.86; total 5.16.
    // d2: rows 0.25 + messages 0.10 + device 2.00 = 2.35; VAT 0.47; total 2.82.
    let label = month.format("%Y-%m").to_string();
    let invoice = report(&host, &format!("invoice-d1-{label}"));
    let body = &invoice["body"];
    assert_eq!(body["number"], format!("INV-{label}-d1"));
    assert_eq!(body["usage"], json!({ "messages": 3, "rows": 8 }));
    let amounts: Vec<&str> = body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["amount"].as_str().unwrap())
        .collect();
    assert_eq!(amounts, ["2.00", "0.30", "2.00"]);
    assert_eq!(
        (
            body["subtotal"].as_str(),
            body["tax"].as_str(),
            body["total"].as_str()
        ),
        (Some("4.30"), Some("0.86"), Some("5.16"))
    );
    assert_eq!(body["currency"], "EUR");
    assert_eq!(body["issue_date"], next_month.to_string());
    assert_eq!(
        body["due_date"],
        (next_month + chrono::Days::new(30)).to_string()
    );
    let d2 = &report(&host, &format!("invoice-d2-{label}"))["body"];
    assert_eq!(d2["usage"], json!({ "messages": 1, "rows": 1 }));
    assert_eq!(
        (
            d2["subtotal"].as_str(),
            d2["tax"].as_str(),
            d2["total"].as_str()
        ),
        (Some("2.35"), Some("0.47"), Some("2.82"))
    );

    let html = get(&host.url(&format!("/reports/invoice-d1-{label}.html"))).text();
    for needle in [
        "INVOICE",
        &format!("INV-{label}-d1"),
        "Bill to",
        "5.16",
        "0.86",
        "VAT",
        "EUR",
        "1 Sensor Street",
        "Acme &lt;IoT&gt; GmbH",
    ] {
        assert!(html.contains(needle), "no `{needle}` in the invoice page");
    }
    assert!(!html.contains("Acme <IoT>"), "user text must be escaped");
    let csv = get(&host.url(&format!("/reports/invoice-d1-{label}.csv"))).text();
    assert!(
        csv.starts_with("line,description,quantity,unit,unit_price,amount,currency\r\n"),
        "{csv}"
    );
    assert!(csv.contains(",Total,,,,5.16,EUR\r\n"), "{csv}");

    // Re-running a period replaces its report: still one, newly generated.
    host.stop();
    let before = ms(daily["generated_at"].as_str().unwrap());
    let rerun = Utc::now().timestamp_millis();
    assert!(before < rerun, "generated at {before}, re-run at {rerun}");
    run("daily", "2020-02-19T23:59:59Z");
    let host = Host::start_with(&manifest, &data, &[]);
    assert_eq!(
        report_ids(&host, "?kind=daily&device=d1"),
        ["daily-d1-2020-02-18"]
    );
    let again = report(&host, "daily-d1-2020-02-18");
    let generated = ms(again["generated_at"].as_str().unwrap());
    assert!(
        generated >= rerun,
        "generated at {generated}, before the re-run at {rerun}"
    );
    assert_eq!(again["body"], daily["body"]);
    assert_eq!(report_ids(&host, "?kind=daily").len(), 2);
    assert_eq!(report_ids(&host, "?kind=weekly").len(), 2);
    assert_eq!(report_ids(&host, "?kind=invoice").len(), 2);
}

#[test]
fn days_follow_the_time_zone_across_a_dst_change() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let manifest = cron::manifest(
        dir.path(),
        &report_component(
            "daily",
            &[("reports", "daily"), ("time_zone", "Europe/Paris")],
            None,
        ),
    );
    let host = Host::start_with(&manifest, &data, &[]);
    // Paris moved from +01:00 to +02:00 at 02:00 on 2020-03-29: that day has 23 hours.
    insert(
        &host,
        "paris",
        50,
        "1",
        &[
            ("2020-03-28T22:59:59Z", 1, false), // 23:59:59 on the 28th, local
            ("2020-03-28T23:00:00Z", 2, false), // 00:00:00 on the 29th
            ("2020-03-29T21:59:59Z", 3, true),  // 23:59:59 on the 29th (summer time)
            ("2020-03-29T22:00:00Z", 4, false), // 00:00:00 on the 30th
        ],
    );
    host.stop();
    // 00:05 in Paris on the 30th is 22:05 UTC on the 29th.
    let (record, ok) = cron::run(&manifest, &data, "daily", "2020-03-30T00:05:00+02:00");
    assert!(ok, "{record}");

    let host = Host::start_with(&manifest, &data, &[]);
    let body = &report(&host, "daily-paris-2020-03-29")["body"];
    assert_eq!(body["period"]["start"], "2020-03-29T00:00:00.000+01:00");
    assert_eq!(body["period"]["end"], "2020-03-30T00:00:00.000+02:00");
    assert_eq!(body["period"]["hours"], 23.0);
    assert_eq!(body["period"]["time_zone"], "Europe/Paris");
    assert_eq!(body["rows"], 2);
    assert_eq!(body["first"], "2020-03-29T00:00:00.000+01:00");
    assert_eq!(body["last"], "2020-03-29T23:59:59.000+02:00");
    let temp = column(body, "temp");
    assert_eq!(
        (temp["min"].as_f64(), temp["max"].as_f64()),
        (Some(2.0), Some(3.0))
    );
    assert_eq!(body["motion_events"], 1);
}

#[test]
fn a_running_host_writes_reports_on_its_schedule() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let trigger = "[[trigger.cron]]\ncomponent = \"daily\"\ncron_expression = \"* * * * * *\"\n";
    let manifest = cron::manifest(
        dir.path(),
        &format!(
            "{trigger}{}",
            report_component("daily", &[("reports", "daily")], None)
        ),
    );
    let host = Host::start_with(&manifest, &data, &[]);
    // Yesterday's data, as a device that was offline would send it.
    let yesterday: NaiveDate = Utc::now().date_naive().pred_opt().unwrap();
    let at = |time: &str| format!("{yesterday}T{time}Z");
    let (t1, t2) = (at("10:00:00"), at("10:00:10"));
    insert(&host, "late", 60, "3", &[(&t1, 7, true), (&t2, 9, false)]);

    // No manual step: the every-second tick makes yesterday's report, and a
    // tick after the insert counts both rows.
    let id = format!("daily-late-{yesterday}");
    let body = wait_until("the scheduled report", || {
        let answer = get(&host.url(&format!("/reports/{id}")));
        let body = (answer.status == 200).then(|| answer.json()["body"].clone())?;
        (body["rows"] == 2).then_some(body)
    });
    assert_close(&column(&body, "temp")["mean"], 8.0);
    cron::wait_for_runs(&host, "daily", "ok", 2);
    host.stop();

    let runs = cron::runs(&manifest, &data, Some("daily"));
    assert!(runs.len() >= 2, "{runs:#?}");
    for run in &runs {
        assert_eq!(run["manual"], false);
        // Ticks fall on whole seconds: the scheduled time, not when it fired.
        assert_eq!(run["tick"].as_i64().unwrap() % 1000, 0, "{run}");
    }
    assert!(runs.iter().any(|r| r["status"] == "ok"));
}

/// The ticks of `trigger`'s records within `(from, to)` ms.
fn ticks_between(
    manifest: &Path,
    data: &Path,
    trigger: &str,
    from: i64,
    to: i64,
) -> Vec<(i64, String)> {
    cron::runs(manifest, data, Some(trigger))
        .iter()
        .map(|r| {
            (
                r["tick"].as_i64().unwrap(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .filter(|(tick, _)| *tick > from && *tick < to)
        .collect()
}

#[test]
fn missed_ticks_are_caught_up_or_skipped_by_policy() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let mut text = String::new();
    for (id, policy) in [
        ("every-tick", "all"),
        ("latest-tick", "latest"),
        ("no-tick", "skip"),
    ] {
        text.push_str(&format!(
            "[[trigger.cron]]\ncomponent = \"{id}\"\ncron_expression = \"* * * * * *\"\n"
        ));
        text.push_str(&report_component(id, &[("reports", "daily")], Some(policy)));
    }
    let manifest = cron::manifest(dir.path(), &text);

    let host = Host::start_with(&manifest, &data, &[]);
    for id in ["every-tick", "latest-tick", "no-tick"] {
        cron::wait_for_runs(&host, id, "ok", 1);
    }
    host.stop();
    let stopped = Utc::now().timestamp_millis();
    // The point of the test is the downtime, so this waits on the clock: until
    // three whole ticks fell in the window counted below (3 to 4 s).
    let first_missed = ((stopped + 1000) / 1000 + 1) * 1000;
    let restart = first_missed + 2000 + 1;
    std::thread::sleep(std::time::Duration::from_millis(
        (restart - Utc::now().timestamp_millis()).max(0) as u64,
    ));
    let restarted = Utc::now().timestamp_millis();
    // Ticks surely missed: a second after the stop (a tick may have fired as it
    // was killed) up to the restart.
    let window = (stopped + 1000, restarted);
    let expected = (window.0 / 1000 + 1..=(window.1 - 1) / 1000).count();
    assert!(expected >= 3, "{expected}");
    let in_window = |run: &Value| {
        let tick = run["tick"].as_i64().unwrap();
        tick > window.0 && tick < window.1
    };

    let host = Host::start_with(&manifest, &data, &[]);
    // Each trigger decides on its missed ticks at start; for `no-tick` (which
    // runs none of them) this line is the only sign that it has.
    host.wait_for_log("catching up missed ticks", 3);
    // Every missed tick of `every-tick` has run, and `latest-tick` has run
    // since the stop (its catch-up comes first).
    wait_until("the catch-up to finish", || {
        let since_the_stop = |trigger: &str| -> Vec<Value> {
            cron::served_runs(&host, trigger)
                .into_iter()
                .filter(|run| run["tick"].as_i64().unwrap() > window.0)
                .collect()
        };
        let caught_up = since_the_stop("every-tick")
            .iter()
            .filter(|run| in_window(run) && run["status"] == "ok")
            .count()
            >= expected;
        let latest_ran = since_the_stop("latest-tick")
            .iter()
            .any(|run| run["status"] == "ok");
        (caught_up && latest_ran).then_some(())
    });
    host.stop();

    let all = ticks_between(&manifest, &data, "every-tick", window.0, window.1);
    assert_eq!(all.len(), expected, "{all:?}");
    assert!(all.iter().all(|(_, status)| status == "ok"), "{all:?}");
    let latest = ticks_between(&manifest, &data, "latest-tick", window.0, window.1);
    assert!(
        latest.len() <= 1,
        "only the latest missed tick runs: {latest:?}"
    );
    assert_eq!(
        ticks_between(&manifest, &data, "no-tick", window.0, window.1),
        []
    );
}

#[test]
fn failing_and_slow_runs_are_recorded_and_the_schedule_goes_on() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let every_second = |id: &str| {
        format!("[[trigger.cron]]\ncomponent = \"{id}\"\ncron_expression = \"* * * * * *\"\n")
    };
    let text = [
        every_second("trap"),
        component_entry("trap", "fault", &[], None),
        every_second("slow"),
        component_entry("slow", "fault", &[("sleep_secs", "2.5")], None),
        every_second("misconfigured"),
        report_component("misconfigured", &[("time_zone", "Mars/Olympus")], None),
    ]
    .concat();
    let manifest = cron::manifest(dir.path(), &text);
    let mut host = Host::start_with(&manifest, &data, &[]);
    cron::wait_for_runs(&host, "trap", "failed", 3);
    cron::wait_for_runs(&host, "misconfigured", "failed", 3);
    cron::wait_for_runs(&host, "slow", "ok", 2);
    cron::wait_for_runs(&host, "slow", "skipped", 1);
    // The host serves on.
    assert!(host.is_alive());
    assert_eq!(get(&host.url("/reports")).status, 200);
    host.stop();

    let trap = cron::runs(&manifest, &data, Some("trap"));
    let failed: Vec<_> = trap.iter().filter(|r| r["status"] == "failed").collect();
    assert!(failed.len() >= 3, "{trap:#?}");
    assert!(
        failed
            .iter()
            .all(|r| r["error"].as_str().unwrap().contains("trapped")),
        "{failed:#?}"
    );

    let misconfigured = cron::runs(&manifest, &data, Some("misconfigured"));
    let failed: Vec<_> = misconfigured
        .iter()
        .filter(|r| r["status"] == "failed")
        .collect();
    assert!(failed.len() >= 3);
    assert!(
        failed[0]["error"].as_str().unwrap().contains("`time_zone`"),
        "{failed:#?}"
    );

    // Runs of one trigger never overlap; ticks during a run are skipped, on record.
    let slow = cron::runs(&manifest, &data, Some("slow"));
    let mut spans: Vec<(i64, i64)> = slow
        .iter()
        .filter(|r| r["status"] == "ok")
        .map(|r| {
            (
                r["started"].as_i64().unwrap(),
                r["finished"].as_i64().unwrap(),
            )
        })
        .collect();
    spans.sort();
    assert!(spans.len() >= 2, "{slow:#?}");
    assert!(
        spans.windows(2).all(|w| w[0].1 <= w[1].0),
        "overlapping runs: {spans:?}"
    );
    let skipped: Vec<_> = slow.iter().filter(|r| r["status"] == "skipped").collect();
    assert!(!skipped.is_empty(), "{slow:#?}");
    assert_eq!(skipped[0]["error"], "the previous run was still going");

    // `cron run` of a failing component says so, and exits unsuccessfully.
    let (record, ok) = cron::run(&manifest, &data, "misconfigured", "2020-02-19T00:05:00Z");
    assert!(!ok);
    assert_eq!(record["status"], "failed");
    assert!(
        record["error"].as_str().unwrap().contains("Mars/Olympus"),
        "{record}"
    );
}

#[test]
fn a_malformed_cron_expression_is_refused_at_start_up() {
    let dir = TempDir::new().unwrap();
    let trigger = "[[trigger.cron]]\nid = \"nightly\"\ncomponent = \"daily\"\ncron_expression = \"0 5 25 * * *\"\n";
    let manifest = cron::manifest(
        dir.path(),
        &format!("{trigger}{}", report_component("daily", &[], None)),
    );
    let output = cron::cromflag([
        "up".as_ref(),
        "--manifest".as_ref(),
        manifest.as_os_str(),
        "--data-dir".as_ref(),
        dir.path().join("data").as_os_str(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--mqtt-broker".as_ref(),
        "off".as_ref(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cron trigger `nightly`") && stderr.contains("0 5 25 * * *"),
        "{stderr}"
    );
}

const ADMIN_TOKEN: &str = "admin-s3cret-for-tests";

/// Asserts `answer` is the 401 of a run without the admin token.
#[track_caller]
fn assert_refused(answer: &cromflag_tests::Answer) {
    assert_eq!(answer.status, 401, "{}", answer.text());
    assert!(answer.content_type.starts_with("application/json"));
    assert_eq!(answer.json()["error"], "missing or wrong token");
    assert_eq!(
        answer.header_values("www-authenticate"),
        ["Bearer realm=\"cromflag\""]
    );
}

/// Reports without cron: the repository's spin.toml routes `POST
/// /admin/reports/run` to its `run-report` component, which runs one tick of
/// a kind at a given time, as a platform's scheduler would call it.
#[test]
fn a_report_tick_runs_over_http_with_the_admin_token() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let host = Host::start_with_env(
        &repo_root().join("spin.toml"),
        &data,
        &[],
        &[("SPIN_VARIABLE_ADMIN_TOKEN", ADMIN_TOKEN)],
    );
    assert_eq!(insert_sample(&host).status, 200);
    let daily = "kind=daily&at=2020-02-19T00:05:00Z";
    let admin = cromflag_tests::access::bearer(ADMIN_TOKEN);

    // Without the token, or with a wrong one, the host refuses (it runs open
    // on loopback, but /admin/ is the admin's), and nothing is written.
    assert_refused(&cron::run_reports(&host, daily, None));
    assert_refused(&cron::run_reports(&host, daily, Some("Bearer wrong")));
    // The host's control token opens its own admin routes, but the component
    // checks the admin token itself (as it must where no host is in front),
    // and refuses it.
    let control = cromflag_tests::access::bearer(&cron::control_token(&data));
    let readers =
        cromflag_tests::access::call("GET", &host.url("/admin/readers"), Some(&control), b"");
    assert_eq!(readers.status, 200, "{}", readers.text());
    assert_refused(&cron::run_reports(&host, daily, Some(&control)));
    assert_eq!(report_ids(&host, ""), Vec::<String>::new());

    // With the token: the daily tick at 00:05 on the 19th writes the 18th's report.
    let ran = cron::run_reports(&host, daily, Some(&admin));
    assert_eq!(ran.status, 200, "{}", ran.text());
    let answer = ran.json();
    assert_eq!(answer["kind"], "daily");
    assert_eq!(answer["at_ms"], ms("2020-02-19T00:05:00Z"));
    assert_eq!(answer["period"]["label"], "2020-02-18");
    assert_eq!(answer["period"]["start"], "2020-02-18T00:00:00.000+00:00");
    assert_eq!(answer["count"], 1);
    assert_eq!(answer["reports"][0]["id"], "daily-sample-2020-02-18");
    assert_eq!(answer["reports"][0]["device"], "sample");
    // ... and GET /reports lists it, with the figures a cron tick gives.
    assert_eq!(report_ids(&host, ""), ["daily-sample-2020-02-18"]);
    let first = report(&host, "daily-sample-2020-02-18");
    assert_eq!(first["body"]["rows"], 6);
    assert_eq!(column(&first["body"], "temperature")["mean"], 79.5);

    // The same `at` again (as a re-run tick, at epoch ms this time) replaces
    // the report: still one, generated anew, with the same figures.
    let rerun = Utc::now().timestamp_millis();
    let again = cron::run_reports(
        &host,
        &format!("at={}&kind=daily", ms("2020-02-19T00:05:00Z")),
        Some(&admin),
    );
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["reports"], answer["reports"]);
    assert_eq!(report_ids(&host, ""), ["daily-sample-2020-02-18"]);
    let second = report(&host, "daily-sample-2020-02-18");
    assert!(
        ms(second["generated_at"].as_str().unwrap()) >= rerun,
        "{second}"
    );
    assert!(ms(first["generated_at"].as_str().unwrap()) < rerun);
    assert_eq!(second["body"], first["body"]);

    // Bad calls: a 400 naming the parameter; nothing more is written.
    for (query, parameter) in [
        ("kind=hourly&at=2020-02-19T00:05:00Z", "kind"),
        ("at=2020-02-19T00:05:00Z", "kind"),
        ("kind=daily&at=tomorrow", "at"),
        ("kind=daily&device=sample", "device"),
    ] {
        let bad = cron::run_reports(&host, query, Some(&admin));
        assert_eq!(bad.status, 400, "{query}: {}", bad.text());
        assert_eq!(bad.json()["detail"]["parameter"], parameter, "{query}");
    }
    let get = cromflag_tests::access::call(
        "GET",
        &host.url(&format!("/admin/reports/run?{daily}")),
        Some(&admin),
        b"",
    );
    assert_eq!(get.status, 405, "{}", get.text());
    assert_eq!(report_ids(&host, ""), ["daily-sample-2020-02-18"]);

    // The weekly and invoice kinds run too: week 8's report.
    let weekly = cron::run_reports(&host, "kind=weekly&at=2020-02-24T00:10:00Z", Some(&admin));
    assert_eq!(weekly.status, 200, "{}", weekly.text());
    assert_eq!(weekly.json()["reports"][0]["id"], "weekly-sample-2020-W08");
}

/// With no admin token set, the route is off: the component answers 404 even
/// to a caller the host lets through (its control token).
#[test]
fn the_report_route_is_off_without_an_admin_token() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let host = Host::start(&data);
    let query = "kind=daily&at=2020-02-19T00:05:00Z";
    assert_refused(&cron::run_reports(&host, query, None));
    let control = cromflag_tests::access::bearer(&cron::control_token(&data));
    let off = cron::run_reports(&host, query, Some(&control));
    assert_eq!(off.status, 404, "{}", off.text());
    assert_eq!(off.json()["error"], "no such route");
    assert!(off.json()["detail"]
        .as_str()
        .unwrap()
        .contains("admin_token"));
}

/// Must show: the daily report of the day an alarm was raised lists it: the
/// host raises an inactivity alarm for `sample` (a 2 s timeout), and the
/// report of that local day (the host's `report_time_zone`, +05:30 here, so
/// times are shown in it) made through the running host holds its rule,
/// severity, raised time, `open` for its cleared time, and its value, in
/// JSON, CSV and HTML.
#[test]
fn the_daily_report_lists_the_alarms_of_its_day() {
    use chrono::{Days, FixedOffset, SecondsFormat};
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let manifest = repo_root().join("spin.toml");
    let host = Host::start_with_env(
        &manifest,
        &data,
        &[],
        &[
            ("SPIN_VARIABLE_INACTIVITY_TIMEOUT", "2s"),
            // India keeps +05:30 all year.
            ("SPIN_VARIABLE_REPORT_TIME_ZONE", "Asia/Kolkata"),
        ],
    );
    assert_eq!(insert_sample(&host).status, 200);
    let alarm = wait_until("the inactivity alarm", || {
        let listed = get(&host.url("/alarms?device=sample")).json();
        listed["alarms"].as_array()?.first().cloned()
    });
    let id = alarm["id"].as_str().unwrap();
    let value = alarm["value"].as_str().unwrap();
    let india = FixedOffset::east_opt(5 * 3600 + 1800).unwrap();
    let raised = DateTime::from_timestamp_millis(alarm["raised"].as_i64().unwrap())
        .unwrap()
        .with_timezone(&india);
    // The day it was raised ends at the next local midnight: a tick just after.
    let day = raised.date_naive();
    let at = (day + Days::new(1))
        .and_hms_opt(0, 5, 0)
        .unwrap()
        .and_local_timezone(india)
        .unwrap()
        .to_utc()
        .to_rfc3339_opts(SecondsFormat::Secs, true);
    let (record, ok) = cron::run(&manifest, &data, "daily-report", &at);
    assert!(ok, "{record}");
    assert_eq!(record["status"], "ok", "{record}");

    let report_id = format!("daily-sample-{day}");
    let stored = report(&host, &report_id);
    assert_eq!(stored["time_zone"], "Asia/Kolkata");
    let raised_text = raised.to_rfc3339_opts(SecondsFormat::Millis, false);
    assert!(raised_text.ends_with("+05:30"), "{raised_text}");
    assert_eq!(
        stored["body"]["alarms"],
        json!([{
            "id": id,
            "rule": "inactivity",
            "severity": "warning",
            "state": "raised",
            "raised": raised_text,
            "cleared": null,
            "value": value,
        }])
    );

    let csv = get(&host.url(&format!("/reports/{report_id}.csv"))).text();
    for line in [
        format!("alarm_rule,{id},inactivity"),
        format!("alarm_severity,{id},warning"),
        format!("alarm_raised,{id},{raised_text}"),
        format!("alarm_cleared,{id},open"),
        format!("alarm_value,{id},{value}"),
    ] {
        assert!(
            csv.contains(&format!("{line}\r\n")),
            "no `{line}` in\n{csv}"
        );
    }
    let page = get(&host.url(&format!("/reports/{report_id}.html"))).text();
    let shown = raised.format("%Y-%m-%d %H:%M:%S%.f %:z").to_string();
    for needle in [
        "<h2>Alarms</h2>".to_owned(),
        format!("<td>inactivity</td><td>warning</td><td><time datetime=\"{raised_text}\">{shown}</time></td><td>open</td>"),
    ] {
        assert!(page.contains(&needle), "no `{needle}` in\n{page}");
    }
}
