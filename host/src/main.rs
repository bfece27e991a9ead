//! The `cromflag` command line.

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use cromflag::app::{self, CronOptions, UpOptions};
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

/// Where the application and its data are: shared by every command.
#[derive(Args)]
struct AppArgs {
    /// The Spin manifest (v2) to run.
    #[arg(long, env = "CROMFLAG_MANIFEST", default_value = "spin.toml")]
    manifest: PathBuf,
    /// Where the embedded store and the compile cache live.
    #[arg(long, env = "CROMFLAG_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// Where compiled components are cached [default: <data-dir>/cache].
    #[arg(long, env = "CROMFLAG_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Seconds one cron run may take before its instance is stopped.
    #[arg(long, env = "CROMFLAG_CRON_TIMEOUT", default_value_t = 600)]
    cron_timeout_secs: u64,
}

impl AppArgs {
    fn cache_dir(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("cache"))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the application described by a Spin manifest.
    Up {
        #[command(flatten)]
        app: AppArgs,
        /// Address of the HTTP trigger.
        #[arg(long, env = "CROMFLAG_LISTEN", default_value = "0.0.0.0:8000")]
        listen: SocketAddr,
        /// Largest HTTP body (larger: 413) or MQTT payload (larger: `_rejected`), in bytes.
        #[arg(long, env = "CROMFLAG_MAX_BODY_BYTES", default_value_t = 1 << 20)]
        max_body_bytes: usize,
        /// Where the MQTT device endpoint listens (devices publish here; each
        /// PUBACK follows the commit), or `off` to run none.
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
        /// Also serve GridDB's WebAPI (`/griddb/v2/...`) from the store on this
        /// address, with the `webapi_*` variables' cluster name and credentials.
        #[arg(long, env = "CROMFLAG_WEBAPI")]
        webapi: Option<SocketAddr>,
    },
    /// Cron runs: one tick on demand, or the record of past runs.
    Cron {
        #[command(subcommand)]
        command: CronCommand,
    },
}

#[derive(Subcommand)]
enum CronCommand {
    /// Run one tick of a component as if at a given time (backfill). The data
    /// directory must not be in use by `cromflag up`.
    Run {
        /// The component, as named in the manifest.
        component: String,
        /// The tick's time, RFC 3339 (e.g. 2020-02-19T00:05:00Z).
        #[arg(long)]
        at: chrono::DateTime<chrono::FixedOffset>,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Print the run records, oldest tick first, one JSON object per line.
    Runs {
        /// Only this trigger's runs.
        #[arg(long)]
        trigger: Option<String>,
        #[command(flatten)]
        app: AppArgs,
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
                .unwrap_or_else(|_| "info,wasmtime=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Up {
            app,
            listen,
            max_body_bytes,
            mqtt_broker,
            mqtt_client_id,
            max_instances,
            event_timeout_secs,
            webapi,
        } => {
            let limits = RuntimeLimits {
                max_instances,
                event_timeout: Duration::from_secs(event_timeout_secs),
                ..RuntimeLimits::default()
            };
            app::up(&UpOptions {
                cache_dir: app.cache_dir(),
                manifest: app.manifest,
                data_dir: app.data_dir,
                listen,
                max_body_bytes,
                mqtt_broker: mqtt_broker.0,
                mqtt_client_id,
                limits,
                cron_timeout: Duration::from_secs(app.cron_timeout_secs),
                webapi,
            })
            .await
        }
        Command::Cron {
            command: CronCommand::Run { component, at, app },
        } => {
            let options = CronOptions {
                cache_dir: app.cache_dir(),
                manifest: app.manifest,
                data_dir: app.data_dir,
                timeout: Duration::from_secs(app.cron_timeout_secs),
            };
            let record = app::cron_run(&options, &component, at.to_utc()).await?;
            println!("{}", serde_json::to_string(&record)?);
            match record.error {
                None => Ok(()),
                Some(error) => anyhow::bail!("the run failed: {error}"),
            }
        }
        Command::Cron {
            command: CronCommand::Runs { trigger, app },
        } => {
            for record in app::cron_runs(&app.manifest, &app.data_dir, trigger.as_deref()).await? {
                println!("{}", serde_json::to_string(&record)?);
            }
            Ok(())
        }
    }
}
