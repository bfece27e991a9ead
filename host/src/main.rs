//! The `cromflag` command line.

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use cromflag::app::{self, CronOptions, UpOptions};
use cromflag::listener::ListenerLimits;
use cromflag::runtime::RuntimeLimits;
use cromflag_logic::device::to_path_segment;
use http::Method;
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
    #[arg(
        long,
        global = true,
        env = "CROMFLAG_MANIFEST",
        default_value = "spin.toml"
    )]
    manifest: PathBuf,
    /// Where the embedded store and the compile cache live.
    #[arg(long, global = true, env = "CROMFLAG_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// Where compiled components are cached [default: <data-dir>/cache].
    #[arg(long, global = true, env = "CROMFLAG_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Seconds one cron run may take before its instance is stopped.
    #[arg(
        long,
        global = true,
        env = "CROMFLAG_CRON_TIMEOUT",
        default_value_t = 600
    )]
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
        /// Address of the HTTP trigger. On loopback (and the MQTT endpoint too)
        /// no token is needed; beyond it, devices and readers need theirs.
        #[arg(long, env = "CROMFLAG_LISTEN", default_value = "127.0.0.1:8000")]
        listen: SocketAddr,
        /// HTTP connections served at once; more wait to be accepted.
        #[arg(long, env = "CROMFLAG_MAX_CONNECTIONS", default_value_t = ListenerLimits::default().max_connections)]
        max_connections: usize,
        /// Seconds a client may take to send a request's headers.
        #[arg(long, env = "CROMFLAG_HEADER_TIMEOUT", default_value_t = ListenerLimits::default().header_timeout.as_secs())]
        header_timeout_secs: u64,
        /// Seconds a request body may stay silent (then 408).
        #[arg(long, env = "CROMFLAG_BODY_TIMEOUT", default_value_t = ListenerLimits::default().body_idle_timeout.as_secs())]
        body_timeout_secs: u64,
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
        /// The most bytes the embedded store's database may hold: past it,
        /// writes are refused as on a full disk (503, MQTT unacked) until
        /// deletes (retention) free room. Default: what the disk holds.
        #[arg(long, env = "CROMFLAG_MAX_STORE_BYTES")]
        max_store_bytes: Option<u64>,
        /// This host's name in cron run records and tick claims; hosts that
        /// share a GridDB store each need their own [default: <hostname>-<pid>].
        #[arg(long, env = "CROMFLAG_HOST_ID")]
        host_id: Option<String>,
    },
    /// Cron runs: one tick on demand, or the record of past runs.
    Cron {
        #[command(subcommand)]
        command: CronCommand,
    },
    /// Devices and their tokens (works while `cromflag up` runs on the same data).
    Devices {
        #[command(subcommand)]
        command: DevicesCommand,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Read-only tokens for applications, Grafana and the page.
    Readers {
        #[command(subcommand)]
        command: ReadersCommand,
        #[command(flatten)]
        app: AppArgs,
    },
}

#[derive(Subcommand)]
enum DevicesCommand {
    /// Register a device; prints its token (shown once) as the last line.
    Add { id: String },
    /// Every device, with its keys (never the tokens).
    List,
    /// One device's keys and their states.
    Show { id: String },
    /// A new token; the previous one stays live until revoked (two at most).
    Rotate { id: String },
    /// Revoke the device's live tokens, or only the one whose key is given.
    Revoke {
        id: String,
        #[arg(long)]
        key: Option<String>,
    },
    /// Forget the device: every token revoked. Its telemetry stays.
    Remove { id: String },
    /// Write a Mosquitto password file ($7$ PBKDF2-SHA512) and ACL file.
    ExportMosquitto {
        #[arg(long, default_value = "mosquitto.passwd")]
        passwd: PathBuf,
        #[arg(long, default_value = "mosquitto.acl")]
        acl: PathBuf,
    },
}

