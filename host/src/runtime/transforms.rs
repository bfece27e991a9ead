//! Transforms: third-party components (world `transformer`) that the host runs
//! on every batch an ingesting component decodes, before it is stored.
//!
//! A transform is not trusted. It runs in a sandbox of its own:
//! - its own engine and linker, which offer nothing but Spin's variables (so
//!   no WASI: no files, network, clock or randomness); a component importing
//!   anything else cannot be linked, and every batch is then rejected with why;
//! - a fuel budget per batch (about one unit per instruction): `max_fuel`
//!   (10 million: a few milliseconds) plus `fuel_per_value` (1,000) for each
//!   value in the batch, so a loop ends in a trap and a big batch still fits;
//! - a memory cap per instance (`max_memory_bytes`, 16 MiB by default);
//! - a fresh instance per batch: nothing survives from one batch to the next.
//!
//! Any trap, overrun, refusal or malformed answer rejects that one batch with
//! a `Rejection` naming the transform; the ingesting component answers 422
//! (HTTP) or dead-letters the message (MQTT). The host, and every other
//! device's batches, go on.
//!
//! `PipelineHost` is the `cromflag:iot/pipeline` import of ingesting
//! components: it runs the component's `Chain`, transform after transform.
//!
//! What a transform's author looks for in the log is here too: which version
//! of each transform is loaded (`transform loaded`, and `transform swapped`
//! with the old and new SHA-256 when its file changes), and a WARN per
//! rejected batch naming the transform, the device and the reason.

use super::cache;
use super::variables::{self, VariablesHost};
use crate::bindings::host_services::cromflag::iot::pipeline as wit;
use crate::bindings::host_services::cromflag::iot::types::{Batch, Column, ColumnType, Value};
use crate::bindings::transformer::TransformerPre;
use crate::manifest::{App, ComponentSpec, TransformLimits};
use anyhow::Result;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use wasmtime::component::{HasData, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
    StoreLimits, StoreLimitsBuilder,
};

/// The `T` of a transform's `Store`: its limits and its variables, nothing else.
struct TransformState {
    limiter: Limiter,
    variables: VariablesHost,
}

