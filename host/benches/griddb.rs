//! Insert throughput over the `griddb` backend against the embedded store.
//!
//! Two real `cromflag` processes: B runs the embedded store and serves the
//! WebAPI (`--webapi`); A runs `store = "griddb"` against B's WebAPI. The
//! same load (the sample, timestamps shifted so each request appends six rows,
//! from `c` keep-alive connections) goes to B's own HTTP API, then to A's, in
//! the same run; the ratio is what the WebAPI hop costs. Both processes share
//! this machine's cores, so A's figure includes B's work on its behalf.
//!
//! Run: `cargo bench -p cromflag --bench griddb` after `cargo build --release`.
//! `BENCH_SECONDS` sets the time per case (default 3).

mod support;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use support::{load, spawn_host, ROWS_PER_REQUEST};

use support::CONCURRENCY;

fn main() -> anyhow::Result<()> {
    let seconds = support::env_number("BENCH_SECONDS", 3);
    support::block_on(run(Duration::from_secs(seconds)))
}

async fn run(duration: Duration) -> anyhow::Result<()> {
    let root = support::repo_root();
    let root = root.as_path();
    let tmp = tempfile::TempDir::new()?;
    let manifest = root.join("spin.toml");
    let manifest = manifest.to_str().unwrap();
    let cache = tmp.path().join("cache");
    let cache = cache.to_str().unwrap();
    let webapi = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let webapi_arg = webapi.to_string();
    // Both hosts run the repository's manifest, on data directories of their own.
    let host = |data: &str, extra: &[&str], env: &[(&str, String)]| {
        let data = tmp.path().join(data);
        let mut args = vec![
            "--manifest",
            manifest,
            "--cache-dir",
            cache,
            "--listen",
            "127.0.0.1:0",
            "--mqtt-broker",
            "off",
            "--data-dir",
            data.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        spawn_host(root, &args, env)
    };
    let (_b, b) = host("b", &["--webapi", &webapi_arg], &[])?;
    let (_a, a) = host(
        "a",
        &[],
        &[
            ("SPIN_VARIABLE_STORE", "griddb".into()),
            (
                "SPIN_VARIABLE_GRIDDB_URL",
                format!("http://{webapi}/griddb"),
            ),
        ],
    )?;

    let sample = support::sample(root)?;
    let sequence = Arc::new(AtomicU64::new(0));
    println!(
        "insert throughput, {}s per case, {} rows per request",
        duration.as_secs(),
        ROWS_PER_REQUEST
    );
    println!(
        "{:>5} | {:>14} {:>14} | {:>14} {:>14} | {:>16}",
        "conc", "embedded req/s", "rows/s", "griddb req/s", "rows/s", "griddb/embedded"
    );
    for concurrency in CONCURRENCY {
        let embedded = load(b, concurrency, duration, &sample, &sequence).await?;
        let griddb = load(a, concurrency, duration, &sample, &sequence).await?;
        println!(
            "{concurrency:>5} | {embedded:>14.0} {:>14.0} | {griddb:>14.0} {:>14.0} | {:>16.2}",
            embedded * ROWS_PER_REQUEST as f64,
            griddb * ROWS_PER_REQUEST as f64,
            griddb / embedded,
        );
    }
    Ok(())
}
