//! Alarm delivery by webhook: every alarm event POSTed as JSON to the
//! variable `alarm_webhook_url`, signed, retried with backoff, and its
//! outcome recorded in `_alarm_deliveries`.
//!
//! Order: events go out one at a time, in the order they happened, so a
//! receiver sees an alarm raised before it sees it cleared. A delivery being
//! retried holds up those behind it, never ingest or evaluation: events
//! reach this task through the alarms' broadcast channel, and past its
//! buffer a lagging task skips events (and says how many).
//!
//! The request, as GitHub signs its webhooks: the body is
//! `{"id", "event", "sent", "alarm"}` (`event`: `alarm.raised`,
//! `alarm.acknowledged` or `alarm.cleared`; `alarm` as `GET /alarms` lists
//! it); `X-Cromflag-Signature-256: sha256=<hex>` is the HMAC-SHA256 of the
//! body under `alarm_webhook_secret`, so a receiver can check who sent it,
//! and the body's `id` and `sent` let it refuse a replay. `X-Cromflag-Event`
//! and `X-Cromflag-Delivery` repeat the event and the id (the same on every
//! attempt of one delivery).
//!
//! Retries: any answer but 2xx, or none within `ATTEMPT_TIMEOUT`, is tried
//! again after 1 s, 2 s, 4 s … (at most `MAX_BACKOFF`, with jitter), up to
//! `alarm_webhook_attempts` attempts in all.

use super::{AlarmEvent, Alarms};
use crate::manifest::App;
use crate::store::{
    all_rows, ensure_container, Backend, Column, ColumnType, ContainerInfo, ContainerKind, Value,
};
use anyhow::{bail, Context, Result};
use cromflag_griddb_webapi::client::Transport;
use cromflag_logic::tql_string;
use cromflag_store::griddb::HyperTransport;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::{error::RecvError, Receiver};

/// Each delivery's outcome.
pub const DELIVERIES: &str = "_alarm_deliveries";
/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Where alarm events go, from the manifest's variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookTarget {
    url: http::Uri,
    /// Empty: deliveries are not signed (the host warns at start).
    secret: String,
    attempts: u32,
}

impl WebhookTarget {
    /// `None` when `alarm_webhook_url` is empty.
    pub fn from_app(app: &App) -> Result<Option<WebhookTarget>> {
        let variable = |name: &str| app.variables.get(name).unwrap_or("").trim().to_owned();
        let url = variable("alarm_webhook_url");
        if url.is_empty() {
            return Ok(None);
        }
        let url: http::Uri = url
            .parse()
            .with_context(|| format!("variable alarm_webhook_url: {url:?} is not a URL"))?;
        if !matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none() {
            bail!("variable alarm_webhook_url: {url} is not an http:// or https:// URL");
        }
        let attempts = variable("alarm_webhook_attempts");
        let attempts = match attempts.as_str() {
            "" => 8,
            text => text.parse().ok().filter(|n| *n > 0).with_context(|| {
                format!("variable alarm_webhook_attempts: {text:?} is not a whole number above 0")
            })?,
        };
        let secret = variable("alarm_webhook_secret");
        if secret.is_empty() {
            tracing::warn!(%url, "alarm webhooks go unsigned: set alarm_webhook_secret");
        }
        Ok(Some(WebhookTarget {
            url,
            secret,
            attempts,
        }))
    }

    /// The body's signature header value, if there is a secret.
    fn signature(&self, body: &[u8]) -> Option<String> {
        if self.secret.is_empty() {
            return None;
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(body);
        Some(format!("sha256={:x}", mac.finalize().into_bytes()))
    }
}

fn deliveries_container() -> ContainerInfo {
    let column = Column::new;
    ContainerInfo {
        name: DELIVERIES.to_owned(),
        kind: ContainerKind::Collection,
        columns: vec![
            column("id", ColumnType::String),
            column("alarm", ColumnType::String),
            column("event", ColumnType::String),
            column("url", ColumnType::String),
            column("outcome", ColumnType::String),
            column("attempts", ColumnType::Integer),
            column("error", ColumnType::String),
            column("finished", ColumnType::Timestamp),
        ],
        row_key: true,
    }
}

/// Delivers the alarms' events to their current webhook target, for as long
/// as the alarms live.
pub async fn deliver(alarms: Weak<Alarms>, mut events: Receiver<Arc<AlarmEvent>>) {
    let transport = HyperTransport::new();
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(RecvError::Lagged(skipped)) => {
                tracing::error!(skipped, "alarm webhook fell behind: events skipped");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let Some(alarms) = alarms.upgrade() else {
            return;
        };
        let Some(target) = alarms.webhook() else {
            continue;
        };
        let backend = alarms.backend.clone();
        // Not kept alive by a delivery being retried.
        drop(alarms);
        let delivery = Delivery::of(&event);
        let outcome = delivery.send(&transport, &target).await;
        if let Err(e) = delivery.record(backend.as_ref(), &target, &outcome).await {
            tracing::error!(error = %e, id = %delivery.id, "recording an alarm delivery failed");
        }
    }
}

/// One event's delivery.
struct Delivery {
    /// `<alarm id>/<state>`: the same on every attempt.
    id: String,
    /// `alarm.<state>`.
    event: String,
    /// The alarm as `GET /alarms` lists it.
    alarm: serde_json::Value,
}

/// How a delivery ended: the attempts made, and the last error if it failed.
struct Outcome {
    attempts: u32,
    error: Option<String>,
}

impl Delivery {
    fn of(event: &AlarmEvent) -> Delivery {
        let text = |key: &str| event.alarm[key].as_str().unwrap_or("");
        let state = text("state");
        Delivery {
            id: format!("{}/{state}", text("id")),
            event: format!("alarm.{state}"),
            alarm: event.alarm.clone(),
        }
    }

