//! A fleet of devices on the embedded store: does it scale to 100,000 devices?
//!
//! The real `cromflag` binary (the repository's `spin.toml`, `--mqtt-broker
//! off`, an ephemeral port) on a fresh data directory:
//! 1. creation: `FLEET_DEVICES` devices (100,000 by default), `fleet_000000`
//!    on, each created by one insert of the sample trimmed to one row, from 16
//!    keep-alive clients. Every answer must be a 2xx (anything else stops the
//!    run); new devices per second over the first 10,000 and over the last
//!    10,000, their ratio (aim ≥ 0.8; today's store slows as devices grow), a
//!    line per 10,000 on the way, and the total time;
//! 2. ingest, `BENCH_SECONDS` per case (30 by default), 16 clients, one row per
//!    request: into one device (the baseline), then round robin over all the
//!    devices; requests per second and their ratio (aim ≥ 0.9). Rows are then
//!    counted by the store on a few devices, and must all be there;
//! 3. the process's RSS (`VmRSS`, and the peak `VmHWM`) after creation and
//!    after ingest (aim < 100 MiB), and the sizes of `cromflag.db` and
//!    `cromflag.db-wal`;
//! 4. SIGTERM, the WAL's size once the process has exited, and a restart on the
//!    same data (components already compiled in the cache, as in production):
//!    the time to the `listening on` line and to the first HTTP answer (`GET
//!    /`, the built-in page, which reads no store) (aim < 2 s); then the first
//!    `GET /fetch/<device>` on 20 distinct devices, the first one's latency and
//!    the median (aim < 20 ms); `GET /fetch/devices` (its first page, when it
//!    is paged); the RSS after that (aim < 100 MiB). Last, the whole device
//!    list is read (following `Link` headers) and must name every device.
//!
//! It ends with one table: each figure, its aim and whether it is met, with
//! the load average before and after (the figures are only as quiet as the
//! machine).
//!
//! Run: `cargo bench -p cromflag --bench fleet` after `cargo build --release`.
//! `FLEET_DEVICES` sets the number of devices (at least 100), `BENCH_SECONDS`
//! the time per ingest case; `CROMFLAG_BENCH_ROOT` runs another build (a
//! directory with its `target/release/cromflag`, `spin.toml` and components).

mod support;

use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{get_ok, mib, post_ok, rss_kib, sample_for, Process};
use tokio::task::JoinSet;

const CLIENTS: usize = 16;
/// Devices per window: the first and the last are compared.
const WINDOW: u64 = 10_000;
/// Distinct devices fetched first after the restart.
const FETCH_SAMPLES: u64 = 20;
/// The one-device case writes ten years after the sample, clear of the rows
/// the round robin adds to the same device.
const ONE_DEVICE_OFFSET_MS: i64 = 10 * 365 * 86_400_000;
/// Aims for the process's size.
const RSS_AIM_KIB: u64 = 100 * 1024;

fn main() -> anyhow::Result<()> {
    let devices = support::env_number("FLEET_DEVICES", 100_000);
    let seconds = support::env_number("BENCH_SECONDS", 30);
    anyhow::ensure!(devices >= 100, "FLEET_DEVICES must be at least 100");
    support::block_on(run(devices, Duration::from_secs(seconds)))
}

fn device(i: u64) -> String {
    format!("fleet_{i:06}")
}

/// Rows the round robin's `requests` added to device `d` of `n`: one for each
/// request number k < requests with k mod n = d.
fn round_robin_rows(requests: u64, n: u64, d: u64) -> u64 {
    if requests > d {
        (requests - d).div_ceil(n)
    } else {
        0
    }
}

