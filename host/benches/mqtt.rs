//! MQTT ingest throughput at QoS 1: the host against the broker's own ceiling.
//!
//! 1, 8 and 64 publishers send the sample payload (timestamps shifted, so each
//! message adds six rows; publisher p writes device `bench<p mod 8>`) as fast
//! as they are acked. Measured in the same run, for each publisher count:
//! - Mosquitto's ceiling: the same publishers into a real Mosquitto, with a
//!   subscriber that discards what it gets;
//! - (a) the host's own endpoint (`--mqtt-broker`): done when every PUBACK is
//!   back, which there means every row is committed;
//! - (b) the host subscribed to that Mosquitto through its manifest: done when
//!   every row is stored.
//!
//! Rows are counted by the store (`agg=count` over every row of each device),
//! and checked to be all there at the end. Peak RSS is the host's VmHWM.
//!
//! Run: `cargo bench -p cromflag --bench mqtt` after `cargo build --release`.
//! `BENCH_MESSAGES` sets the messages per case (default 20000).

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROWS_PER_MESSAGE: u64 = 6;
/// Devices the publishers write: publisher p writes `bench<p mod DEVICES>`.
const DEVICES: usize = 8;

fn main() -> anyhow::Result<()> {
    let messages: usize = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let Some(mosquitto) = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    else {
        anyhow::bail!("mosquitto is not installed (./scripts/test installs it)");
    };
    let tmp = tempfile::TempDir::new()?;
    let sample: Value = serde_json::from_slice(&std::fs::read(
        root.join("tests/fixtures/sample-insert.json"),
    )?)?;

    println!("MQTT ingest at QoS 1, {messages} messages per case, {ROWS_PER_MESSAGE} rows each");
    println!(
        "{:>10} | {:>12} | {:>12} {:>6} {:>10} | {:>12} {:>6} {:>10}",
        "publishers",
        "mosquitto/s",
        "endpoint/s",
        "ratio",
        "peak RSS",
        "via mosq./s",
        "ratio",
        "peak RSS"
    );
    for (case, publishers) in [1usize, 8, 64].into_iter().enumerate() {
        // Each case its own timestamps, so that nothing is an upsert of an earlier case.
        let base = (case * messages) as u64;
        let payloads: Vec<(String, Vec<u8>)> = (0..messages)
            .map(|n| {
                let device = format!("bench{}", (n % publishers) % DEVICES);
                let payload = shifted(&sample, &device, base + n as u64);
                (format!("devices/{device}/telemetry"), payload)
            })
            .collect();
        // A fresh Mosquitto per case: no session of an earlier case queues for it.
        let port = free_port();
        let config = tmp.path().join(format!("mosquitto-{case}.conf"));
        std::fs::write(
            &config,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nmax_inflight_messages 1000\n"),
        )?;
        let _broker = Guard(
            Command::new(&mosquitto)
                .arg("-c")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        );
        std::thread::sleep(Duration::from_millis(300));
        let ceiling = broker_ceiling(port, publishers, &payloads)?;
        let endpoint = host_rate(&root, tmp.path(), None, publishers, &payloads, case)?;
        let via = host_rate(&root, tmp.path(), Some(port), publishers, &payloads, case)?;
        println!(
            "{publishers:>10} | {ceiling:>12.0} | {:>12.0} {:>6.2} {:>6} MiB | {:>12.0} {:>6.2} {:>6} MiB",
            endpoint.rate,
            endpoint.rate / ceiling,
            endpoint.rss_kib / 1024,
            via.rate,
            via.rate / ceiling,
            via.rss_kib / 1024,
        );
    }
    Ok(())
}

/// Messages per second a discarding subscriber receives from `publishers`.
fn broker_ceiling(
    port: u16,
    publishers: usize,
    payloads: &[(String, Vec<u8>)],
) -> anyhow::Result<f64> {
    let (subscriber, mut connection) = Client::new(options("bench-sink", port), 1000);
    subscriber.subscribe("devices/+/telemetry", QoS::AtLeastOnce)?;
    // Wait for the subscription before publishing.
    for event in connection.iter() {
        if let Ok(Event::Incoming(Packet::SubAck(_))) = event {
            break;
        }
    }
    let started = Instant::now();
    let publishing = publish_all(port, publishers, payloads);
    let mut received = 0;
    let deadline = started + Duration::from_secs(300);
    for event in connection.iter() {
        if let Ok(Event::Incoming(Packet::Publish(_))) = event {
            received += 1;
            if received == payloads.len() {
                break;
            }
        }
        if Instant::now() > deadline {
            break;
        }
    }
    let elapsed = started.elapsed();
    publishing
        .into_iter()
        .for_each(|p| p.join().expect("publisher"));
    subscriber.disconnect()?;
    Ok(received as f64 / elapsed.as_secs_f64())
}

struct HostRun {
    /// Messages per second, until the last one was stored.
    rate: f64,
    rss_kib: u64,
}

