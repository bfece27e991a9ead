//! The commands' wiring: `cromflag up` loads the manifest, opens the store and
//! starts the triggers; `cromflag cron run|runs` open the same store to run one
//! tick or list the run records.

use crate::access::credentials::Credentials;
use crate::access::token::same_secret;
use crate::access::{Access, Mode};
use crate::alarms::{AlarmEvent, Alarms};
use crate::http_io::{self, BodyLimit};
use crate::listener::ListenerLimits;
use crate::live::Live;
use crate::manifest;
use crate::metrics::Metered;
use crate::retention::{Policy, Retention};
use crate::runtime::{self, Runtime, RuntimeLimits};
use crate::store::embedded::EmbeddedStore;
use crate::store::griddb::{GriddbSettings, GriddbStore};
use crate::store::Backend;
use crate::triggers::cron::{self, CronHost, CronTrigger, RunRecord};
use crate::triggers::http::HttpTrigger;
use crate::triggers::mqtt::{endpoint, MqttTrigger};
use crate::triggers::CHECKS;
use crate::webapi::server::{self, ServerSettings};
use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

#[derive(Clone, Debug)]
pub struct UpOptions {
    pub manifest: PathBuf,
    /// Holds the embedded database, `cromflag.db`.
    pub data_dir: PathBuf,
    /// Holds compiled components; may be shared between data directories.
    pub cache_dir: PathBuf,
    pub listen: SocketAddr,
    /// Header and body timeouts and the connection cap of the HTTP listener.
    pub listener_limits: ListenerLimits,
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
    /// The most bytes the embedded store's database may hold; `None`: what
    /// the disk holds.
    pub max_store_bytes: Option<u64>,
    /// This host's name in cron run records and tick claims [default:
    /// `host_id(None)`].
    pub host_id: Option<String>,
}

/// A host's name: `given`, or the machine's host name and this process's id
/// (unique among the hosts of one store, as containers have their own
/// host names).
pub fn host_id(given: Option<&str>) -> String {
    if let Some(given) = given.filter(|g| !g.is_empty()) {
        return given.to_owned();
    }
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    format!("{machine}-{}", std::process::id())
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
    /// Whether tokens are required.
    pub access: Mode,
    /// The store, closed when the application stops.
    pub store: Arc<dyn Backend>,
    /// Removes the control file when the application stops.
    _control: Option<ControlFile>,
    /// Held while the application runs on the embedded store: no other
    /// process opens its data directory.
    _lock: Option<DataDirLock>,
}

/// The exclusive lock on a data directory. The embedded store caches its
/// catalog in memory, so two processes writing one database would each miss
/// the other's schema changes: one process owns a data directory at a time.
pub struct DataDirLock(#[allow(dead_code, reason = "held for its lock")] File);

/// The store the application's `store` variable names: `embedded` (the
/// default) in `data_dir`, locked while it is open, or `griddb`, the cluster
/// the `griddb_*` variables point at; metered either way.
pub async fn open_store(
    app: &manifest::App,
    data_dir: &Path,
    max_store_bytes: Option<u64>,
) -> Result<(Arc<dyn Backend>, Option<DataDirLock>)> {
    match app.variables.get("store").unwrap_or("embedded") {
        "embedded" => {
            let (store, lock) = open_embedded_capped(data_dir, max_store_bytes)?;
            Ok((Arc::new(Metered::new(store, "embedded")), Some(lock)))
        }
        "griddb" => {
            let settings =
                GriddbSettings::from_variables(|name| app.variables.get(name).map(str::to_owned))
                    .map_err(anyhow::Error::msg)?;
            let store = GriddbStore::connect(&settings).await?;
            Ok((Arc::new(Metered::new(Arc::new(store), "griddb")), None))
        }
        other => bail!("variable store = `{other}`: use `embedded` or `griddb`"),
    }
}

/// The data directory is held by another process (a running `cromflag up`).
#[derive(Debug)]
pub struct DataDirInUse(PathBuf);

impl std::fmt::Display for DataDirInUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the data directory {} is in use by another cromflag process: stop it first",
            self.0.display()
        )
    }
}

