//! Retention: rows older than their retention are deleted by a background
//! job, the same way on every backend.
//!
//! What is kept how long (`Policy`, from the manifest's variables; each
//! empty or `forever` keeps everything, the default):
//! - device telemetry: `retention`, unless the device has its own, set at
//!   run time (`PUT /admin/retention/devices/<id>?keep=7d`, kept in the
//!   `_retention` collection) or in the manifest
//!   (`[application.tool.cromflag.device_retention]`), in that order;
//! - `messages` (by `received`): `retention_messages`. Invoices bill from
//!   it, so it must outlive the month being billed (docs/operations.md);
//! - `_rejected` (by its key, the receive time): `retention_rejected`;
//! - `_cron_runs` (by `tick`): `retention_cron_runs`;
//! - `reports` (by `period_end`): `retention_reports`.
//!
//! A pass runs every `retention_interval` (and on `POST
//! /admin/retention/run`). GridDB 5 has no row expiry outside partitioned
//! tables, so the host deletes by row key on both backends
//! (`Backend::delete_rows`, GridDB's `DELETE containers/{c}/rows`), at most
//! `CHUNK` rows per write: on the embedded store each chunk is one
//! savepoint of a group commit, so ingest waits behind one chunk at most.
//! A time series' expired rows are found by a key-range query; a
//! collection's by walking its keys a chunk at a time.

use crate::http_io::QueryParams;
use crate::manifest::App;
use crate::metrics::metrics;
use crate::store::{all_rows, Backend, Column, ColumnType, ContainerInfo, ContainerKind, Value};
use crate::triggers::http::{answered, json_refusal, no_such_route, JsonRoutes};
use anyhow::{Context, Result};
use cromflag_logic::device::from_path_segment;
use cromflag_logic::tql_string;
use http::{Method, StatusCode};
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The run-time per-device retentions.
pub const OVERRIDES: &str = "_retention";
/// Rows deleted per write.
const CHUNK: usize = 1000;

/// How long rows are kept; `None` keeps them forever.
pub type Keep = Option<Duration>;

/// Reads `7d`, `12h`, `90days` (humantime's units); empty or `forever`
/// keeps everything.
pub fn parse_keep(text: &str) -> Result<Keep, String> {
    match text.trim() {
        "" | "forever" => Ok(None),
        text => match humantime::parse_duration(text) {
            Ok(keep) if keep.is_zero() => Err(format!(
                "`{text}` keeps nothing: give a duration above zero, or `forever`"
            )),
            Ok(keep) => Ok(Some(keep)),
            Err(e) => Err(format!(
                "`{text}` is not a duration such as 7d or 12h, nor `forever`: {e}"
            )),
        },
    }
}

fn keep_text(keep: Keep) -> String {
    keep.map_or_else(
        || "forever".to_owned(),
        |d| humantime::format_duration(d).to_string(),
    )
}

/// What is kept how long, and how often the job runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub telemetry: Keep,
    /// The manifest's per-device retentions.
    pub devices: BTreeMap<String, Keep>,
    pub messages: Keep,
    pub rejected: Keep,
    pub cron_runs: Keep,
    pub reports: Keep,
    pub interval: Duration,
}

impl Policy {
    pub fn from_app(app: &App) -> Result<Policy> {
        let keep = |name: &str| {
            parse_keep(app.variables.get(name).unwrap_or(""))
                .map_err(|e| anyhow::anyhow!("variable {name}: {e}"))
        };
        let mut devices = BTreeMap::new();
        for (device, text) in &app.device_retention {
            let keep = parse_keep(text).map_err(|e| {
                anyhow::anyhow!("[application.tool.cromflag.device_retention] `{device}`: {e}")
            })?;
            devices.insert(device.clone(), keep);
        }
        let interval = app.variables.get("retention_interval").unwrap_or("1h");
        let interval = match parse_keep(interval).map_err(anyhow::Error::msg)? {
            Some(interval) => interval,
            None => anyhow::bail!("variable retention_interval: give a duration such as 1h"),
        };
        let policy = Policy {
            telemetry: keep("retention")?,
            devices,
            messages: keep("retention_messages")?,
            rejected: keep("retention_rejected")?,
            cron_runs: keep("retention_cron_runs")?,
            reports: keep("retention_reports")?,
            interval,
        };
        if let Some(messages) = policy.messages {
            if messages < BILLING_DATA {
                tracing::warn!(retention_messages = %keep_text(Some(messages)), "messages are billed from: invoices of months older than this cannot be re-run (keep at least 62 days)");
            }
        }
        Ok(policy)
    }

