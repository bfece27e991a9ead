//! Linking an application: every component a trigger binds is loaded,
//! linked against the host's imports and checked for the export each of its
//! triggers calls. An unchanged file costs a hash, a changed one a compile.
//!
//! What a trigger calls is the trigger's business: the caller hands in each
//! kind's check (`TriggerChecks`, `triggers::CHECKS`), so the runtime knows
//! no trigger.

use super::{sha256_hex, Components, HostState, Linked, Runtime};
use crate::manifest::App;
use anyhow::{Context, Result};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use wasmtime::component::InstancePre;

/// Whether a linked component exports what a trigger calls.
pub type Check = fn(&InstancePre<HostState>) -> Result<()>;

/// The check of each kind of trigger.
pub struct TriggerChecks {
    pub http: Check,
    pub mqtt: Check,
    pub cron: Check,
}

/// The triggers a component is bound to, each needing its own export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Http,
    Mqtt,
    Cron,
}

/// What a change did to one component.
#[derive(Debug)]
pub enum Outcome {
    Swapped { old: String, new: String },
    Added { new: String },
    Refused { kept: String, reason: String },
}

/// Loads and checks every component `app` binds to a trigger. With `previous`
/// (a running application), a changed component that fails keeps its previous
/// version; without, any failure is an error. `overrides` are sources used
/// instead of the manifest's (uploads), by component id.
pub fn link_all(
    runtime: &Runtime,
    app: &App,
    checks: &TriggerChecks,
    previous: Option<&Components>,
    overrides: &HashMap<String, PathBuf>,
) -> Result<(Components, Vec<(String, Outcome)>)> {
    let mut kinds: HashMap<&str, BTreeSet<Kind>> = HashMap::new();
    for t in &app.http_triggers {
        kinds.entry(&t.component).or_default().insert(Kind::Http);
    }
    for t in &app.mqtt_triggers {
        kinds.entry(&t.component).or_default().insert(Kind::Mqtt);
    }
    for t in &app.cron_triggers {
        kinds.entry(&t.component).or_default().insert(Kind::Cron);
    }
    let mut components = Components::new();
    let mut outcomes = Vec::new();
    for (id, kinds) in kinds {
        let spec = &app.components[id];
        let source = overrides.get(id).unwrap_or(&spec.source);
        let old = previous.and_then(|p| p.get(id));
        match link(runtime, source, &kinds, checks, old) {
            Ok(linked) => {
                match old {
                    Some(old) if old.sha256 == linked.sha256 => {}
                    Some(old) => outcomes.push((
                        id.to_owned(),
                        Outcome::Swapped {
                            old: old.sha256.clone(),
                            new: linked.sha256.clone(),
                        },
                    )),
                    None if previous.is_some() => outcomes.push((
                        id.to_owned(),
                        Outcome::Added {
                            new: linked.sha256.clone(),
                        },
                    )),
                    None => {}
                }
                components.insert(id.to_owned(), linked);
            }
            Err(e) => match old {
                Some(old) => {
                    outcomes.push((
                        id.to_owned(),
                        Outcome::Refused {
                            kept: old.sha256.clone(),
                            reason: format!("{e:#}"),
                        },
                    ));
                    components.insert(id.to_owned(), old.clone());
                }
                None => return Err(e.context(format!("component `{id}` ({})", source.display()))),
            },
        }
    }
    Ok((components, outcomes))
}

/// Loads the component at `source` for triggers of `kinds`; reuses `old`
/// when the file has not changed.
fn link(
    runtime: &Runtime,
    source: &Path,
    kinds: &BTreeSet<Kind>,
    checks: &TriggerChecks,
    old: Option<&Linked>,
) -> Result<Linked> {
    if let Some(old) = old {
        let bytes =
            std::fs::read(source).with_context(|| format!("reading {}", source.display()))?;
        if sha256_hex(&bytes) == old.sha256 {
            return Ok(old.clone());
        }
    }
    let linked = runtime.pre_instantiate(source)?;
    for kind in kinds {
        match kind {
            Kind::Http => (checks.http)(&linked.pre).context("as an HTTP component")?,
            Kind::Mqtt => (checks.mqtt)(&linked.pre).context("as an MQTT component")?,
            Kind::Cron => (checks.cron)(&linked.pre).context("as a cron component")?,
        }
    }
    Ok(linked)
}
