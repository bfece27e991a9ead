//! Fetch latency on a large device, against raw SQL on the same SQLite file.
//!
//! One device holds `BENCH_FETCH_ROWS` rows (1,000,000 by default, one a second,
//! about 11.6 days), written straight into the embedded store. Then, over HTTP
//! through the fetch component as `cromflag up` serves it:
//! - `GET /fetch/big?from=…&to=…` returning 10,000 rows, at random offsets:
//!   p50 and p99 latency;
//! - `GET /fetch/big?agg=avg&interval=1m&columns=temp&from=…&to=…` over one day
//!   (1,440 buckets): p50 and p99;
//!
//! the same over HTTP through the same logic compiled natively (no Wasm), and
//! the same two questions as raw SQL on the same file (rusqlite, no HTTP, no
//! Wasm, no JSON): the floor. Each sample asks all three in turn. It prints
//! the three and their ratios: Wasm/SQL is the whole cost over the floor,
//! native/SQL what the logic, JSON and HTTP cost without Wasm, and
//! Wasm/native what Wasm adds.
//!
//! Run: `cargo bench -p cromflag --bench fetch` (after `cargo build --release`).

mod support;

use support::native;

use cromflag::access::Access;
use cromflag::app;
use cromflag::manifest;
use cromflag::runtime::{Runtime, RuntimeLimits};
use cromflag::store::{Column, ColumnType, ContainerInfo, ContainerKind, Value};
use cromflag::triggers::http::HttpTrigger;
use cromflag_logic::api;
use cromflag_logic::fetch::DEFAULT_MAX_LIMIT;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

const BASE: i64 = 1_600_000_000_000;
const PAGE_ROWS: i64 = 10_000;
const DAY_MS: i64 = 86_400_000;
const SAMPLES: usize = 60;

fn main() -> anyhow::Result<()> {
    let rows = support::env_number("BENCH_FETCH_ROWS", 1_000_000) as i64;
    support::block_on(run(rows))
}

