//! What authentication costs an insert: the same `cromflag` HTTP trigger and
//! insert component, once open (loopback, no token) and once with tokens
//! required, every request carrying the device's token (`Authorization:
//! Bearer`: a SHA-256 and a cache lookup; the store is asked once a second
//! per token). Both hosts run in this process on their own embedded stores and
//! get the same load at each concurrency, in the order open, token, token, open
//! twice over (each a quarter of the time), so that warm-up, the stores'
//! growth and the disk's moods weigh on both alike; each rate is the mean of
//! its four runs. The check itself is then timed alone: `Access::authorize`
//! on a cached device token, against hashing the token (its floor). Every request must answer
//! `200 True`.
//!
//! Run: `cargo bench -p cromflag --bench access` (components must be built:
//! `cargo build --release` does it). `BENCH_SECONDS` sets the time per case.

mod support;

use cromflag::access::credentials::Credentials;
use cromflag::app;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use support::CONCURRENCY;

fn main() -> anyhow::Result<()> {
    let seconds = support::env_number("BENCH_SECONDS", 3);
    support::block_on(run(Duration::from_secs(seconds)))
}

async fn run(duration: Duration) -> anyhow::Result<()> {
    let root = support::repo_root();
    let tmp = tempfile::TempDir::new()?;
    let cache = tmp.path().join("cache");
    let open = app::start(&support::up_options(&tmp.path().join("open"), &cache)?).await?;
    anyhow::ensure!(open.access == cromflag::access::Mode::Open);

    // The device's token, made in the store before its host opens it.
    let secured_dir = tmp.path().join("secured");
    let token = {
        let (store, _lock) = app::open_embedded(&secured_dir)?;
        let issued = Credentials::new(store).add_device("sample").await?;
        issued
            .map_err(|refused| anyhow::anyhow!("{refused}"))?
            .token
    };
    // SAFETY: set before the second host reads its variables; the benchmark's
    // other threads read no environment.
    unsafe { std::env::set_var("SPIN_VARIABLE_ACCESS", "required") };
    let secured = app::start(&support::up_options(&secured_dir, &cache)?).await?;
    anyhow::ensure!(secured.access == cromflag::access::Mode::Required);
    let authorization = Some(format!("Bearer {token}"));

    let sample = support::sample(&root)?;
    let sequence = Arc::new(AtomicU64::new(0));
    println!(
        "insert with and without authentication, {}s per case",
        duration.as_secs()
    );
    println!(
        "{:>5} | {:>12} | {:>12} | {:>10}",
        "conc", "open req/s", "token req/s", "token/open"
    );
    for concurrency in CONCURRENCY {
        // ABBA twice: every slice of one mode has one of the other beside it.
        let slice = duration / 4;
        let open_load = || support::load(open.http_addr, concurrency, slice, &sample, &sequence);
        let token_load = || {
            support::load_as(
                secured.http_addr,
                authorization.clone(),
                concurrency,
                slice,
                &sample,
                &sequence,
            )
        };
        let (mut open_sum, mut token_sum) = (0.0, 0.0);
        for _ in 0..2 {
            open_sum += open_load().await?;
            token_sum += token_load().await?;
            token_sum += token_load().await?;
            open_sum += open_load().await?;
        }
        let (open_rate, token_rate) = (open_sum / 4.0, token_sum / 4.0);
        println!(
            "{concurrency:>5} | {open_rate:>12.0} | {token_rate:>12.0} | {:>10.2}",
            token_rate / open_rate
        );
    }
    let (check, floor) = check_time(&secured_dir, &root, &token).await?;
    println!(
        "one token check (cached): mean {:.2} µs, of which SHA-256 {:.2} µs",
        check.as_secs_f64() * 1e6,
        floor.as_secs_f64() * 1e6
    );
    Ok(())
}

/// Mean time of `authorize` for a cached device token, and of the SHA-256 of
/// the token alone, over many calls.
async fn check_time(
    data_dir: &Path,
    root: &Path,
    token: &str,
) -> anyhow::Result<(std::time::Duration, std::time::Duration)> {
    use cromflag::access::{self, Access, Mode, Need, Presented};
    const N: u32 = 100_000;
    // A copy of the store: the running host holds the data directory.
    let copy = data_dir.with_extension("copy");
    std::fs::create_dir_all(&copy)?;
    std::fs::copy(data_dir.join("cromflag.db"), copy.join("cromflag.db"))?;
    let (store, _lock) = app::open_embedded(&copy)?;
    let app = cromflag::manifest::load(&root.join("spin.toml"))?;
    let access = Access::new(Mode::Required, Arc::new(Credentials::new(store)), &app);
    let need = Need::Write("sample".into());
    let presented = Presented::Token(token.to_owned());
    access
        .authorize(&need, &presented)
        .await
        .map_err(|d| anyhow::anyhow!("{}", d.message))?;
    let started = std::time::Instant::now();
    for _ in 0..N {
        let _ = std::hint::black_box(access.authorize(&need, &presented).await);
    }
    let check = started.elapsed() / N;
    let started = std::time::Instant::now();
    for _ in 0..N {
        std::hint::black_box(access::token::digest(std::hint::black_box(token)));
    }
    Ok((check, started.elapsed() / N))
}