impl std::error::Error for DataDirInUse {}

/// Opens the embedded store in `data_dir` (created if missing), locking the directory.
pub fn open_embedded(data_dir: &Path) -> Result<(Arc<dyn Backend>, DataDirLock)> {
    open_embedded_capped(data_dir, None)
}

/// `open_embedded`, its database refusing writes past `max_bytes` when given.
fn open_embedded_capped(
    data_dir: &Path,
    max_bytes: Option<u64>,
) -> Result<(Arc<dyn Backend>, DataDirLock)> {
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
            std::fs::TryLockError::WouldBlock => {
                return Err(anyhow::Error::new(DataDirInUse(data_dir.to_owned())))
            }
            std::fs::TryLockError::Error(e) => {
                return Err(e).with_context(|| format!("locking {}", lock_path.display()))
            }
        }
    }
    let store = EmbeddedStore::open_capped(&data_dir.join("cromflag.db"), max_bytes)?;
    Ok((Arc::new(Arc::new(store)), DataDirLock(lock)))
}

/// Starts every trigger of the application and returns once they listen.
pub async fn start(options: &UpOptions) -> Result<Running> {
    let app = manifest::load(&options.manifest)?;
    let (backend, lock) = open_store(&app, &options.data_dir, options.max_store_bytes).await?;
    let runtime = Arc::new(Runtime::new(
        backend.clone(),
        &options.cache_dir,
        options.limits.clone(),
    )?);

    let listeners: Vec<SocketAddr> = std::iter::once(options.listen)
        .chain(
            options
                .mqtt_broker
                .filter(|_| !app.mqtt_triggers.is_empty()),
        )
        .collect();
    let mode = Mode::decide(app.variables.get("access").unwrap_or("auto"), &listeners)?;
    let credentials = Arc::new(Credentials::new(backend.clone()));
    let access = Arc::new(Access::new(mode, credentials, &app));

    let webapi = match options.webapi {
        Some(addr) => Some(start_webapi(&app, addr, backend.clone()).await?),
        None => None,
    };
    let (components, _) = runtime::link_all(&runtime, &app, &CHECKS, None, &Default::default())?;
    let cron_host = CronHost {
        id: host_id(options.host_id.as_deref()),
        // Only a GridDB store can be shared: the embedded one is locked.
        shared_store: lock.is_none(),
    };
    let cron = Arc::new(CronTrigger::start(
        &app,
        runtime.clone(),
        backend.clone(),
        &components,
        options.cron_timeout,
        cron_host,
    )?);
    let mqtt = MqttTrigger::new(
        &app,
        runtime.clone(),
        backend.clone(),
        &components,
        options.mqtt_client_id.as_deref(),
        options.max_body_bytes,
    )?;
    // Before the endpoint, which publishes alarms to its subscribers.
    let alarms = Alarms::start(backend.clone(), &app).await?;
    let mqtt_endpoint = match (&mqtt, options.mqtt_broker) {
        (Some(trigger), Some(listen)) => Some(
            endpoint::start(
                listen,
                trigger.clone(),
                access.clone(),
                alarm_messages(&alarms),
                options.max_body_bytes,
            )
            .await?,
        ),
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
        options.listener_limits.clone(),
        access.clone(),
    )?);
    http.set_cron(cron.clone());
    let retention = Retention::start(backend.clone(), Policy::from_app(&app)?);
    http.add_routes("/admin/retention", retention.clone());
    http.add_routes("/alarms", alarms.clone());
    if let Some(trigger) = &mqtt {
        http.set_mqtt_readiness(trigger.readiness(mqtt_endpoint.is_some()));
    }
    let listener = TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("binding {}", options.listen))?;
    let http_addr = listener.local_addr()?;
    let control = ControlFile::write(&options.data_dir, http_addr, access.control_token())?;
    let name = app.name.clone();
    let routes = app.http_triggers.len();
    let live = Live::new(
        &options.manifest,
        runtime,
        (http.clone(), mqtt.clone(), cron),
        vec![retention, alarms],
        options.data_dir.join("uploads"),
        app,
        components,
    );
    live.watch()
        .context("watching the manifest and the components")?;
    match mode {
        Mode::Open => {
            tracing::info!(app = %name, routes, "listening on http://{http_addr} (open: no token needed)")
        }
        Mode::Required => {
            tracing::info!(app = %name, routes, "listening on http://{http_addr} (tokens required)")
        }
    }
    Ok(Running {
        http_addr,
        http: tokio::spawn(http.serve(listener)),
        mqtt_endpoint,
        mqtt: mqtt
            .filter(|mqtt| mqtt.has_broker())
            .map(|mqtt| tokio::spawn(mqtt.run_client())),
        webapi,
        access: mode,
        store: backend,
        _control: Some(control),
        _lock: lock,
    })
}

