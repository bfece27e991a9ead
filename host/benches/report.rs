//! Ingest while a report runs: does a long cron run hold up inserts?
//!
//! One process serves the insert component over HTTP (as `cromflag up` does) on
//! an embedded store that holds a day of one device's rows (`BENCH_REPORT_ROWS`,
//! 200,000 by default). Three phases, each `BENCH_SECONDS` long (5 by default):
//! 1. insert throughput alone (16 connections posting the sample): the baseline;
//! 2. the daily report of that day, run back to back through the cron trigger's
//!    `run_once` (the path of a scheduled tick), alone: its duration;
//! 3. both at once: insert throughput and report duration again.
//!
//! It prints the ratios of phase 3 to phases 1 and 2: how much each slows the other.
//!
//! Run: `cargo bench -p cromflag --bench report` (after `cargo build --release`).

mod support;

use chrono::{Days, Utc};
use cromflag::access::Access;
use cromflag::app;
use cromflag::manifest;
use cromflag::runtime::{Runtime, RuntimeLimits};
use cromflag::triggers::cron;
use cromflag::triggers::http::HttpTrigger;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{load, ROWS_PER_REQUEST};
use tokio::net::TcpListener;

const CONCURRENCY: usize = 16;
const PRELOAD_BATCH: usize = 2000;

fn main() -> anyhow::Result<()> {
    let env = support::env_number;
    let seconds = env("BENCH_SECONDS", 5);
    let rows = env("BENCH_REPORT_ROWS", 200_000);
    support::block_on(run(Duration::from_secs(seconds), rows))
}

async fn run(duration: Duration, rows: u64) -> anyhow::Result<()> {
    let root = support::repo_root();
    let tmp = tempfile::TempDir::new()?;
    let component = |name: &str| {
        root.join(format!(
            "target/components/wasm32-wasip2/component/{name}.wasm"
        ))
        .display()
        .to_string()
    };
    let manifest_path = tmp.path().join("spin.toml");
    std::fs::write(
        &manifest_path,
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"bench\"\n\
             [[trigger.http]]\nroute = \"/insert/...\"\ncomponent = \"insert\"\n\
             [component.insert]\nsource = {:?}\n\
             [component.report]\nsource = {:?}\n[component.report.variables]\nreports = \"daily\"\n",
            component("insert"),
            component("report"),
        ),
    )?;
    let app = manifest::load(&manifest_path)?;
    let (backend, _lock) = app::open_embedded(&tmp.path().join("data"))?;
    let runtime = Arc::new(Runtime::new(
        backend.clone(),
        &tmp.path().join("cache"),
        RuntimeLimits::default(),
    )?);
    let (components, _) = cromflag::runtime::link_all(
        &runtime,
        &app,
        &cromflag::triggers::CHECKS,
        None,
        &Default::default(),
    )?;
    let http = Arc::new(HttpTrigger::new(
        &app,
        runtime.clone(),
        &components,
        16 << 20,
        Default::default(),
        // Open, as `cromflag up` on loopback.
        Arc::new(Access::open(backend.clone(), &app)),
    )?);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(http.serve(listener));

    // Yesterday (UTC), evenly filled: the day the report at "now" covers.
    let day_start = Utc::now()
        .date_naive()
        .checked_sub_days(Days::new(1))
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis();
    let step = 86_400_000 / rows as i64;
    let preload = Instant::now();
    let mut sender = support::connect(addr).await?;
    let mut next = 0;
    while next < rows {
        let batch: Vec<_> = (next..rows.min(next + PRELOAD_BATCH as u64))
            .map(|i| {
                json!({
                    "timestamp": day_start + i as i64 * step,
                    "temperature": 20.0 + (i % 100) as f64 / 10.0,
                    "humidity": 40 + (i % 30) as i64,
                    "motion": i % 17 == 0,
                })
            })
            .collect();
        next += batch.len() as u64;
        let doc = json!({ "deviceinfo": { "deviceid": "big", "batt_lvl": 50, "fw_ver": "1" }, "tsdata": batch });
        support::insert(&mut sender, "/insert/big", serde_json::to_vec(&doc)?, None).await?;
    }
    println!(
        "preloaded {rows} rows of one device in {:.1}s; {}s per phase, {CONCURRENCY} insert connections",
        preload.elapsed().as_secs_f64(),
        duration.as_secs()
    );

    let sample = support::sample(&root)?;
    let sequence = Arc::new(AtomicU64::new(0));

    // 1. Inserts alone.
    let alone = load(addr, CONCURRENCY, duration, &sample, &sequence).await?;

    // 2. Reports alone.
    let report_alone = reports_for(&app, &runtime, &backend, duration).await?;

    // 3. Both.
    let stop = Arc::new(AtomicBool::new(false));
    let reports = {
        let (app, runtime, backend, stop) = (
            manifest::load(&manifest_path)?,
            runtime.clone(),
            backend.clone(),
            stop.clone(),
        );
        tokio::spawn(async move { reports_until(&app, &runtime, &backend, &stop).await })
    };
    let together = load(addr, CONCURRENCY, duration, &sample, &sequence).await?;
    stop.store(true, Ordering::SeqCst);
    let report_together = reports.await??;

    println!(
        "{:<28} | {:>12} {:>12} | {:>14}",
        "", "insert req/s", "rows/s", "report s/run"
    );
    println!(
        "{:<28} | {alone:>12.0} {:>12.0} | {:>14}",
        "inserts alone",
        alone * ROWS_PER_REQUEST as f64,
        "-"
    );
    println!(
        "{:<28} | {:>12} {:>12} | {:>14.3}",
        "report alone", "-", "-", report_alone
    );
    println!(
        "{:<28} | {together:>12.0} {:>12.0} | {:>14.3}",
        "both at once",
        together * ROWS_PER_REQUEST as f64,
        report_together
    );
    println!(
        "insert rate while reporting: {:.2} of alone; report time while ingesting: {:.2} of alone; report scans {:.0} rows/s alone",
        together / alone,
        report_together / report_alone,
        rows as f64 / report_alone
    );
    Ok(())
}

/// Runs the daily report back to back for `duration`; returns seconds per run.
async fn reports_for(
    app: &manifest::App,
    runtime: &Arc<Runtime>,
    backend: &Arc<dyn cromflag::store::Backend>,
    duration: Duration,
) -> anyhow::Result<f64> {
    let stop = Arc::new(AtomicBool::new(false));
    let timer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            stop.store(true, Ordering::SeqCst);
        })
    };
    let mean = reports_until(app, runtime, backend, &stop).await?;
    timer.await?;
    Ok(mean)
}

/// Runs the daily report back to back until `stop` (at least once); returns seconds per run.
async fn reports_until(
    app: &manifest::App,
    runtime: &Arc<Runtime>,
    backend: &Arc<dyn cromflag::store::Backend>,
    stop: &AtomicBool,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut runs = 0u32;
    while runs == 0 || !stop.load(Ordering::SeqCst) {
        let record = cron::run_once(
            app,
            "report",
            Utc::now(),
            runtime.clone(),
            backend.clone(),
            Duration::from_secs(600),
            "bench",
        )
        .await?;
        anyhow::ensure!(
            record.status == "ok",
            "the report failed: {:?}",
            record.error
        );
        runs += 1;
    }
    Ok(started.elapsed().as_secs_f64() / f64::from(runs))
}
