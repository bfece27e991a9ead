//! MQTT ingest throughput: the host against the broker's own ceiling.
//!
//! A real Mosquitto runs on an ephemeral port. One publisher sends the sample
//! payload (timestamps shifted, so each message adds six rows) as fast as the
//! broker takes it, at QoS 1 and then at QoS 0. Measured in the same run:
//! - the broker's ceiling: a plain subscriber that discards what it gets;
//! - the host, two ways: (a) devices publishing to its own endpoint
//!   (`--mqtt-broker`), (b) the host subscribed to Mosquitto through its
//!   manifest; counted by every row it stored (`agg=count` over HTTP), with
//!   its peak RSS.
//!
//! Run: `cargo bench -p cromflag --bench mqtt` after `cargo build --release`.
//! `BENCH_MESSAGES` sets the messages per case (default 5000).

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOPIC: &str = "devices/bench/telemetry";
const ROWS_PER_MESSAGE: u64 = 6;

fn main() -> anyhow::Result<()> {
    let messages: u64 = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
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
    let port = free_port();
    std::fs::write(
        tmp.path().join("mosquitto.conf"),
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 1000000\n"),
    )?;
    let _broker = Guard(
        Command::new(mosquitto)
            .arg("-c")
            .arg(tmp.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    std::thread::sleep(Duration::from_millis(300));
    let sample: Value = serde_json::from_slice(&std::fs::read(
        root.join("tests/fixtures/sample-insert.json"),
    )?)?;
    let payloads: Vec<Vec<u8>> = (0..messages).map(|n| shifted(&sample, n)).collect();

    println!("MQTT ingest, {messages} messages per case, {ROWS_PER_MESSAGE} rows per message, one publisher");
    println!(
        "{:>14} | {:>14} | {:>14} {:>12} | {:>10} | {:>13}",
        "via qos", "broker msg/s", "host msg/s", "host rows/s", "host/broker", "host peak RSS"
    );
    let cases = [
        ("endpoint", QoS::AtLeastOnce, true),
        ("mosquitto", QoS::AtLeastOnce, false),
        ("mosquitto", QoS::AtMostOnce, false),
    ];
    for (run, (via, qos, endpoint)) in cases.into_iter().enumerate() {
        let ceiling = broker_ceiling(port, qos, &payloads)?;
        let (host_rate, stored, rss_kib) =
            host_rate(&root, tmp.path(), port, qos, &payloads, run, endpoint)?;
        println!(
            "{via:>9} {:>4} | {:>14.0} | {:>14.0} {:>12.0} | {:>10.2} | {:>10} KiB{}",
            qos as u8,
            ceiling,
            host_rate,
            host_rate * ROWS_PER_MESSAGE as f64,
            host_rate / ceiling,
            rss_kib,
            if stored < messages {
                format!("  ({stored} of {messages} stored: QoS 0 may drop)")
            } else {
                String::new()
            },
        );
    }
    Ok(())
}

/// Messages per second a discarding subscriber receives.
fn broker_ceiling(port: u16, qos: QoS, payloads: &[Vec<u8>]) -> anyhow::Result<f64> {
    let (subscriber, mut connection) = Client::new(options("bench-sink", port), 1000);
    subscriber.subscribe(TOPIC, qos)?;
    // Wait for the subscription before publishing.
    for event in connection.iter() {
        if let Ok(Event::Incoming(Packet::SubAck(_))) = event {
            break;
        }
    }
    let publishing = publish_all(port, qos, payloads.to_vec());
    let started = Instant::now();
    let mut received = 0;
    let deadline = started + Duration::from_secs(120);
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
    publishing.join().expect("publisher");
    subscriber.disconnect()?;
    Ok(received as f64 / elapsed.as_secs_f64())
}

/// Messages per second the host stored, how many, and its peak RSS in KiB.
fn host_rate(
    root: &Path,
    tmp: &Path,
    port: u16,
    qos: QoS,
    payloads: &[Vec<u8>],
    run: usize,
    endpoint: bool,
) -> anyhow::Result<(f64, u64, u64)> {
    // (a) the host's own endpoint on a port of its own, no broker;
    // (b) the host subscribed to Mosquitto on `port`.
    let (publish_port, address, broker_flag, ready) = if endpoint {
        let own = free_port();
        (
            own,
            String::new(),
            format!("127.0.0.1:{own}"),
            "listening on http://",
        )
    } else {
        (
            port,
            format!("mqtt://127.0.0.1:{port}"),
            "off".to_owned(),
            "MQTT subscribed",
        )
    };
    let dir = tmp.join(format!("host-{run}"));
    std::fs::create_dir_all(&dir)?;
    let manifest = dir.join("spin.toml");
    let component = |name: &str| {
        root.join(format!(
            "target/components/wasm32-wasip2/component/{name}.wasm"
        ))
    };
    std::fs::write(
        &manifest,
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"bench\"\n\
             [application.trigger.mqtt]\naddress = \"{address}\"\n\
             [[trigger.mqtt]]\ncomponent = \"insert\"\ntopic = \"{TOPIC}\"\nqos = \"{}\"\n\
             [[trigger.http]]\nroute = \"/fetch/...\"\ncomponent = \"fetch\"\n\
             [component.insert]\nsource = \"{}\"\n[component.fetch]\nsource = \"{}\"\n",
            qos as u8,
            component("insert").display(),
            component("fetch").display(),
        ),
    )?;
    let mut child = Command::new(root.join("target/release/cromflag"))
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--mqtt-broker",
            &broker_flag,
            "--mqtt-client-id",
        ])
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

    let started = Instant::now();
    let publishing = publish_all(publish_port, qos, payloads.to_vec());
    let want = payloads.len() as u64 * ROWS_PER_MESSAGE;
    let (mut stored_rows, mut last_change, mut finished) = (0, Instant::now(), started);
    // Done when every row is there, or (QoS 0) when nothing changed for 3 s.
    // Each poll reads every row back over HTTP, which costs the host some CPU:
    // the figure is a slight underestimate.
    while stored_rows < want && last_change.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(500));
        let rows = count_rows(&http)?;
        if rows != stored_rows {
            (stored_rows, last_change, finished) = (rows, Instant::now(), Instant::now());
        }
    }
    publishing.join().expect("publisher");
    let rss = peak_rss_kib(host.0.id());
    let stored = stored_rows / ROWS_PER_MESSAGE;
    Ok((
        stored as f64 / (finished - started).as_secs_f64(),
        stored,
        rss,
    ))
}

