//! Credentials: the `_credentials` collection of the store, and the questions
//! asked of it (who holds this token?) and the changes made to it (add, rotate,
//! revoke, remove).
//!
//! They live in the application's store, whichever backend it is, so hosts that
//! share a GridDB cluster share them. One row per token, keyed by the token's
//! SHA-256; a revoked token keeps its row (`state = revoked`), so `show` tells a
//! device's history. Answers to "who holds this token" are cached for at most
//! `CACHE_TTL` per host: a revocation takes effect everywhere within it.

use super::token::{self, TokenKind};
use crate::store::{
    ensure_container, Backend, Column, ColumnType, ContainerInfo, ContainerKind, Value,
};
use anyhow::{bail, Context, Result};
use cromflag_logic::tql_string;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The collection the credentials are kept in.
pub const CONTAINER: &str = "_credentials";
/// How long an answer about a token is trusted before the store is asked again.
pub const CACHE_TTL: Duration = Duration::from_secs(1);
/// Live tokens a device may hold at once: the current one and the next, so a
/// rotation can overlap.
pub const MAX_LIVE_DEVICE_TOKENS: usize = 2;
/// Cached answers kept at most; past this the cache starts afresh.
const CACHE_CAPACITY: usize = 100_000;
/// Rows read per query when listing.
const PAGE: usize = 10_000;

/// Who a valid token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    Device(String),
    Reader { name: String, scope: Scope },
}

/// The devices a reader may read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Scope {
    /// `"*"`.
    All(AllDevices),
    Devices(Vec<String>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum AllDevices {
    #[serde(rename = "*")]
    All,
}

impl Scope {
    pub fn allows(&self, device: &str) -> bool {
        match self {
            Scope::All(_) => true,
            Scope::Devices(devices) => devices.iter().any(|d| d == device),
        }
    }

    pub fn allows_all(&self) -> bool {
        matches!(self, Scope::All(_))
    }

    fn to_stored(&self) -> String {
        serde_json::to_string(self).expect("a scope serializes")
    }

    fn from_stored(text: &str) -> Scope {
        match serde_json::from_str::<Vec<String>>(text) {
            Ok(devices) => Scope::Devices(devices),
            Err(_) => Scope::All(AllDevices::All),
        }
    }
}

/// A token's row, as `show` and `list` tell it (never the token itself).
#[derive(Clone, Debug, Serialize)]
pub struct Key {
    /// The first 8 hex digits of the token's SHA-256.
    pub key: String,
    pub created: String,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
}

/// A device or reader and its keys.
#[derive(Clone, Debug, Serialize)]
pub struct Subject {
    pub kind: &'static str,
    #[serde(rename = "id")]
    pub name: String,
    pub live_tokens: usize,
    pub keys: Vec<Key>,
}

/// A token just made: the only time it is seen.
#[derive(Clone, Debug, Serialize)]
pub struct Issued {
    pub kind: &'static str,
    pub id: String,
    pub key: String,
    pub token: String,
    /// Keys revoked to keep at most two live (a third rotation).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub revoked: Vec<String>,
}

/// Why a change was refused: the admin API's 404, 409 or 400, with the reason.
#[derive(Debug)]
pub enum Refused {
    NotFound(String),
    Conflict(String),
    Invalid(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NotFound(m) | Refused::Conflict(m) | Refused::Invalid(m) => f.write_str(m),
        }
    }
}

/// One stored row.
#[derive(Clone, Debug)]
struct Record {
    digest: String,
    kind: TokenKind,
    subject: String,
    scope: String,
    created: i64,
    state: State,
    mosquitto: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Live,
    Revoked,
    /// The device or reader was removed: not listed any more.
    Removed,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Live => "live",
            State::Revoked => "revoked",
            State::Removed => "removed",
        }
    }

    fn from_name(name: &str) -> State {
        match name {
            "live" => State::Live,
            "revoked" => State::Revoked,
            _ => State::Removed,
        }
    }
}

