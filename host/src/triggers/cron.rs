//! The cron trigger: `[[trigger.cron]]` schedules (Spin's syntax, six or seven
//! fields with seconds first, UTC) that call a component's `handle-cron-event`
//! (package `fermyon:spin-cron@2.0.0`, as the Spin cron trigger does).
//!
//! What Spin's trigger lacks and this one adds:
//! - every run is recorded in the `_cron_runs` collection (tick, start, end,
//!   status, error), so the last successful run of each trigger is known;
//! - at start-up, ticks missed since then are caught up or skipped, by the
//!   policy of the trigger's component (`CatchUp`);
//! - runs of one trigger never overlap: a tick that fires while the previous run
//!   is still going is recorded as skipped;
//! - `run_once` runs a tick as if at a given time (`cromflag cron run --at`);
//! - several hosts on one store (GridDB) run each tick once between them: a
//!   host claims the tick in `_cron_leases` before running it (`Leases`), and
//!   the run record names the host that ran it.
//!
//! Each run is a task of its own; the instance yields to the executor every
//! epoch tick (see `Runtime::new_store_with_timeout`), so a long report shares
//! the threads with ingest rather than holding one.
//!
//! The metadata passed to the component is the tick's *scheduled* time (Spin
//! passes the time it fired, a few milliseconds later): a report made from it is
//! the same whenever the run actually starts.

use crate::bindings::cron::fermyon::spin_cron::cron_types::{Error as HandlerError, Metadata};
use crate::bindings::cron::CronComponentPre;
use crate::manifest::{App, CatchUp, ComponentSpec};
use crate::metrics::metrics;
use crate::runtime::{ComponentConfig, Components, HostState, Linked, Runtime};
use crate::store::{
    ensure_container, Backend, Column, ColumnType, ContainerInfo, ContainerKind, Value,
};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use cromflag_logic::tql_string;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use wasmtime::component::InstancePre;

/// The collection of run records.
pub const RUNS: &str = "_cron_runs";
/// The collection of tick claims (`Leases`).
pub const LEASES: &str = "_cron_leases";
/// How long a host waits, after writing its claim, for other hosts' claims
/// of the same tick to land before it reads back which one holds it.
const CLAIM_SETTLE: Duration = Duration::from_millis(500);
/// The most missed ticks one trigger catches up at start-up (the most recent ones).
pub const MAX_CATCH_UP: usize = 1000;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    /// Started and not finished: the host stopped during the run.
    Running,
    Ok,
    Failed,
    /// The previous run of the trigger was still going.
    Skipped,
}

impl RunStatus {
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Ok => "ok",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
        }
    }
}

/// One row of `_cron_runs`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunRecord {
    /// `<trigger>@<tick ms>`, or `manual:<component>@<tick ms>`: a run of the
    /// same tick replaces the record of the previous one.
    pub id: String,
    /// The trigger's name; `None` for a manual run (`cromflag cron run`).
    pub trigger: Option<String>,
    pub component: String,
    /// The tick's scheduled time, epoch ms.
    pub tick: i64,
    pub started: i64,
    pub finished: Option<i64>,
    pub status: String,
    pub error: Option<String>,
    pub manual: bool,
    /// The host that ran it (`--host-id`); `None` in records written before
    /// hosts were named.
    #[serde(default)]
    pub host: Option<String>,
}

fn runs_container() -> ContainerInfo {
    let column = Column::new;
    ContainerInfo {
        name: RUNS.to_owned(),
        kind: ContainerKind::Collection,
        columns: vec![
            column("id", ColumnType::String),
            column("trigger", ColumnType::String),
            column("component", ColumnType::String),
            column("tick", ColumnType::Timestamp),
            column("started", ColumnType::Timestamp),
            column("finished", ColumnType::Timestamp),
            column("status", ColumnType::String),
            column("error", ColumnType::String),
            column("manual", ColumnType::Bool),
            column("host", ColumnType::String),
        ],
        row_key: true,
    }
}

