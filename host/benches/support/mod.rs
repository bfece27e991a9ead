//! What the benchmarks share: the runtime they run on and where the
//! repository is, the HTTP load generator and its payload, starting `cromflag`
//! hosts (in process or as processes), and reading settings from the environment.

// Each benchmark compiles this module and uses a part of it.
#![allow(dead_code)]

pub mod native;
pub mod resources;

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
        max_store_bytes: None,
        host_id: None,
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

/// A fresh data directory and compile cache for a process host, and where
/// its store's files are; removed when dropped.
pub struct HostDirs {
    _tmp: tempfile::TempDir,
    pub data: std::path::PathBuf,
    pub cache: std::path::PathBuf,
    /// `cromflag.db` and its `-wal`.
    pub db: std::path::PathBuf,
    pub wal: std::path::PathBuf,
}

impl HostDirs {
    pub fn new() -> anyhow::Result<HostDirs> {
        let tmp = tempfile::TempDir::new()?;
        let data = tmp.path().join("data");
        Ok(HostDirs {
            cache: tmp.path().join("cache"),
            db: data.join("cromflag.db"),
            wal: data.join("cromflag.db-wal"),
            data,
            _tmp: tmp,
        })
    }
}

/// `spawn_host` as the process benchmarks run it: `manifest` on `data` with
/// its compile cache in `cache`, HTTP on an ephemeral loopback port, no MQTT
/// endpoint.
pub fn spawn_local_host(
    root: &std::path::Path,
    manifest: &std::path::Path,
    data: &std::path::Path,
    cache: &std::path::Path,
) -> anyhow::Result<(Process, SocketAddr)> {
    spawn_local_host_with(root, manifest, data, cache, &[], &[])
}

/// `spawn_local_host` with more arguments and environment variables.
pub fn spawn_local_host_with(
    root: &std::path::Path,
    manifest: &std::path::Path,
    data: &std::path::Path,
    cache: &std::path::Path,
    extra: &[&str],
    env: &[(&str, String)],
) -> anyhow::Result<(Process, SocketAddr)> {
    let path = |p: &std::path::Path| p.to_str().map(str::to_owned);
    let (Some(manifest), Some(data), Some(cache)) = (path(manifest), path(data), path(cache))
    else {
        anyhow::bail!("the benchmark's paths must be UTF-8");
    };
    let args = [
        "--manifest",
        &manifest,
        "--data-dir",
        &data,
        "--cache-dir",
        &cache,
        "--listen",
        "127.0.0.1:0",
        "--mqtt-broker",
        "off",
    ];
    let args: Vec<&str> = args.iter().chain(extra).copied().collect();
    spawn_host(root, &args, env)
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

/// The sample for `device`: `deviceinfo.deviceid` set to it (HTTP requires
/// it to match the path), and only its first `rows` rows when given.
pub fn sample_for(sample: &Value, device: &str, rows: Option<usize>) -> Value {
    let mut doc = sample.clone();
    doc["deviceinfo"]["deviceid"] = device.into();
    if let Some(rows) = rows {
        doc["tsdata"].as_array_mut().unwrap().truncate(rows);
    }
    doc
}

/// `doc` with every timestamp moved by `ms` milliseconds, serialized.
pub fn moved(doc: &Value, ms: i64) -> Vec<u8> {
    let mut doc = doc.clone();
    for row in doc["tsdata"].as_array_mut().unwrap() {
        let ts = row["timestamp"].as_i64().unwrap() + ms;
        row["timestamp"] = ts.into();
    }
    serde_json::to_vec(&doc).unwrap()
}

/// A whole HTTP answer: its status, its `Link` header if any, and its body.
pub struct Answer {
    pub status: http::StatusCode,
    pub link: Option<String>,
    pub body: Bytes,
}

/// Sends `method path` (with a JSON `body` when it is not empty) and reads the
/// whole answer, whatever its status.
pub async fn send(
    sender: &mut Sender,
    method: http::Method,
    path: &str,
    body: Vec<u8>,
) -> anyhow::Result<Answer> {
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "bench");
    if !body.is_empty() {
        request = request.header("content-type", "application/json");
    }
    let request = request.body(Full::new(Bytes::from(body)))?;
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let link = response
        .headers()
        .get(http::header::LINK)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Answer { status, link, body })
}