/// `StoreLimits` that remember whether they refused a memory, so that the
/// resulting trap can be told apart from any other.
struct Limiter {
    limits: StoreLimits,
    refused_memory: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        self.refused_memory |= !allowed;
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// One transform as loaded: ready to run, or the reason it cannot.
pub struct Transform {
    pub id: String,
    /// SHA-256 of the `.wasm` it was loaded from (empty if it could not be read).
    pub sha256: String,
    runnable: std::result::Result<TransformerPre<TransformState>, String>,
    variables: Arc<BTreeMap<String, String>>,
    limits: TransformLimits,
}

/// The transforms of one ingesting component, in the order they run.
#[derive(Default)]
pub struct Chain(pub Vec<Arc<Transform>>);

/// Why a batch was not let through: the WIT `rejection`.
pub type Rejection = wit::Rejection;

/// Transform instances alive at once: a batch runs its chain one transform
/// at a time, and no more batches run at once than component instances.
const POOL_SLOTS: u32 = 1000;

/// The engine transforms run on, and the transforms loaded so far (by source
/// path and content, so that reloading an unchanged file costs a hash).
pub struct TransformEngine {
    engine: Engine,
    linker: Linker<TransformState>,
    cache_dir: PathBuf,
    loaded: Mutex<HashMap<PathBuf, (String, TransformerPre<TransformState>)>>,
    /// The SHA-256 each transform id last loaded, so that a new version is
    /// logged once per change, not once per trigger that builds a chain.
    versions: Mutex<HashMap<String, String>>,
}

impl TransformEngine {
    /// Compiled transforms are cached in `cache_dir`; freed slots are made
    /// fresh by `reset`, as the components' are.
    pub(crate) fn new(cache_dir: &Path, reset: super::SlotReset) -> Result<TransformEngine> {
        // Pooled instances: a batch instantiates each transform afresh, which
        // must cost microseconds, not an mmap per memory.
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(POOL_SLOTS);
        pool.total_core_instances(POOL_SLOTS * 2);
        pool.total_memories(POOL_SLOTS);
        pool.total_tables(POOL_SLOTS * 2);
        pool.max_memory_size(TransformLimits::MAX_MEMORY_BYTES);
        reset.configure(&mut pool);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .consume_fuel(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        variables::add_to_linker(&mut linker, |state: &mut TransformState| {
            &mut state.variables
        })?;
        Ok(TransformEngine {
            engine,
            linker,
            cache_dir: cache_dir.to_owned(),
            loaded: Mutex::new(HashMap::new()),
            versions: Mutex::new(HashMap::new()),
        })
    }

    /// The chain `spec` lists in `[component.<id>.tool.cromflag] transforms`.
    pub fn chain(&self, app: &App, spec: &ComponentSpec) -> Arc<Chain> {
        let transforms = spec
            .transforms
            .iter()
            .filter_map(|id| app.components.get(id))
            .map(|transform| Arc::new(self.load(transform)))
            .collect();
        Arc::new(Chain(transforms))
    }

    /// Loads the transform `spec`. A new version that cannot be read,
    /// compiled or linked is refused and the version loaded before keeps
    /// running; with none before, the transform is kept with the reason, and
    /// rejects every batch with it.
    pub fn load(&self, spec: &ComponentSpec) -> Transform {
        let (sha256, runnable) = match self.pre(&spec.source) {
            Ok((sha256, pre)) => {
                self.note_version(spec, &sha256);
                (sha256, Ok(pre))
            }
            Err(e) => {
                let reason = format!("{e:#}");
                let previous = self
                    .loaded
                    .lock()
                    .expect("transform cache lock")
                    .get(&spec.source)
                    .cloned();
                match previous {
                    Some((sha256, pre)) => {
                        tracing::error!(transform = %spec.id, kept = %short(&sha256), %reason, "new version refused: the old one keeps running");
                        (sha256, Ok(pre))
                    }
                    None => {
                        tracing::error!(transform = %spec.id, %reason, "transform cannot run: its batches will be rejected");
                        (String::new(), Err(reason))
                    }
                }
            }
        };
        Transform {
            id: spec.id.clone(),
            sha256,
            runnable,
            variables: Arc::new(spec.variables.clone()),
            limits: spec.transform_limits,
        }
    }

    /// Logs a transform's first version, and each new one with the old
    /// one's hash: that a rebuilt `.wasm` is the one now running.
    fn note_version(&self, spec: &ComponentSpec, sha256: &str) {
        let mut versions = self.versions.lock().expect("transform versions lock");
        match versions.insert(spec.id.clone(), sha256.to_owned()) {
            Some(old) if old == sha256 => {}
            Some(old) => {
                tracing::info!(transform = %spec.id, old = %short(&old), new = %short(sha256), "transform swapped")
            }
            None => {
                tracing::info!(transform = %spec.id, sha256 = %short(sha256), source = %spec.source.display(), "transform loaded")
            }
        }
    }

    fn pre(&self, path: &Path) -> Result<(String, TransformerPre<TransformState>)> {
        // An unchanged file (every reload, for every component listing it)
        // costs a read and a hash, not a load of its machine code.
        let bytes =
            std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        if let Some((sha256, pre)) = self.loaded.lock().expect("transform cache lock").get(path) {
            if *sha256 == cache::sha256_hex(&bytes) {
                return Ok((sha256.clone(), pre.clone()));
            }
        }
        let loaded = cache::load(&self.engine, path, &self.cache_dir)?;
        let imports: Vec<String> = loaded
            .component
            .component_type()
            .imports(&self.engine)
            .map(|(name, _)| name.to_owned())
            .filter(|name| {
                !name.starts_with("fermyon:spin/variables@")
                    && !name.starts_with("cromflag:iot/types@")
            })
            .collect();
        if !imports.is_empty() {
            anyhow::bail!(
                "it imports {}: a transform may import nothing but fermyon:spin/variables (no WASI)",
                imports.join(", ")
            );
        }
        let pre = self
            .linker
            .instantiate_pre(&loaded.component)
            .map_err(|e| anyhow::anyhow!("it cannot be linked: {e}"))?;
        let pre = TransformerPre::new(pre)
            .map_err(|e| anyhow::anyhow!("it does not export cromflag:iot/transform: {e}"))?;
        self.loaded
            .lock()
            .expect("transform cache lock")
            .insert(path.to_owned(), (loaded.sha256.clone(), pre.clone()));
        Ok((loaded.sha256, pre))
    }
}

impl Chain {
    /// Runs every transform on `batch`, in order.
    ///
    /// A rejection is logged here, once per batch and naming the transform:
    /// over HTTP the 422 goes to the device, not to whoever runs the host.
    pub async fn run(&self, device: &str, mut batch: Batch) -> Result<Batch, Rejection> {
        for transform in &self.0 {
            batch = match transform.run(device, batch).await {
                Ok(batch) => batch,
                Err(reason) => {
                    tracing::warn!(transform = %transform.id, %device, %reason, "transform rejected a batch");
                    crate::metrics::metrics().transform_rejected(&transform.id);
                    return Err(Rejection {
                        transform: transform.id.clone(),
                        reason,
                    });
                }
            };
        }
        Ok(batch)
    }
}

impl Transform {
    /// One batch through a fresh, limited instance; the error is the reason.
    async fn run(&self, device: &str, batch: Batch) -> std::result::Result<Batch, String> {
        let pre = self
            .runnable
            .as_ref()
            .map_err(|e| format!("cannot run: {e}"))?;
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.max_memory_bytes)
            .instances(16)
            .tables(16)
            .memories(4)
            .build();
        let state = TransformState {
            limiter: Limiter {
                limits,
                refused_memory: false,
            },
            variables: VariablesHost::new(self.variables.clone()),
        };
        let values: u64 = batch.rows.iter().map(|row| row.len() as u64).sum();
        let fuel = self
            .limits
            .max_fuel
            .saturating_add(self.limits.fuel_per_value.saturating_mul(values));
        let mut store = Store::new(pre.engine(), state);
        store.limiter(|state| &mut state.limiter);
        store.set_fuel(fuel).map_err(|e| e.to_string())?;
        let called = async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance
                .cromflag_iot_transform()
                .call_transform(&mut store, device, &batch)
                .await
        };
        let outcome = called.await;
        let used = fuel - store.get_fuel().unwrap_or(0);
        tracing::debug!(transform = %self.id, rows = batch.rows.len(), fuel = used, "transform ran");
        match outcome {
            Ok(Ok(out)) => check(&out).map(|()| out),
            Ok(Err(refusal)) => Err(format!("refused the batch: {refusal}")),
            Err(trap) => Err(if store.data().limiter.refused_memory {
                format!(
                    "went over its memory limit of {} bytes",
                    self.limits.max_memory_bytes
                )
            } else if matches!(trap.downcast_ref(), Some(wasmtime::Trap::OutOfFuel)) {
                format!("ran out of fuel ({fuel} units for {values} values): it took too long")
            } else {
                format!("trapped: {}", trap.root_cause())
            }),
        }
    }
}