/// The MQTT endpoint's alarm messages: each alarm event, its alarm as JSON.
fn alarm_messages(alarms: &Alarms) -> broadcast::Sender<Arc<endpoint::AlarmMessage>> {
    endpoint::alarm_messages(alarms.subscribe(), |event: &AlarmEvent| {
        endpoint::AlarmMessage {
            device: event.device.clone(),
            payload: event.alarm.to_string().into(),
        }
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
    // Even against the public default, a secret is compared in one way only.
    let default_login = settings.user == "admin" && same_secret(&settings.password, "admin");
    if !addr.ip().is_loopback() && default_login {
        bail!("--webapi {addr} is beyond loopback: set webapi_user and webapi_password (the default admin/admin is refused there)");
    }
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the WebAPI to {addr}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(cluster = %settings.cluster, user = %settings.user, release = %settings.release, multi_put = ?settings.multi_put, "WebAPI serving at http://{addr}/griddb");
    Ok((
        addr,
        tokio::spawn(server::serve(listener, backend, settings)),
    ))
}

/// `<data-dir>/control.json`: where this run's HTTP listener is and its
/// control token, readable by the owner only. `cromflag devices` on this
/// machine finds the running host through it while the host holds the
/// data directory.
pub struct ControlFile(PathBuf);

/// What the control file holds.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Control {
    pub url: String,
    pub token: String,
}

impl ControlFile {
    pub const NAME: &'static str = "control.json";

    fn write(data_dir: &Path, listening: SocketAddr, token: &str) -> Result<ControlFile> {
        std::fs::create_dir_all(data_dir)?;
        // A wildcard listener is reached on loopback, from this machine.
        let host = match listening.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
            ip if ip.is_unspecified() => "[::1]".to_owned(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        let control = Control {
            url: format!("http://{host}:{}", listening.port()),
            token: token.to_owned(),
        };
        let path = data_dir.join(Self::NAME);
        let mut options = File::options();
        options.create(true).write(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        std::io::Write::write_all(&mut file, serde_json::to_string(&control)?.as_bytes())?;
        Ok(ControlFile(path))
    }

    /// The control file of the host running on `data_dir`, if any.
    pub fn read(data_dir: &Path) -> Result<Control> {
        let path = data_dir.join(Self::NAME);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(serde_json::from_str(&text)?)
    }
}

impl Drop for ControlFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
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
/// recorded as manual and does not count for catch-up. While a host runs on
/// the data directory (its control file is there), the host runs it
/// (`POST /admin/cron/run`, with the control token); otherwise this process
/// opens the store and runs it.
pub async fn cron_run(
    options: &CronOptions,
    component: &str,
    at: DateTime<Utc>,
) -> Result<RunRecord> {
    if let Ok(control) = ControlFile::read(&options.data_dir) {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("component", component)
            .append_pair(
                "at",
                &at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            )
            .finish();
        let path = format!("/admin/cron/run?{query}");
        match remote_admin_call(&control, http::Method::POST, &path).await {
            Ok((status, body)) if status.is_success() => {
                return serde_json::from_value(body).context("the host's run record");
            }
            Ok((status, body)) => bail!("{status}: {body}"),
            // A control file left by a host that is gone: run here.
            Err(e) if is_unreachable(&e) => {
                tracing::info!("no host answers at {}; running the tick here", control.url)
            }
            Err(e) => return Err(e),
        }
    }
    let app = manifest::load(&options.manifest)?;
    let (backend, _lock) = open_store(&app, &options.data_dir, None).await?;
    let runtime = Arc::new(Runtime::new(
        backend.clone(),
        &options.cache_dir,
        RuntimeLimits::default(),
    )?);
    let host = host_id(None);
    cron::run_once(
        &app,
        component,
        at,
        runtime,
        backend,
        options.timeout,
        &host,
    )
    .await
}

/// The run records in the application's store, oldest tick first.
pub async fn cron_runs(
    manifest: &Path,
    data_dir: &Path,
    trigger: Option<&str>,
) -> Result<Vec<RunRecord>> {
    let app = manifest::load(manifest)?;
    let (backend, _lock) = open_store(&app, data_dir, None).await?;
    cron::list_runs(backend.as_ref(), trigger).await
}

/// One call of the credentials' admin API (`access::admin`) for `cromflag
/// devices|readers`: in this process over the application's store, or, when
/// a running host holds the data directory, through that host with the
/// control token it left there. Returns the status and JSON answer.
pub async fn admin_call(
    manifest: &Path,
    data_dir: &Path,
    method: http::Method,
    path_and_query: &str,
) -> Result<(http::StatusCode, serde_json::Value)> {
    let app = manifest::load(manifest)?;
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    match open_store(&app, data_dir, None).await {
        Ok((backend, _lock)) => {
            let credentials = Credentials::new(backend);
            Ok(crate::access::admin::handle(&credentials, &app, &method, path, query).await)
        }
        Err(e) if e.downcast_ref::<DataDirInUse>().is_some() => {
            let control = ControlFile::read(data_dir)
                .context("the host holding the data directory left no control file")?;
            remote_admin_call(&control, method, path_and_query).await
        }
        Err(e) => Err(e),
    }
}

/// The largest answer `admin_call` reads from a running host: far above any
/// real one (a million devices' keys fit many times over), a bound all the same.
const MAX_ADMIN_ANSWER_BYTES: usize = 1 << 30;

/// Whether `error` is a running host's address that took no connection.
fn is_unreachable(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<hyper_util::client::legacy::Error>()
        .is_some_and(|e| e.is_connect())
}

/// `admin_call` through the running host.
async fn remote_admin_call(
    control: &Control,
    method: http::Method,
    path_and_query: &str,
) -> Result<(http::StatusCode, serde_json::Value)> {
    use http_body_util::Empty;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<bytes::Bytes>>();
    let request = http::Request::builder()
        .method(method)
        .uri(format!("{}{path_and_query}", control.url))
        .header(
            http::header::AUTHORIZATION,
            format!("Bearer {}", control.token),
        )
        .body(Empty::new())?;
    let response = client
        .request(request)
        .await
        .with_context(|| format!("calling the running host at {}", control.url))?;
    let status = response.status();
    let (parts, body) = response.into_parts();
    let body = http_io::read(
        &parts.headers,
        body,
        &BodyLimit::new(MAX_ADMIN_ANSWER_BYTES),
    )
    .await?;
    let body = serde_json::from_slice(&body)
        .with_context(|| format!("the host answered {status} with no JSON"))?;
    Ok((status, body))
}

/// Runs the application until Ctrl-C or SIGTERM. Every acknowledged write is
/// already committed, so stopping needs no flush; closing the store leaves
/// its files tidy (no WAL to replay at the next start).
pub async fn up(options: &UpOptions) -> Result<()> {
    let running = start(options).await?;
    let store = running.store.clone();
    let outcome = tokio::select! {
        served = running.http => served?,
        () = shutdown_signal() => {
            tracing::info!("shutting down");
            Ok(())
        }
    };
    store.close().await;
    outcome
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
