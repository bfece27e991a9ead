//! What the benchmarks share: the runtime they run on and where the
//! repository is, the HTTP load generator and its payload, starting `cromflag`
//! hosts (in process or as processes), and reading settings from the environment.

// Each benchmark compiles this module and uses a part of it.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;

/// The concurrencies the throughput benchmarks load a host at.
pub const CONCURRENCY: [usize; 3] = [1, 16, 64];

/// Runs a benchmark's body on a multi-threaded tokio runtime, as `cromflag up` runs.
pub fn block_on(body: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(body)
}

/// The repository: its `spin.toml`, fixtures and built components.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ sits in the repository")
        .to_path_buf()
}

/// Options for `app::start`: the repository's `spin.toml` on `data_dir`, HTTP
/// on an ephemeral loopback port, no MQTT endpoint, default limits.
pub fn up_options(
    data_dir: &std::path::Path,
    cache_dir: &std::path::Path,
) -> anyhow::Result<cromflag::app::UpOptions> {
    Ok(cromflag::app::UpOptions {
        manifest: repo_root().join("spin.toml"),
        data_dir: data_dir.to_owned(),
        cache_dir: cache_dir.to_owned(),
        listen: "127.0.0.1:0".parse()?,
        listener_limits: Default::default(),
        max_body_bytes: 1 << 20,
        mqtt_broker: None,
        mqtt_client_id: None,
        limits: cromflag::runtime::RuntimeLimits::default(),
        cron_timeout: Duration::from_secs(600),
        webapi: None,
    })
}

/// Rows in the sample payload: what each request appends.
pub const ROWS_PER_REQUEST: u64 = 6;

/// Posts the sample to `/insert/sample` from `concurrency` keep-alive
/// connections for `duration`; returns requests per second.
pub async fn load(
    addr: SocketAddr,
    concurrency: usize,
    duration: Duration,
    sample: &Value,
    sequence: &Arc<AtomicU64>,
) -> anyhow::Result<f64> {
    load_as(addr, None, concurrency, duration, sample, sequence).await
}

/// `load`, each request sending `authorization` as its Authorization header.
pub async fn load_as(
    addr: SocketAddr,
    authorization: Option<String>,
    concurrency: usize,
    duration: Duration,
    sample: &Value,
    sequence: &Arc<AtomicU64>,
) -> anyhow::Result<f64> {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..concurrency {
        let (sample, sequence) = (sample.clone(), sequence.clone());
        let authorization = authorization.clone();
        clients.push(tokio::spawn(async move {
            let mut sender = connect(addr).await?;
            let mut done = 0u64;
            while Instant::now() < deadline {
                let body = shifted(&sample, sequence.fetch_add(1, Ordering::Relaxed));
                insert(
                    &mut sender,
                    "/insert/sample",
                    body,
                    authorization.as_deref(),
                )
                .await?;
                done += 1;
            }
            anyhow::Ok(done)
        }));
    }
    let mut total = 0;
    for client in clients {
        total += client.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

pub type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// A keep-alive HTTP/1 connection to `addr`.
pub async fn connect(addr: SocketAddr) -> anyhow::Result<Sender> {
    let stream = TcpStream::connect(addr).await?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// POSTs an insert document to `path` (with `authorization`, if any); fails
/// unless the answer is `200 True`.
pub async fn insert(
    sender: &mut Sender,
    path: &str,
    body: Vec<u8>,
    authorization: Option<&str>,
) -> anyhow::Result<()> {
    let mut request = http::Request::post(path)
        .header("host", "bench")
        .header("content-type", "application/json");
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let request = request.body(Full::new(Bytes::from(body)))?;
    // The connection takes the next request once it has finished the last one.
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    anyhow::ensure!(
        status == 200 && &body[..] == b"True",
        "insert failed: {status} {body:?}"
    );
    Ok(())
}

/// The sample with every timestamp moved by `n` minutes, so each request adds new rows.
pub fn shifted(sample: &Value, n: u64) -> Vec<u8> {
    let mut doc = sample.clone();
    for row in doc["tsdata"].as_array_mut().unwrap() {
        let ts = row["timestamp"].as_i64().unwrap() + n as i64 * 60_000;
        row["timestamp"] = ts.into();
    }
    serde_json::to_vec(&doc).unwrap()
}

/// The original sample payload.
pub fn sample(root: &std::path::Path) -> anyhow::Result<Value> {
    Ok(serde_json::from_slice(&std::fs::read(
        root.join("tests/fixtures/sample-insert.json"),
    )?)?)
}

/// A `cromflag` process started by a benchmark; killed when dropped.
pub struct Process(pub std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the release `cromflag up` with `args` and `env`, and waits for its
/// HTTP address; `RUST_LOG` is `warn` so that logging costs nothing.
pub fn spawn_host(
    root: &std::path::Path,
    args: &[&str],
    env: &[(&str, String)],
) -> anyhow::Result<(Process, SocketAddr)> {
    use std::io::BufRead;
    let mut child = std::process::Command::new(root.join("target/release/cromflag"))
        .arg("up")
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("RUST_LOG", "warn,cromflag=info")
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let process = Process(child);
    let mut addr = None;
    for line in lines.by_ref() {
        let line = line?;
        if let Some(rest) = line.split("listening on http://").nth(1) {
            addr = rest.split_whitespace().next().map(str::parse).transpose()?;
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    let addr = addr.ok_or_else(|| anyhow::anyhow!("cromflag did not start"))?;
    Ok((process, addr))
}

/// GETs `path` and returns the body as text, whatever the status.
pub async fn get(sender: &mut Sender, path: &str) -> anyhow::Result<String> {
    let request = http::Request::get(path)
        .header("host", "bench")
        .body(Full::new(Bytes::new()))?;
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The whole number in the environment variable `name`, or `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}
