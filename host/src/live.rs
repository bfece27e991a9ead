//! Live changes: a running host follows `spin.toml` and the component files it
//! names (watched with `notify`, debounced), and takes new component versions
//! uploaded through the HTTP trigger (`triggers::http::admin`: `POST
//! /admin/components/<id>`, when the `admin_token` variable is set). It knows
//! nothing of HTTP: an upload reaches it as bytes, through `Uploads`.
//!
//! A change is applied off the request path. The manifest is read again and
//! every component a trigger binds is loaded (an unchanged file costs a hash, a
//! changed one a compile) and checked against each trigger that uses it:
//! linked against the host's imports, with the export that trigger calls
//! (`runtime::link_all`, with the triggers' `CHECKS`).
//! - A new version that fails is refused with a log line; its old version
//!   stays and keeps serving.
//! - A component new to the application that fails stops the whole change.
//! - Then each trigger swaps its tables at once (routes, MQTT subscriptions,
//!   cron jobs, transform chains). Requests in flight finish on the versions
//!   they started with; new ones get the new versions.
//!
//! Every swap is logged with the old and new SHA-256 of the component (a
//! transform's by `runtime::transforms`, which loads them), and every
//! component whose transform chain changed with its old and new list.

use crate::manifest::{self, App};
use crate::runtime::{self, Components, Outcome, Runtime};
use crate::triggers::cron::CronTrigger;
use crate::triggers::http::admin::{UploadRefused, Uploaded, Uploads};
use crate::triggers::http::HttpTrigger;
use crate::triggers::mqtt::MqttTrigger;
use crate::triggers::CHECKS;
use anyhow::{Context, Result};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Quiet time after a file event before the change is applied: a copy in
/// progress produces several events, and the change should see the whole file.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// The live-change controller of a running application.
pub struct Live {
    manifest: PathBuf,
    runtime: Arc<Runtime>,
    http: Arc<HttpTrigger>,
    mqtt: Option<Arc<MqttTrigger>>,
    cron: Arc<CronTrigger>,
    /// What else follows the manifest (retention, alarm rules).
    followers: Vec<Arc<dyn FollowsApp>>,
    /// Where uploaded components are kept (`<data-dir>/uploads`).
    uploads: PathBuf,
    /// Changes are applied one at a time.
    state: tokio::sync::Mutex<State>,
    /// The file watcher (once `watch` ran) and the directories it watches.
    watcher: std::sync::Mutex<Option<(notify::RecommendedWatcher, BTreeSet<PathBuf>)>>,
}

struct State {
    app: Arc<App>,
    components: Components,
    /// Uploaded versions, by component id: used instead of the manifest's
    /// `source` until that file changes.
    overrides: HashMap<String, PathBuf>,
}

/// A part of the host that reads its settings from the manifest and
/// follows its changes (no trigger: the triggers are `replace`d above).
pub trait FollowsApp: Send + Sync {
    /// What it is, for the log.
    fn what(&self) -> &'static str;
    /// Takes `app`'s settings from now on; an error keeps the ones it has.
    fn follow(&self, app: &App) -> Result<()>;
}

impl Live {
    pub fn new(
        manifest: &Path,
        runtime: Arc<Runtime>,
        triggers: (Arc<HttpTrigger>, Option<Arc<MqttTrigger>>, Arc<CronTrigger>),
        followers: Vec<Arc<dyn FollowsApp>>,
        uploads: PathBuf,
        app: App,
        components: Components,
    ) -> Arc<Live> {
        let (http, mqtt, cron) = triggers;
        let live = Arc::new(Live {
            // Absolute: the watcher reports changes by absolute path.
            manifest: std::path::absolute(manifest).unwrap_or_else(|_| manifest.to_owned()),
            runtime,
            http: http.clone(),
            mqtt,
            cron,
            followers,
            uploads,
            state: tokio::sync::Mutex::new(State {
                app: Arc::new(app),
                components,
                overrides: HashMap::new(),
            }),
            watcher: std::sync::Mutex::new(None),
        });
        http.set_uploads(live.clone());
        live
    }

