//! Insert throughput: the Wasm path against the same logic compiled natively.
//!
//! Both servers run in this process on loopback, each over its own embedded
//! store, and get the same load: `c` keep-alive connections, each posting the
//! sample payload (with timestamps shifted, so every request appends six rows)
//! as fast as answers come, for a fixed time. The native baseline calls
//! `cromflag_logic::api::handle_insert` directly from hyper; the Wasm path is the
//! real `cromflag` HTTP trigger with the insert component. Both commit through
//! the same group-commit writer, so the ratio isolates what Wasm costs.
//!
//! Each case also prints what a request costs in page faults and in
//! `madvise`/`mprotect` calls (the pooling allocator's slot resets; see
//! `support::resources`), and the run ends with the process's idle resident
//! memory and its peak during the last (c64) case of each server.
//!
//! Run: `cargo bench -p cromflag --bench insert` (components must be built:
//! `cargo build --release` does it). `BENCH_SECONDS` sets the time per case.

mod support;

use cromflag::app;
use cromflag::runtime::{Runtime, RuntimeLimits};
use cromflag::store::embedded::EmbeddedStore;
use cromflag::store::Backend;
use cromflag_logic::api;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use support::{load, native, resources, ROWS_PER_REQUEST};

/// Keeps the native baseline's message ids distinct, as the guest's random nonce does.
static NONCE: AtomicU64 = AtomicU64::new(0);
use support::CONCURRENCY;

fn main() -> anyhow::Result<()> {
    let seconds = support::env_number("BENCH_SECONDS", 3);
    support::block_on(run(Duration::from_secs(seconds)))
}

async fn run(duration: Duration) -> anyhow::Result<()> {
    let root = support::repo_root();
    let tmp = tempfile::TempDir::new()?;
    let wasm = app::start(&support::up_options(
        &tmp.path().join("wasm"),
        &tmp.path().join("cache"),
    )?)
    .await?;
    std::fs::create_dir_all(tmp.path().join("native"))?;
    let native_store: Arc<dyn Backend> = Arc::new(Arc::new(EmbeddedStore::open(
        &tmp.path().join("native/cromflag.db"),
    )?));
    let native_addr = serve_native(native_store).await?;

    let sample = support::sample(&root)?;
    let sequence = Arc::new(AtomicU64::new(0));

    println!(
        "insert throughput, {}s per case, {} rows per request; per request: page faults, madvise, mprotect",
        duration.as_secs(),
        ROWS_PER_REQUEST
    );
    println!(
        "{:>5} | {:>10} {:>16} | {:>12} {:>16} | {:>10}",
        "conc", "wasm req/s", "flt madv mprot", "native req/s", "flt madv mprot", "wasm/native"
    );
    let (idle_rss, _) = resources::rss_mib();
    let mut peak_rss = (0.0, 0.0);
    for concurrency in CONCURRENCY {
        // Native first, then Wasm, on stores that grew the same way.
        resources::reset_peak_rss();
        let counting = resources::Counting::start(duration);
        let native = load(native_addr, concurrency, duration, &sample, &sequence).await?;
        let native_counts = counting.finish();
        peak_rss.0 = resources::rss_mib().1;
        resources::reset_peak_rss();
        let counting = resources::Counting::start(duration);
        let wasm_rate = load(wasm.http_addr, concurrency, duration, &sample, &sequence).await?;
        let wasm_counts = counting.finish();
        peak_rss.1 = resources::rss_mib().1;
        let requests = |rate: f64| rate * duration.as_secs_f64();
        println!(
            "{concurrency:>5} | {wasm_rate:>10.0} {:>16} | {native:>12.0} {:>16} | {:>10.2}",
            wasm_counts.per_request(requests(wasm_rate)),
            native_counts.per_request(requests(native)),
            wasm_rate / native,
        );
    }
    println!(
        "resident memory of the process (both servers): idle {idle_rss:.0} MiB; peak during c{} native {:.0} MiB, Wasm {:.0} MiB",
        CONCURRENCY[CONCURRENCY.len() - 1],
        peak_rss.0,
        peak_rss.1
    );

    let (instantiate, baseline) = instantiation_time(&root, tmp.path()).await?;
    println!(
        "instantiation of the insert component: mean {:.1} µs per request ({:.1}x a bare Store::new at {:.2} µs)",
        instantiate.as_secs_f64() * 1e6,
        instantiate.as_secs_f64() / baseline.as_secs_f64(),
        baseline.as_secs_f64() * 1e6,
    );
    Ok(())
}

/// The baseline server: hyper straight into the insert logic, no Wasm.
async fn serve_native(backend: Arc<dyn Backend>) -> anyhow::Result<SocketAddr> {
    native::serve(
        backend,
        Arc::new(|store, request| {
            let receipt = cromflag_logic::insert::Receipt {
                received_ms: cromflag::store::now_ms(),
                transport: "http",
                nonce: NONCE.fetch_add(1, Ordering::Relaxed),
            };
            api::handle_insert(store, &mut cromflag_logic::NoTransforms, request, receipt)
        }),
    )
    .await
}

/// Mean time to instantiate the insert component from its `InstancePre` into a
/// fresh store, against the time to make the store alone.
async fn instantiation_time(root: &Path, tmp: &Path) -> anyhow::Result<(Duration, Duration)> {
    const N: u32 = 2000;
    std::fs::create_dir_all(tmp.join("inst"))?;
    let backend: Arc<dyn Backend> = Arc::new(Arc::new(EmbeddedStore::open(
        &tmp.join("inst/cromflag.db"),
    )?));
    let runtime = Runtime::new(backend, &tmp.join("cache"), RuntimeLimits::default())?;
    let component = runtime
        .load(&root.join("target/components/wasm32-wasip2/component/insert.wasm"))?
        .component;
    let pre = ProxyPre::new(runtime.linker().instantiate_pre(&component)?)?;

    let started = Instant::now();
    for _ in 0..N {
        drop(runtime.new_store(&Default::default()));
    }
    let store_only = started.elapsed() / N;
    let started = Instant::now();
    for _ in 0..N {
        let mut store = runtime.new_store(&Default::default());
        pre.instantiate_async(&mut store).await?;
    }
    Ok((started.elapsed() / N, store_only))
}