fn leases_container() -> ContainerInfo {
    let column = Column::new;
    ContainerInfo {
        name: LEASES.to_owned(),
        kind: ContainerKind::Collection,
        columns: vec![
            column("tick", ColumnType::String),
            column("holder", ColumnType::String),
            column("claimed", ColumnType::Timestamp),
            column("expires", ColumnType::Timestamp),
        ],
        row_key: true,
    }
}

/// Tick claims, for hosts that share a store: before a scheduled tick runs,
/// its host writes a claim (`<trigger>@<tick>`, its id, an expiry), waits
/// `CLAIM_SETTLE` for the other hosts' claims, and reads back who holds it;
/// only the holder runs the tick. A live claim of another host is left
/// alone; an expired one (its host died before recording the run) may be
/// taken over, as catch-up does after a restart.
///
/// GridDB's WebAPI has no conditional write: claims are upserts, the last
/// one wins and everyone reads the same winner once all have landed. A
/// claim that lands later than the settling time could let two hosts run
/// one tick; the second run then replaces the first's reports (they are
/// keyed by kind, device and period), so a tick is never lost nor doubled
/// in its results.
struct Leases {
    /// How long a claim holds: longer than a run may take.
    ttl: Duration,
}

/// Who holds a tick.
#[derive(Debug, PartialEq, Eq)]
enum Claim {
    Won,
    Lost(String),
}

impl Leases {
    async fn claim(
        &self,
        backend: &dyn Backend,
        host: &str,
        trigger: &str,
        tick: DateTime<Utc>,
    ) -> Result<Claim> {
        let key = format!("{trigger}@{}", tick.timestamp_millis());
        let now = crate::store::now_ms();
        if let Some((holder, expires)) = Self::holder(backend, &key).await? {
            if holder != host && expires > now {
                return Ok(Claim::Lost(holder));
            }
        }
        ensure_container(backend, leases_container()).await?;
        let ttl = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let row = vec![
            Value::String(key.clone()),
            Value::String(host.to_owned()),
            Value::Timestamp(now),
            Value::Timestamp(now.saturating_add(ttl)),
        ];
        backend.put_rows(LEASES, vec![row]).await?;
        tokio::time::sleep(CLAIM_SETTLE).await;
        Ok(match Self::holder(backend, &key).await? {
            Some((holder, _)) if holder == host => Claim::Won,
            Some((holder, _)) => Claim::Lost(holder),
            None => anyhow::bail!("the claim of {key} was not kept"),
        })
    }

    /// The holder of `key`'s claim and when it expires (ms).
    async fn holder(backend: &dyn Backend, key: &str) -> Result<Option<(String, i64)>> {
        if backend.get_container(LEASES).await?.is_none() {
            return Ok(None);
        }
        let tql = format!("SELECT * WHERE tick = {}", tql_string(key));
        let found = backend.query(LEASES, &tql).await?;
        Ok(match found.rows.first().map(|row| &row[..]) {
            Some([_, Value::String(holder), _, Value::Timestamp(expires), ..]) => {
                Some((holder.clone(), *expires))
            }
            _ => None,
        })
    }
}

/// A component that can take cron ticks, ready to instantiate.
#[derive(Clone)]
struct CronHandler {
    component: String,
    pre: CronComponentPre<HostState>,
    config: ComponentConfig,
}