async fn run(n: u64, duration: Duration) -> anyhow::Result<()> {
    let root = support::host_root();
    let dirs = support::HostDirs::new()?;
    let (data, cache, db, wal) = (&dirs.data, &dirs.cache, &dirs.db, &dirs.wal);
    let load_before = support::load_average();
    let mut table = Table::default();
    // One row per request, so a request is a row and a new device one insert.
    let sample = sample_for(&support::sample(&support::repo_root())?, "", Some(1));

    let (mut host, addr) = start(&root, data, cache)?;
    let pid = host.0.id();
    println!(
        "fleet: {n} devices from {CLIENTS} clients, then {}s per ingest case; pid {pid}, load average {load_before}",
        duration.as_secs()
    );

    // 1. Creation.
    let created = create(addr, n, &sample).await?;
    let window = WINDOW.min(n / 2);
    let first = window as f64 / created.at(window)?;
    let last = window as f64 / (created.at(n)? - created.at(n - window)?);
    let total = created.at(n)?;
    table.row(
        "devices created (2xx answers)",
        created.count.to_string(),
        None,
    );
    table.row(
        &format!("creation, first {window}"),
        format!("{first:.0} devices/s"),
        None,
    );
    table.row(
        &format!("creation, last {window}"),
        format!("{last:.0} devices/s"),
        None,
    );
    table.row(
        "creation, last / first",
        format!("{:.2}", last / first),
        Some(("≥ 0.8", last / first >= 0.8)),
    );
    table.row(
        "creation, total",
        format!("{total:.1} s ({:.0} devices/s)", n as f64 / total),
        None,
    );
    let rss_created = rss_kib(pid)?;
    table.rss("RSS after creation", rss_created);
    table.disk("disk after creation", db, wal);

    // 2. Ingest: one device, then all of them in turn.
    let one = device(0);
    let one_doc = sample_for(&sample, &one, None);
    let one_path = format!("/insert/{one}");
    let (one_requests, one_rate) = ingest(addr, duration, move |k| {
        let body = support::moved(&one_doc, ONE_DEVICE_OFFSET_MS + k as i64 * 1000);
        (one_path.clone(), body)
    })
    .await?;
    let rr_sample = sample.clone();
    let (rr_requests, rr_rate) = ingest(addr, duration, move |k| {
        let name = device(k % n);
        let doc = sample_for(&rr_sample, &name, None);
        // Round r writes a minute after the row that created the device.
        let round = (k / n + 1) as i64;
        (
            format!("/insert/{name}"),
            support::moved(&doc, round * 60_000),
        )
    })
    .await?;
    println!("ingest: one device {one_rate:.0} req/s ({one_requests} requests), round robin {rr_rate:.0} req/s ({rr_requests} requests)");
    table.row("ingest, one device", format!("{one_rate:.0} req/s"), None);
    table.row(
        &format!("ingest, round robin over {n}"),
        format!("{rr_rate:.0} req/s"),
        None,
    );
    table.row(
        "ingest, round robin / one device",
        format!("{:.2}", rr_rate / one_rate),
        Some(("≥ 0.9", rr_rate / one_rate >= 0.9)),
    );
    // Every request's row, counted by the store on a few devices.
    let mut sender = support::connect(addr).await?;
    for d in [0, 1, n / 3, 2 * n / 3, n - 1] {
        let want = 1 + round_robin_rows(rr_requests, n, d) + if d == 0 { one_requests } else { 0 };
        let got = support::count_rows(&mut sender, &device(d), "temperature").await?;
        anyhow::ensure!(got == want, "{}: {got} rows stored, {want} sent", device(d));
    }
    drop(sender);
    table.rss("RSS after ingest", rss_kib(pid)?);
    table.disk("disk after ingest", db, wal);

    // 3. A clean stop, and a restart on the same data.
    let status = support::terminate(&mut host, Duration::from_secs(60))?;
    anyhow::ensure!(status.success(), "cromflag exited with {status} on SIGTERM");
    drop(host);
    table.row(
        "WAL after SIGTERM (db)",
        format!(
            "{} ({})",
            mib(support::file_size(wal)),
            mib(support::file_size(db))
        ),
        None,
    );
    let started = Instant::now();
    let (mut host, addr) = start(&root, data, cache)?;
    let to_log = started.elapsed();
    let mut sender = first_answer(addr).await?;
    let to_answer = started.elapsed();
    let pid = host.0.id();
    table.row(
        "start-up to \"listening on\"",
        format!("{:.2} s", to_log.as_secs_f64()),
        Some(("< 2 s", to_log < Duration::from_secs(2))),
    );
    table.row(
        "start-up to first answer",
        format!("{:.2} s", to_answer.as_secs_f64()),
        Some(("< 2 s", to_answer < Duration::from_secs(2))),
    );
    table.rss("RSS at ready", rss_kib(pid)?);

    // Distinct devices spread over the fleet (not fleet_000000, whose
    // one-device rows would make a bigger answer).
    let mut fetches = Vec::new();
    for i in 0..FETCH_SAMPLES {
        let d = n / (2 * FETCH_SAMPLES) + i * n / FETCH_SAMPLES;
        let path = format!("/fetch/{}", device(d));
        let started = Instant::now();
        let answer = get_ok(&mut sender, &path).await?;
        fetches.push(started.elapsed());
        let rows = serde_json::from_slice::<Vec<Value>>(&answer.body)?.len() as u64;
        let want = 1 + round_robin_rows(rr_requests, n, d);
        anyhow::ensure!(
            rows == want.min(10_000),
            "{path}: {rows} rows, {want} stored"
        );
    }
    let first_fetch = fetches[0];
    fetches.sort();
    let median = fetches[fetches.len() / 2];
    table.row(
        "first fetch after restart: the first",
        format!("{:.1} ms", ms(first_fetch)),
        Some(("< 20 ms", ms(first_fetch) < 20.0)),
    );
    table.row(
        &format!("first fetch after restart: median of {FETCH_SAMPLES}"),
        format!("{:.1} ms", ms(median)),
        Some(("< 20 ms", ms(median) < 20.0)),
    );
    let started = Instant::now();
    let page = get_ok(&mut sender, "/fetch/devices").await?;
    let elapsed = started.elapsed();
    let page_rows = serde_json::from_slice::<Vec<Value>>(&page.body)?.len();
    table.row(
        "GET /fetch/devices (first page)",
        format!(
            "{:.1} ms, {page_rows} rows, {:.1} MiB, {}",
            ms(elapsed),
            page.body.len() as f64 / (1 << 20) as f64,
            if page.link.is_some() {
                "Link: next"
            } else {
                "no Link"
            }
        ),
        None,
    );
    table.rss("RSS after restart and fetches", rss_kib(pid)?);

    // Last, not timed: the device list names every device.
    let listed = list_devices(&mut sender).await?;
    anyhow::ensure!(listed == n, "the device list names {listed} of {n} devices");
    drop(sender);
    support::terminate(&mut host, Duration::from_secs(60))?;

    println!();
    println!(
        "fleet of {n} devices, {CLIENTS} clients, {}s per ingest case; load average before {load_before}, after {}",
        duration.as_secs(),
        support::load_average()
    );
    if created.reconnects > 0 {
        println!(
            "({} requests of the creation went on a new connection: the host had closed the old one)",
            created.reconnects
        );
    }
    table.print();
    Ok(())
}