/// A transform's answer must be a batch: distinct column names, rows no longer
/// than the columns, every value of its column's type. (The SDK's
/// `Batch::check` makes the same check for authors' unit tests: keep the two
/// alike.)
fn check(batch: &Batch) -> std::result::Result<(), String> {
    let invalid = |why: String| Err(format!("returned an invalid batch: {why}"));
    for (i, column) in batch.columns.iter().enumerate() {
        if column.name.is_empty() {
            return invalid(format!("column {i} has no name"));
        }
        if batch.columns[..i]
            .iter()
            .any(|c| c.name.eq_ignore_ascii_case(&column.name))
        {
            return invalid(format!("column `{}` appears twice", column.name));
        }
    }
    for (r, row) in batch.rows.iter().enumerate() {
        if row.len() > batch.columns.len() {
            return invalid(format!(
                "row {r} has {} values for {} columns",
                row.len(),
                batch.columns.len()
            ));
        }
        for (value, column) in row.iter().zip(&batch.columns) {
            if !fits(value, column) {
                return invalid(format!(
                    "row {r}: column `{}` is {:?}, the value is {value:?}",
                    column.name, column.type_
                ));
            }
        }
    }
    Ok(())
}

fn fits(value: &Value, column: &Column) -> bool {
    matches!(
        (value, column.type_),
        (Value::Null, _)
            | (Value::Bool(_), ColumnType::Bool)
            | (Value::String(_), ColumnType::String)
            | (Value::Byte(_), ColumnType::Byte)
            | (Value::Short(_), ColumnType::Short)
            | (Value::Integer(_), ColumnType::Integer)
            | (Value::Long(_), ColumnType::Long)
            | (Value::Float(_), ColumnType::Float)
            | (Value::Double(_), ColumnType::Double)
            | (Value::Timestamp(_), ColumnType::Timestamp)
            | (Value::Blob(_), ColumnType::Blob)
    )
}