/// Runs a host and has `publishers` publish `payloads`: to its own endpoint
/// (`broker` `None`), or to Mosquitto on `broker`, which the host subscribes to.
fn host_rate(
    root: &Path,
    tmp: &Path,
    broker: Option<u16>,
    publishers: usize,
    payloads: &[(String, Vec<u8>)],
    case: usize,
) -> anyhow::Result<HostRun> {
    let run = format!(
        "{}-{case}",
        if broker.is_some() { "via" } else { "endpoint" }
    );
    let dir = tmp.join(&run);
    std::fs::create_dir_all(&dir)?;
    let endpoint_port = free_port();
    let (publish_port, address, ready) = match broker {
        None => (endpoint_port, String::new(), "listening on http://"),
        Some(port) => (port, format!("mqtt://127.0.0.1:{port}"), "MQTT subscribed"),
    };
    let component = |name: &str| {
        root.join(format!(
            "target/components/wasm32-wasip2/component/{name}.wasm"
        ))
    };
    let manifest = dir.join("spin.toml");
    std::fs::write(
        &manifest,
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"bench\"\n\
             [application.trigger.mqtt]\naddress = \"{address}\"\n\
             [[trigger.mqtt]]\ncomponent = \"insert\"\ntopic = \"devices/+/telemetry\"\nqos = \"1\"\n\
             [[trigger.http]]\nroute = \"/fetch/...\"\ncomponent = \"fetch\"\n\
             [component.insert]\nsource = \"{}\"\n[component.fetch]\nsource = \"{}\"\n",
            component("insert").display(),
            component("fetch").display(),
        ),
    )?;
    let mut child = Command::new(root.join("target/release/cromflag"))
        .args(["up", "--listen", "127.0.0.1:0", "--mqtt-broker"])
        .arg(format!("127.0.0.1:{endpoint_port}"))
        .arg("--mqtt-client-id")
        .arg(format!("bench-host-{run}"))
        .arg("--manifest")
        .arg(&manifest)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut http = None;
    for line in lines.by_ref() {
        let line = line?;
        if let Some(addr) = line.split("listening on http://").nth(1) {
            http = addr.split_whitespace().next().map(str::to_owned);
        }
        if http.is_some() && line.contains(ready) {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    let host = Guard(child);
    let http = http.ok_or_else(|| anyhow::anyhow!("the host did not start"))?;

    let want = payloads.len() as u64 * ROWS_PER_MESSAGE;
    let started = Instant::now();
    let publishing = publish_all(publish_port, publishers, payloads);
    let finished = if broker.is_none() {
        // The endpoint's PUBACK follows the commit: the last one back is the end.
        publishing
            .into_iter()
            .for_each(|p| p.join().expect("publisher"));
        started.elapsed()
    } else {
        // Polling reads the counts from the host, which costs it a little CPU.
        let mut stored = 0;
        while stored < want && started.elapsed() < Duration::from_secs(300) {
            std::thread::sleep(Duration::from_millis(100));
            stored = count_rows(&http)?;
        }
        let finished = started.elapsed();
        publishing
            .into_iter()
            .for_each(|p| p.join().expect("publisher"));
        finished
    };
    let stored = count_rows(&http)?;
    anyhow::ensure!(stored == want, "{run}: {stored} of {want} rows stored");
    Ok(HostRun {
        rate: payloads.len() as f64 / finished.as_secs_f64(),
        rss_kib: peak_rss_kib(host.0.id()),
    })
}

/// Every row of every bench device, counted by the store (one bucket each).
fn count_rows(http: &str) -> anyhow::Result<u64> {
    let mut total = 0;
    for device in 0..DEVICES {
        let response = http_get(&format!(
            "http://{http}/fetch/bench{device}?agg=count&interval=100000h&columns=temperature"
        ))?;
        let buckets: Vec<Value> = serde_json::from_slice(&response).unwrap_or_default();
        total += buckets
            .iter()
            .filter_map(|b| b["temperature"].as_u64())
            .sum::<u64>();
    }
    Ok(total)
}

/// A minimal GET over std's TCP (HTTP/1.0, so the body ends at close).
fn http_get(url: &str) -> anyhow::Result<Vec<u8>> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_once('/').unwrap();
    let mut stream = std::net::TcpStream::connect(addr)?;
    write!(stream, "GET /{path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let body = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |i| i + 4);
    Ok(response[body..].to_vec())
}

/// `publishers` connections, each publishing its share of `payloads` (every
/// `publishers`-th) at QoS 1, done when all are acked.
fn publish_all(
    port: u16,
    publishers: usize,
    payloads: &[(String, Vec<u8>)],
) -> Vec<std::thread::JoinHandle<()>> {
    (0..publishers)
        .map(|p| {
            let mine: Vec<(String, Vec<u8>)> = payloads
                .iter()
                .skip(p)
                .step_by(publishers)
                .cloned()
                .collect();
            std::thread::spawn(move || {
                let id = format!("bench-publisher-{p}-{}", fastrand::u64(..));
                let (client, mut connection) = Client::new(options(&id, port), 1000);
                let total = mine.len();
                std::thread::spawn(move || {
                    for (topic, payload) in mine {
                        client
                            .publish(topic, QoS::AtLeastOnce, false, payload)
                            .expect("publish");
                    }
                });
                let mut acked = 0;
                for event in connection.iter() {
                    match event {
                        Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                        Err(e) => panic!("publisher: {e}"),
                        _ => {}
                    }
                    if acked == total {
                        break;
                    }
                }
            })
        })
        .collect()
}

fn options(id: &str, port: u16) -> MqttOptions {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(1 << 20, 1 << 20)
        .set_inflight(100);
    options
}

/// The sample as `device`, every timestamp moved by `n` minutes.
fn shifted(sample: &Value, device: &str, n: u64) -> Vec<u8> {
    let mut doc = sample.clone();
    doc["deviceinfo"]["deviceid"] = device.into();
    for row in doc["tsdata"].as_array_mut().unwrap() {
        let ts = row["timestamp"].as_i64().unwrap() + n as i64 * 60_000;
        row["timestamp"] = ts.into();
    }
    serde_json::to_vec(&doc).unwrap()
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_owned)
        })
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the child process when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