    fn to_json(&self) -> Json {
        json!({
            "telemetry": keep_text(self.telemetry),
            "devices": self.devices.iter().map(|(d, k)| (d.clone(), json!(keep_text(*k)))).collect::<serde_json::Map<_, _>>(),
            "messages": keep_text(self.messages),
            "rejected": keep_text(self.rejected),
            "cron_runs": keep_text(self.cron_runs),
            "reports": keep_text(self.reports),
            "interval": keep_text(Some(self.interval)),
        })
    }
}

/// How long `messages` must be kept for every invoice to be re-runnable:
/// the longest month, the days until its invoice runs, and catch-up.
const BILLING_DATA: Duration = Duration::from_secs(62 * 24 * 3600);

/// A collection retention applies to, and the column whose age counts.
struct Expiring {
    name: &'static str,
    time_column: &'static str,
    keep: fn(&Policy) -> Keep,
    /// Where a pass counts what it deleted.
    tally: fn(&mut Deleted) -> &mut u64,
}

const COLLECTIONS: [Expiring; 4] = [
    Expiring {
        name: cromflag_logic::insert::MESSAGES,
        time_column: "received",
        keep: |p| p.messages,
        tally: |d| &mut d.messages,
    },
    Expiring {
        name: crate::triggers::cron::RUNS,
        time_column: "tick",
        keep: |p| p.cron_runs,
        tally: |d| &mut d.cron_runs,
    },
    // Tick claims live as long as the runs they decided.
    Expiring {
        name: crate::triggers::cron::LEASES,
        time_column: "claimed",
        keep: |p| p.cron_runs,
        tally: |d| &mut d.cron_runs,
    },
    Expiring {
        name: cromflag_logic::report::stored::REPORTS,
        time_column: "period_end",
        keep: |p| p.reports,
        tally: |d| &mut d.reports,
    },
];

/// Rows one pass deleted, by what held them.
#[derive(Debug, Default, serde::Serialize)]
pub struct Deleted {
    pub telemetry: u64,
    pub messages: u64,
    pub rejected: u64,
    pub cron_runs: u64,
    pub reports: u64,
}

pub struct Retention {
    backend: Arc<dyn Backend>,
    policy: RwLock<Arc<Policy>>,
    /// One pass at a time: the timer's and the admin route's.
    pass: tokio::sync::Mutex<()>,
}

impl Retention {
    /// The job for `policy`, running a pass every `policy.interval` from
    /// now on (the first one interval after start).
    pub fn start(backend: Arc<dyn Backend>, policy: Policy) -> Arc<Retention> {
        let retention = Arc::new(Retention {
            backend,
            policy: RwLock::new(Arc::new(policy)),
            pass: tokio::sync::Mutex::new(()),
        });
        let weak = Arc::downgrade(&retention);
        tokio::spawn(async move {
            loop {
                let Some(interval) = weak.upgrade().map(|r| r.policy().interval) else {
                    return;
                };
                tokio::time::sleep(interval).await;
                let Some(retention) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = retention.run_pass().await {
                    tracing::error!(error = %format!("{e:#}"), "retention pass failed; the next one tries again");
                }
            }
        });
        retention
    }

    fn policy(&self) -> Arc<Policy> {
        self.policy.read().expect("retention policy lock").clone()
    }

    /// Follows the manifest's retentions from the next pass on; a policy
    /// that does not read leaves the running one.
    pub fn replace(&self, app: &App) -> Result<()> {
        let policy = Policy::from_app(app)?;
        *self.policy.write().expect("retention policy lock") = Arc::new(policy);
        Ok(())
    }

    /// The policy, with the run-time per-device retentions.
    pub async fn describe(&self) -> Result<Json> {
        let mut described = self.policy().to_json();
        let overrides: serde_json::Map<_, _> = self
            .overrides()
            .await?
            .into_iter()
            .map(|(device, keep)| (device, json!(keep_text(keep))))
            .collect();
        described["overrides"] = Json::Object(overrides);
        Ok(described)
    }

    /// Keeps `device`'s telemetry for `keep` from the next pass on, whatever
    /// the manifest says.
    pub async fn set_device(&self, device: &str, keep: Keep) -> Result<()> {
        self.backend.put_container(overrides_container()).await?;
        let row = vec![
            Value::String(device.to_owned()),
            Value::String(keep_text(keep)),
            Value::Timestamp(crate::store::now_ms()),
        ];
        self.backend.put_rows(OVERRIDES, vec![row]).await?;
        Ok(())
    }

