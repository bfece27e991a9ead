//! Transforms and live changes, measured on real `cromflag` processes:
//! - insert throughput with 0, 1 (°F → °C) and 3 (°F → °C, dew point, a range
//!   filter that keeps every row) transforms, in the same run, as ratios to 0;
//! - how long a changed component file takes to serve: the probe fixture is
//!   rewritten with a new build text, and the time runs until its route
//!   answers with the new text.
//!
//! Run: `cargo bench -p cromflag --bench transforms` after `cargo build --release`.
//! `BENCH_SECONDS` sets the time per throughput case (default 3), `BENCH_SWAPS`
//! the number of swaps timed (default 20).

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{load, ROWS_PER_REQUEST};

fn main() -> anyhow::Result<()> {
    let env = support::env_number;
    support::block_on(run(
        Duration::from_secs(env("BENCH_SECONDS", 3)),
        env("BENCH_SWAPS", 20) as usize,
    ))
}

fn wasm(root: &Path, name: &str) -> String {
    root.join(format!(
        "target/components/wasm32-wasip2/component/{name}.wasm"
    ))
    .display()
    .to_string()
}

/// A manifest with `/insert` running `transforms`, and `/probe` on `probe`.
fn manifest(root: &Path, dir: &Path, transforms: &[&str], probe: &Path) -> anyhow::Result<PathBuf> {
    let list: Vec<String> = transforms.iter().map(|t| format!("{t:?}")).collect();
    let text = format!(
        "spin_manifest_version = 2\n[application]\nname = \"bench\"\n\
         [[trigger.http]]\nroute = \"/insert/...\"\ncomponent = \"insert\"\n\
         [[trigger.http]]\nroute = \"/probe/...\"\ncomponent = \"probe\"\n\
         [component.insert]\nsource = {:?}\n\
         [component.insert.tool.cromflag]\ntransforms = [{}]\n\
         [component.probe]\nsource = {:?}\n\
         [component.f2c]\nsource = {:?}\n\
         [component.dew]\nsource = {:?}\n\
         [component.range]\nsource = {:?}\n\
         [component.range.variables]\ncolumn = \"temperature\"\nmin = \"-100\"\nmax = \"100\"\n",
        wasm(root, "insert"),
        list.join(", "),
        probe.display().to_string(),
        wasm(root, "fahrenheit_to_celsius"),
        wasm(root, "dew_point"),
        wasm(root, "range_filter"),
    );
    std::fs::create_dir_all(dir)?;
    let path = dir.join("spin.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// The probe fixture with its build text replaced by build `n`.
fn probe_build(root: &Path, n: usize) -> anyhow::Result<Vec<u8>> {
    let mut bytes = std::fs::read(wasm(root, "probe"))?;
    let from = b"probe-build-0001";
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .ok_or_else(|| anyhow::anyhow!("no build text in the probe"))?;
    bytes[at..at + from.len()].copy_from_slice(format!("probe-build-{n:04}").as_bytes());
    Ok(bytes)
}

/// A host in `dir` whose insert runs `chain`, with the probe at `dir/probe.wasm`.
fn start(
    root: &Path,
    dir: &Path,
    chain: &[&str],
    cache: &Path,
) -> anyhow::Result<(support::Process, std::net::SocketAddr)> {
    let probe = dir.join("probe.wasm");
    std::fs::create_dir_all(dir)?;
    std::fs::write(&probe, probe_build(root, 1)?)?;
    let manifest = manifest(root, dir, chain, &probe)?;
    let data = dir.join("data");
    support::spawn_local_host(root, &manifest, &data, cache)
}

async fn run(duration: Duration, swaps: usize) -> anyhow::Result<()> {
    let root = support::repo_root();
    let root = root.as_path();
    let tmp = tempfile::TempDir::new()?;
    let cache = tmp.path().join("cache");
    let sample = support::sample(root)?;
    let sequence = Arc::new(AtomicU64::new(0));

    println!(
        "insert throughput, {}s per case, concurrency 16, {ROWS_PER_REQUEST} rows per request",
        duration.as_secs()
    );
    println!(
        "{:>12} | {:>10} {:>10} | {:>8}",
        "transforms", "req/s", "rows/s", "vs 0"
    );
    let mut baseline = None;
    for (name, chain) in [
        ("0", &[][..]),
        ("1", &["f2c"][..]),
        ("3", &["f2c", "dew", "range"][..]),
    ] {
        let (host, addr) = start(root, &tmp.path().join(format!("t{name}")), chain, &cache)?;
        let rate = load(addr, 16, duration, &sample, &sequence).await?;
        let base = *baseline.get_or_insert(rate);
        println!(
            "{name:>12} | {rate:>10.0} {:>10.0} | {:>8.2}",
            rate * ROWS_PER_REQUEST as f64,
            rate / base
        );
        drop(host);
    }

    // Change → serving: rewrite the probe, poll its route until the new build answers.
    let dir = tmp.path().join("swap");
    let probe = dir.join("probe.wasm");
    let (_host, addr) = start(root, &dir, &[], &cache)?;
    let mut sender = support::connect(addr).await?;
    let mut times = Vec::new();
    for n in 2..2 + swaps {
        let build = probe_build(root, n)?;
        let wanted = format!("probe-build-{n:04}");
        let started = Instant::now();
        std::fs::write(&probe, build)?;
        loop {
            if support::get(&mut sender, "/probe/x")
                .await?
                .contains(&wanted)
            {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(30),
                "build {n} never served"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        times.push(started.elapsed());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "file change → new version serving, {swaps} swaps (debounce {} ms included): p50 {:.0} ms, max {:.0} ms",
        200,
        ms(times[times.len() / 2]),
        ms(*times.last().unwrap())
    );
    Ok(())
}