/// GETs `path`; fails unless the answer is a 2xx.
pub async fn get_ok(sender: &mut Sender, path: &str) -> anyhow::Result<Answer> {
    let answer = send(sender, http::Method::GET, path, Vec::new()).await?;
    anyhow::ensure!(
        answer.status.is_success(),
        "GET {path}: {} {:?}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    Ok(answer)
}

/// The path of a `Link: <path>; rel="next"` header.
pub fn next_link(link: &str) -> Option<&str> {
    link.split(',')
        .find(|part| part.contains("rel=\"next\""))
        .and_then(|part| part.split('<').nth(1))
        .and_then(|rest| rest.split('>').next())
}

/// The rows of `device` that have a value in `column`, counted by the store
/// (`agg=count` in buckets of 100,000 hours).
pub async fn count_rows(sender: &mut Sender, device: &str, column: &str) -> anyhow::Result<u64> {
    let answer = get_ok(
        sender,
        &format!("/fetch/{device}?agg=count&interval=100000h&columns={column}"),
    )
    .await?;
    let buckets: Vec<Value> = serde_json::from_slice(&answer.body)?;
    Ok(buckets.iter().filter_map(|b| b[column].as_u64()).sum())
}

/// `VmRSS` and `VmHWM` (peak) of process `pid`, in KiB, from `/proc/<pid>/status`.
pub fn rss_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// The size of the file at `path` in bytes; `None` when there is none.
pub fn file_size(path: &std::path::Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

/// `bytes` in MiB, one decimal; `absent` for no file.
pub fn mib(bytes: Option<u64>) -> String {
    match bytes {
        Some(bytes) => format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64),
        None => "absent".into(),
    }
}

/// Stops `process` as a service manager does (SIGTERM) and waits up to
/// `timeout` for it to exit; fails if it is still running then.
pub fn terminate(
    process: &mut Process,
    timeout: Duration,
) -> anyhow::Result<std::process::ExitStatus> {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &process.0.id().to_string()])
        .status()?;
    anyhow::ensure!(sent.success(), "kill -TERM {} failed", process.0.id());
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = process.0.try_wait()? {
            return Ok(status);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "cromflag still running {timeout:?} after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The load average over 1, 5 and 15 minutes (`/proc/loadavg`): what else the
/// machine was doing, to print next to the figures.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}

/// POSTs a JSON `body` to `path`; fails unless the answer is a 2xx. When the
/// host has closed this keep-alive connection (idle past its header timeout)
/// the request goes on a new one to `addr`, as a pooled client would do:
/// nothing was sent on the closed one. Returns whether it reconnected.
pub async fn post_ok(
    sender: &mut Sender,
    addr: SocketAddr,
    path: &str,
    body: Vec<u8>,
) -> anyhow::Result<bool> {
    let reconnect = sender.is_closed();
    if reconnect {
        *sender = connect(addr).await?;
    }
    let answer = send(sender, http::Method::POST, path, body).await?;
    anyhow::ensure!(
        answer.status.is_success(),
        "POST {path}: {} {:?}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    Ok(reconnect)
}

/// Where the process benchmarks find `target/release/cromflag`, `spin.toml`
/// and the components it names: the repository, or the directory in
/// `CROMFLAG_BENCH_ROOT` (a copy of an earlier build, for before/after figures
/// from one checkout).
pub fn host_root() -> std::path::PathBuf {
    std::env::var_os("CROMFLAG_BENCH_ROOT").map_or_else(repo_root, Into::into)
}