    /// Applies the manifest and component files as they are now.
    pub async fn reload(&self) -> Result<Vec<(String, Outcome)>> {
        let mut state = self.state.lock().await;
        self.apply(&mut state).await
    }

    async fn apply(&self, state: &mut State) -> Result<Vec<(String, Outcome)>> {
        let app = Arc::new(manifest::load(&self.manifest)?);
        if app.mqtt != state.app.mqtt {
            tracing::warn!(
                "[application.trigger.mqtt] changed: restart the host for it to take effect"
            );
        }
        // The store and the WebAPI server are opened once, at start.
        let host_settings = |name: &&str| {
            *name == "store" || name.starts_with("griddb_") || name.starts_with("webapi_")
        };
        for name in state.app.variables.names().filter(host_settings) {
            if app.variables.get(name) != state.app.variables.get(name) {
                // The name only: these may be secrets.
                tracing::warn!(
                    variable = name,
                    "changed: restart the host for it to take effect"
                );
            }
        }
        let runtime = self.runtime.clone();
        let previous = state.components.clone();
        let overrides = state.overrides.clone();
        let linking = app.clone();
        // (an Arc: the blocking task needs its own handle)
        // Compiling takes a while: off the async threads.
        let (components, outcomes) = tokio::task::spawn_blocking(move || {
            runtime::link_all(&runtime, &linking, &CHECKS, Some(&previous), &overrides)
        })
        .await??;
        // Transform chains are rebuilt with the triggers' tables.
        self.http.replace(&app, &components)?;
        if let Some(mqtt) = &self.mqtt {
            mqtt.replace(&app, &components)?;
        }
        self.cron.replace(&app, &components)?;
        for follower in &self.followers {
            if let Err(e) = follower.follow(&app) {
                tracing::error!(error = %format!("{e:#}"), "{} unchanged", follower.what());
            }
        }
        for (id, outcome) in &outcomes {
            match outcome {
                Outcome::Swapped { old, new } => {
                    tracing::info!(component = %id, old = %short(old), new = %short(new), "component swapped")
                }
                Outcome::Added { new } => {
                    tracing::info!(component = %id, new = %short(new), "component added")
                }
                Outcome::Refused { kept, reason } => {
                    tracing::error!(component = %id, kept = %short(kept), %reason, "new version refused: the old one keeps serving")
                }
            }
        }
        log_chain_changes(&state.app, &app);
        tracing::info!(
            routes = app.http_triggers.len(),
            mqtt = app.mqtt_triggers.len(),
            cron = app.cron_triggers.len(),
            "application reloaded"
        );
        if let Err(e) = self.watch_dirs(&app) {
            tracing::warn!(error = %format!("{e:#}"), "a changed component's directory is not watched");
        }
        state.app = app;
        state.components = components;
        Ok(outcomes)
    }

    /// Watches the manifest and every directory holding a component source
    /// (directories of components added later are watched as they come), and
    /// applies what changes there.
    pub fn watch(self: Arc<Self>) -> Result<()> {
        let (events, mut changes) = tokio::sync::mpsc::unbounded_channel();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event {
                if !matches!(event.kind, notify::EventKind::Access(_)) {
                    let _ = events.send(event.paths);
                }
            }
        })?;
        *self.watcher.lock().expect("watcher lock") = Some((watcher, BTreeSet::new()));
        self.watch_dirs(&manifest::load(&self.manifest)?)?;
        let live = self.clone();
        tokio::spawn(async move {
            while let Some(mut paths) = changes.recv().await {
                // Debounce: wait until the files have been quiet for a moment.
                loop {
                    match tokio::time::timeout(DEBOUNCE, changes.recv()).await {
                        Ok(Some(more)) => paths.extend(more),
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                if !live.is_relevant(&paths).await {
                    continue;
                }
                let mut state = live.state.lock().await;
                // A file that changed on disk wins over an earlier upload.
                let app = state.app.clone();
                state.overrides.retain(|id, _| {
                    let source = app.components.get(id).map(|c| &c.source);
                    !source.is_some_and(|s| paths.iter().any(|p| p == s))
                });
                if let Err(e) = live.apply(&mut state).await {
                    tracing::error!(error = %format!("{e:#}"), "change refused: the application keeps running as it was");
                }
            }
        });
        Ok(())
    }

    /// Watches the manifest's directory and every directory holding one of
    /// `app`'s component files, if not watched yet.
    fn watch_dirs(&self, app: &App) -> Result<()> {
        use notify::Watcher;
        let mut guard = self.watcher.lock().expect("watcher lock");
        let Some((watcher, watched)) = guard.as_mut() else {
            return Ok(());
        };
        let dirs = std::iter::once(parent(&self.manifest))
            .chain(app.components.values().map(|spec| parent(&spec.source)));
        for dir in dirs {
            if !dir.is_dir() || watched.contains(&dir) {
                continue;
            }
            watcher
                .watch(&dir, notify::RecursiveMode::NonRecursive)
                .with_context(|| format!("watching {}", dir.display()))?;
            watched.insert(dir);
        }
        Ok(())
    }

    /// Whether an event on `paths` concerns the manifest or a component.
    async fn is_relevant(&self, paths: &[PathBuf]) -> bool {
        let state = self.state.lock().await;
        paths.iter().any(|path| {
            path.file_name() == self.manifest.file_name()
                || state.app.components.values().any(|c| &c.source == path)
        })
    }
}