async fn run(rows: i64) -> anyhow::Result<()> {
    let root = support::repo_root();
    let tmp = tempfile::TempDir::new()?;
    let manifest_path = tmp.path().join("spin.toml");
    std::fs::write(
        &manifest_path,
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"bench\"\n\
             [[trigger.http]]\nroute = \"/fetch/...\"\ncomponent = \"fetch\"\n\
             [component.fetch]\nsource = {:?}\n",
            root.join("target/components/wasm32-wasip2/component/fetch.wasm")
                .display()
                .to_string()
        ),
    )?;
    let app = manifest::load(&manifest_path)?;
    let data = tmp.path().join("data");
    let (backend, _lock) = app::open_embedded(&data)?;

    let preload = Instant::now();
    backend
        .put_container(ContainerInfo {
            name: "big".into(),
            kind: ContainerKind::TimeSeries,
            columns: vec![
                Column::new("timestamp", ColumnType::Timestamp),
                Column::new("temp", ColumnType::Float),
                Column::new("hum", ColumnType::Long),
            ],
            row_key: true,
        })
        .await?;
    for chunk in (0..rows).collect::<Vec<_>>().chunks(20_000) {
        let batch = chunk
            .iter()
            .map(|&i| {
                vec![
                    Value::Timestamp(BASE + i * 1000),
                    Value::Float(20.0 + (i % 100) as f32 / 10.0),
                    Value::Long(40 + i % 30),
                ]
            })
            .collect();
        backend.put_rows("big", batch).await?;
    }
    println!(
        "{rows} rows of one device written in {:.1}s; {SAMPLES} samples per case",
        preload.elapsed().as_secs_f64()
    );

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
    let access = Arc::new(Access::open(backend.clone(), &app));
    let http = Arc::new(HttpTrigger::new(
        &app,
        runtime,
        &components,
        1 << 20,
        Default::default(),
        access,
    )?);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(http.serve(listener));
    let mut sender = support::connect(addr).await?;
    // The same logic compiled natively, over the same store.
    let native_addr = native::serve(
        backend.clone(),
        Arc::new(|store, request| api::handle_fetch(store, request, DEFAULT_MAX_LIMIT)),
    )
    .await?;
    let mut native_sender = support::connect(native_addr).await?;

    // Offsets spread over the data, the same for every case.
    let span = rows * 1000;
    let offsets: Vec<i64> = (0..SAMPLES as i64)
        .map(|k| (k * 7919 % SAMPLES as i64) * (span - DAY_MS).max(1) / SAMPLES as i64)
        .collect();

    // The floor: the same questions in SQL on the same file.
    let conn = rusqlite::Connection::open_with_flags(
        data.join("cromflag.db"),
        // As the store opens its readers: one thread per connection.
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let id: i64 = conn.query_row(
        "SELECT id FROM _cromflag_containers WHERE name = 'big'",
        [],
        |r| r.get(0),
    )?;
    // Where the embedded store keeps this device's rows (its layout's own
    // naming), read with the same key-range seek its queries use.
    let storage = cromflag_tql::layout::Storage::of(id, ContainerKind::TimeSeries);
    let table = storage.table();
    let mine = storage.shared_by().map_or_else(String::new, |container| {
        format!("container = {container} AND ")
    });
    let mut select = conn.prepare(&format!(
        "SELECT c0, c1, c2 FROM {table} WHERE {mine}c0 >= ?1 AND c0 < ?2 ORDER BY c0"
    ))?;
    let mut buckets = conn.prepare(&format!(
        "SELECT (c0 - ?1) / 60000 AS b, AVG(c1) FROM {table} WHERE {mine}c0 >= ?1 AND c0 < ?2 GROUP BY b ORDER BY b"
    ))?;

    // Each sample asks the API, then SQL, the same question: a slow spell
    // of the machine then slows both sides of a ratio, not one.
    let (mut page, mut native_page, mut raw_page) = (Vec::new(), Vec::new(), Vec::new());
    for &offset in &offsets {
        let from = BASE + offset;
        let path = format!("/fetch/big?from={from}&to={}", from + PAGE_ROWS * 1000);
        for (sender, samples) in [
            (&mut sender, &mut page),
            (&mut native_sender, &mut native_page),
        ] {
            let started = Instant::now();
            let body = get(sender, &path).await?;
            samples.push(started.elapsed());
            anyhow::ensure!(
                body.iter().filter(|&&b| b == b'{').count() as i64 == PAGE_ROWS,
                "a page of {PAGE_ROWS} rows"
            );
        }

        let started = Instant::now();
        let got: Vec<(i64, f64, i64)> = select
            .query_map([from, from + PAGE_ROWS * 1000], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<Result<_, _>>()?;
        raw_page.push(started.elapsed());
        anyhow::ensure!(got.len() as i64 == PAGE_ROWS);
    }
    let (mut downsample, mut native_downsample, mut raw_downsample) =
        (Vec::new(), Vec::new(), Vec::new());
    for &offset in offsets.iter().take(SAMPLES / 2) {
        let from = BASE + offset;
        let path = format!(
            "/fetch/big?agg=avg&interval=1m&columns=temp&from={from}&to={}",
            from + DAY_MS
        );
        for (sender, samples) in [
            (&mut sender, &mut downsample),
            (&mut native_sender, &mut native_downsample),
        ] {
            let started = Instant::now();
            let body = get(sender, &path).await?;
            samples.push(started.elapsed());
            anyhow::ensure!(
                body.iter().filter(|&&b| b == b'{').count() == 1440,
                "1,440 buckets"
            );
        }

        let started = Instant::now();
        let got: Vec<(i64, f64)> = buckets
            .query_map([from, from + DAY_MS], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        raw_downsample.push(started.elapsed());
        anyhow::ensure!(got.len() == 1440);
    }

    println!(
        "{:<34} | {:>15} | {:>15} | {:>15} | {:>8} {:>8} {:>8}",
        "p50 · p99 ms", "Wasm (API)", "native (API)", "SQL", "Wasm/SQL", "nat/SQL", "Wasm/nat"
    );
    for (name, api, native, sql) in [
        (
            "fetch 10,000 rows (JSON over HTTP)",
            &mut page,
            &mut native_page,
            &mut raw_page,
        ),
        (
            "1-minute averages over a day",
            &mut downsample,
            &mut native_downsample,
            &mut raw_downsample,
        ),
    ] {
        let (w50, w99) = percentiles(api);
        let (n50, n99) = percentiles(native);
        let (s50, s99) = percentiles(sql);
        let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
        println!(
            "{name:<34} | {:>7.2} {:>7.2} | {:>7.2} {:>7.2} | {:>7.2} {:>7.2} | {:>8.1} {:>8.1} {:>8.2}",
            ms(w50),
            ms(w99),
            ms(n50),
            ms(n99),
            ms(s50),
            ms(s99),
            ratio(w50, s50),
            ratio(n50, s50),
            ratio(w50, n50),
        );
    }
    Ok(())
}

fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn get(sender: &mut support::Sender, path: &str) -> anyhow::Result<bytes::Bytes> {
    sender.ready().await?;
    let request = http::Request::get(path)
        .header("host", "bench")
        .body(http_body_util::Full::new(bytes::Bytes::new()))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    anyhow::ensure!(status == 200, "GET {path}: {status} {body:?}");
    Ok(body)
}
