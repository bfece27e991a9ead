//! What one connection of the device endpoint subscribed to: topic filters
//! under `alarms/`, each checked against the device logged in, and the alarm
//! events that match them, as the PUBLISHes to send.
//!
//! An alarm event (raised, acknowledged, cleared) is published to
//! `alarms/<device>`, the device id as is (ids hold no `/`, `+` or `#`), with
//! the alarm as `GET /alarms` lists it for payload. A filter is served when
//! it is a valid topic filter under `alarms/` (`alarms/#`, `alarms/+`,
//! `alarms/<device>`); where tokens are required, only the device's own
//! `alarms/<id>` is. Filters are validated and matched by rumqttc's
//! `valid_filter` and `matches`.
//!
//! The alarm events reach the endpoint as `AlarmMessage`s on a broadcast
//! channel of its own, which `alarm_messages` fills from the alarms' channel
//! (`app` wires it; triggers do not import `alarms`). A connection follows it
//! through a receiver of its own, taken at its first granted subscription and
//! dropped when it has none left. The channel is bounded: a subscriber that
//! falls behind skips messages (logged) instead of holding up the others or
//! growing memory; ingest never waits on it.

use super::codec::{Outgoing, Subscription};
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::{self, Receiver, Sender};

/// Alarm messages a slow subscriber may fall behind by before it skips some.
const BUFFERED: usize = 1024;

/// An alarm event as the endpoint publishes it.
#[derive(Debug)]
pub struct AlarmMessage {
    /// Published to `alarms/<device>`.
    pub device: String,
    /// The alarm's JSON.
    pub payload: Bytes,
}

