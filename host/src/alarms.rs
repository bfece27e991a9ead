//! Device health and alarms: when each device was last seen, and alarms
//! raised and cleared by rules over it.
//!
//! Last seen: the time the store committed a device's telemetry, taken off
//! the store's commit feed (`Backend::commits`), so ingest neither waits for
//! it nor writes more. It is kept in memory, with whether the device is
//! active (not past its inactivity timeout), and written to `_last_seen` once
//! per evaluation, only for the devices that changed: one write per period,
//! not one per message. A restart reads it back. The fetch component shows
//! it in `/fetch/devices` and `/devices/<d>/latest`.
//!
//! Alarms live in the `alarms` collection, on either backend, with a
//! lifecycle: `raised` → (`acknowledged`) → `cleared`. One condition raises
//! one alarm: while it is open (raised or acknowledged) the same rule and
//! device raise no other. Open alarms are read back at start, so a restart
//! neither loses nor repeats them.
//!
//! Rules: inactivity, a device that sent nothing for `inactivity_timeout`
//! (a variable such as `15m`; empty turns it off), evaluated every
//! `EVALUATION_PERIOD`.
//!
//! Delivery: every raise, acknowledgement and clearing is an `AlarmEvent` on
//! a broadcast channel (`Alarms::subscribe`) that deliverers follow, so a
//! slow or failing one never holds up evaluation or ingest.
//!
//! Routes (`JsonRoutes`): `GET /alarms?device=&state=&since=`, `POST
//! /alarms/<id>/ack`.

use crate::http_io::QueryParams;
use crate::manifest::App;
use crate::retention::parse_keep;
use crate::store::{
    all_rows, Backend, Column, ColumnType, ContainerInfo, ContainerKind, Row, Value,
};
use crate::triggers::http::{answered, json_refusal, no_such_route, JsonRoutes};
use anyhow::Result;
use cromflag_logic::tql_string;
use http::{Method, StatusCode};
use serde_json::{json, Value as Json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// The alarms collection.
pub const ALARMS: &str = "alarms";
/// Devices' last-seen times.
pub const LAST_SEEN: &str = "_last_seen";
/// How often rules over time (inactivity) are evaluated.
const EVALUATION_PERIOD: Duration = Duration::from_secs(1);
/// The inactivity rule's name in alarms.
const INACTIVITY: &str = "inactivity";

/// Where an alarm is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Raised,
    Acknowledged,
    Cleared,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Raised => "raised",
            State::Acknowledged => "acknowledged",
            State::Cleared => "cleared",
        }
    }

    fn parse(text: &str) -> Option<State> {
        [State::Raised, State::Acknowledged, State::Cleared]
            .into_iter()
            .find(|s| s.name() == text)
    }
}

/// One alarm, as the `alarms` collection holds it.
#[derive(Clone, Debug, PartialEq)]
struct Alarm {
    /// `<rule>:<device>:<raised ms>`.
    id: String,
    device: String,
    rule: String,
    severity: String,
    state: State,
    /// What fired it, as text (for inactivity: the last-seen time, ms).
    value: Option<String>,
    raised: i64,
    acknowledged: Option<i64>,
    cleared: Option<i64>,
}

fn alarms_container() -> ContainerInfo {
    let text = |name: &str| Column::new(name, ColumnType::String);
    let time = |name: &str| Column::new(name, ColumnType::Timestamp);
    ContainerInfo {
        name: ALARMS.to_owned(),
        kind: ContainerKind::Collection,
        columns: vec![
            text("id"),
            text("device"),
            text("rule"),
            text("severity"),
            text("state"),
            text("value"),
            time("raised"),
            time("acknowledged"),
            time("cleared"),
        ],
        row_key: true,
    }
}