/// The release `cromflag up` on `data`, as the benchmark runs it.
fn start(root: &Path, data: &Path, cache: &Path) -> anyhow::Result<(Process, SocketAddr)> {
    support::spawn_local_host(root, &root.join("spin.toml"), data, cache)
}

/// Polls `GET /` (the built-in page: no store read) until the host answers;
/// returns the connection that did.
async fn first_answer(addr: SocketAddr) -> anyhow::Result<support::Sender> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut sender) = support::connect(addr).await {
            if support::get(&mut sender, "/").await.is_ok() {
                return Ok(sender);
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "no answer from {addr}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

struct Created {
    /// 2xx answers.
    count: u64,
    started: Instant,
    /// When the count reached each mark (every window, n - window and n).
    marks: Vec<(u64, Instant)>,
    reconnects: u64,
}

impl Created {
    /// Seconds from the start until `count` devices were created.
    fn at(&self, count: u64) -> anyhow::Result<f64> {
        self.marks
            .iter()
            .find(|(c, _)| *c == count)
            .map(|(_, at)| (*at - self.started).as_secs_f64())
            .ok_or_else(|| anyhow::anyhow!("no time recorded at {count} devices"))
    }
}

/// Creates devices 0..n, each with one insert of `sample`, from `CLIENTS`
/// connections; stops at the first answer that is not a 2xx.
async fn create(addr: SocketAddr, n: u64, sample: &Value) -> anyhow::Result<Created> {
    let window = WINDOW.min(n / 2);
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let reconnects = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let marks = Arc::new(Mutex::new(Vec::new()));
    let mut clients = JoinSet::new();
    for _ in 0..CLIENTS {
        let (next, done, reconnects) = (next.clone(), done.clone(), reconnects.clone());
        let (marks, sample) = (marks.clone(), sample.clone());
        clients.spawn(async move {
            let mut sender = support::connect(addr).await?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(());
                }
                let name = device(i);
                let body = serde_json::to_vec(&sample_for(&sample, &name, None))?;
                let path = format!("/insert/{name}");
                if post_ok(&mut sender, addr, &path, body).await? {
                    reconnects.fetch_add(1, Ordering::Relaxed);
                }
                let count = done.fetch_add(1, Ordering::Relaxed) + 1;
                if count % window == 0 || count == n || count == n - window {
                    let now = Instant::now();
                    let mut marks = marks.lock().unwrap();
                    if count % window == 0 {
                        // The window that has just ended.
                        let since = marks
                            .iter()
                            .rev()
                            .find(|(c, _)| *c == count - window)
                            .map_or(started, |(_, at)| *at);
                        println!(
                            "  {count:>7} devices after {:>7.1} s: {:>6.0} devices/s over the last {window}",
                            (now - started).as_secs_f64(),
                            window as f64 / (now - since).as_secs_f64()
                        );
                    }
                    marks.push((count, now));
                }
            }
        });
    }
    // The first failure ends the run (the other clients are aborted).
    while let Some(client) = clients.join_next().await {
        client??;
    }
    let count = done.load(Ordering::SeqCst);
    anyhow::ensure!(count == n, "{count} of {n} devices created");
    let marks = std::mem::take(&mut *marks.lock().unwrap());
    Ok(Created {
        count,
        started,
        marks,
        reconnects: reconnects.load(Ordering::SeqCst),
    })
}

