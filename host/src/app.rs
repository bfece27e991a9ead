//! The commands' wiring: `cromflag up` loads the manifest, opens the store and
//! starts the triggers; `cromflag cron run|runs` open the same store to run one
//! tick or list the run records.

use crate::live::{self, Live};
use crate::manifest;
use crate::runtime::{Runtime, RuntimeLimits};
use crate::store::embedded::EmbeddedStore;
use crate::store::griddb::{GriddbSettings, GriddbStore};
use crate::store::Backend;
use crate::triggers::cron::{self, CronTrigger, RunRecord};
use crate::triggers::http::HttpTrigger;
use crate::triggers::mqtt::{endpoint, MqttTrigger};
use crate::webapi::server::{self, ServerSettings};
use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[derive(Clone, Debug)]
pub struct UpOptions {
    pub manifest: PathBuf,
    /// Holds the embedded database, `cromflag.db`.
    pub data_dir: PathBuf,
    /// Holds compiled components; may be shared between data directories.
    pub cache_dir: PathBuf,
    pub listen: SocketAddr,
    /// Largest HTTP body or MQTT payload accepted, in bytes.
    pub max_body_bytes: usize,
    /// Where the MQTT device endpoint listens; `None` runs none.
    pub mqtt_broker: Option<SocketAddr>,
    /// The MQTT client id (the broker session) [default: `cromflag-<app name>`].
    pub mqtt_client_id: Option<String>,
    pub limits: RuntimeLimits,
    /// How long one cron run may take.
    pub cron_timeout: Duration,
    /// Where to serve GridDB's WebAPI from the store; `None` serves none.
    pub webapi: Option<SocketAddr>,
}

/// A started application.
pub struct Running {
    /// The address the HTTP trigger listens on (the real port when 0 was asked).
    pub http_addr: SocketAddr,
    pub http: JoinHandle<Result<()>>,
    /// The MQTT device endpoint and its address, if it runs.
    pub mqtt_endpoint: Option<(SocketAddr, JoinHandle<()>)>,
    /// The MQTT trigger's connection to an external broker, if `mqtt_address` names one.
    pub mqtt: Option<JoinHandle<()>>,
    /// The WebAPI server and its address, if `--webapi` was given.
    pub webapi: Option<(SocketAddr, JoinHandle<Result<()>>)>,
    /// Held while the application runs on the embedded store: no other
    /// process opens its data directory.
    _lock: Option<DataDirLock>,
}

/// The exclusive lock on a data directory. The embedded store keeps its catalog
/// in memory, so two processes writing one database would each miss the other's
/// schema changes: one process owns a data directory at a time.
pub struct DataDirLock(#[allow(dead_code, reason = "held for its lock")] File);

/// The store the application's `store` variable names: `embedded` (the
/// default) in `data_dir`, locked while it is open, or `griddb`, the cluster
/// the `griddb_*` variables point at.
pub async fn open_store(
    app: &manifest::App,
    data_dir: &Path,
) -> Result<(Arc<dyn Backend>, Option<DataDirLock>)> {
    match app.variables.get("store").unwrap_or("embedded") {
        "embedded" => {
            let (store, lock) = open_embedded(data_dir)?;
            Ok((store, Some(lock)))
        }
        "griddb" => {
            let settings = GriddbSettings::from_variables(&app.variables)?;
            let store = GriddbStore::connect(&settings).await?;
            Ok((Arc::new(store), None))
        }
        other => bail!("variable store = `{other}`: use `embedded` or `griddb`"),
    }
}

/// Opens the embedded store in `data_dir` (created if missing), locking the directory.
pub fn open_embedded(data_dir: &Path) -> Result<(Arc<dyn Backend>, DataDirLock)> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    let lock_path = data_dir.join("cromflag.lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    if let Err(e) = lock.try_lock() {
        match e {
            std::fs::TryLockError::WouldBlock => bail!(
                "the data directory {} is in use by another cromflag process: stop it first",
                data_dir.display()
            ),
            std::fs::TryLockError::Error(e) => {
                return Err(e).with_context(|| format!("locking {}", lock_path.display()))
            }
        }
    }
    let store = EmbeddedStore::open(&data_dir.join("cromflag.db"))?;
    Ok((Arc::new(Arc::new(store)), DataDirLock(lock)))
}