    async fn send(&self, transport: &HyperTransport, target: &WebhookTarget) -> Outcome {
        let mut error = String::new();
        for attempt in 1..=target.attempts {
            if attempt > 1 {
                tokio::time::sleep(backoff(attempt - 1)).await;
            }
            match self.attempt(transport, target).await {
                Ok(()) => {
                    return Outcome {
                        attempts: attempt,
                        error: None,
                    }
                }
                Err(e) => {
                    tracing::warn!(id = %self.id, url = %target.url, attempt, error = %e, "alarm webhook attempt failed");
                    error = e;
                }
            }
        }
        tracing::error!(id = %self.id, url = %target.url, attempts = target.attempts, %error, "alarm webhook gave up");
        Outcome {
            attempts: target.attempts,
            error: Some(error),
        }
    }

    /// One POST; its body is built again so that `sent` says when.
    async fn attempt(
        &self,
        transport: &HyperTransport,
        target: &WebhookTarget,
    ) -> Result<(), String> {
        let body = serde_json::to_vec(&json!({
            "id": self.id,
            "event": self.event,
            "sent": crate::store::now_ms(),
            "alarm": self.alarm,
        }))
        .expect("JSON values serialize");
        let mut request = http::Request::post(target.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("cromflag/", env!("CARGO_PKG_VERSION")),
            )
            .header("x-cromflag-event", &self.event)
            .header("x-cromflag-delivery", &self.id);
        if let Some(signature) = target.signature(&body) {
            request = request.header("x-cromflag-signature-256", signature);
        }
        let request = request.body(body).map_err(|e| e.to_string())?;
        let answer = transport
            .send(request, Instant::now() + ATTEMPT_TIMEOUT)
            .await?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(format!("answered {}", answer.status))
        }
    }
}

impl Delivery {
    /// Writes how the delivery ended to `_alarm_deliveries`.
    async fn record(
        &self,
        backend: &dyn Backend,
        target: &WebhookTarget,
        outcome: &Outcome,
    ) -> Result<()> {
        ensure_container(backend, deliveries_container()).await?;
        let row = vec![
            Value::String(self.id.clone()),
            Value::String(self.alarm["id"].as_str().unwrap_or("").to_owned()),
            Value::String(self.event.clone()),
            Value::String(target.url.to_string()),
            Value::String(
                if outcome.error.is_none() {
                    "delivered"
                } else {
                    "failed"
                }
                .to_owned(),
            ),
            Value::Integer(i32::try_from(outcome.attempts).unwrap_or(i32::MAX)),
            outcome.error.clone().map_or(Value::Null, Value::String),
            Value::Timestamp(crate::store::now_ms()),
        ];
        backend.put_rows(DELIVERIES, vec![row]).await?;
        Ok(())
    }
}

/// `GET /alarms/deliveries`: how deliveries ended, newest first, of one
/// alarm or all.
pub async fn list(
    backend: &dyn Backend,
    alarm: Option<&str>,
) -> Result<(http::StatusCode, serde_json::Value)> {
    let columns = deliveries_container().columns;
    // The store filters: a call reads one alarm's deliveries, not every one.
    let clause = match alarm {
        Some(alarm) => format!(
            "WHERE \"alarm\" = {} ORDER BY \"id\" ASC",
            tql_string(alarm)
        ),
        None => "ORDER BY \"id\" ASC".to_owned(),
    };
    let mut listed: Vec<(i64, serde_json::Value)> = all_rows(backend, DELIVERIES, &clause)
        .await?
        .iter()
        .map(|row| {
            let finished = match row.get(7) {
                Some(Value::Timestamp(t)) => *t,
                _ => 0,
            };
            let fields = columns.iter().zip(row).map(|(column, value)| {
                let value = match value {
                    Value::String(s) => json!(s),
                    Value::Integer(n) => json!(n),
                    Value::Timestamp(t) => json!(t),
                    _ => serde_json::Value::Null,
                };
                (column.name.clone(), value)
            });
            (finished, serde_json::Value::Object(fields.collect()))
        })
        .collect();
    listed.sort_by_key(|(finished, _)| std::cmp::Reverse(*finished));
    let deliveries: Vec<_> = listed.into_iter().map(|(_, d)| d).collect();
    Ok((
        http::StatusCode::OK,
        json!({ "count": deliveries.len(), "deliveries": deliveries }),
    ))
}

/// The wait before retry number `retry` (from 1).
fn backoff(retry: u32) -> Duration {
    let base = Duration::from_secs(1)
        .saturating_mul(1u32.checked_shl(retry - 1).unwrap_or(u32::MAX))
        .min(MAX_BACKOFF);
    base + base.mul_f64(fastrand::f64() / 10.0)
}