/// `_last_seen`: per device, when its telemetry last committed and whether
/// it counts as active (seen within its inactivity timeout; always, without
/// one). The fetch component reads it for `/fetch/devices` and `/latest`.
fn last_seen_container() -> ContainerInfo {
    ContainerInfo {
        name: LAST_SEEN.to_owned(),
        kind: ContainerKind::Collection,
        columns: vec![
            Column::new("device", ColumnType::String),
            Column::new("last_seen", ColumnType::Timestamp),
            Column::new("active", ColumnType::Bool),
        ],
        row_key: true,
    }
}

/// One device's health as the alarms keep it in memory.
#[derive(Clone, Copy, Debug)]
struct Seen {
    /// When its telemetry last committed (ms).
    at: i64,
    active: bool,
    /// Changed since it was last written to `_last_seen`.
    dirty: bool,
}

impl Seen {
    fn to_row(self, device: &str) -> Row {
        vec![
            Value::String(device.to_owned()),
            Value::Timestamp(self.at),
            Value::Bool(self.active),
        ]
    }
}

/// What happened to an alarm, as delivered (webhook, MQTT `alarms/<device>`).
#[derive(Clone, Debug)]
pub struct AlarmEvent {
    pub device: String,
    /// The alarm as `GET /alarms` lists it, after the change; its `state`
    /// says what happened.
    pub alarm: Json,
}

impl Alarm {
    fn to_row(&self) -> Row {
        let time = |t: Option<i64>| t.map_or(Value::Null, Value::Timestamp);
        vec![
            Value::String(self.id.clone()),
            Value::String(self.device.clone()),
            Value::String(self.rule.clone()),
            Value::String(self.severity.clone()),
            Value::String(self.state.name().to_owned()),
            self.value.clone().map_or(Value::Null, Value::String),
            Value::Timestamp(self.raised),
            time(self.acknowledged),
            time(self.cleared),
        ]
    }

    fn from_row(row: &[Value]) -> Option<Alarm> {
        let text = |i: usize| match row.get(i) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        let time = |i: usize| match row.get(i) {
            Some(Value::Timestamp(t)) => Some(*t),
            _ => None,
        };
        Some(Alarm {
            id: text(0)?,
            device: text(1)?,
            rule: text(2)?,
            severity: text(3)?,
            state: State::parse(&text(4)?)?,
            value: text(5),
            raised: time(6)?,
            acknowledged: time(7),
            cleared: time(8),
        })
    }

    fn to_json(&self) -> Json {
        let time = |t: Option<i64>| t.map_or(Json::Null, |t| json!(t));
        json!({
            "id": self.id,
            "device": self.device,
            "rule": self.rule,
            "severity": self.severity,
            "state": self.state.name(),
            "value": self.value,
            "raised": self.raised,
            "acknowledged": time(self.acknowledged),
            "cleared": time(self.cleared),
        })
    }
}

/// The rules, from the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rules {
    /// `None`: no inactivity alarms.
    inactivity_timeout: Option<Duration>,
}

impl Rules {
    fn from_app(app: &App) -> Result<Rules> {
        let timeout = app.variables.get("inactivity_timeout").unwrap_or("");
        let inactivity_timeout =
            parse_keep(timeout).map_err(|e| anyhow::anyhow!("variable inactivity_timeout: {e}"))?;
        Ok(Rules { inactivity_timeout })
    }
}

pub struct Alarms {
    backend: Arc<dyn Backend>,
    rules: RwLock<Rules>,
    /// Each device's health, by device id.
    last_seen: Mutex<HashMap<String, Seen>>,
    /// Open alarms by rule and device. Writes of alarms go one at a time.
    open: tokio::sync::Mutex<BTreeMap<(String, String), Alarm>>,
    /// Every raise, acknowledgement and clearing, for delivery.
    events: tokio::sync::broadcast::Sender<Arc<AlarmEvent>>,
}

/// Alarm events a slow deliverer may fall behind by before it skips some.
const EVENTS_BUFFERED: usize = 4096;