/// Posts `request(k)` for k = 0, 1, … from `CLIENTS` connections for
/// `duration`; every answer must be a 2xx. Returns the requests answered and
/// their rate.
async fn ingest(
    addr: SocketAddr,
    duration: Duration,
    request: impl Fn(u64) -> (String, Vec<u8>) + Send + Sync + 'static,
) -> anyhow::Result<(u64, f64)> {
    let request = Arc::new(request);
    let sequence = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut clients = JoinSet::new();
    for _ in 0..CLIENTS {
        let (request, sequence) = (request.clone(), sequence.clone());
        clients.spawn(async move {
            let mut sender = support::connect(addr).await?;
            let mut answered = 0u64;
            while Instant::now() < deadline {
                let (path, body) = request(sequence.fetch_add(1, Ordering::Relaxed));
                post_ok(&mut sender, addr, &path, body).await?;
                answered += 1;
            }
            anyhow::Ok(answered)
        });
    }
    let mut answered = 0;
    while let Some(client) = clients.join_next().await {
        answered += client??;
    }
    let elapsed = started.elapsed();
    // Every request numbered was sent and answered.
    anyhow::ensure!(answered == sequence.load(Ordering::SeqCst));
    Ok((answered, answered as f64 / elapsed.as_secs_f64()))
}

/// The devices `/fetch/devices` lists, following `Link: rel="next"` pages.
async fn list_devices(sender: &mut support::Sender) -> anyhow::Result<u64> {
    let mut path = "/fetch/devices".to_owned();
    let mut seen = std::collections::HashSet::new();
    loop {
        let answer = get_ok(sender, &path).await?;
        let rows: Vec<Value> = serde_json::from_slice(&answer.body)?;
        for row in &rows {
            let id = row["deviceid"].as_str().unwrap_or_default();
            anyhow::ensure!(
                id.starts_with("fleet_"),
                "an unexpected device in the list: {row}"
            );
            anyhow::ensure!(seen.insert(id.to_owned()), "{id} listed twice");
        }
        match answer.link.as_deref().and_then(support::next_link) {
            Some(next) if !rows.is_empty() => path = next.to_owned(),
            _ => return Ok(seen.len() as u64),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A figure's aim, and whether it is met.
type Aim = Option<(&'static str, bool)>;

/// The figures: name, value, and the aim.
#[derive(Default)]
struct Table(Vec<(String, String, Aim)>);

impl Table {
    fn row(&mut self, name: &str, value: String, aim: Aim) {
        self.0.push((name.to_owned(), value, aim));
    }

    /// `VmRSS` against the aim, with the peak beside it.
    fn rss(&mut self, name: &str, (rss, peak): (u64, u64)) {
        self.row(
            name,
            format!("{} MiB (peak {} MiB)", rss / 1024, peak / 1024),
            Some(("< 100 MiB", rss < RSS_AIM_KIB)),
        );
    }

    fn disk(&mut self, name: &str, db: &Path, wal: &Path) {
        self.row(
            &format!("{name}: db, wal"),
            format!(
                "{}, {}",
                mib(support::file_size(db)),
                mib(support::file_size(wal))
            ),
            None,
        );
    }

    fn print(&self) {
        let width = self
            .0
            .iter()
            .map(|r| r.0.chars().count())
            .max()
            .unwrap_or(0);
        let value_width = self
            .0
            .iter()
            .map(|r| r.1.chars().count())
            .max()
            .unwrap_or(0);
        println!(
            "{:<width$} | {:<value_width$} | {:<9} | met",
            "figure", "value", "aim"
        );
        for (name, value, aim) in &self.0 {
            let (aim, met) = match aim {
                Some((aim, met)) => (*aim, if *met { "yes" } else { "NO" }),
                None => ("", ""),
            };
            println!("{name:<width$} | {value:<value_width$} | {aim:<9} | {met}");
        }
    }
}