#[derive(Subcommand)]
enum ReadersCommand {
    /// A read token for every device, or only the `--device`s given; prints
    /// the token as the last line.
    Add {
        name: String,
        #[arg(long = "device")]
        devices: Vec<String>,
    },
    List,
    Show {
        name: String,
    },
    Revoke {
        name: String,
    },
    Remove {
        name: String,
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
            max_store_bytes,
            host_id,
            max_connections,
            header_timeout_secs,
            body_timeout_secs,
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
                listener_limits: ListenerLimits {
                    max_connections,
                    header_timeout: Duration::from_secs(header_timeout_secs),
                    body_idle_timeout: Duration::from_secs(body_timeout_secs),
                },
                max_body_bytes,
                mqtt_broker: mqtt_broker.0,
                mqtt_client_id,
                limits,
                cron_timeout: Duration::from_secs(app.cron_timeout_secs),
                webapi,
                max_store_bytes,
                host_id,
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
        Command::Devices { command, app } => devices(command, &app).await,
        Command::Readers { command, app } => readers(command, &app).await,
    }
}

/// `cromflag devices ...`: one call of the admin API each.
async fn devices(command: DevicesCommand, app: &AppArgs) -> Result<()> {
    let path = |id: &str, action: &str| format!("/admin/devices/{}{action}", to_path_segment(id));
    match command {
        DevicesCommand::Add { id } => issue(app, Method::POST, &path(&id, "")).await,
        DevicesCommand::Rotate { id } => issue(app, Method::POST, &path(&id, "/rotate")).await,
        DevicesCommand::List => print(app, Method::GET, "/admin/devices").await,
        DevicesCommand::Show { id } => print(app, Method::GET, &path(&id, "")).await,
        DevicesCommand::Revoke { id, key } => {
            let key = key.map_or(String::new(), |k| format!("?key={}", to_path_segment(&k)));
            print(app, Method::POST, &path(&id, &format!("/revoke{key}"))).await
        }
        DevicesCommand::Remove { id } => print(app, Method::DELETE, &path(&id, "")).await,
        DevicesCommand::ExportMosquitto { passwd, acl } => {
            let export = call(app, Method::GET, "/admin/mosquitto").await?;
            let text = |field: &str| export[field].as_str().unwrap_or_default().to_owned();
            std::fs::write(&passwd, text("passwd"))?;
            std::fs::write(&acl, text("acl"))?;
            for skipped in export["skipped"].as_array().into_iter().flatten() {
                eprintln!("skipped {}", skipped.as_str().unwrap_or_default());
            }
            println!("wrote {} and {}", passwd.display(), acl.display());
            Ok(())
        }
    }
}

/// `cromflag readers ...`.
async fn readers(command: ReadersCommand, app: &AppArgs) -> Result<()> {
    let path =
        |name: &str, action: &str| format!("/admin/readers/{}{action}", to_path_segment(name));
    match command {
        ReadersCommand::Add { name, devices } => {
            let query: Vec<String> = devices
                .iter()
                .map(|d| format!("device={}", to_path_segment(d)))
                .collect();
            let query = if query.is_empty() {
                String::new()
            } else {
                format!("?{}", query.join("&"))
            };
            issue(app, Method::POST, &path(&name, &query)).await
        }
        ReadersCommand::List => print(app, Method::GET, "/admin/readers").await,
        ReadersCommand::Show { name } => print(app, Method::GET, &path(&name, "")).await,
        ReadersCommand::Revoke { name } => print(app, Method::POST, &path(&name, "/revoke")).await,
        ReadersCommand::Remove { name } => print(app, Method::DELETE, &path(&name, "")).await,
    }
}

/// Calls the admin API; an error answer is an error, with its body.
async fn call(app: &AppArgs, method: Method, path: &str) -> Result<serde_json::Value> {
    let (status, body) = app::admin_call(&app.manifest, &app.data_dir, method, path).await?;
    if !status.is_success() {
        anyhow::bail!("{status}: {body}");
    }
    Ok(body)
}

async fn print(app: &AppArgs, method: Method, path: &str) -> Result<()> {
    let body = call(app, method, path).await?;
    println!("{}", serde_json::to_string_pretty(&body)?);
    Ok(())
}

/// Prints a new token's holder and key, then the token alone on the last line.
async fn issue(app: &AppArgs, method: Method, path: &str) -> Result<()> {
    let body = call(app, method, path).await?;
    let text = |field: &str| body[field].as_str().unwrap_or_default().to_owned();
    println!("{} {} key {}", text("kind"), text("id"), text("key"));
    if let Some(revoked) = body["revoked"].as_array() {
        for key in revoked {
            println!("revoked key {}", key.as_str().unwrap_or_default());
        }
    }
    println!("token (shown once; keep it secret):");
    println!("{}", text("token"));
    Ok(())
}
