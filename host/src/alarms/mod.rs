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
//! neither loses nor repeats them. So are breaches still waiting out their
//! `for` (`_alarm_pending`, written with last seen, the ones that changed):
//! a restart does not start them over.
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
//! /alarms/<id>/ack`, `GET /alarms/deliveries?alarm=` (webhook outcomes).

mod rules;
mod webhook;

use crate::http_io::QueryParams;
use crate::manifest::App;
use crate::store::{
    all_rows, ensure_container, Backend, Column, ColumnType, Committed, ContainerInfo,
    ContainerKind, Row, Value,
};
use crate::triggers::http::{answered, json_refusal, no_such_route, JsonRoutes};
use anyhow::Result;
use cromflag_logic::insert::DEVICES;
use cromflag_logic::tql_string;
use http::{Method, StatusCode};
use rules::{Rules, Threshold, Verdict, Watch, INACTIVITY};
use serde_json::{json, Value as Json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use webhook::WebhookTarget;

/// The alarms collection, and devices' last-seen times: their names are the
/// components' (reports and Grafana read alarms, the fetch API last seen).
pub use cromflag_logic::fetch::health::{last_seen_container, LAST_SEEN};
pub use cromflag_logic::report::scan::{alarms_container, ALARMS};
/// How often rules over time (inactivity) are evaluated.
const EVALUATION_PERIOD: Duration = Duration::from_secs(1);

/// Threshold rules' breaches under way, by rule and device: what a restart
/// reads back so that a breach does not start its `for` over.
const PENDING: &str = "_alarm_pending";

fn pending_container() -> ContainerInfo {
    ContainerInfo {
        name: PENDING.to_owned(),
        kind: ContainerKind::Collection,
        columns: vec![
            // `<rule>:<device>`: a rule's name has no `:`.
            Column::new("key", ColumnType::String),
            Column::new("device", ColumnType::String),
            Column::new("rule", ColumnType::String),
            // When the breach began; null: none under way.
            Column::new("since", ColumnType::Timestamp),
        ],
        row_key: true,
    }
}

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

/// The alarms' books: open alarms and where each threshold rule stands.
/// Changed under one lock, so alarms are written one at a time.
#[derive(Default)]
struct Book {
    /// Open alarms by rule and device.
    open: BTreeMap<(String, String), Alarm>,
    /// Threshold rules' breaches under way (waiting out their `for`), by
    /// rule and device; a rule with none for a device has no entry.
    pending: BTreeMap<(String, String), Watch>,
    /// The (rule, device) whose pending breach changed since it was last
    /// written to `_alarm_pending`.
    unwritten: BTreeSet<(String, String)>,
    /// The last `raised` given out: every alarm gets a later one, so ids
    /// (`<rule>:<device>:<raised>`) never repeat.
    last_raised: i64,
}

pub struct Alarms {
    backend: Arc<dyn Backend>,
    rules: RwLock<Arc<Rules>>,
    /// Where events are POSTed, if anywhere.
    webhook: RwLock<Option<Arc<WebhookTarget>>>,
    /// Each device's health, by device id.
    last_seen: Mutex<HashMap<String, Seen>>,
    book: tokio::sync::Mutex<Book>,
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
        let webhook = WebhookTarget::from_app(app)?.map(Arc::new);
        let mut last_seen = HashMap::new();
        for row in all_rows(backend.as_ref(), LAST_SEEN, "ORDER BY device ASC").await? {
            if let [Value::String(device), Value::Timestamp(at), rest @ ..] = &row[..] {
                let active = !matches!(rest.first(), Some(Value::Bool(false)));
                // A row of the first shape (no `active`) is written again.
                let dirty = rest.is_empty();
                last_seen.insert(
                    device.clone(),
                    Seen {
                        at: *at,
                        active,
                        dirty,
                    },
                );
            }
        }
        let mut book = Book::default();
        for row in all_rows(backend.as_ref(), ALARMS, "ORDER BY id ASC").await? {
            let Some(alarm) = Alarm::from_row(&row) else {
                continue;
            };
            book.last_raised = book.last_raised.max(alarm.raised);
            if alarm.state != State::Cleared {
                book.open
                    .insert((alarm.rule.clone(), alarm.device.clone()), alarm);
            }
        }
        for row in all_rows(backend.as_ref(), PENDING, "ORDER BY key ASC").await? {
            if let [_, Value::String(device), Value::String(rule), Value::Timestamp(since)] =
                &row[..]
            {
                book.pending.insert(
                    (rule.clone(), device.clone()),
                    Watch::breaching_since(*since),
                );
            }
        }
        let alarms = Arc::new(Alarms {
            backend,
            rules: RwLock::new(Arc::new(rules)),
            webhook: RwLock::new(webhook),
            last_seen: Mutex::new(last_seen),
            book: tokio::sync::Mutex::new(book),
            events: tokio::sync::broadcast::channel(EVENTS_BUFFERED).0,
        });
        // Device metadata (`batt_lvl`) is watched as it commits too.
        alarms.backend.publish_collection(DEVICES);
        if let Some(commits) = alarms.backend.commits() {
            tokio::spawn(follow(Arc::downgrade(&alarms), commits));
        } else {
            tracing::warn!("this store does not publish its commits: no device is seen");
        }
        tokio::spawn(webhook::deliver(
            Arc::downgrade(&alarms),
            alarms.subscribe(),
        ));
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

    /// Follows `app`'s rules from the next reading on; rules that do not
    /// read leave the running ones.
    pub fn replace(&self, app: &App) -> Result<()> {
        let rules = Rules::from_app(app)?;
        let webhook = WebhookTarget::from_app(app)?.map(Arc::new);
        *self.rules.write().expect("alarm rules lock") = Arc::new(rules);
        *self.webhook.write().expect("alarm webhook lock") = webhook;
        Ok(())
    }

    fn rules(&self) -> Arc<Rules> {
        self.rules.read().expect("alarm rules lock").clone()
    }

    fn webhook(&self) -> Option<Arc<WebhookTarget>> {
        self.webhook.read().expect("alarm webhook lock").clone()
    }

    /// A commit: a device's telemetry (the device is seen, its readings
    /// judged in the order they were taken) or rows of `devices` (each
    /// device's metadata, such as `batt_lvl`, judged as of now).
    async fn committed(&self, committed: &Committed) -> Result<()> {
        let now = crate::store::now_ms();
        if committed.container == DEVICES {
            for row in &committed.rows {
                if let Some(Value::String(device)) = row.first() {
                    self.judge(device, &committed.columns, &[(now, row)])
                        .await?;
                }
            }
            return Ok(());
        }
        let Some(device) = cromflag_logic::device::id_of(&committed.container) else {
            return Ok(());
        };
        self.seen(device.clone(), now);
        let mut readings: Vec<(i64, &Row)> = committed
            .rows
            .iter()
            .map(|row| match row.first() {
                Some(Value::Timestamp(at)) => (*at, row),
                _ => (now, row),
            })
            .collect();
        readings.sort_by_key(|(at, _)| *at);
        self.judge(&device, &committed.columns, &readings).await
    }

    /// Runs `device`'s readings (time, row of `columns`) through the
    /// threshold rules that watch it, raising and clearing their alarms.
    async fn judge(
        &self,
        device: &str,
        columns: &[Column],
        readings: &[(i64, &Row)],
    ) -> Result<()> {
        let rules = self.rules();
        let watching: Vec<(&Threshold, usize)> = rules
            .thresholds_for(device)
            .filter_map(|rule| {
                let column = columns.iter().position(|c| c.name == rule.column)?;
                Some((rule, column))
            })
            .collect();
        if watching.is_empty() {
            return Ok(());
        }
        let mut book = self.book.lock().await;
        for (rule, column) in watching {
            let key = (rule.name.clone(), device.to_owned());
            let mut firing = book.open.contains_key(&key);
            let mut watch = book.pending.get(&key).copied().unwrap_or_default();
            for (at, row) in readings {
                let Some(value) = row.get(column).and_then(number) else {
                    continue;
                };
                match rule.observe(&mut watch, firing, *at, value) {
                    Verdict::Fire => {
                        self.raise(&mut book, rule, device, value.to_string())
                            .await?;
                        firing = true;
                    }
                    Verdict::Clear => {
                        self.clear(&mut book, &key).await?;
                        firing = false;
                    }
                    Verdict::Nothing => {}
                }
            }
            let before = match watch.pending() {
                Some(_) => book.pending.insert(key.clone(), watch),
                None => book.pending.remove(&key),
            };
            if before.and_then(Watch::pending) != watch.pending() {
                book.unwritten.insert(key);
            }
        }
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

    /// Raises and clears inactivity alarms, clears the alarms of threshold
    /// rules that no longer watch their device, then writes the last-seen
    /// entries that changed.
    async fn evaluate(&self) -> Result<()> {
        let rules = self.rules();
        let snapshot: Vec<(String, i64)> = {
            let last_seen = self.last_seen.lock().expect("last seen lock");
            last_seen.iter().map(|(d, s)| (d.clone(), s.at)).collect()
        };
        let now = crate::store::now_ms();
        let mut book = self.book.lock().await;
        for (device, at) in snapshot {
            let inactive = rules.inactivity_timeout(&device).is_some_and(|timeout| {
                now.saturating_sub(at) > i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX)
            });
            let key = (INACTIVITY.to_owned(), device);
            match (inactive, book.open.contains_key(&key)) {
                (true, false) => {
                    let alarm =
                        self.new_alarm(&mut book, INACTIVITY, &key.1, "warning", at.to_string());
                    self.write(&alarm).await?;
                    tracing::warn!(device = %key.1, last_seen = at, "alarm raised: inactivity");
                    self.set_active(&key.1, at, false);
                    book.open.insert(key, alarm);
                }
                (false, true) => self.clear(&mut book, &key).await?,
                _ => {}
            }
        }
        let unwatched: Vec<(String, String)> = book
            .open
            .keys()
            .filter(|(rule, device)| rule != INACTIVITY && !rules.watches(rule, device))
            .cloned()
            .collect();
        for key in unwatched {
            self.clear(&mut book, &key).await?;
        }
        // A rule that no longer watches a device drops its pending breach: if
        // it comes back, it starts over.
        let dropped: Vec<(String, String)> = book
            .pending
            .keys()
            .filter(|(rule, device)| !rules.watches(rule, device))
            .cloned()
            .collect();
        for key in dropped {
            book.pending.remove(&key);
            book.unwritten.insert(key);
        }
        // Neither write waits for the other to succeed.
        let pending = self.write_pending(&mut book).await;
        drop(book);
        let last_seen = self.write_last_seen().await;
        pending.and(last_seen)
    }

    /// Writes the pending breaches that changed since the last write (kept
    /// to write again if this write fails).
    async fn write_pending(&self, book: &mut Book) -> Result<()> {
        if book.unwritten.is_empty() {
            return Ok(());
        }
        let rows = book
            .unwritten
            .iter()
            .map(|key @ (rule, device)| {
                let since = book.pending.get(key).and_then(|watch| watch.pending());
                vec![
                    Value::String(format!("{rule}:{device}")),
                    Value::String(device.clone()),
                    Value::String(rule.clone()),
                    since.map_or(Value::Null, Value::Timestamp),
                ]
            })
            .collect();
        ensure_container(self.backend.as_ref(), pending_container()).await?;
        self.backend.put_rows(PENDING, rows).await?;
        book.unwritten.clear();
        Ok(())
    }

    /// A new raised alarm of `rule` for `device`, not yet written.
    fn new_alarm(
        &self,
        book: &mut Book,
        rule: &str,
        device: &str,
        severity: &str,
        value: String,
    ) -> Alarm {
        let raised = crate::store::now_ms().max(book.last_raised + 1);
        book.last_raised = raised;
        Alarm {
            id: format!("{rule}:{device}:{raised}"),
            device: device.to_owned(),
            rule: rule.to_owned(),
            severity: severity.to_owned(),
            state: State::Raised,
            value: Some(value),
            raised,
            acknowledged: None,
            cleared: None,
        }
    }

    async fn raise(
        &self,
        book: &mut Book,
        rule: &Threshold,
        device: &str,
        value: String,
    ) -> Result<()> {
        let alarm = self.new_alarm(book, &rule.name, device, &rule.severity, value);
        self.write(&alarm).await?;
        tracing::warn!(%device, rule = %rule.name, value = ?alarm.value, "alarm raised");
        book.open
            .insert((rule.name.clone(), device.to_owned()), alarm);
        Ok(())
    }

    /// Clears the open alarm at `key`, if any.
    async fn clear(&self, book: &mut Book, key: &(String, String)) -> Result<()> {
        let Some(alarm) = book.open.get(key) else {
            return Ok(());
        };
        let cleared = Alarm {
            state: State::Cleared,
            cleared: Some(crate::store::now_ms()),
            ..alarm.clone()
        };
        self.write(&cleared).await?;
        tracing::info!(device = %key.1, rule = %key.0, "alarm cleared");
        book.open.remove(key);
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
            ensure_container(self.backend.as_ref(), last_seen_container()).await?;
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
        ensure_container(self.backend.as_ref(), alarms_container()).await?;
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
        // The store filters, so a call reads only what it lists (the page
        // asks for the open alarms every few seconds). Every name quoted:
        // `value` and `state` are words a dialect may keep.
        let mut conditions = Vec::new();
        if let Some(device) = params.get("device") {
            conditions.push(format!("\"device\" = {}", tql_string(device)));
        }
        match state {
            None => {}
            Some(None) => conditions.push(format!(
                "(\"state\" = '{}' OR \"state\" = '{}')",
                State::Raised.name(),
                State::Acknowledged.name()
            )),
            Some(Some(state)) => conditions.push(format!("\"state\" = '{}'", state.name())),
        }
        if let Some(since) = since {
            conditions.push(format!("\"raised\" >= TO_TIMESTAMP_MS({since})"));
        }
        let clause = match conditions.is_empty() {
            true => "ORDER BY \"id\" ASC".to_owned(),
            false => format!("WHERE {} ORDER BY \"id\" ASC", conditions.join(" AND ")),
        };
        let mut alarms: Vec<Alarm> = all_rows(self.backend.as_ref(), ALARMS, &clause)
            .await?
            .iter()
            .filter_map(|row| Alarm::from_row(row))
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
        let mut book = self.book.lock().await;
        let Some(alarm) = book.open.values_mut().find(|a| a.id == id) else {
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
            (&Method::GET, "/alarms/deliveries", _) => {
                webhook::list(self.backend.as_ref(), params.get("alarm")).await
            }
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

/// Hands every commit to the alarms, for as long as they live. A lagging
/// receiver skips what it missed (those devices are seen at their next
/// commit; threshold rules miss those readings, and say so in the log).
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
        if let Err(e) = alarms.committed(&committed).await {
            tracing::error!(error = %format!("{e:#}"), "alarm rules could not judge a commit");
        }
    }
}

/// A reading as a number, if it is one.
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Byte(v) => Some(f64::from(*v)),
        Value::Short(v) => Some(f64::from(*v)),
        Value::Integer(v) => Some(f64::from(*v)),
        // Readings past 2^53 lose precision, not their order of magnitude.
        #[allow(clippy::cast_precision_loss)]
        Value::Long(v) => Some(*v as f64),
        Value::Float(v) => Some(f64::from(*v)),
        Value::Double(v) => Some(*v),
        Value::Bool(v) => Some(f64::from(u8::from(*v))),
        _ => None,
    }
}
