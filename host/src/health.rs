//! Liveness and readiness, as orchestrators probe them: `GET /healthz` (the
//! process answers) and `GET /readyz` (the store answers, and MQTT messages
//! can arrive: the broker connection is up, or the endpoint listens). Both
//! answer JSON without a token, before any manifest route, so that an
//! application routing `/...` cannot hide them.

use crate::store::{Backend, ContainerListing};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long the store may take to answer a readiness probe.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether MQTT messages can arrive, as the MQTT side reports it.
#[derive(Clone, Debug)]
pub enum MqttReadiness {
    /// No MQTT trigger, or none of its ways in is on: nothing to wait for.
    None,
    /// The broker connection (`mqtt_address`): up between its CONNACK and
    /// its next error.
    Client(Arc<AtomicBool>),
    /// The built-in endpoint, listening since the host started.
    Endpoint,
}

/// What `/readyz` checks.
#[derive(Clone)]
pub struct Readiness {
    pub store: Arc<dyn Backend>,
    pub mqtt: MqttReadiness,
}

impl Readiness {
    /// Every check's outcome, and whether all passed.
    pub async fn check(&self) -> (bool, Value) {
        let store = self.store_check().await;
        let mqtt = match &self.mqtt {
            MqttReadiness::None => json!({ "ok": true, "state": "no MQTT trigger" }),
            MqttReadiness::Client(connected) if connected.load(Ordering::SeqCst) => {
                json!({ "ok": true, "state": "connected to the broker" })
            }
            MqttReadiness::Client(_) => {
                json!({ "ok": false, "state": "not connected to the broker" })
            }
            MqttReadiness::Endpoint => json!({ "ok": true, "state": "endpoint listening" }),
        };
        let ready = store["ok"] == true && mqtt["ok"] == true;
        (
            ready,
            json!({ "ready": ready, "checks": { "store": store, "mqtt": mqtt } }),
        )
    }

    /// The cheapest call every backend answers from its store: a listing of
    /// no names (over GridDB, one `GET containers?limit=0`).
    async fn store_check(&self) -> Value {
        let listing = ContainerListing {
            kind: None,
            descending: false,
            offset: 0,
            limit: 0,
        };
        match tokio::time::timeout(
            STORE_PROBE_TIMEOUT,
            self.store.list_container_page(&listing),
        )
        .await
        {
            Ok(Ok(_)) => json!({ "ok": true }),
            Ok(Err(e)) => json!({ "ok": false, "error": e.to_string() }),
            Err(_) => json!({
                "ok": false,
                "error": format!("no answer within {} s", STORE_PROBE_TIMEOUT.as_secs())
            }),
        }
    }
}