/// Whether `pre` exports the Spin cron trigger's `handle-cron-event`.
pub fn check(pre: &InstancePre<HostState>) -> Result<()> {
    CronComponentPre::new(pre.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

impl CronHandler {
    fn load(
        runtime: &Runtime,
        app: &App,
        spec: &ComponentSpec,
        linked: &Linked,
    ) -> Result<CronHandler> {
        let pre = CronComponentPre::new(linked.pre.clone()).map_err(|e| {
            anyhow::anyhow!(
                "component `{}` does not export the cron handler: {e}",
                spec.id
            )
        })?;
        Ok(CronHandler {
            component: spec.id.clone(),
            pre,
            config: runtime.component_config(app, spec),
        })
    }
}

/// One `[[trigger.cron]]`.
struct Job {
    name: String,
    expression: String,
    schedule: croner::Cron,
    catch_up: CatchUp,
    handler: CronHandler,
    /// Set while a run (or the start-up catch-up) is going; shared with the
    /// job of the same name after a manifest change, so runs never overlap.
    running: Arc<AtomicBool>,
}

/// Runs records and component calls shared by scheduled and manual runs.
struct Runner {
    runtime: Arc<Runtime>,
    backend: Arc<dyn Backend>,
    /// How long one run may take before its instance is stopped.
    timeout: Duration,
    /// This host's name in run records and claims.
    host: String,
    /// Set when other hosts may share the store: scheduled ticks are claimed.
    leases: Option<Leases>,
}

/// Who runs the ticks, and with whom they share the store.
pub struct CronHost {
    /// This host's name (`--host-id`).
    pub id: String,
    /// Whether other hosts may run the same triggers on the same store (the
    /// GridDB store): then each tick is claimed before it runs.
    pub shared_store: bool,
}

pub struct CronTrigger {
    runner: Arc<Runner>,
    /// The application now: where a manual run finds its component.
    app: RwLock<Arc<App>>,
    /// The jobs scheduled now, each with the task that schedules it.
    scheduled: Mutex<Vec<(Arc<Job>, tokio::task::AbortHandle)>>,
}

impl CronTrigger {
    /// Loads the components of the application's cron triggers and starts
    /// scheduling them. Each catches up first (in a task of its own, counted as
    /// a run, so a tick due meanwhile is skipped, not stacked).
    pub fn start(
        app: &App,
        runtime: Arc<Runtime>,
        backend: Arc<dyn Backend>,
        components: &Components,
        timeout: Duration,
        host: CronHost,
    ) -> Result<CronTrigger> {
        let jobs = Self::jobs(app, &runtime, components, &[])?;
        let trigger = CronTrigger {
            runner: Arc::new(Runner {
                runtime,
                backend,
                timeout,
                host: host.id,
                leases: host.shared_store.then(|| Leases {
                    // A claim outlasts the longest run, plus a margin.
                    ttl: timeout + Duration::from_secs(60),
                }),
            }),
            app: RwLock::new(Arc::new(app.clone())),
            scheduled: Mutex::new(Vec::new()),
        };
        trigger.schedule(jobs, true);
        Ok(trigger)
    }

    fn jobs(
        app: &App,
        runtime: &Runtime,
        components: &Components,
        previous: &[Arc<Job>],
    ) -> Result<Vec<Arc<Job>>> {
        let mut jobs = Vec::new();
        for trigger in &app.cron_triggers {
            let spec = &app.components[&trigger.component];
            let linked = components
                .get(&spec.id)
                .with_context(|| format!("component `{}` is not loaded", spec.id))?;
            let running = previous
                .iter()
                .find(|job| job.name == trigger.name)
                .map_or_else(
                    || Arc::new(AtomicBool::new(false)),
                    |job| job.running.clone(),
                );
            jobs.push(Arc::new(Job {
                name: trigger.name.clone(),
                expression: trigger.expression.clone(),
                schedule: trigger.schedule.clone(),
                catch_up: trigger.catch_up,
                handler: CronHandler::load(runtime, app, spec, linked)?,
                running,
            }));
        }
        Ok(jobs)
    }

    /// Schedules `jobs` in place of the ones scheduled now.
    fn schedule(&self, jobs: Vec<Arc<Job>>, catch_up: bool) {
        let mut scheduled = self.scheduled.lock().expect("cron jobs lock");
        for (_, task) in scheduled.drain(..) {
            task.abort();
        }
        for job in jobs {
            tracing::info!(trigger = %job.name, component = %job.handler.component, schedule = %job.expression, catch_up = ?job.catch_up, "cron trigger scheduled");
            let runner = self.runner.clone();
            let started_at = Utc::now();
            if catch_up {
                job.running.store(true, Ordering::SeqCst);
                tokio::spawn(runner.clone().catch_up(job.clone(), started_at));
            }
            let task = tokio::spawn(runner.schedule(job.clone(), started_at));
            scheduled.push((job, task.abort_handle()));
        }
    }

    /// Follows `app`'s `[[trigger.cron]]` from now on: runs going on finish on
    /// the old version; the next ticks run the new one (no catch-up: the
    /// schedule only changed, the host did not stop).
    pub fn replace(&self, app: &App, components: &Components) -> Result<()> {
        let previous: Vec<Arc<Job>> = self
            .scheduled
            .lock()
            .expect("cron jobs lock")
            .iter()
            .map(|(job, _)| job.clone())
            .collect();
        let jobs = Self::jobs(app, &self.runner.runtime, components, &previous)?;
        self.schedule(jobs, false);
        *self.app.write().expect("cron app lock") = Arc::new(app.clone());
        Ok(())
    }

    /// Runs one tick of `component` as if at `at`, in this host, recorded as
    /// a manual run (`cromflag cron run` while the host runs: the admin
    /// route `POST /admin/cron/run`).
    pub async fn run_manual(&self, component: &str, at: DateTime<Utc>) -> Result<RunRecord> {
        let app = self.app.read().expect("cron app lock").clone();
        let runner = &self.runner;
        run_once(
            &app,
            component,
            at,
            runner.runtime.clone(),
            runner.backend.clone(),
            runner.timeout,
            &runner.host,
        )
        .await
    }
}

impl Runner {
    /// Fires `job` at each of its ticks after `after`, each run in its own task.
    async fn schedule(self: Arc<Self>, job: Arc<Job>, after: DateTime<Utc>) {
        // The last tick fired: a clock that steps back must not fire it twice.
        let mut last = after;
        loop {
            let from = last.max(Utc::now());
            let next = match job.schedule.find_next_occurrence(&from, false) {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(trigger = %job.name, "no next tick: {e}; the trigger stops");
                    return;
                }
            };
            let wait = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            tokio::time::sleep(wait).await;
            last = next;
            if job.running.swap(true, Ordering::SeqCst) {
                tracing::warn!(trigger = %job.name, tick = %next, "tick skipped: the previous run is still going");
                let record = self.record_for(
                    Some(&job.name),
                    &job.handler.component,
                    next,
                    RunStatus::Skipped,
                );
                let error = "the previous run was still going".to_owned();
                metrics().cron_run(Some(&job.name), RunStatus::Skipped.name());
                self.save(&RunRecord {
                    error: Some(error),
                    finished: Some(record.started),
                    ..record
                })
                .await;
                continue;
            }
            let (runner, job) = (self.clone(), job.clone());
            tokio::spawn(async move {
                if runner.claim(&job.name, next).await {
                    runner.run(Some(&job.name), &job.handler, next).await;
                }
                job.running.store(false, Ordering::SeqCst);
            });
        }
    }

    /// Runs the ticks `job` missed before `now`, by its policy, then releases it.
    async fn catch_up(self: Arc<Self>, job: Arc<Job>, now: DateTime<Utc>) {
        match self.missed_ticks(&job, now).await {
            Ok(missed) if missed.is_empty() => {}
            Ok(missed) => {
                let chosen: Vec<_> = match job.catch_up {
                    CatchUp::Skip => Vec::new(),
                    CatchUp::Latest => missed.last().copied().into_iter().collect(),
                    CatchUp::All => missed.clone(),
                };
                tracing::info!(trigger = %job.name, missed = missed.len(), running = chosen.len(), policy = ?job.catch_up, "catching up missed ticks");
                for tick in chosen {
                    if self.claim(&job.name, tick).await {
                        self.run(Some(&job.name), &job.handler, tick).await;
                    }
                }
            }
            Err(e) => {
                tracing::error!(trigger = %job.name, "cannot tell which ticks were missed: {e:#}")
            }
        }
        job.running.store(false, Ordering::SeqCst);
    }

    /// The ticks of `job` after its last successful run and at or before `now`,
    /// oldest first, at most `MAX_CATCH_UP` (the most recent). A trigger that has
    /// never run missed nothing; one whose runs all failed counts from its first.
    async fn missed_ticks(&self, job: &Job, now: DateTime<Utc>) -> Result<Vec<DateTime<Utc>>> {
        let Some(anchor) = self.anchor(&job.name).await? else {
            return Ok(Vec::new());
        };
        let mut missed = Vec::new();
        let mut cursor = now;
        let mut inclusive = true;
        while missed.len() < MAX_CATCH_UP {
            match job.schedule.find_previous_occurrence(&cursor, inclusive) {
                Ok(tick) if tick.timestamp_millis() > anchor => {
                    missed.push(tick);
                    cursor = tick;
                    inclusive = false;
                }
                _ => break,
            }
        }
        missed.reverse();
        Ok(missed)
    }

    /// The tick (ms) after which runs count as missed: the last successful one,
    /// or just before the first recorded one; `None` if there is no record.
    async fn anchor(&self, trigger: &str) -> Result<Option<i64>> {
        if self.backend.get_container(RUNS).await?.is_none() {
            return Ok(None);
        }
        let name = tql_string(trigger);
        let ok = format!(
            "SELECT tick WHERE trigger = {name} AND status = 'ok' ORDER BY tick DESC LIMIT 1"
        );
        if let Some(tick) = self.first_tick(&ok).await? {
            return Ok(Some(tick));
        }
        let first = format!("SELECT tick WHERE trigger = {name} ORDER BY tick ASC LIMIT 1");
        Ok(self.first_tick(&first).await?.map(|tick| tick - 1))
    }

    async fn first_tick(&self, tql: &str) -> Result<Option<i64>> {
        let result = self.backend.query(RUNS, tql).await?;
        Ok(match result.rows.first().and_then(|row| row.first()) {
            Some(Value::Timestamp(ms)) => Some(*ms),
            _ => None,
        })
    }

    /// Whether this host runs `trigger`'s `tick`: always when it does not
    /// share the store; else when it holds the tick's claim. A claim that
    /// cannot be made (the store failing) runs nothing here: the tick is
    /// caught up after the next start, by whichever host claims it then.
    async fn claim(&self, trigger: &str, tick: DateTime<Utc>) -> bool {
        let Some(leases) = &self.leases else {
            return true;
        };
        match leases
            .claim(self.backend.as_ref(), &self.host, trigger, tick)
            .await
        {
            Ok(Claim::Won) => true,
            Ok(Claim::Lost(holder)) => {
                tracing::info!(trigger, %tick, %holder, "tick claimed by another host");
                false
            }
            Err(e) => {
                tracing::error!(trigger, %tick, error = %format!("{e:#}"), "cannot claim the tick: not run here");
                false
            }
        }
    }

    /// Runs one tick of `handler` and records it; returns the final record.
    async fn run(
        &self,
        trigger: Option<&str>,
        handler: &CronHandler,
        tick: DateTime<Utc>,
    ) -> RunRecord {
        let mut record = self.record_for(trigger, &handler.component, tick, RunStatus::Running);
        self.save(&record).await;
        let outcome = self.call(handler, tick).await;
        record.finished = Some(crate::store::now_ms());
        match outcome {
            Ok(()) => {
                record.status = RunStatus::Ok.name().to_owned();
                tracing::info!(trigger = trigger.unwrap_or("(manual)"), component = %handler.component, %tick, "cron run ok");
            }
            Err(e) => {
                let message = format!("{e:#}");
                tracing::error!(trigger = trigger.unwrap_or("(manual)"), component = %handler.component, %tick, error = %message, "cron run failed");
                record.status = RunStatus::Failed.name().to_owned();
                record.error = Some(message);
            }
        }
        self.save(&record).await;
        let status = match record.error {
            None => RunStatus::Ok,
            Some(_) => RunStatus::Failed,
        };
        metrics().cron_run(trigger, status.name());
        record
    }

    async fn call(&self, handler: &CronHandler, tick: DateTime<Utc>) -> Result<()> {
        let mut store = self
            .runtime
            .new_store_with_timeout(&handler.config, self.timeout);
        let instance = handler.pre.instantiate_async(&mut store).await?;
        let metadata = Metadata {
            timestamp: u64::try_from(tick.timestamp()).context("a tick before 1970")?,
        };
        match instance.call_handle_cron_event(&mut store, metadata).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(HandlerError::Other(message))) => Err(anyhow::anyhow!("{message}")),
            Err(trap) => {
                metrics().trapped(&handler.component);
                Err(anyhow::anyhow!("the component trapped: {trap:#}"))
            }
        }
    }

    fn record_for(
        &self,
        trigger: Option<&str>,
        component: &str,
        tick: DateTime<Utc>,
        status: RunStatus,
    ) -> RunRecord {
        let tick = tick.timestamp_millis();
        RunRecord {
            id: match trigger {
                Some(trigger) => format!("{trigger}@{tick}"),
                None => format!("manual:{component}@{tick}"),
            },
            trigger: trigger.map(str::to_owned),
            component: component.to_owned(),
            tick,
            started: crate::store::now_ms(),
            finished: None,
            status: status.name().to_owned(),
            error: None,
            manual: trigger.is_none(),
            host: Some(self.host.clone()),
        }
    }

    /// Writes a run record. A store failure is logged, not raised: the run itself
    /// happened (or not) either way.
    async fn save(&self, record: &RunRecord) {
        if let Err(e) = save_record(self.backend.as_ref(), record).await {
            tracing::error!(run = %record.id, "could not record the cron run: {e}");
        }
    }
}