/// Starts every trigger of the application and returns once they listen.
pub async fn start(options: &UpOptions) -> Result<Running> {
    let app = manifest::load(&options.manifest)?;
    let (backend, lock) = open_store(&app, &options.data_dir).await?;
    let runtime = Arc::new(Runtime::new(
        backend.clone(),
        &options.cache_dir,
        options.limits.clone(),
    )?);

    let webapi = match options.webapi {
        Some(addr) => Some(start_webapi(&app, addr, backend.clone()).await?),
        None => None,
    };
    let (components, _) = live::link_all(&runtime, &app, None, &Default::default())?;
    let cron = Arc::new(CronTrigger::start(
        &app,
        runtime.clone(),
        backend.clone(),
        &components,
        options.cron_timeout,
    )?);
    let mqtt = MqttTrigger::new(
        &app,
        runtime.clone(),
        backend,
        &components,
        options.mqtt_client_id.as_deref(),
        options.max_body_bytes,
    )?;
    let mqtt_endpoint = match (&mqtt, options.mqtt_broker) {
        (Some(trigger), Some(listen)) => {
            Some(endpoint::start(listen, trigger.clone(), options.max_body_bytes).await?)
        }
        (None, Some(_)) => {
            tracing::info!("no [[trigger.mqtt]]: the MQTT endpoint is not started");
            None
        }
        (Some(trigger), None) if !trigger.has_broker() => {
            tracing::warn!("MQTT: no message will arrive: the endpoint is off (--mqtt-broker off) and mqtt_address names no broker");
            None
        }
        (_, None) => None,
    };
    let http = Arc::new(HttpTrigger::new(
        &app,
        runtime.clone(),
        &components,
        options.max_body_bytes,
    )?);
    let listener = TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("binding {}", options.listen))?;
    let http_addr = listener.local_addr()?;
    let name = app.name.clone();
    let routes = app.http_triggers.len();
    let live = Live::new(
        &options.manifest,
        runtime,
        (http.clone(), mqtt.clone(), cron),
        options.data_dir.join("uploads"),
        app,
        components,
    );
    live.watch()
        .context("watching the manifest and the components")?;
    tracing::info!(app = %name, routes, "listening on http://{http_addr}");
    Ok(Running {
        http_addr,
        http: tokio::spawn(http.serve(listener)),
        mqtt_endpoint,
        mqtt: mqtt
            .filter(|mqtt| mqtt.has_broker())
            .map(|mqtt| tokio::spawn(mqtt.run_client())),
        webapi,
        _lock: lock,
    })
}

/// Serves the WebAPI on `addr`, with the names and credentials of the
/// application's `webapi_*` variables.
async fn start_webapi(
    app: &manifest::App,
    addr: SocketAddr,
    backend: Arc<dyn Backend>,
) -> Result<(SocketAddr, JoinHandle<Result<()>>)> {
    let settings = ServerSettings::from_variables(&app.variables)?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the WebAPI to {addr}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(cluster = %settings.cluster, user = %settings.user, "WebAPI serving at http://{addr}/griddb");
    Ok((
        addr,
        tokio::spawn(server::serve(listener, backend, settings)),
    ))
}

/// What `cromflag cron run` and `cromflag cron runs` need.
#[derive(Clone, Debug)]
pub struct CronOptions {
    pub manifest: PathBuf,
    pub data_dir: PathBuf,
    pub cache_dir: PathBuf,
    pub timeout: Duration,
}

/// Runs one tick of `component` as if at `at` (backfill, tests); the run is
/// recorded as manual and does not count for catch-up.
pub async fn cron_run(
    options: &CronOptions,
    component: &str,
    at: DateTime<Utc>,
) -> Result<RunRecord> {
    let app = manifest::load(&options.manifest)?;
    let (backend, _lock) = open_store(&app, &options.data_dir).await?;
    let runtime = Arc::new(Runtime::new(
        backend.clone(),
        &options.cache_dir,
        RuntimeLimits::default(),
    )?);
    cron::run_once(&app, component, at, runtime, backend, options.timeout).await
}

/// The run records in the application's store, oldest tick first.
pub async fn cron_runs(
    manifest: &Path,
    data_dir: &Path,
    trigger: Option<&str>,
) -> Result<Vec<RunRecord>> {
    let app = manifest::load(manifest)?;
    let (backend, _lock) = open_store(&app, data_dir).await?;
    cron::list_runs(backend.as_ref(), trigger).await
}

/// Runs the application until Ctrl-C or SIGTERM. Every acknowledged write is
/// already committed, so stopping needs no flush.
pub async fn up(options: &UpOptions) -> Result<()> {
    let running = start(options).await?;
    tokio::select! {
        served = running.http => served?,
        () = shutdown_signal() => {
            tracing::info!("shutting down");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async { tokio::signal::ctrl_c().await.ok() };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => signal.recv().await,
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<Option<()>>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
