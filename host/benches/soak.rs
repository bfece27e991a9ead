//! A soak: does ingest hold its rate, and the WAL its size, over a long run?
//!
//! The real `cromflag` binary (the repository's `spin.toml`, `--mqtt-broker
//! off`, an ephemeral port) on a fresh data directory, for `SOAK_SECONDS`
//! (600 by default):
//! - 8 writers, each inserting the sample (six rows a request, timestamps
//!   shifted so each request adds new rows) into its own device on its own
//!   keep-alive connection, the next request as soon as the answer is back;
//!   every answer must be a 2xx;
//! - one reader polling `GET /fetch/<device>?limit=1000&order=desc` every
//!   100 ms, over the writers' devices in turn; every answer must be a 2xx
//!   with as many rows as were acknowledged, up to 1,000.
//!
//! Every `SOAK_INTERVAL_SECONDS` (60 by default) it prints a line: the ingest
//! rate over that interval (requests and rows per second), the reader's
//! latency (median and worst), the sizes of `cromflag.db-wal` and
//! `cromflag.db`, and the process's RSS. At the end the rows are counted by
//! the store (they must all be there) and it prints the last interval's rate
//! over the first's (aim ≥ 0.9), the largest WAL seen (sampled every 200 ms;
//! aim < 64 MiB), and the WAL's size after a clean shutdown (SIGTERM), with
//! the load average before and after.
//!
//! Run: `cargo bench -p cromflag --bench soak` after `cargo build --release`;
//! `SOAK_SECONDS=180 SOAK_INTERVAL_SECONDS=30` for a shorter run;
//! `CROMFLAG_BENCH_ROOT` runs another build (as in `fleet`).

mod support;

use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{mib, post_ok, sample_for, ROWS_PER_REQUEST};
use tokio::task::JoinSet;

const WRITERS: usize = 8;
const READ_EVERY: Duration = Duration::from_millis(100);
const READ_LIMIT: u64 = 1000;
/// How often the WAL's size is sampled for the largest seen.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);
const WAL_AIM_BYTES: u64 = 64 << 20;

fn main() -> anyhow::Result<()> {
    let seconds = support::env_number("SOAK_SECONDS", 600);
    let interval = support::env_number("SOAK_INTERVAL_SECONDS", 60);
    anyhow::ensure!(
        interval > 0 && seconds >= 2 * interval,
        "SOAK_SECONDS must be at least two SOAK_INTERVAL_SECONDS"
    );
    support::block_on(run(
        (seconds / interval) as u32,
        Duration::from_secs(interval),
    ))
}

fn device(w: usize) -> String {
    format!("soak_{w}")
}