    /// Drops `device`'s run-time retention; says whether it had one.
    pub async fn clear_device(&self, device: &str) -> Result<bool> {
        let had = self.overrides().await?.contains_key(device);
        if had {
            let key = vec![Value::String(device.to_owned())];
            self.backend.delete_rows(OVERRIDES, key).await?;
        }
        Ok(had)
    }

    async fn overrides(&self) -> Result<BTreeMap<String, Keep>> {
        let mut overrides = BTreeMap::new();
        for row in all_rows(self.backend.as_ref(), OVERRIDES, "ORDER BY device ASC").await? {
            if let [Value::String(device), Value::String(keep), ..] = &row[..] {
                // Written by `set_device`, so it reads; a hand-edited row that
                // does not is passed over, not a reason to keep nothing.
                if let Ok(keep) = parse_keep(keep) {
                    overrides.insert(device.clone(), keep);
                }
            }
        }
        Ok(overrides)
    }

    /// One pass over every container the policy covers.
    pub async fn run_pass(&self) -> Result<Deleted> {
        let _one = self.pass.lock().await;
        let policy = self.policy();
        let overrides = self.overrides().await?;
        let now = crate::store::now_ms();
        let cutoff = |keep: Duration| {
            now.saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX))
        };
        let mut deleted = Deleted::default();
        for name in self.backend.list_containers().await? {
            if let Some(device) = cromflag_logic::device::id_of(&name) {
                let keep = overrides
                    .get(&device)
                    .or_else(|| policy.devices.get(&device))
                    .copied()
                    .unwrap_or(policy.telemetry);
                if let Some(keep) = keep {
                    let n = self.expire_series(&name, cutoff(keep)).await?;
                    metrics().retention_deleted("device", n);
                    deleted.telemetry += n;
                }
            } else if name == crate::triggers::mqtt::REJECTED {
                if let Some(keep) = policy.rejected {
                    let n = self.expire_series(&name, cutoff(keep)).await?;
                    metrics().retention_deleted("_rejected", n);
                    deleted.rejected += n;
                }
            } else if let Some(expiring) = COLLECTIONS.iter().find(|c| c.name == name) {
                if let Some(keep) = (expiring.keep)(&policy) {
                    let n = self.expire_collection(expiring, cutoff(keep)).await?;
                    metrics().retention_deleted(expiring.name, n);
                    *(expiring.tally)(&mut deleted) += n;
                }
            }
        }
        tracing::info!(?deleted, "retention pass done");
        Ok(deleted)
    }

    /// One chunk of expired rows of `name`, by key: how many went.
    async fn delete(&self, name: &str, keys: Vec<Value>) -> Result<u64> {
        self.backend
            .delete_rows(name, keys)
            .await
            .with_context(|| format!("deleting expired rows of `{name}`"))
    }

    /// Deletes the rows of time series `name` keyed before `cutoff` (ms),
    /// the oldest first, a chunk per write.
    async fn expire_series(&self, name: &str, cutoff: i64) -> Result<u64> {
        let Some(info) = self.backend.get_container(name).await? else {
            return Ok(0);
        };
        let key = &info.columns[0].name;
        let tql = format!(
            "SELECT {key} WHERE {key} < TO_TIMESTAMP_MS({cutoff}) ORDER BY {key} ASC LIMIT {CHUNK}"
        );
        let mut deleted = 0;
        loop {
            let found = self.backend.query(name, &tql).await?;
            let keys: Vec<Value> = found
                .rows
                .into_iter()
                .filter_map(|row| row.into_iter().next())
                .collect();
            if keys.is_empty() {
                return Ok(deleted);
            }
            let full = keys.len() == CHUNK;
            deleted += self.delete(name, keys).await?;
            if !full {
                return Ok(deleted);
            }
            // Let ingest and readers in between chunks.
            tokio::task::yield_now().await;
        }
    }

    /// Deletes the rows of a collection whose time column is before
    /// `cutoff`, walking its keys a chunk at a time.
    async fn expire_collection(&self, expiring: &Expiring, cutoff: i64) -> Result<u64> {
        let name = expiring.name;
        let Some(info) = self.backend.get_container(name).await? else {
            return Ok(0);
        };
        if !info.row_key || info.columns.iter().all(|c| c.name != expiring.time_column) {
            tracing::warn!(
                container = name,
                "no row key or no `{}` column: retention passes it over",
                expiring.time_column
            );
            return Ok(0);
        }
        let (key, time) = (&info.columns[0].name, expiring.time_column);
        let mut after: Option<Value> = None;
        let mut deleted = 0;
        loop {
            let from = match &after {
                None => String::new(),
                Some(Value::String(last)) => format!(" WHERE {key} > {}", tql_string(last)),
                Some(other) => {
                    anyhow::bail!("`{name}` has a key this job cannot page by: {other:?}")
                }
            };
            let tql = format!("SELECT {key}, {time}{from} ORDER BY {key} ASC LIMIT {CHUNK}");
            let page = self.backend.query(name, &tql).await?;
            let full = page.rows.len() == CHUNK;
            after = page.rows.last().and_then(|row| row.first().cloned());
            let expired: Vec<Value> = page
                .rows
                .into_iter()
                .filter(|row| matches!(row.get(1), Some(Value::Timestamp(at)) if *at < cutoff))
                .filter_map(|row| row.into_iter().next())
                .collect();
            if !expired.is_empty() {
                deleted += self.delete(name, expired).await?;
            }
            if !full {
                return Ok(deleted);
            }
            tokio::task::yield_now().await;
        }
    }
}