/// Uploads (`POST /admin/components/<id>`, served by the HTTP trigger) are
/// kept in `<data-dir>/uploads` and used instead of the manifest's `source`
/// until that file changes.
#[async_trait::async_trait]
impl Uploads for Live {
    async fn upload(&self, id: &str, bytes: &[u8]) -> Result<Uploaded, UploadRefused> {
        let mut state = self.state.lock().await;
        if !state.components.contains_key(id) {
            return Err(UploadRefused::NoSuchComponent);
        }
        let sha256 = runtime::sha256_hex(bytes);
        let path = self.uploads.join(format!("{id}-{}.wasm", short(&sha256)));
        let written =
            std::fs::create_dir_all(&self.uploads).and_then(|()| std::fs::write(&path, bytes));
        if let Err(e) = written {
            return Err(UploadRefused::NotKept(e.to_string()));
        }
        let before = state.overrides.insert(id.to_owned(), path);
        let outcomes = match self.apply(&mut state).await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                restore(&mut state.overrides, id, before);
                return Err(UploadRefused::Invalid(format!("{e:#}")));
            }
        };
        match outcomes.into_iter().find(|(c, _)| c == id).map(|(_, o)| o) {
            Some(Outcome::Refused { reason, .. }) => {
                restore(&mut state.overrides, id, before);
                Err(UploadRefused::Invalid(reason))
            }
            Some(Outcome::Swapped { old, new }) => Ok(Uploaded::Swapped { old, new }),
            Some(Outcome::Added { .. }) | None => Ok(Uploaded::Unchanged),
        }
    }
}

/// Logs each component whose `transforms` list differs between `old` and
/// `new`: enabling, removing or reordering a transform shows in the log.
fn log_chain_changes(old: &App, new: &App) {
    let chain = |app: &App, id: &str| {
        app.components
            .get(id)
            .map_or(&[][..], |spec| &spec.transforms[..])
            .to_vec()
    };
    let ids: BTreeSet<&String> = old.components.keys().chain(new.components.keys()).collect();
    for id in ids {
        let (before, after) = (chain(old, id), chain(new, id));
        if before != after {
            tracing::info!(
                component = %id,
                old = %format!("[{}]", before.join(", ")),
                new = %format!("[{}]", after.join(", ")),
                "transform chain changed"
            );
        }
    }
}

fn restore(overrides: &mut HashMap<String, PathBuf>, id: &str, before: Option<PathBuf>) {
    match before {
        Some(path) => overrides.insert(id.to_owned(), path),
        None => overrides.remove(id),
    };
}

fn parent(path: &Path) -> PathBuf {
    path.parent()
        .map_or_else(|| PathBuf::from("."), Path::to_owned)
}

/// The first 12 hex digits: enough to tell versions apart in a log line.
fn short(sha256: &str) -> &str {
    &sha256[..sha256.len().min(12)]
}
