//! The Wasm runtime: one `Engine`, the per-instance `HostState` (with
//! `ComponentConfig`, what it is made from), the linker every component is
//! linked against, and compiled-code caching. Its submodules implement the
//! host's imports (`store_import`, `variables`, `transforms`: the pipeline)
//! and link an application's components (`link`); none knows a trigger.
//!
//! Instances follow Spin's model: each component is compiled once and
//! pre-instantiated (`InstancePre`); every event gets a fresh instance from the
//! pooling allocator, so no state leaks between requests.

mod cache;
mod link;
mod outbound;
mod store_import;
pub mod transforms;
mod variables;

pub use cache::{sha256_hex, Loaded};
pub use link::{link_all, Check, Outcome, TriggerChecks};
pub use outbound::AllowedHost;
pub use transforms::TransformEngine;

use crate::manifest::{App, ComponentSpec};
use crate::metrics::{metrics, Alive, Transport};
use crate::store::Backend;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{InstancePre, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// How often the epoch ticks; an instance's deadline is counted in ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Limits of the runtime, settable from the command line.
#[derive(Clone, Debug)]
pub struct RuntimeLimits {
    /// Component instances alive at once (the pooling allocator's slots).
    pub max_instances: u32,
    /// Largest linear memory one instance may grow to, in bytes.
    pub max_memory_bytes: usize,
    /// Wall-clock time one event may run before its instance is trapped.
    pub event_timeout: Duration,
}

impl Default for RuntimeLimits {
    fn default() -> Self {
        RuntimeLimits {
            max_instances: 1000,
            max_memory_bytes: 128 << 20,
            event_timeout: Duration::from_secs(60),
        }
    }
}

/// The `T` of every `Store<T>`: everything one instance may reach.
pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: outbound::OutboundHttp,
    table: ResourceTable,
    store: store_import::StoreHost,
    variables: variables::VariablesHost,
    pipeline: transforms::PipelineHost,
    /// Counts this instance in `cromflag_component_instances` while it lives.
    _alive: Alive,
}

impl HostState {
    /// The instance handles messages that arrived over `transport`: the
    /// telemetry rows it commits count as ingested over it.
    pub fn set_ingest_transport(&mut self, transport: Transport) {
        self.store.set_ingest_transport(transport);
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// What one instance is given besides the store: its environment, its
/// variables and its transform chain (see `Runtime::component_config`).
#[derive(Clone, Default)]
pub struct ComponentConfig {
    pub env: Vec<(String, String)>,
    pub variables: Arc<BTreeMap<String, String>>,
    pub transforms: Arc<transforms::Chain>,
    /// Where its outgoing HTTP requests may go (none by default).
    pub allowed_outbound_hosts: Arc<[AllowedHost]>,
}

/// A component compiled and linked against the host's imports: what every
/// trigger instantiates from, with the hash of the bytes it came from.
#[derive(Clone)]
pub struct Linked {
    pub sha256: String,
    pub pre: InstancePre<HostState>,
}

/// The linked components of an application, by component id.
pub type Components = std::collections::HashMap<String, Linked>;

pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    backend: Arc<dyn Backend>,
    cache_dir: PathBuf,
    limits: RuntimeLimits,
    transforms: TransformEngine,
}

impl Runtime {
    /// Builds the engine and linker; compiled components are cached in `cache_dir`.
    pub fn new(
        backend: Arc<dyn Backend>,
        cache_dir: &Path,
        limits: RuntimeLimits,
    ) -> Result<Runtime> {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(limits.max_instances);
        // A Rust component is a few core instances (its module plus adapter
        // shims) with one memory and a couple of tables.
        pool.total_core_instances(limits.max_instances * 4);
        pool.total_memories(limits.max_instances);
        pool.total_tables(limits.max_instances * 2);
        pool.max_memory_size(limits.max_memory_bytes);
        let reset = SlotReset::detect();
        reset.configure(&mut pool);

        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;
        spawn_epoch_ticker(&engine);

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        store_import::add_to_linker(&mut linker, |state: &mut HostState| &mut state.store)?;
        variables::add_to_linker(&mut linker, |state: &mut HostState| &mut state.variables)?;
        transforms::add_pipeline_to_linker(&mut linker, |state: &mut HostState| {
            &mut state.pipeline
        })?;

        std::fs::create_dir_all(cache_dir)
            .with_context(|| format!("creating the compile cache {}", cache_dir.display()))?;
        Ok(Runtime {
            engine,
            linker,
            backend,
            transforms: TransformEngine::new(cache_dir, reset)?,
            cache_dir: cache_dir.to_owned(),
            limits,
        })
    }

    /// The store every instance's `cromflag:iot/store` import reaches.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn linker(&self) -> &Linker<HostState> {
        &self.linker
    }

    /// Compiles the component at `path`, or loads its cached machine code.
    pub fn load(&self, path: &Path) -> Result<Loaded> {
        cache::load(&self.engine, path, &self.cache_dir)
    }