/// The first 12 hex digits of a SHA-256: enough to tell versions apart in a
/// log line (as `live` shortens the components' hashes).
fn short(sha256: &str) -> &str {
    &sha256[..sha256.len().min(12)]
}

/// The `cromflag:iot/pipeline` import of one instance: its component's chain.
pub struct PipelineHost {
    chain: Arc<Chain>,
}

impl PipelineHost {
    pub fn new(chain: Arc<Chain>) -> PipelineHost {
        PipelineHost { chain }
    }
}

struct PipelineImport;

impl HasData for PipelineImport {
    type Data<'a> = &'a mut PipelineHost;
}

pub fn add_pipeline_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut PipelineHost,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, PipelineImport>(linker, get)
}

impl wit::Host for PipelineHost {
    async fn has_transforms(&mut self) -> bool {
        !self.chain.0.is_empty()
    }

    async fn run(&mut self, device: String, batch: Batch) -> Result<Batch, Rejection> {
        self.chain.run(&device, batch).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, type_: ColumnType) -> Column {
        Column {
            name: name.into(),
            type_,
        }
    }

    #[test]
    fn answers_are_checked_before_anyone_uses_them() {
        let columns = vec![
            column("timestamp", ColumnType::Timestamp),
            column("t", ColumnType::Double),
        ];
        let good = Batch {
            columns: columns.clone(),
            rows: vec![
                vec![Value::Timestamp(1), Value::Double(2.0)],
                vec![Value::Timestamp(2)],
                vec![Value::Timestamp(3), Value::Null],
            ],
        };
        assert_eq!(check(&good), Ok(()));
        let bad = |batch: Batch| check(&batch).unwrap_err();
        let twice = bad(Batch {
            columns: vec![
                columns[0].clone(),
                column("T", ColumnType::Long),
                columns[1].clone(),
            ],
            rows: vec![],
        });
        assert!(twice.contains("appears twice"), "{twice}");
        let long = bad(Batch {
            columns: columns.clone(),
            rows: vec![vec![Value::Timestamp(1), Value::Double(2.0), Value::Null]],
        });
        assert!(long.contains("3 values for 2 columns"), "{long}");
        let mistyped = bad(Batch {
            columns: columns.clone(),
            rows: vec![vec![Value::Timestamp(1), Value::Float(2.0)]],
        });
        assert!(mistyped.contains("column `t`"), "{mistyped}");
        let unnamed = bad(Batch {
            columns: vec![column("", ColumnType::Long)],
            rows: vec![],
        });
        assert!(unnamed.contains("no name"), "{unnamed}");
    }
}