fn overrides_container() -> ContainerInfo {
    ContainerInfo {
        name: OVERRIDES.to_owned(),
        kind: ContainerKind::Collection,
        columns: vec![
            Column::new("device", ColumnType::String),
            Column::new("keep", ColumnType::String),
            Column::new("updated", ColumnType::Timestamp),
        ],
        row_key: true,
    }
}

impl crate::live::FollowsApp for Retention {
    fn what(&self) -> &'static str {
        "retention"
    }

    fn follow(&self, app: &App) -> Result<()> {
        self.replace(app)
    }
}

/// `/admin/retention...`: the policy (`GET /admin/retention`), a device's
/// run-time retention (`PUT /admin/retention/devices/<id>?keep=7d`, `DELETE`
/// to fall back on the manifest's), and a pass now (`POST
/// /admin/retention/run`, answering what it deleted).
#[async_trait::async_trait]
impl JsonRoutes for Retention {
    async fn answer(&self, method: &Method, path: &str, query: Option<&str>) -> (StatusCode, Json) {
        let device = path
            .strip_prefix("/admin/retention/devices/")
            .map(|segment| from_path_segment(segment).map_err(|e| e.error));
        let outcome: Result<(StatusCode, Json)> = match (method, path, device) {
            (&Method::GET, "/admin/retention", _) => {
                self.describe().await.map(|d| (StatusCode::OK, d))
            }
            (&Method::POST, "/admin/retention/run", _) => self
                .run_pass()
                .await
                .map(|deleted| (StatusCode::OK, json!(deleted))),
            (_, _, Some(Err(reason))) => {
                return json_refusal(StatusCode::BAD_REQUEST, "invalid device id", json!(reason))
            }
            (&Method::PUT, _, Some(Ok(device))) => {
                let params = QueryParams::parse(query);
                let Some(keep) = params.get("keep") else {
                    return json_refusal(
                        StatusCode::BAD_REQUEST,
                        "missing parameter",
                        json!("give keep=<duration such as 7d> or keep=forever"),
                    );
                };
                match parse_keep(keep) {
                    Err(reason) => {
                        return json_refusal(
                            StatusCode::BAD_REQUEST,
                            "invalid parameter",
                            json!({ "keep": keep, "reason": reason }),
                        )
                    }
                    Ok(parsed) => self.set_device(&device, parsed).await.map(|()| {
                        (
                            StatusCode::OK,
                            json!({ "device": device, "keep": keep_text(parsed) }),
                        )
                    }),
                }
            }
            (&Method::DELETE, _, Some(Ok(device))) => {
                self.clear_device(&device).await.map(|cleared| {
                    (
                        StatusCode::OK,
                        json!({ "device": device, "cleared": cleared }),
                    )
                })
            }
            _ => return no_such_route(method, path),
        };
        answered(outcome, "a retention admin call")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retentions_read_as_durations_or_forever() {
        assert_eq!(parse_keep(""), Ok(None));
        assert_eq!(parse_keep(" forever "), Ok(None));
        assert_eq!(
            parse_keep("90d"),
            Ok(Some(Duration::from_secs(90 * 86_400)))
        );
        assert_eq!(parse_keep("12h"), Ok(Some(Duration::from_secs(12 * 3_600))));
        assert_eq!(parse_keep("2w"), Ok(Some(Duration::from_secs(14 * 86_400))));
        assert!(parse_keep("0s").unwrap_err().contains("keeps nothing"));
        assert!(parse_keep("ninety days").is_err());
        assert_eq!(keep_text(parse_keep("30d").unwrap()), "30days");
        assert_eq!(keep_text(None), "forever");
    }
}
