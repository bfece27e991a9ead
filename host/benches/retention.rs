//! Ingest while retention deletes: does a pass over a million expired rows
//! hold up inserts?
//!
//! The real `cromflag` binary (the repository's `spin.toml`, `--mqtt-broker
//! off`, an ephemeral port) on a fresh data directory, with
//! `SPIN_VARIABLE_RETENTION=30d`, `SPIN_VARIABLE_RETENTION_INTERVAL=1000h`
//! (the timer's first pass is 1,000 hours away: only the bench's pass runs)
//! and an admin token:
//! 1. load: `BENCH_RETENTION_ROWS` rows (1,000,000 by default), 60 days old
//!    (one a second from then on), over `BENCH_RETENTION_DEVICES` devices
//!    (10), 10,000 rows an insert from 4 clients; then counted by the store
//!    (`agg=count` over every row of each device), all must be there;
//! 2. inserts alone: 16 keep-alive clients post the sample (six rows a
//!    request) into device `live` for `BENCH_SECONDS` (10 by default), as
//!    fast as answers come, its timestamps moved to the last day and a
//!    minute on per request, so nothing they write expires: the baseline;
//! 3. the same load while one retention pass runs (`POST
//!    /admin/retention/run` with the admin token), measured from the pass's
//!    request to its answer: req/s, the pass's wall time and what it
//!    answered it deleted (it must be every loaded row), and the largest
//!    WAL seen meanwhile;
//! 4. inserts alone again for `BENCH_SECONDS` (a check on the machine's
//!    drift, on the store the pass left).
//!
//! Requests count in a phase's rate when answered within it (their latency
//! too: p50, p99, max). Last, the loaded devices are counted by the store
//! (none of their rows may be left) and `live` must hold every
//! acknowledged request's rows. It prints the ratio of the rate during the
//! pass to the rate alone (before, and after), with the load average before
//! and after: the figures are only as quiet as the machine.
//!
//! Run: `cargo bench -p cromflag --bench retention` after `cargo build
//! --release`; `CROMFLAG_BENCH_ROOT` runs another build (as in `fleet`).

mod support;

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{mib, Sender, ROWS_PER_REQUEST};
use tokio::task::JoinSet;

const CONCURRENCY: usize = 16;
/// Rows per insert while loading, and the clients loading.
const LOAD_BATCH: u64 = 10_000;
const LOADERS: u64 = 4;
const DAY_MS: i64 = 86_400_000;
/// The loaded rows' age, and the retention they are past.
const AGE_DAYS: i64 = 60;
const RETENTION: &str = "30d";
const ADMIN_TOKEN: &str = "retention-bench-admin";
/// The device the insert load writes to.
const LIVE: &str = "live";
/// How often the WAL's size is sampled during the pass.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

fn main() -> anyhow::Result<()> {
    let env = support::env_number;
    let seconds = env("BENCH_SECONDS", 10);
    let rows = env("BENCH_RETENTION_ROWS", 1_000_000);
    let devices = env("BENCH_RETENTION_DEVICES", 10);
    anyhow::ensure!(
        devices > 0 && rows >= devices,
        "BENCH_RETENTION_ROWS must be at least BENCH_RETENTION_DEVICES, which must be at least 1"
    );
    support::block_on(run(Duration::from_secs(seconds), rows, devices))
}

fn expired_device(d: u64) -> String {
    format!("expired_{d:02}")
}