/// Every row of the device, counted by the store (one bucket spanning them all).
fn count_rows(http: &str) -> anyhow::Result<u64> {
    let response = http_get(&format!(
        "http://{http}/fetch/bench?agg=count&interval=100000h&columns=temperature"
    ))?;
    let buckets: Vec<Value> = serde_json::from_slice(&response).unwrap_or_default();
    Ok(buckets
        .iter()
        .filter_map(|b| b["temperature"].as_u64())
        .sum())
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

fn publish_all(port: u16, qos: QoS, payloads: Vec<Vec<u8>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let (client, mut connection) = Client::new(options("bench-publisher", port), 1000);
        let total = payloads.len();
        std::thread::spawn(move || {
            for payload in payloads {
                client.publish(TOPIC, qos, false, payload).expect("publish");
            }
        });
        // Drive the connection until every publish is out (and acked at QoS 1).
        let mut done = 0;
        for event in connection.iter() {
            match (qos, event) {
                (QoS::AtMostOnce, Ok(Event::Outgoing(rumqttc::Outgoing::Publish(_))))
                | (_, Ok(Event::Incoming(Packet::PubAck(_)))) => done += 1,
                (_, Err(e)) => panic!("publisher: {e}"),
                _ => {}
            }
            if done == total {
                break;
            }
        }
    })
}

fn options(id: &str, port: u16) -> MqttOptions {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(1 << 20, 1 << 20)
        .set_inflight(1000);
    options
}

/// The sample as device `bench`, every timestamp moved by `n` minutes.
fn shifted(sample: &Value, n: u64) -> Vec<u8> {
    let mut doc = sample.clone();
    doc["deviceinfo"]["deviceid"] = "bench".into();
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
