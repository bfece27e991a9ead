//! `cromflag up`: load the manifest, open the store, start the triggers.

use crate::manifest;
use crate::runtime::{Runtime, RuntimeLimits};
use crate::store::embedded::EmbeddedStore;
use crate::store::Backend;
use crate::triggers::http::HttpTrigger;
use crate::triggers::mqtt::MqttTrigger;
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
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
    /// Where the embedded MQTT broker listens; `None` runs none.
    pub mqtt_broker: Option<SocketAddr>,
    /// The MQTT client id (the broker session) [default: `cromflag-<app name>`].
    pub mqtt_client_id: Option<String>,
    pub limits: RuntimeLimits,
}

/// A started application.
pub struct Running {
    /// The address the HTTP trigger listens on (the real port when 0 was asked).
    pub http_addr: SocketAddr,
    pub http: JoinHandle<Result<()>>,
    /// The MQTT trigger's connection, if the application has MQTT triggers.
    pub mqtt: Option<JoinHandle<()>>,
}

/// Starts every trigger of the application and returns once they listen.
pub async fn start(options: &UpOptions) -> Result<Running> {
    let app = manifest::load(&options.manifest)?;
    std::fs::create_dir_all(&options.data_dir)
        .with_context(|| format!("creating the data directory {}", options.data_dir.display()))?;
    let store = EmbeddedStore::open(&options.data_dir.join("cromflag.db"))?;
    let backend: Arc<dyn Backend> = Arc::new(Arc::new(store));
    let runtime = Arc::new(Runtime::new(
        backend.clone(),
        &options.cache_dir,
        options.limits.clone(),
    )?);

    if let Some(listen) = options.mqtt_broker {
        crate::broker::start(listen)?;
    }
    let mqtt = MqttTrigger::new(
        &app,
        runtime.clone(),
        backend,
        options.mqtt_client_id.as_deref(),
        options.max_body_bytes,
    )?;
    let http = Arc::new(HttpTrigger::new(&app, runtime, options.max_body_bytes)?);
    let listener = TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("binding {}", options.listen))?;
    let http_addr = listener.local_addr()?;
    tracing::info!(app = %app.name, routes = app.http_triggers.len(), "listening on http://{http_addr}");
    Ok(Running {
        http_addr,
        http: tokio::spawn(http.serve(listener)),
        mqtt: mqtt.map(|mqtt| tokio::spawn(Arc::new(mqtt).run())),
    })
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