async fn run(duration: Duration, rows: u64, devices: u64) -> anyhow::Result<()> {
    let root = support::host_root();
    let dirs = support::HostDirs::new()?;
    let load_before = support::load_average();
    // 10,000 rows are about 0.6 MiB of JSON; room to spare.
    let extra = ["--max-body-bytes", "8388608"];
    let env = [
        ("SPIN_VARIABLE_RETENTION", RETENTION.to_owned()),
        ("SPIN_VARIABLE_RETENTION_INTERVAL", "1000h".to_owned()),
        ("SPIN_VARIABLE_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
    ];
    let (mut host, addr) = support::spawn_local_host_with(
        &root,
        &root.join("spin.toml"),
        &dirs.data,
        &dirs.cache,
        &extra,
        &env,
    )?;
    println!(
        "retention: {rows} rows {AGE_DAYS} days old over {devices} devices (retention {RETENTION}); \
         {CONCURRENCY} insert connections, {ROWS_PER_REQUEST} rows a request, {}s alone; pid {}, load average {load_before}",
        duration.as_secs(),
        host.0.id()
    );

    // 1. The expired rows.
    let now = chrono::Utc::now().timestamp_millis();
    let loading = Instant::now();
    bulk_load(addr, rows, devices, now - AGE_DAYS * DAY_MS).await?;
    let load_time = loading.elapsed().as_secs_f64();
    let mut sender = support::connect(addr).await?;
    let loaded = count_devices(&mut sender, devices).await?;
    anyhow::ensure!(
        loaded == rows,
        "{loaded} rows counted by the store, {rows} loaded"
    );
    drop(sender);
    println!(
        "loaded {rows} rows in {load_time:.1} s ({:.0} rows/s), counted by the store: {loaded}; db {}, wal {}",
        rows as f64 / load_time,
        mib(support::file_size(&dirs.db)),
        mib(support::file_size(&dirs.wal)),
    );

    // The sample into `live`, its first row a day ago, a minute on per request.
    let sample = support::sample_for(&support::sample(&support::repo_root())?, LIVE, None);
    let first = sample["tsdata"][0]["timestamp"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("the sample's first row has no timestamp"))?;
    let load = Load {
        addr,
        doc: Arc::new(sample),
        base_ms: now - DAY_MS - first,
        sequence: Arc::new(AtomicU64::new(0)),
        acked: Arc::new(AtomicU64::new(0)),
    };

    // 2. Inserts alone.
    let alone = load.phase(Until::Elapsed(duration)).await?;

    // 3. The same load during one pass.
    let stop = Arc::new(AtomicBool::new(false));
    let wal_sampler = {
        let (stop, wal) = (stop.clone(), dirs.wal.clone());
        tokio::spawn(async move {
            let mut largest = 0u64;
            let mut ticker = tokio::time::interval(SAMPLE_EVERY);
            while !stop.load(Ordering::Relaxed) {
                ticker.tick().await;
                largest = largest.max(support::file_size(&wal).unwrap_or(0));
            }
            largest
        })
    };
    let db_before = support::file_size(&dirs.db);
    let pass_sender = support::connect(addr).await?;
    let during = load.phase(Until::Pass(pass_sender, stop.clone())).await?;
    let largest_wal = wal_sampler.await?;
    let answer = during
        .pass
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the pass did not answer"))?;
    let deleted = answer["telemetry"].as_u64().unwrap_or(0);
    anyhow::ensure!(
        deleted == rows,
        "the pass deleted {deleted} telemetry rows, {rows} were expired: {answer}"
    );

    // 4. Inserts alone again.
    let after = load.phase(Until::Elapsed(duration)).await?;

    // What is left: none of the expired rows, every acknowledged one (on a
    // new connection: the host has closed the idle one).
    let mut sender = support::connect(addr).await?;
    let left = count_devices(&mut sender, devices).await?;
    anyhow::ensure!(
        left == 0,
        "{left} expired rows left after the pass on {devices} devices"
    );
    let want = load.acked.load(Ordering::SeqCst) * ROWS_PER_REQUEST;
    let got = support::count_rows(&mut sender, LIVE, "temperature").await?;
    anyhow::ensure!(
        got == want,
        "{LIVE}: {got} rows stored, {want} acknowledged"
    );
    drop(sender);

    println!(
        "{:<30} | {:>12} {:>8} | {:>7} {:>7} {:>7} | {:>7}",
        "", "insert req/s", "rows/s", "p50 ms", "p99 ms", "max ms", "s"
    );
    for (name, phase) in [
        ("inserts alone", &alone),
        ("during the retention pass", &during),
        ("inserts alone again (after)", &after),
    ] {
        println!(
            "{name:<30} | {:>12.0} {:>8.0} | {:>7.1} {:>7.1} {:>7.1} | {:>7.1}",
            phase.rate(),
            phase.rate() * ROWS_PER_REQUEST as f64,
            phase.latency(0.5),
            phase.latency(0.99),
            phase.latency(1.0),
            phase.seconds
        );
    }
    println!(
        "retention pass: {deleted} rows deleted in {:.1} s ({:.0} rows/s) while ingesting; answered {answer}",
        during.seconds,
        deleted as f64 / during.seconds
    );
    println!(
        "left by the pass: {left} rows on the {devices} expired devices; {LIVE} holds all {got} acknowledged rows"
    );
    println!(
        "store: db {} before the pass, {} after; largest WAL seen during the pass {}",
        mib(db_before),
        mib(support::file_size(&dirs.db)),
        mib(Some(largest_wal))
    );
    println!(
        "insert rate during the pass: {:.0} / {:.0} req/s = {:.2} of alone ({:.2} of alone after the pass)",
        during.rate(),
        alone.rate(),
        during.rate() / alone.rate(),
        during.rate() / after.rate()
    );
    let status = support::terminate(&mut host, Duration::from_secs(60))?;
    anyhow::ensure!(status.success(), "cromflag exited with {status} on SIGTERM");
    println!(
        "load average before {load_before}, after {}",
        support::load_average()
    );
    Ok(())
}

/// Inserts `rows` rows over `devices` devices, `LOAD_BATCH` a request from
/// `LOADERS` clients, device `d`'s row `i` at `start_ms + i` seconds.
async fn bulk_load(addr: SocketAddr, rows: u64, devices: u64, start_ms: i64) -> anyhow::Result<()> {
    let mut tasks = JoinSet::new();
    for loader in 0..LOADERS.min(devices) {
        tasks.spawn(async move {
            let mut sender = support::connect(addr).await?;
            for d in (loader..devices).step_by(LOADERS as usize) {
                // The first `rows % devices` devices take one row more.
                let count = rows / devices + u64::from(d < rows % devices);
                let device = expired_device(d);
                let path = format!("/insert/{device}");
                for from in (0..count).step_by(LOAD_BATCH as usize) {
                    let batch: Vec<Value> = (from..count.min(from + LOAD_BATCH))
                        .map(|i| {
                            json!({
                                "timestamp": start_ms + i as i64 * 1000,
                                "temperature": 20.0 + (i % 100) as f64 / 10.0,
                                "humidity": 40.5 + (i % 30) as f64,
                            })
                        })
                        .collect();
                    let doc = json!({
                        "deviceinfo": { "deviceid": device, "batt_lvl": 50, "fw_ver": "1" },
                        "tsdata": batch,
                    });
                    support::insert(&mut sender, &path, serde_json::to_vec(&doc)?, None).await?;
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(task) = tasks.join_next().await {
        task??;
    }
    Ok(())
}

/// The rows of the loaded devices, counted by the store.
async fn count_devices(sender: &mut Sender, devices: u64) -> anyhow::Result<u64> {
    let mut total = 0;
    for d in 0..devices {
        total += support::count_rows(sender, &expired_device(d), "temperature").await?;
    }
    Ok(total)
}

/// The insert load: the sample into `LIVE`, request `k` moved by
/// `base_ms + k` minutes (`k` runs on over the phases).
struct Load {
    addr: SocketAddr,
    doc: Arc<Value>,
    base_ms: i64,
    sequence: Arc<AtomicU64>,
    /// Requests answered `200 True`, in every phase.
    acked: Arc<AtomicU64>,
}

/// When a phase ends.
enum Until {
    Elapsed(Duration),
    /// When a retention pass, asked on this connection, answers; `stop` is
    /// set then.
    Pass(Sender, Arc<AtomicBool>),
}

/// A phase's figures.
struct Phase {
    seconds: f64,
    /// Latencies of the requests answered within the phase.
    latencies: Vec<Duration>,
    /// The pass's answer, for a phase during one.
    pass: Option<Value>,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.seconds
    }

    /// The `q` quantile of the latencies, in ms.
    fn latency(&self, q: f64) -> f64 {
        let n = self.latencies.len();
        self.latencies
            .get(((n.max(1) - 1) as f64 * q) as usize)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    }
}

impl Load {
    /// Runs `CONCURRENCY` clients until `until`; their connections are made
    /// before the clock starts.
    async fn phase(&self, until: Until) -> anyhow::Result<Phase> {
        let mut senders = Vec::new();
        for _ in 0..CONCURRENCY {
            senders.push(support::connect(self.addr).await?);
        }
        let stop = match &until {
            Until::Elapsed(_) => Arc::new(AtomicBool::new(false)),
            Until::Pass(_, stop) => stop.clone(),
        };
        let started = Instant::now();
        let mut clients = JoinSet::new();
        for mut sender in senders {
            let (doc, stop) = (self.doc.clone(), stop.clone());
            let (sequence, acked) = (self.sequence.clone(), self.acked.clone());
            let (addr, base_ms) = (self.addr, self.base_ms);
            clients.spawn(async move {
                let path = format!("/insert/{LIVE}");
                let mut latencies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let k = sequence.fetch_add(1, Ordering::Relaxed) as i64;
                    let body = support::moved(&doc, base_ms + k * 60_000);
                    let sent = Instant::now();
                    if sender.is_closed() {
                        sender = support::connect(addr).await?;
                    }
                    support::insert(&mut sender, &path, body, None)
                        .await
                        .with_context(|| format!("POST {path}"))?;
                    acked.fetch_add(1, Ordering::Relaxed);
                    if !stop.load(Ordering::Relaxed) {
                        latencies.push(sent.elapsed());
                    }
                }
                anyhow::Ok(latencies)
            });
        }
        let (seconds, pass) = match until {
            Until::Elapsed(duration) => {
                tokio::time::sleep(duration).await;
                stop.store(true, Ordering::SeqCst);
                (duration.as_secs_f64(), None)
            }
            Until::Pass(mut sender, stop) => {
                let answer = run_pass(&mut sender)
                    .await
                    .context("POST /admin/retention/run");
                let seconds = started.elapsed().as_secs_f64();
                stop.store(true, Ordering::SeqCst);
                (seconds, Some(answer?))
            }
        };
        let mut latencies = Vec::new();
        while let Some(client) = clients.join_next().await {
            latencies.extend(client??);
        }
        latencies.sort();
        Ok(Phase {
            seconds,
            latencies,
            pass,
        })
    }
}

/// `POST /admin/retention/run` with the admin token: one pass; its answer.
async fn run_pass(sender: &mut Sender) -> anyhow::Result<Value> {
    let request = http::Request::post("/admin/retention/run")
        .header("host", "bench")
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .body(Full::new(bytes::Bytes::new()))?;
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    anyhow::ensure!(
        status.is_success(),
        "POST /admin/retention/run: {status} {:?}",
        String::from_utf8_lossy(&body)
    );
    Ok(serde_json::from_slice(&body)?)
}