/// The credentials of one store, with this host's cache of recent answers.
pub struct Credentials {
    backend: Arc<dyn Backend>,
    cache: Mutex<HashMap<String, (Instant, Option<Holder>)>>,
}

impl Credentials {
    pub fn new(backend: Arc<dyn Backend>) -> Credentials {
        Credentials {
            backend,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Who holds `token`, if it is live. Answers (yes or no) are reused for up
    /// to `CACHE_TTL`; a store failure is an error, not a "no".
    pub async fn holder(&self, token: &str) -> Result<Option<Holder>> {
        let Some(kind) = TokenKind::of(token) else {
            return Ok(None);
        };
        let digest = token::digest(token);
        if let Some((at, holder)) = self.cache.lock().expect("cache lock").get(&digest) {
            if at.elapsed() < CACHE_TTL {
                return Ok(holder.clone());
            }
        }
        let holder = self
            .select(&format!("WHERE hash = {}", tql_string(&digest)))
            .await?
            .into_iter()
            .find(|r| r.state == State::Live && r.kind == kind)
            .map(|r| match r.kind {
                TokenKind::Device => Holder::Device(r.subject),
                TokenKind::Reader => Holder::Reader {
                    name: r.subject,
                    scope: Scope::from_stored(&r.scope),
                },
            });
        let mut cache = self.cache.lock().expect("cache lock");
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(digest, (Instant::now(), holder.clone()));
        Ok(holder)
    }

    /// Registers device `id` with its first token. A device that holds live
    /// tokens already is a conflict: rotate instead.
    pub async fn add_device(&self, id: &str) -> Result<Result<Issued, Refused>> {
        if let Err(reason) = super::check_device_id(id) {
            return Ok(Err(Refused::Invalid(reason)));
        }
        if self.live(TokenKind::Device, id).await?.next().is_some() {
            return Ok(Err(Refused::Conflict(format!(
                "device `{id}` exists: rotate its token or remove it first"
            ))));
        }
        self.issue(TokenKind::Device, id, "").await.map(Ok)
    }

    /// A new token for device `id`; the older live ones stay live, up to two
    /// in all (the oldest is revoked to make room).
    pub async fn rotate(&self, id: &str) -> Result<Result<Issued, Refused>> {
        let live: Vec<Record> = self.live(TokenKind::Device, id).await?.collect();
        if live.is_empty() {
            return Ok(Err(Refused::NotFound(format!(
                "no device `{id}` with a live token: add it"
            ))));
        }
        let mut issued = self.issue(TokenKind::Device, id, "").await?;
        let excess = (live.len() + 1).saturating_sub(MAX_LIVE_DEVICE_TOKENS);
        for old in live.into_iter().take(excess) {
            issued.revoked.push(token::key_id(&old.digest).to_owned());
            self.set_state(old, State::Revoked).await?;
        }
        Ok(Ok(issued))
    }

    /// Revokes a device's or reader's live tokens: all of them, or the one
    /// whose key is `key`. Returns the keys revoked.
    pub async fn revoke(
        &self,
        kind: TokenKind,
        id: &str,
        key: Option<&str>,
    ) -> Result<Result<Vec<String>, Refused>> {
        let chosen: Vec<Record> = self
            .live(kind, id)
            .await?
            .filter(|r| key.is_none_or(|k| token::key_id(&r.digest) == k))
            .collect();
        if chosen.is_empty() {
            return Ok(Err(Refused::NotFound(match key {
                Some(key) => format!("{} `{id}` has no live key `{key}`", kind.name()),
                None => format!("{} `{id}` has no live token", kind.name()),
            })));
        }
        let mut revoked = Vec::new();
        for record in chosen {
            revoked.push(token::key_id(&record.digest).to_owned());
            self.set_state(record, State::Revoked).await?;
        }
        Ok(Ok(revoked))
    }

    /// Forgets a device or reader: every token revoked, and no longer listed.
    /// Its telemetry stays in the store.
    pub async fn remove(&self, kind: TokenKind, id: &str) -> Result<Result<(), Refused>> {
        let records = self.of(kind, id).await?;
        let kept: Vec<Record> = records
            .into_iter()
            .filter(|r| r.state != State::Removed)
            .collect();
        if kept.is_empty() {
            return Ok(Err(Refused::NotFound(format!("no {} `{id}`", kind.name()))));
        }
        for record in kept {
            self.set_state(record, State::Removed).await?;
        }
        Ok(Ok(()))
    }

    /// A reader with its token: `devices` empty means every device.
    pub async fn add_reader(
        &self,
        name: &str,
        devices: &[String],
    ) -> Result<Result<Issued, Refused>> {
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Ok(Err(Refused::Invalid(
                "a reader's name is 1 to 128 bytes without control characters".into(),
            )));
        }
        if self.live(TokenKind::Reader, name).await?.next().is_some() {
            return Ok(Err(Refused::Conflict(format!(
                "reader `{name}` exists: revoke or remove it first"
            ))));
        }
        for device in devices {
            if let Err(reason) = super::check_device_id(device) {
                return Ok(Err(Refused::Invalid(reason)));
            }
        }
        let scope = if devices.is_empty() {
            Scope::All(AllDevices::All)
        } else {
            Scope::Devices(devices.to_vec())
        };
        self.issue(TokenKind::Reader, name, &scope.to_stored())
            .await
            .map(Ok)
    }

    /// Every device or reader not removed, by id.
    pub async fn list(&self, kind: TokenKind) -> Result<Vec<Subject>> {
        let records = self
            .select(&format!("WHERE kind = {}", tql_string(kind.name())))
            .await?;
        let mut subjects: std::collections::BTreeMap<String, Vec<Record>> = Default::default();
        for record in records.into_iter().filter(|r| r.state != State::Removed) {
            subjects
                .entry(record.subject.clone())
                .or_default()
                .push(record);
        }
        Ok(subjects
            .into_iter()
            .map(|(name, records)| subject(kind, name, records))
            .collect())
    }

    /// One device or reader, if it was added and not removed.
    pub async fn show(&self, kind: TokenKind, id: &str) -> Result<Option<Subject>> {
        let records: Vec<Record> = self
            .of(kind, id)
            .await?
            .into_iter()
            .filter(|r| r.state != State::Removed)
            .collect();
        Ok((!records.is_empty()).then(|| subject(kind, id.to_owned(), records)))
    }

    /// The Mosquitto password hash of each device's newest live token, by
    /// device: what `export-mosquitto` writes.
    pub async fn mosquitto_hashes(&self) -> Result<Vec<(String, String)>> {
        let records = self
            .select(&format!(
                "WHERE kind = {}",
                tql_string(TokenKind::Device.name())
            ))
            .await?;
        let mut newest: std::collections::BTreeMap<String, Record> = Default::default();
        for record in records.into_iter().filter(|r| r.state == State::Live) {
            let keep = newest
                .get(&record.subject)
                .is_none_or(|kept| kept.created <= record.created);
            if keep {
                newest.insert(record.subject.clone(), record);
            }
        }
        Ok(newest
            .into_iter()
            .map(|(device, record)| (device, record.mosquitto))
            .collect())
    }

    async fn issue(&self, kind: TokenKind, id: &str, scope: &str) -> Result<Issued> {
        let token = token::mint(kind);
        let record = Record {
            digest: token::digest(&token),
            kind,
            subject: id.to_owned(),
            scope: scope.to_owned(),
            created: crate::store::now_ms(),
            state: State::Live,
            mosquitto: match kind {
                TokenKind::Device => token::mosquitto_hash(&token),
                TokenKind::Reader => String::new(),
            },
        };
        let key = token::key_id(&record.digest).to_owned();
        self.write(record).await?;
        Ok(Issued {
            kind: kind.name(),
            id: id.to_owned(),
            key,
            token,
            revoked: Vec::new(),
        })
    }

    /// `id`'s live tokens of `kind`, oldest first.
    async fn live(&self, kind: TokenKind, id: &str) -> Result<impl Iterator<Item = Record>> {
        Ok(self
            .of(kind, id)
            .await?
            .into_iter()
            .filter(|r| r.state == State::Live))
    }

    /// Every row of `id` of `kind`, oldest first.
    async fn of(&self, kind: TokenKind, id: &str) -> Result<Vec<Record>> {
        let mut records = self
            .select(&format!(
                "WHERE subject = {} AND kind = {}",
                tql_string(id),
                tql_string(kind.name())
            ))
            .await?;
        records.sort_by_key(|r| r.created);
        Ok(records)
    }

    async fn set_state(&self, mut record: Record, state: State) -> Result<()> {
        record.state = state;
        let digest = record.digest.clone();
        self.write(record).await?;
        self.cache.lock().expect("cache lock").remove(&digest);
        Ok(())
    }

    async fn write(&self, record: Record) -> Result<()> {
        ensure_container(self.backend.as_ref(), container()).await?;
        let row = vec![
            Value::String(record.digest),
            Value::String(record.kind.name().to_owned()),
            Value::String(record.subject),
            Value::String(record.scope),
            Value::Timestamp(record.created),
            Value::String(record.state.name().to_owned()),
            Value::String(record.mosquitto),
        ];
        self.backend.put_rows(CONTAINER, vec![row]).await?;
        Ok(())
    }

    /// The rows `filter` (a TQL WHERE clause) selects, every page of them.
    async fn select(&self, filter: &str) -> Result<Vec<Record>> {
        if self.backend.get_container(CONTAINER).await?.is_none() {
            return Ok(Vec::new());
        }
        let mut records = Vec::new();
        for offset in (0..).step_by(PAGE) {
            let tql = format!("SELECT * {filter} LIMIT {PAGE} OFFSET {offset}");
            let page = self.backend.query(CONTAINER, &tql).await?;
            for row in &page.rows {
                records.push(record_from_row(row).context("an unreadable credential row")?);
            }
            if page.rows.len() < PAGE {
                break;
            }
        }
        Ok(records)
    }
}

fn container() -> ContainerInfo {
    let text = |name: &str| Column::new(name, ColumnType::String);
    ContainerInfo {
        name: CONTAINER.to_owned(),
        kind: ContainerKind::Collection,
        columns: vec![
            text("hash"),
            text("kind"),
            text("subject"),
            text("scope"),
            Column::new("created", ColumnType::Timestamp),
            text("state"),
            text("mosquitto"),
        ],
        row_key: true,
    }
}

fn record_from_row(row: &[Value]) -> Result<Record> {
    let text = |i: usize| match row.get(i) {
        Some(Value::String(s)) => Ok(s.clone()),
        other => bail!("column {i} is {other:?}"),
    };
    let kind = text(1)?;
    Ok(Record {
        digest: text(0)?,
        kind: TokenKind::from_name(&kind).with_context(|| format!("unknown kind {kind:?}"))?,
        subject: text(2)?,
        scope: text(3)?,
        created: match row.get(4) {
            Some(Value::Timestamp(ms)) => *ms,
            other => bail!("created is {other:?}"),
        },
        state: State::from_name(&text(5)?),
        mosquitto: text(6)?,
    })
}

fn subject(kind: TokenKind, name: String, records: Vec<Record>) -> Subject {
    let keys: Vec<Key> = records
        .into_iter()
        .map(|r| Key {
            key: token::key_id(&r.digest).to_owned(),
            created: chrono::DateTime::from_timestamp_millis(r.created)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default(),
            state: r.state.name().to_owned(),
            scope: (r.kind == TokenKind::Reader).then(|| Scope::from_stored(&r.scope)),
        })
        .collect();
    Subject {
        kind: kind.name(),
        live_tokens: keys.iter().filter(|k| k.state == "live").count(),
        name,
        keys,
    }
}