async fn save_record(
    backend: &dyn Backend,
    record: &RunRecord,
) -> Result<(), crate::store::StoreError> {
    ensure_container(backend, runs_container()).await?;
    let text = |s: &Option<String>| s.clone().map_or(Value::Null, Value::String);
    let row = vec![
        Value::String(record.id.clone()),
        text(&record.trigger),
        Value::String(record.component.clone()),
        Value::Timestamp(record.tick),
        Value::Timestamp(record.started),
        record.finished.map_or(Value::Null, Value::Timestamp),
        Value::String(record.status.clone()),
        text(&record.error),
        Value::Bool(record.manual),
        text(&record.host),
    ];
    backend.put_rows(RUNS, vec![row]).await?;
    Ok(())
}

/// Runs one tick of `component` as if at `at`, records it as a manual run, and
/// returns the record (`cromflag cron run`).
pub async fn run_once(
    app: &App,
    component: &str,
    at: DateTime<Utc>,
    runtime: Arc<Runtime>,
    backend: Arc<dyn Backend>,
    timeout: Duration,
    host: &str,
) -> Result<RunRecord> {
    let spec = app.components.get(component).with_context(|| {
        let known: Vec<_> = app.components.keys().collect();
        format!("no component `{component}` in the manifest (it has {known:?})")
    })?;
    let linked = runtime
        .pre_instantiate(&spec.source)
        .with_context(|| format!("loading component `{component}`"))?;
    let handler = CronHandler::load(&runtime, app, spec, &linked)?;
    let runner = Runner {
        runtime,
        backend,
        timeout,
        host: host.to_owned(),
        // A manual run is asked for: it runs whoever else runs that tick.
        leases: None,
    };
    Ok(runner.run(None, &handler, at).await)
}

/// Every run record, oldest tick first; only `trigger`'s when given.
pub async fn list_runs(backend: &dyn Backend, trigger: Option<&str>) -> Result<Vec<RunRecord>> {
    let filter = trigger.map_or(String::new(), |t| {
        format!("WHERE trigger = {} ", tql_string(t))
    });
    let clause = format!("{filter}ORDER BY tick ASC, started ASC");
    crate::store::all_rows(backend, RUNS, &clause)
        .await?
        .iter()
        .map(|row| record_from_row(row).context("an unreadable run record"))
        .collect()
}

fn record_from_row(row: &[Value]) -> Option<RunRecord> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        _ => None,
    };
    let time = |v: &Value| match v {
        Value::Timestamp(ms) => Some(*ms),
        _ => None,
    };
    Some(RunRecord {
        id: text(row.first()?)?,
        trigger: text(row.get(1)?),
        component: text(row.get(2)?)?,
        tick: time(row.get(3)?)?,
        started: time(row.get(4)?)?,
        finished: time(row.get(5)?),
        status: text(row.get(6)?)?,
        error: text(row.get(7)?),
        manual: matches!(row.get(8)?, Value::Bool(true)),
        host: row.get(9).and_then(text),
    })
}