impl Alarms {
    /// Reads back the last-seen times and open alarms, then follows the
    /// store's commits and evaluates the rules every period.
    pub async fn start(backend: Arc<dyn Backend>, app: &App) -> Result<Arc<Alarms>> {
        let rules = Rules::from_app(app)?;
        let mut last_seen = HashMap::new();
        for row in all_rows(backend.as_ref(), LAST_SEEN, "ORDER BY device ASC").await? {
            if let [Value::String(device), Value::Timestamp(at), rest @ ..] = &row[..] {
                let active = !matches!(rest.first(), Some(Value::Bool(false)));
                // A row of the first shape (no `active`) is written again.
                let dirty = rest.is_empty();
                last_seen.insert(device.clone(), Seen { at: *at, active, dirty });
            }
        }
        let mut open = BTreeMap::new();
        for row in all_rows(backend.as_ref(), ALARMS, "ORDER BY id ASC").await? {
            if let Some(alarm) = Alarm::from_row(&row).filter(|a| a.state != State::Cleared) {
                open.insert((alarm.rule.clone(), alarm.device.clone()), alarm);
            }
        }
        let alarms = Arc::new(Alarms {
            backend,
            rules: RwLock::new(rules),
            last_seen: Mutex::new(last_seen),
            open: tokio::sync::Mutex::new(open),
            events: tokio::sync::broadcast::channel(EVENTS_BUFFERED).0,
        });
        if let Some(commits) = alarms.backend.commits() {
            tokio::spawn(follow(Arc::downgrade(&alarms), commits));
        } else {
            tracing::warn!("this store does not publish its commits: no device is seen");
        }
        let weak = Arc::downgrade(&alarms);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(EVALUATION_PERIOD).await;
                let Some(alarms) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = alarms.evaluate().await {
                    tracing::error!(error = %format!("{e:#}"), "alarm evaluation failed; the next one tries again");
                }
            }
        });
        Ok(alarms)
    }

    /// Every alarm event from now on: raised, acknowledged, cleared.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<AlarmEvent>> {
        self.events.subscribe()
    }

    /// Follows `app`'s rules from the next evaluation on; rules that do
    /// not read leave the running ones.
    pub fn replace(&self, app: &App) -> Result<()> {
        *self.rules.write().expect("alarm rules lock") = Rules::from_app(app)?;
        Ok(())
    }

    fn seen(&self, device: String, at: i64) {
        let mut last_seen = self.last_seen.lock().expect("last seen lock");
        let entry = last_seen.entry(device).or_insert(Seen {
            at,
            active: true,
            dirty: true,
        });
        if at >= entry.at {
            *entry = Seen {
                at,
                active: true,
                dirty: true,
            };
        }
    }

    /// Raises and clears inactivity alarms, then writes the last-seen
    /// entries that changed.
    async fn evaluate(&self) -> Result<()> {
        let timeout = self
            .rules
            .read()
            .expect("alarm rules lock")
            .inactivity_timeout;
        if let Some(timeout) = timeout {
            self.evaluate_inactivity(timeout).await?;
        }
        self.write_last_seen().await
    }

    async fn evaluate_inactivity(&self, timeout: Duration) -> Result<()> {
        let snapshot: Vec<(String, i64)> = {
            let last_seen = self.last_seen.lock().expect("last seen lock");
            last_seen.iter().map(|(d, s)| (d.clone(), s.at)).collect()
        };
        let timeout = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        let now = crate::store::now_ms();
        let mut open = self.open.lock().await;
        for (device, at) in snapshot {
            let inactive = now.saturating_sub(at) > timeout;
            let key = (INACTIVITY.to_owned(), device.clone());
            match (inactive, open.get(&key)) {
                (true, None) => {
                    let alarm = Alarm {
                        id: format!("{INACTIVITY}:{device}:{now}"),
                        device: device.clone(),
                        rule: INACTIVITY.to_owned(),
                        severity: "warning".to_owned(),
                        state: State::Raised,
                        value: Some(at.to_string()),
                        raised: now,
                        acknowledged: None,
                        cleared: None,
                    };
                    self.write(&alarm).await?;
                    tracing::warn!(%device, last_seen = at, "alarm raised: inactivity");
                    self.set_active(&device, at, false);
                    open.insert(key, alarm);
                }
                (false, Some(alarm)) => {
                    let cleared = Alarm {
                        state: State::Cleared,
                        cleared: Some(now),
                        ..alarm.clone()
                    };
                    self.write(&cleared).await?;
                    tracing::info!(%device, "alarm cleared: inactivity");
                    open.remove(&key);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Marks `device` inactive, unless it was seen again after `at`.
    fn set_active(&self, device: &str, at: i64, active: bool) {
        let mut last_seen = self.last_seen.lock().expect("last seen lock");
        if let Some(seen) = last_seen.get_mut(device).filter(|s| s.at == at) {
            seen.active = active;
            seen.dirty = true;
        }
    }

    /// Writes the last-seen entries changed since the last write: one
    /// write per period, however many messages arrived.
    async fn write_last_seen(&self) -> Result<()> {
        let changed: Vec<(String, Seen)> = {
            let mut last_seen = self.last_seen.lock().expect("last seen lock");
            last_seen
                .iter_mut()
                .filter(|(_, s)| s.dirty)
                .map(|(device, seen)| {
                    seen.dirty = false;
                    (device.clone(), *seen)
                })
                .collect()
        };
        if changed.is_empty() {
            return Ok(());
        }
        let rows = changed.iter().map(|(d, s)| s.to_row(d)).collect();
        let written = async {
            let wanted = last_seen_container();
            if self.backend.get_container(LAST_SEEN).await?.as_ref() != Some(&wanted) {
                self.backend.put_container(wanted).await?;
            }
            self.backend.put_rows(LAST_SEEN, rows).await
        };
        if let Err(e) = written.await {
            // Written again next time, unless changed since.
            let mut last_seen = self.last_seen.lock().expect("last seen lock");
            for (device, written) in &changed {
                if let Some(seen) = last_seen.get_mut(device).filter(|s| s.at == written.at) {
                    seen.dirty = true;
                }
            }
            return Err(e.into());
        }
        Ok(())
    }

    async fn write(&self, alarm: &Alarm) -> Result<()> {
        let wanted = alarms_container();
        if self.backend.get_container(ALARMS).await?.as_ref() != Some(&wanted) {
            self.backend.put_container(wanted).await?;
        }
        self.backend.put_rows(ALARMS, vec![alarm.to_row()]).await?;
        // No receiver (nothing delivers) is not an error.
        let _ = self.events.send(Arc::new(AlarmEvent {
            device: alarm.device.clone(),
            alarm: alarm.to_json(),
        }));
        Ok(())
    }

    /// `GET /alarms`: newest first, filtered.
    async fn list(&self, params: &QueryParams) -> Result<(StatusCode, Json)> {
        let state = match params.get("state") {
            None => None,
            Some("open") => Some(None),
            Some(text) => match State::parse(text) {
                Some(state) => Some(Some(state)),
                None => {
                    return Ok(json_refusal(
                        StatusCode::BAD_REQUEST,
                        "invalid parameter",
                        json!({ "state": text, "reason": "one of open, raised, acknowledged, cleared" }),
                    ))
                }
            },
        };
        let since = match params.get("since").map(str::parse::<i64>) {
            None => None,
            Some(Ok(ms)) => Some(ms),
            Some(Err(_)) => {
                return Ok(json_refusal(
                    StatusCode::BAD_REQUEST,
                    "invalid parameter",
                    json!({ "since": params.get("since"), "reason": "epoch milliseconds" }),
                ))
            }
        };
        let mut alarms: Vec<Alarm> = all_rows(self.backend.as_ref(), ALARMS, "ORDER BY id ASC")
            .await?
            .iter()
            .filter_map(|row| Alarm::from_row(row))
            .filter(|a| params.get("device").is_none_or(|d| a.device == d))
            .filter(|a| match state {
                None => true,
                Some(None) => a.state != State::Cleared,
                Some(Some(state)) => a.state == state,
            })
            .filter(|a| since.is_none_or(|since| a.raised >= since))
            .collect();
        alarms.sort_by(|a, b| b.raised.cmp(&a.raised).then(a.id.cmp(&b.id)));
        let listed: Vec<Json> = alarms.iter().map(Alarm::to_json).collect();
        Ok((
            StatusCode::OK,
            json!({ "count": listed.len(), "alarms": listed }),
        ))
    }

    /// `POST /alarms/<id>/ack`: an open alarm acknowledged (again: no change).
    async fn ack(&self, id: &str) -> Result<(StatusCode, Json)> {
        let mut open = self.open.lock().await;
        let Some(alarm) = open.values_mut().find(|a| a.id == id) else {
            let tql = format!("SELECT * WHERE id = {}", tql_string(id));
            let known = match self.backend.get_container(ALARMS).await? {
                Some(_) => self
                    .backend
                    .query(ALARMS, &tql)
                    .await?
                    .rows
                    .first()
                    .and_then(|r| Alarm::from_row(r)),
                None => None,
            };
            return Ok(match known {
                Some(cleared) => json_refusal(
                    StatusCode::CONFLICT,
                    "the alarm is cleared",
                    cleared.to_json(),
                ),
                None => json_refusal(StatusCode::NOT_FOUND, "no such alarm", json!({ "id": id })),
            });
        };
        if alarm.state == State::Raised {
            let acknowledged = Alarm {
                state: State::Acknowledged,
                acknowledged: Some(crate::store::now_ms()),
                ..alarm.clone()
            };
            self.write(&acknowledged).await?;
            *alarm = acknowledged;
        }
        Ok((StatusCode::OK, alarm.to_json()))
    }
}

impl crate::live::FollowsApp for Alarms {
    fn what(&self) -> &'static str {
        "alarm rules"
    }

    fn follow(&self, app: &App) -> Result<()> {
        self.replace(app)
    }
}

#[async_trait::async_trait]
impl JsonRoutes for Alarms {
    async fn answer(&self, method: &Method, path: &str, query: Option<&str>) -> (StatusCode, Json) {
        let params = QueryParams::parse(query);
        let ack = path
            .strip_prefix("/alarms/")
            .and_then(|rest| rest.strip_suffix("/ack"))
            .map(percent_decode);
        let outcome = match (method, path, ack) {
            (&Method::GET, "/alarms", _) => self.list(&params).await,
            (&Method::POST, _, Some(id)) => self.ack(&id).await,
            _ => return no_such_route(method, path),
        };
        answered(outcome, "an alarms call")
    }
}

/// A path segment's `%XX` escapes decoded (an alarm id holds a device id).
fn percent_decode(segment: &str) -> String {
    cromflag_logic::device::from_path_segment(segment).unwrap_or_else(|_| segment.to_owned())
}

/// Marks every device whose telemetry commits as seen, for as long as the
/// alarms live. A lagging receiver skips what it missed (those devices are
/// seen at their next commit).
async fn follow(
    alarms: std::sync::Weak<Alarms>,
    mut commits: tokio::sync::broadcast::Receiver<Arc<crate::store::Committed>>,
) {
    loop {
        let committed = match commits.recv().await {
            Ok(committed) => committed,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "alarms fell behind the store's commits");
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let Some(alarms) = alarms.upgrade() else {
            return;
        };
        if let Some(device) = cromflag_logic::device::id_of(&committed.container) {
            alarms.seen(device, crate::store::now_ms());
        }
    }
}