async fn run(intervals: u32, interval: Duration) -> anyhow::Result<()> {
    let root = support::host_root();
    let dirs = support::HostDirs::new()?;
    let (data, cache, db, wal) = (&dirs.data, &dirs.cache, &dirs.db, &dirs.wal);
    let manifest = root.join("spin.toml");
    let (mut host, addr) = support::spawn_local_host(&root, &manifest, data, cache)?;
    let pid = host.0.id();
    let load_before = support::load_average();
    println!(
        "soak: {WRITERS} writers ({ROWS_PER_REQUEST} rows a request, a device each), a reader every {} ms, {intervals} × {}s; pid {pid}, load average {load_before}",
        READ_EVERY.as_millis(),
        interval.as_secs()
    );

    let sample = support::sample(&support::repo_root())?;
    let stop = Arc::new(AtomicBool::new(false));
    // Requests answered, per writer.
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..WRITERS).map(|_| AtomicU64::new(0)).collect());
    let reads = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let mut tasks = JoinSet::new();
    for w in 0..WRITERS {
        let (stop, acked) = (stop.clone(), acked.clone());
        let doc = sample_for(&sample, &device(w), None);
        tasks.spawn(async move {
            let path = format!("/insert/{}", device(w));
            let mut sender = support::connect(addr).await?;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                post_ok(
                    &mut sender,
                    addr,
                    &path,
                    support::moved(&doc, n as i64 * 60_000),
                )
                .await?;
                n += 1;
                acked[w].store(n, Ordering::Relaxed);
            }
            anyhow::Ok(())
        });
    }
    {
        let (stop, acked, reads) = (stop.clone(), acked.clone(), reads.clone());
        tasks.spawn(async move { read(addr, &stop, &acked, &reads).await });
    }

    println!(
        "{:>6} | {:>8} {:>9} | {:>7} {:>8} {:>8} | {:>10} {:>10} | {:>8}",
        "t s", "req/s", "rows/s", "reads", "p50 ms", "max ms", "wal", "db", "RSS"
    );
    let total = |acked: &[AtomicU64]| acked.iter().map(|a| a.load(Ordering::Relaxed)).sum::<u64>();
    let started = Instant::now();
    let mut ticker = tokio::time::interval(SAMPLE_EVERY);
    let mut largest_wal = 0u64;
    let mut rates = Vec::new();
    let (mut last_at, mut last_total) = (started, 0u64);
    for i in 1..=intervals {
        let end = started + interval * i;
        while Instant::now() < end {
            ticker.tick().await;
            largest_wal = largest_wal.max(support::file_size(wal).unwrap_or(0));
            // A writer or the reader that failed ends the run now.
            if let Some(failed) = tasks.try_join_next() {
                failed??;
                anyhow::bail!("a client ended early");
            }
        }
        let (now, answered) = (Instant::now(), total(&acked));
        let rate = (answered - last_total) as f64 / (now - last_at).as_secs_f64();
        rates.push(rate);
        (last_at, last_total) = (now, answered);
        let mut latencies = std::mem::take(&mut *reads.lock().unwrap());
        latencies.sort();
        let at = |q: f64| {
            latencies
                .get(((latencies.len().max(1) - 1) as f64 * q) as usize)
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
        };
        let (rss, _) = support::rss_kib(pid)?;
        println!(
            "{:>6.0} | {rate:>8.0} {:>9.0} | {:>7} {:>8.1} {:>8.1} | {:>10} {:>10} | {:>4} MiB",
            (now - started).as_secs_f64(),
            rate * ROWS_PER_REQUEST as f64,
            latencies.len(),
            at(0.5),
            at(1.0),
            mib(support::file_size(wal)),
            mib(support::file_size(db)),
            rss / 1024
        );
    }
    stop.store(true, Ordering::SeqCst);
    while let Some(task) = tasks.join_next().await {
        task??;
    }

    // Every acknowledged request's rows, counted by the store.
    let mut sender = support::connect(addr).await?;
    let mut rows = 0;
    for (w, acked) in acked.iter().enumerate() {
        let want = acked.load(Ordering::SeqCst) * ROWS_PER_REQUEST;
        let got = support::count_rows(&mut sender, &device(w), "temperature").await?;
        anyhow::ensure!(
            got == want,
            "{}: {got} rows stored, {want} acknowledged",
            device(w)
        );
        rows += got;
    }
    drop(sender);
    let (_, peak) = support::rss_kib(pid)?;
    let status = support::terminate(&mut host, Duration::from_secs(60))?;
    anyhow::ensure!(status.success(), "cromflag exited with {status} on SIGTERM");
    let ratio = rates.last().unwrap() / rates[0];
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    println!();
    println!(
        "{rows} rows in {:.0} s; load average before {load_before}, after {}",
        started.elapsed().as_secs_f64(),
        support::load_average()
    );
    println!(
        "last interval / first: {:.0} / {:.0} req/s = {ratio:.2} (aim ≥ 0.9: {})",
        rates.last().unwrap(),
        rates[0],
        verdict(ratio >= 0.9)
    );
    println!(
        "largest WAL seen: {} (aim < 64 MiB: {})",
        mib(Some(largest_wal)),
        verdict(largest_wal < WAL_AIM_BYTES)
    );
    println!(
        "after SIGTERM: wal {}, db {}; peak RSS {} MiB",
        mib(support::file_size(wal)),
        mib(support::file_size(db)),
        peak / 1024
    );
    Ok(())
}

/// Polls the writers' devices in turn, newest 1,000 rows first, every
/// `READ_EVERY` until `stop`; each answer must hold every acknowledged row up
/// to 1,000. Records each poll's latency in `reads`.
async fn read(
    addr: SocketAddr,
    stop: &AtomicBool,
    acked: &[AtomicU64],
    reads: &Mutex<Vec<Duration>>,
) -> anyhow::Result<()> {
    let mut sender = support::connect(addr).await?;
    let mut ticker = tokio::time::interval(READ_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut turn = 0;
    while !stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        let w = turn % WRITERS;
        turn += 1;
        // Acknowledged before the request: at least these rows are there.
        let before = acked[w].load(Ordering::Relaxed) * ROWS_PER_REQUEST;
        let path = format!("/fetch/{}?limit={READ_LIMIT}&order=desc", device(w));
        if sender.is_closed() {
            sender = support::connect(addr).await?;
        }
        let started = Instant::now();
        let answer = if before == 0 {
            // Before a device's first row its fetch is a 404.
            support::send(&mut sender, http::Method::GET, &path, Vec::new()).await?
        } else {
            support::get_ok(&mut sender, &path).await?
        };
        let elapsed = started.elapsed();
        anyhow::ensure!(
            answer.status.is_success() || answer.status == 404,
            "GET {path}: {} {:?}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
        if answer.status.is_success() {
            let got = serde_json::from_slice::<Vec<Value>>(&answer.body)?.len() as u64;
            anyhow::ensure!(
                got >= before.min(READ_LIMIT) && got <= READ_LIMIT,
                "{path}: {got} rows, {before} acknowledged"
            );
        }
        reads.lock().unwrap().push(elapsed);
    }
    Ok(())
}