/// The endpoint's alarm messages: a task turns each of `events` into one by
/// `message`, until `events` closes.
pub fn alarm_messages<E: Send + Sync + 'static>(
    mut events: Receiver<Arc<E>>,
    message: impl Fn(&E) -> AlarmMessage + Send + 'static,
) -> Sender<Arc<AlarmMessage>> {
    let messages = broadcast::channel(BUFFERED).0;
    let sender = messages.clone();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                // No subscriber is not an error.
                Ok(event) => drop(sender.send(Arc::new(message(&event)))),
                Err(RecvError::Lagged(skipped)) => {
                    tracing::warn!(skipped, "MQTT alarm delivery fell behind: alarms skipped");
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
    messages
}

/// The topic of every alarm of `device`.
pub fn alarm_topic(device: &str) -> String {
    format!("alarms/{device}")
}

/// What a SUBSCRIBE to `filter` is answered, for `device` when the
/// connection logged in as one (tokens required), else for anyone.
fn answer(filter: &str, device: Option<&str>) -> Subscription {
    if !filter.starts_with("alarms/") {
        return Subscription::Unsupported;
    }
    if !rumqttc::valid_filter(filter) {
        return Subscription::Invalid;
    }
    match device {
        Some(device) if filter != alarm_topic(device) => Subscription::NotAuthorized,
        _ => Subscription::Granted,
    }
}

/// One connection's subscriptions.
pub struct Subscriptions {
    /// Every alarm message, to subscribe to.
    alarms: Sender<Arc<AlarmMessage>>,
    /// The device logged in, where tokens are required.
    device: Option<String>,
    /// The granted filters, each once.
    filters: Vec<String>,
    /// Alarm messages, while any filter is granted.
    messages: Option<Receiver<Arc<AlarmMessage>>>,
}

impl Subscriptions {
    pub fn new(alarms: Sender<Arc<AlarmMessage>>, device: Option<&str>) -> Subscriptions {
        Subscriptions {
            alarms,
            device: device.map(str::to_owned),
            filters: Vec::new(),
            messages: None,
        }
    }

    /// Answers a SUBSCRIBE's filters, one answer each, and follows the
    /// granted ones from now on.
    pub fn subscribe(&mut self, filters: Vec<String>) -> Vec<Subscription> {
        filters
            .into_iter()
            .map(|filter| {
                let answer = answer(&filter, self.device.as_deref());
                if answer == Subscription::Granted {
                    if !self.filters.contains(&filter) {
                        self.filters.push(filter);
                    }
                    if self.messages.is_none() {
                        self.messages = Some(self.alarms.subscribe());
                    }
                }
                answer
            })
            .collect()
    }

    /// Answers an UNSUBSCRIBE: whether each filter was subscribed to.
    pub fn unsubscribe(&mut self, filters: &[String]) -> Vec<bool> {
        let found = filters
            .iter()
            .map(|filter| {
                let before = self.filters.len();
                self.filters.retain(|kept| kept != filter);
                self.filters.len() < before
            })
            .collect();
        if self.filters.is_empty() {
            self.messages = None;
        }
        found
    }

    /// The next alarm a filter matches, as the PUBLISH to send; never ready
    /// while nothing is subscribed. Cancel-safe: a message is taken off the
    /// channel only when it is returned or matches nothing.
    pub async fn next(&mut self) -> Outgoing {
        loop {
            let Some(messages) = &mut self.messages else {
                return std::future::pending().await;
            };
            match messages.recv().await {
                Ok(message) => {
                    let topic = alarm_topic(&message.device);
                    if self
                        .filters
                        .iter()
                        .any(|filter| rumqttc::matches(&topic, filter))
                    {
                        return Outgoing::Publish {
                            topic,
                            payload: message.payload.clone(),
                        };
                    }
                }
                Err(RecvError::Lagged(skipped)) => {
                    tracing::warn!(
                        skipped,
                        device = ?self.device,
                        "an MQTT alarm subscriber fell behind: it skips alarms (GET /alarms lists them)"
                    );
                }
                // The host is stopping: no more alarms.
                Err(RecvError::Closed) => self.messages = None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use serde_json::json;

    #[test]
    fn only_alarm_filters_are_served_and_a_device_gets_its_own() {
        use Subscription::*;
        for filter in ["alarms/#", "alarms/+", "alarms/sample", "alarms/+/x"] {
            assert_eq!(answer(filter, None), Granted, "{filter}");
        }
        for filter in ["#", "+/sample", "devices/+/telemetry", "$share/g/alarms/#"] {
            assert_eq!(answer(filter, None), Unsupported, "{filter}");
        }
        assert_eq!(answer("alarms/#/x", None), Invalid);
        assert_eq!(answer("alarms/a+", None), Invalid);
        assert_eq!(answer("alarms/a", Some("a")), Granted);
        for filter in ["alarms/#", "alarms/+", "alarms/b"] {
            assert_eq!(answer(filter, Some("a")), NotAuthorized, "{filter}");
        }
    }

    fn event(device: &str) -> Arc<AlarmMessage> {
        Arc::new(AlarmMessage {
            device: device.into(),
            payload: json!({ "device": device, "state": "raised" })
                .to_string()
                .into(),
        })
    }

    fn topic_of(publication: Outgoing) -> String {
        match publication {
            Outgoing::Publish { topic, payload } => {
                let alarm: serde_json::Value = serde_json::from_slice(&payload).unwrap();
                assert_eq!(topic, alarm_topic(alarm["device"].as_str().unwrap()));
                topic
            }
            other => panic!("not a PUBLISH: {other:?}"),
        }
    }

    #[tokio::test]
    async fn each_event_becomes_an_alarm_message() {
        let events = broadcast::channel(4).0;
        let messages = alarm_messages(events.subscribe(), |device: &String| AlarmMessage {
            device: device.clone(),
            payload: Bytes::from_static(b"{}"),
        });
        let mut received = messages.subscribe();
        events.send(Arc::new("a".to_owned())).unwrap();
        assert_eq!(received.recv().await.unwrap().device, "a");
    }

    #[tokio::test]
    async fn matching_events_are_published_and_a_laggard_skips() {
        let sender = broadcast::channel(4).0;
        let mut subscriptions = Subscriptions::new(sender.clone(), None);
        // Nothing subscribed: nothing follows the channel.
        sender.send(event("a")).ok();
        assert!(subscriptions.next().now_or_never().is_none());

        let filters = vec!["alarms/a".to_owned(), "devices/#".to_owned()];
        assert_eq!(
            subscriptions.subscribe(filters),
            [Subscription::Granted, Subscription::Unsupported]
        );
        sender.send(event("b")).unwrap();
        sender.send(event("a")).unwrap();
        assert_eq!(topic_of(subscriptions.next().await), "alarms/a");
        assert!(subscriptions.next().now_or_never().is_none());

        // Six events through a channel of four: the first two are skipped.
        for device in ["a", "a", "a", "a", "a", "a"] {
            sender.send(event(device)).unwrap();
        }
        for _ in 0..4 {
            assert_eq!(topic_of(subscriptions.next().await), "alarms/a");
        }
        assert!(subscriptions.next().now_or_never().is_none());

        let filters = ["alarms/a".to_owned(), "alarms/b".to_owned()];
        assert_eq!(subscriptions.unsubscribe(&filters), [true, false]);
        assert_eq!(sender.receiver_count(), 0, "the receiver was dropped");
        assert!(subscriptions.next().now_or_never().is_none());
    }
}
