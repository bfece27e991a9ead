//! Do threshold rules slow ingest? Insert req/s with ten rules against none.
//!
//! Two real `cromflag` hosts (the repository's `spin.toml` with its sources
//! made absolute, `--mqtt-broker off`, ephemeral ports, fresh data
//! directories) run side by side: `none` has no threshold rule, `ten` has
//! the ten rules of `RULES` over the sample's columns. Three of them fire
//! (once each: their hysteresis keeps them open), the others never do, as
//! in a fleet where most readings are normal. Both have the default
//! inactivity timeout (15m), so both follow the commit feed.
//!
//! For each concurrency of `CONCURRENCY`, keep-alive clients post the sample
//! to `/insert/sample` (six rows a request, a minute on per request) as fast
//! as answers come for `BENCH_SECONDS` (10 by default), in the order none,
//! ten, ten, none, so that drift of the machine falls on both alike. Only one
//! host is loaded at a time. The ratio printed is ten's req/s over none's,
//! over both of its phases.
//!
//! Last, each host must hold every acknowledged request's rows (counted by
//! the store), and `ten` must have raised exactly the alarms its rules
//! fire: the rules did run.
//!
//! Run: `cargo bench -p cromflag --bench alarms` after `cargo build
//! --release`.

mod support;

use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::ROWS_PER_REQUEST;

const CONCURRENCY: [usize; 2] = [16, 64];

/// Ten rules over the sample (temperature 78, 82, 81, 80, 79, 77 ten
/// seconds apart; humidity 60–75, illuminance 70–100, hour 17). `hot`,
/// `warm` (79 or more from 10 s to 40 s) and `hot-for-10m` (over 76 across
/// requests) fire.
const RULES: &str = r#"
[[application.tool.cromflag.alarms.rule]]
name = "hot"
when = "temperature > 81"
hysteresis = 10
severity = "critical"

[[application.tool.cromflag.alarms.rule]]
name = "warm"
when = "temperature >= 79"
for = "20s"
hysteresis = 10

[[application.tool.cromflag.alarms.rule]]
name = "hot-for-10m"
when = "temperature > 76"
for = "10m"
hysteresis = 10

[[application.tool.cromflag.alarms.rule]]
name = "cold"
when = "temperature < 0"

[[application.tool.cromflag.alarms.rule]]
name = "humid"
when = "humidity > 90"
for = "5m"

[[application.tool.cromflag.alarms.rule]]
name = "dry"
when = "humidity < 10"

[[application.tool.cromflag.alarms.rule]]
name = "dark"
when = "illuminance < 1"

[[application.tool.cromflag.alarms.rule]]
name = "glare"
when = "illuminance > 10000"
for = "1m"

[[application.tool.cromflag.alarms.rule]]
name = "late"
when = "hour > 23"

[[application.tool.cromflag.alarms.rule]]
name = "early"
when = "hour < 0"
"#;
const FIRING: [&str; 3] = ["hot", "hot-for-10m", "warm"];

fn main() -> anyhow::Result<()> {
    let seconds = support::env_number("BENCH_SECONDS", 10);
    support::block_on(run(Duration::from_secs(seconds)))
}

/// One host under test.
struct Subject {
    name: &'static str,
    addr: SocketAddr,
    /// Requests sent (and so acknowledged: a failed one ends the bench).
    sequence: Arc<AtomicU64>,
    _process: support::Process,
    _dirs: support::HostDirs,
}

async fn run(duration: Duration) -> anyhow::Result<()> {
    let root = support::host_root();
    let manifests = tempfile::TempDir::new()?;
    let text = std::fs::read_to_string(root.join("spin.toml"))?
        .replace("\"target/", &format!("\"{}/target/", root.display()));
    let mut subjects = Vec::new();
    for (name, rules) in [("none", ""), ("ten", RULES)] {
        let manifest = manifests.path().join(format!("{name}.toml"));
        std::fs::write(&manifest, format!("{text}\n{rules}"))?;
        let dirs = support::HostDirs::new()?;
        let (process, addr) = support::spawn_local_host(&root, &manifest, &dirs.data, &dirs.cache)?;
        subjects.push(Subject {
            name,
            addr,
            sequence: Arc::new(AtomicU64::new(0)),
            _process: process,
            _dirs: dirs,
        });
    }
    let sample = support::sample(&support::repo_root())?;
    println!(
        "alarms: insert req/s with ten threshold rules against none; {}s a phase, load average {}",
        duration.as_secs(),
        support::load_average()
    );
    println!(
        "{:>11} | {:>10} {:>10} | {:>10} {:>10} | {:>9}",
        "concurrency", "none", "ten", "ten", "none", "ten/none"
    );
    for concurrency in CONCURRENCY {
        let mut rates = Vec::new();
        for subject in [&subjects[0], &subjects[1], &subjects[1], &subjects[0]] {
            let rate = support::load(
                subject.addr,
                concurrency,
                duration,
                &sample,
                &subject.sequence,
            )
            .await?;
            rates.push(rate);
        }
        println!(
            "{concurrency:>11} | {:>10.0} {:>10.0} | {:>10.0} {:>10.0} | {:>9.2}",
            rates[0],
            rates[1],
            rates[2],
            rates[3],
            (rates[1] + rates[2]) / (rates[0] + rates[3]),
        );
    }

    for subject in &subjects {
        let mut sender = support::connect(subject.addr).await?;
        let want = subject.sequence.load(Ordering::SeqCst) * ROWS_PER_REQUEST;
        let got = support::count_rows(&mut sender, "sample", "temperature").await?;
        anyhow::ensure!(
            got == want,
            "{}: {got} rows stored, {want} acknowledged",
            subject.name
        );
        let answer = support::get_ok(&mut sender, "/alarms?device=sample").await?;
        let listed: Value = serde_json::from_slice(&answer.body)?;
        let mut rules: Vec<&str> = listed["alarms"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["rule"].as_str())
            .collect();
        rules.sort_unstable();
        let expected: &[&str] = if subject.name == "ten" { &FIRING } else { &[] };
        anyhow::ensure!(
            rules == expected,
            "{}: alarms {rules:?}, the rules fire {expected:?}",
            subject.name
        );
        println!(
            "{}: {got} rows stored, all acknowledged; alarms {rules:?}",
            subject.name
        );
    }
    Ok(())
}