    /// Loads the component at `path` and links it against the host's imports,
    /// ready to instantiate once per event.
    pub fn pre_instantiate(&self, path: &Path) -> Result<Linked> {
        let loaded = self.load(path)?;
        let pre = self
            .linker
            .instantiate_pre(&loaded.component)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Linked {
            sha256: loaded.sha256,
            pre,
        })
    }

    /// What one instance of `spec` is given: its environment, its variables,
    /// and its transform chain, loaded now (a transform that cannot run
    /// rejects every batch, with the reason, instead of failing here).
    pub fn component_config(&self, app: &App, spec: &ComponentSpec) -> ComponentConfig {
        ComponentConfig {
            env: spec.environment.clone(),
            variables: Arc::new(spec.variables.clone()),
            transforms: self.transforms.chain(app, spec),
            allowed_outbound_hosts: spec.allowed_outbound_hosts.clone().into(),
        }
    }

    /// The sandbox transforms run in.
    pub fn transforms(&self) -> &TransformEngine {
        &self.transforms
    }

    /// A fresh store for one event of a component configured by `config`,
    /// which may run for the runtime's event timeout.
    pub fn new_store(&self, config: &ComponentConfig) -> Store<HostState> {
        self.new_store_with_timeout(config, self.limits.event_timeout)
    }

    /// A fresh store for one event that may run for `timeout`.
    ///
    /// Every epoch tick the instance yields to the executor, so a long
    /// computation (a report over a large period) shares the threads with
    /// ingest instead of holding one; past `timeout` it traps.
    pub fn new_store_with_timeout(
        &self,
        config: &ComponentConfig,
        timeout: Duration,
    ) -> Store<HostState> {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdout().inherit_stderr().envs(&config.env);
        let state = HostState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: outbound::OutboundHttp {
                allowed: config.allowed_outbound_hosts.clone(),
            },
            table: ResourceTable::new(),
            store: store_import::StoreHost::new(self.backend.clone()),
            variables: variables::VariablesHost::new(config.variables.clone()),
            pipeline: transforms::PipelineHost::new(config.transforms.clone()),
            _alive: metrics().component_instance(),
        };
        let mut store = Store::new(&self.engine, state);
        let started = Instant::now();
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if started.elapsed() >= timeout {
                // A component that runs past its deadline (a loop that never ends) traps.
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::YieldCustom(
                    1,
                    Box::pin(tokio::task::yield_now()),
                ))
            }
        });
        store
    }
}

/// The most memory, and table, an instance may dirty and still have its slot
/// reset by copying instead of by `madvise`. An insert or fetch dirties one to
/// three MiB; a request that dirties more gets the rest decommitted.
const KEEP_RESIDENT_MEMORY: usize = 16 << 20;
const KEEP_RESIDENT_TABLE: usize = 1 << 20;

/// How a freed slot is made fresh for the next instance, decided once per
/// host for both pools (components and transforms).
///
/// By default wasmtime decommits a slot's memory with `madvise`: the next
/// instance page-faults every page it touches, and each `madvise` shoots down
/// the TLBs of every core (13% of CPU under load). With Linux's `PAGEMAP_SCAN`
/// ioctl (6.7+) wasmtime finds the pages the instance wrote and copies just
/// those back from the image, so slots stay resident and requests take no page
/// faults. The scan sees only pages that are present: a written page that was
/// swapped out would escape the reset and leak one request's data into the
/// next, so it is used only while the machine has no swap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SlotReset {
    /// `PAGEMAP_SCAN`: copy back the written pages, keep the slot resident.
    DirtyPages,
    /// `madvise`: decommit the slot.
    Decommit,
}

impl SlotReset {
    /// The best reset this machine allows safely; logs the choice.
    fn detect() -> SlotReset {
        let swap = active_swap();
        if swap.is_none() && PoolingAllocationConfig::is_pagemap_scan_available() {
            tracing::debug!("instance reset: PAGEMAP_SCAN, dirty pages only");
            return SlotReset::DirtyPages;
        }
        match swap {
            Some(device) => tracing::info!(
                "instance reset: madvise, since swap is active ({device}) and PAGEMAP_SCAN cannot see swapped-out pages"
            ),
            None => tracing::info!("instance reset: madvise (this kernel has no PAGEMAP_SCAN)"),
        }
        SlotReset::Decommit
    }

    pub(crate) fn configure(self, pool: &mut PoolingAllocationConfig) {
        match self {
            SlotReset::DirtyPages => {
                pool.pagemap_scan(wasmtime::Enabled::Yes)
                    .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
                    .table_keep_resident(KEEP_RESIDENT_TABLE);
            }
            // Without the scan, keep-resident would `memset` the whole window
            // on every reset, dirty or not: the default (decommit all) is cheaper.
            SlotReset::Decommit => {
                pool.pagemap_scan(wasmtime::Enabled::No);
            }
        }
    }
}

/// The first active swap device in `/proc/swaps`, if any.
fn active_swap() -> Option<String> {
    let swaps = std::fs::read_to_string("/proc/swaps").ok()?;
    // The first line is the header.
    swaps
        .lines()
        .skip(1)
        .find_map(|line| line.split_whitespace().next().map(str::to_owned))
}

/// Advances the engine's epoch every `EPOCH_TICK` for as long as the engine lives.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch ticker");
}
