//! The `cromflag` command line.

use anyhow::Result;
use clap::{Parser, Subcommand};
use cromflag::app::{self, UpOptions};
use cromflag::runtime::RuntimeLimits;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "cromflag",
    version,
    about = "An open IoT data stack of WebAssembly components"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the application described by a Spin manifest.
    Up {
        /// The Spin manifest (v2) to run.
        #[arg(long, env = "CROMFLAG_MANIFEST", default_value = "spin.toml")]
        manifest: PathBuf,
        /// Where the embedded store and the compile cache live.
        #[arg(long, env = "CROMFLAG_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// Where compiled components are cached [default: <data-dir>/cache].
        #[arg(long, env = "CROMFLAG_CACHE_DIR")]
        cache_dir: Option<PathBuf>,
        /// Address of the HTTP trigger.
        #[arg(long, env = "CROMFLAG_LISTEN", default_value = "0.0.0.0:8000")]
        listen: SocketAddr,
        /// Largest HTTP body (larger: 413) or MQTT payload (larger: `_rejected`), in bytes.
        #[arg(long, env = "CROMFLAG_MAX_BODY_BYTES", default_value_t = 1 << 20)]
        max_body_bytes: usize,
        /// Where the embedded MQTT broker listens, or `off` to run none (when
        /// `[application.trigger.mqtt] address` names another broker).
        #[arg(long, env = "CROMFLAG_MQTT_BROKER", default_value = "127.0.0.1:1883", value_parser = parse_broker)]
        mqtt_broker: Broker,
        /// MQTT client id: this host's session at the broker [default: cromflag-<app>].
        /// Keep it stable across restarts; give each host of a shared subscription its own.
        #[arg(long, env = "CROMFLAG_MQTT_CLIENT_ID")]
        mqtt_client_id: Option<String>,
        /// Component instances alive at once.
        #[arg(long, env = "CROMFLAG_MAX_INSTANCES", default_value_t = RuntimeLimits::default().max_instances)]
        max_instances: u32,
        /// Seconds one request may run before its instance is stopped.
        #[arg(long, env = "CROMFLAG_EVENT_TIMEOUT", default_value_t = 60)]
        event_timeout_secs: u64,
    },
}

/// `--mqtt-broker`: an address, or `off`.
#[derive(Clone, Debug)]
struct Broker(Option<SocketAddr>);

fn parse_broker(value: &str) -> Result<Broker, String> {
    match value {
        "off" => Ok(Broker(None)),
        addr => addr
            .parse()
            .map(|a| Broker(Some(a)))
            .map_err(|e| format!("{e}: give host:port or `off`")),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,wasmtime=warn,rumqttd=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Up {
            manifest,
            data_dir,
            cache_dir,
            listen,
            max_body_bytes,
            mqtt_broker,
            mqtt_client_id,
            max_instances,
            event_timeout_secs,
        } => {
            let limits = RuntimeLimits {
                max_instances,
                event_timeout: Duration::from_secs(event_timeout_secs),
                ..RuntimeLimits::default()
            };
            let cache_dir = cache_dir.unwrap_or_else(|| data_dir.join("cache"));
            app::up(&UpOptions {
                manifest,
                data_dir,
                cache_dir,
                listen,
                max_body_bytes,
                mqtt_broker: mqtt_broker.0,
                mqtt_client_id,
                limits,
            })
            .await
        }
    }
}
