//! The device endpoint: the host's own MQTT server (3.1.1 and 5), which
//! `cromflag up` runs on 127.0.0.1:1883 (`--mqtt-broker`). Devices publish to
//! it as to a broker; a QoS 1 PUBLISH is answered with PUBACK, a QoS 2 one
//! with PUBREC, only once its rows are committed or it is stored in
//! `_rejected`, and always in the order the PUBLISHes arrived (§4.6).
//!
//! It is a device gateway, not a broker (as ThingsBoard's or Azure IoT Hub's
//! MQTT endpoints are): it takes publishes to the topics of
//! `[[trigger.mqtt]]`, keeps no messages, and offers subscriptions to alarms
//! only. Committed rows reach other consumers through `/stream/<device>` or
//! the store.
//!
//! Alarms (`subscriptions`): a filter under `alarms/` (`alarms/#`,
//! `alarms/+`, `alarms/<device>`) is granted, any other refused, filter by
//! filter in the SUBACK; every alarm event (raised, acknowledged, cleared) is
//! then published to `alarms/<device>` with the alarm's JSON to each
//! connection with a matching filter. At QoS 0, granted whatever QoS was
//! asked (MQTT lets a server downgrade): alarms are also kept in the `alarms`
//! collection and listed by `GET /alarms`, where a subscriber that was away
//! or fell behind finds what it missed, and QoS 1 outbound would need
//! in-flight tracking and redelivery for messages that have a durable copy.
//! An alarm goes out as soon as its event arrives, between the answers, which
//! keep their arrival order (so a first alarm may precede the SUBACK still
//! queued behind PUBACKs, as MQTT allows).
//!
//! Per connection: the first packet must be a CONNECT (within
//! `CONNECT_TIMEOUT`); then packets are read and each QoS 1/2 publish is
//! handed to the trigger with its answer queued in arrival order; answers go
//! out from the front of that queue as they complete. At most `MAX_UNACKED`
//! answers are owed at once (MQTT 5's Receive Maximum); past that, and while
//! the trigger's workers are full, the connection stops reading.
//!
//! Sessions: a client that connects without a clean session keeps, across
//! reconnects, the QoS 2 packet ids it was sent PUBREC for, so that a
//! redelivered PUBLISH is not stored twice and its PUBREL completes. Sessions
//! live in memory: after a host restart a device's PUBREL for an unknown id
//! is simply completed (its message was committed before its PUBREC).
//!
//! Access: when the host requires tokens (see `access`), a CONNECT's user name
//! is the device id and its password the device's token; others are refused
//! in CONNACK. A device publishes only to its own topics (the trigger's
//! filters with `+` standing for its id): another topic gets PUBACK "not
//! authorized" in MQTT 5 and closes a 3.1.1 connection, which has no way to
//! refuse a message but silence, and an ack would promise it was stored.
//! It subscribes only to its own alarms, `alarms/<its id>` (other filters:
//! SUBACK 0x87 "not authorized" in MQTT 5, 0x80 in 3.1.1). A revoked token
//! stops its connection at the next publish or alarm (within the credentials
//! cache's second).
//!
//! Bad input closes the connection (MQTT 5: with a DISCONNECT saying why):
//! malformed packets, a packet over the size limit, a PUBLISH before CONNECT,
//! a topic with wildcards, a topic alias, QoS 3, a second CONNECT, silence
//! past the keep-alive. A payload over the host's limit but within the packet
//! limit is dead-lettered, like any bad payload.

use super::codec::{self, Incoming, Outgoing, Refusal, Subscription, Version};
use super::subscriptions::Subscriptions;
pub use super::subscriptions::{alarm_messages, AlarmMessage};
use super::{MqttTrigger, Outcome, Rejection};
use crate::access::Access;
use anyhow::{Context, Result};
use bytes::BytesMut;
use futures_util::stream::{FuturesOrdered, StreamExt};
use futures_util::FutureExt;
use rumqttc::v5::mqttbytes::v5::DisconnectReasonCode;
use rumqttc::QoS;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};

/// How long a new connection may take to send its CONNECT.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// QoS 1/2 publishes of one connection whose answer is owed, at most.
const MAX_UNACKED: usize = 1024;
/// How long writing an answer may take before the connection is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Sessions kept for clients that asked for one; past this, new clients get none.
const MAX_SESSIONS: usize = 100_000;

/// What one client keeps between connections.
#[derive(Default)]
struct Session {
    /// QoS 2 packet ids sent PUBREC and not yet released.
    released_pending: Arc<Mutex<HashSet<u16>>>,
    /// The connection using the session now, and how to close it.
    owner: Option<(u64, Arc<Notify>)>,
}

/// The endpoint's state: the trigger it feeds, the alarms it delivers and
/// the sessions it keeps.
struct Endpoint {
    trigger: Arc<MqttTrigger>,
    access: Arc<Access>,
    /// Every alarm message, for the connections that subscribe.
    alarms: tokio::sync::broadcast::Sender<Arc<AlarmMessage>>,
    sessions: Mutex<HashMap<String, Session>>,
    connections: AtomicU64,
    /// The largest packet read; bigger ones close the connection.
    max_packet: usize,
}

/// Binds `listen` and serves devices from a task, publishing the messages of
/// `alarms` (see `alarm_messages`) to subscribers; returns the bound address.
pub async fn start(
    listen: SocketAddr,
    trigger: Arc<MqttTrigger>,
    access: Arc<Access>,
    alarms: tokio::sync::broadcast::Sender<Arc<AlarmMessage>>,
    max_payload: usize,
) -> Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(listen).await.with_context(|| {
        format!("the MQTT endpoint cannot listen on {listen} (use --mqtt-broker off or another address)")
    })?;
    let addr = listener.local_addr()?;
    let endpoint = Arc::new(Endpoint {
        trigger,
        access,
        alarms,
        sessions: Mutex::new(HashMap::new()),
        connections: AtomicU64::new(0),
        // Room for a payload up to twice the limit (dead-lettered, its first
        // bytes kept) plus the topic and headers.
        max_packet: max_payload.saturating_mul(2).saturating_add(64 << 10),
    });
    tracing::info!("MQTT endpoint on mqtt://{addr}");
    let accepting = tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, usually: wait rather than spin.
                    tracing::warn!(error = %e, "MQTT accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let endpoint = endpoint.clone();
            tokio::spawn(async move {
                let _open = crate::metrics::metrics().mqtt_connection();
                if let Err(e) = endpoint.serve(stream).await {
                    tracing::debug!(%peer, error = %e, "MQTT connection closed");
                }
            });
        }
    });
    Ok((addr, accepting))
}

/// An answer owed to the device, in arrival order; `None` ends the connection.
type Owed = Pin<Box<dyn Future<Output = Option<Outgoing>> + Send>>;

/// One connection's reading and writing halves and its buffers.
struct Connection {
    stream: TcpStream,
    read: BytesMut,
    write: BytesMut,
    version: Version,
}

impl Connection {
    async fn send(&mut self, packet: Outgoing) -> Result<()> {
        codec::write(self.version, packet, &mut self.write);
        self.flush().await
    }

    async fn flush(&mut self) -> Result<()> {
        if self.write.is_empty() {
            return Ok(());
        }
        timeout(WRITE_TIMEOUT, self.stream.write_all(&self.write))
            .await
            .context("the client does not read")??;
        self.write.clear();
        Ok(())
    }

    /// Closes with `reason` (MQTT 5 says it in a DISCONNECT; 3.1.1 just closes).
    async fn close(mut self, reason: DisconnectReasonCode) {
        if self.version == Version::V5 {
            let _ = self.send(Outgoing::Disconnect(reason)).await;
        }
        let _ = self.stream.shutdown().await;
    }
}

impl Endpoint {
    async fn serve(self: Arc<Self>, stream: TcpStream) -> Result<()> {
        let mut read = BytesMut::with_capacity(4096);
        let mut refused = BytesMut::new();
        let mut stream = stream;
        // The CONNECT, and with it the version.
        let (version, connect) = timeout(CONNECT_TIMEOUT, async {
            loop {
                match codec::read_connect(&mut read, self.max_packet) {
                    Ok(Some(found)) => return Ok(found),
                    Ok(None) => {}
                    Err(bad) => {
                        if bad.unsupported_version {
                            codec::write(Version::V4, Outgoing::RefuseProtocol, &mut refused);
                            let _ = stream.write_all(&refused).await;
                        }
                        anyhow::bail!("before CONNECT: {}", bad.error)
                    }
                }
                if stream.read_buf(&mut read).await? == 0 {
                    anyhow::bail!("closed before CONNECT");
                }
            }
        })
        .await
        .context("no CONNECT in time")??;
        let mut conn = Connection {
            stream,
            read,
            write: BytesMut::with_capacity(1024),
            version,
        };
        let Incoming::Connect {
            client_id,
            clean,
            keep_alive_secs,
            username,
            password,
        } = connect
        else {
            unreachable!("read_connect returns a CONNECT")
        };
        let login = match self
            .access
            .login(username.as_deref(), password.as_deref())
            .await
        {
            Ok(device) => device.zip(password),
            Err(denied) => {
                tracing::info!(%client_id, ?username, reason = %denied.message, "MQTT CONNECT refused");
                let bad_credentials = denied.status != http::StatusCode::FORBIDDEN;
                conn.send(Outgoing::RefuseLogin { bad_credentials }).await?;
                let _ = conn.stream.shutdown().await;
                return Ok(());
            }
        };
        let id = self.connections.fetch_add(1, Ordering::Relaxed);
        let (session_present, released_pending, kicked) = self.open_session(&client_id, clean, id);
        tracing::debug!(%client_id, ?username, ?version, clean, "MQTT device connected");
        conn.send(Outgoing::ConnAck {
            session_present,
            receive_maximum: MAX_UNACKED as u16,
            max_packet_size: self.max_packet as u32,
        })
        .await?;

        let result = self
            .run(
                &mut conn,
                login.as_ref(),
                keep_alive_secs,
                &released_pending,
                &kicked,
            )
            .await;
        self.close_session(&client_id, clean, id);
        match result {
            Ok(None) => {
                let _ = conn.stream.shutdown().await;
                Ok(())
            }
            Ok(Some((reason, why))) => {
                tracing::debug!(%client_id, %why, "MQTT device disconnected");
                conn.close(reason).await;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The connection's packets until it ends: `Ok(None)` when the device
    /// disconnected, `Ok(Some(reason))` when the endpoint closes it.
    async fn run(
        &self,
        conn: &mut Connection,
        login: Option<&(String, bytes::Bytes)>,
        keep_alive_secs: u16,
        released_pending: &Arc<Mutex<HashSet<u16>>>,
        kicked: &Notify,
    ) -> Result<Option<(DisconnectReasonCode, String)>> {
        // MQTT: a server closes a connection silent for 1.5 keep-alives.
        let keep_alive =
            (keep_alive_secs > 0).then(|| Duration::from_millis(u64::from(keep_alive_secs) * 1500));
        let mut deadline = keep_alive.map(|k| Instant::now() + k);
        let mut owed: FuturesOrdered<Owed> = FuturesOrdered::new();
        let mut subscriptions = Subscriptions::new(
            self.alarms.clone(),
            login.map(|(device, _)| device.as_str()),
        );
        let mut told_alarms_only = false;
        loop {
            // Whole packets already read first.
            loop {
                if owed.len() >= MAX_UNACKED {
                    break;
                }
                let packet = match codec::read(conn.version, &mut conn.read, self.max_packet) {
                    Ok(Some(packet)) => packet,
                    Ok(None) => break,
                    Err(bad) => return Ok(Some((bad.reason, bad.error))),
                };
                deadline = keep_alive.map(|k| Instant::now() + k);
                match packet {
                    Incoming::Publish {
                        topic,
                        qos,
                        pkid,
                        payload,
                        topic_alias,
                    } => {
                        if topic_alias {
                            return Ok(Some((
                                DisconnectReasonCode::TopicAliasInvalid,
                                "topic aliases are not accepted".into(),
                            )));
                        }
                        if !is_topic_name(&topic) {
                            return Ok(Some((
                                DisconnectReasonCode::TopicNameInvalid,
                                format!("invalid topic name {topic:?}"),
                            )));
                        }
                        if let Some((device, token)) = login {
                            if !self.access.still_valid(token).await {
                                return Ok(Some(revoked(device)));
                            }
                            if !self.trigger.is_own_topic(device, &topic) {
                                tracing::info!(%device, %topic, "MQTT publish to another device's topic refused");
                                let refused = Some(Refusal::NotAuthorized);
                                let answer = match (conn.version, qos) {
                                    (_, QoS::AtMostOnce) => continue,
                                    (Version::V4, _) => {
                                        return Ok(Some((
                                            DisconnectReasonCode::NotAuthorized,
                                            format!("device `{device}` may not publish to {topic}"),
                                        )))
                                    }
                                    (Version::V5, QoS::AtLeastOnce) => {
                                        Outgoing::PubAck { pkid, refused }
                                    }
                                    (Version::V5, QoS::ExactlyOnce) => {
                                        Outgoing::PubRec { pkid, refused }
                                    }
                                };
                                owed.push_back(Box::pin(std::future::ready(Some(answer))));
                                continue;
                            }
                        }
                        if qos == QoS::ExactlyOnce
                            && released_pending
                                .lock()
                                .expect("session lock")
                                .contains(&pkid)
                        {
                            // A redelivery of a message already stored and PUBREC'd.
                            owed.push_back(Box::pin(std::future::ready(Some(Outgoing::PubRec {
                                pkid,
                                refused: None,
                            }))));
                            continue;
                        }
                        let outcome = self.trigger.submit(topic, payload).await?;
                        match qos {
                            QoS::AtMostOnce => {}
                            QoS::AtLeastOnce => owed.push_back(Box::pin(async move {
                                let outcome = outcome.await.ok()?;
                                Some(Outgoing::PubAck {
                                    pkid,
                                    refused: refusal(&outcome),
                                })
                            })),
                            QoS::ExactlyOnce => {
                                let pending = released_pending.clone();
                                owed.push_back(Box::pin(async move {
                                    let outcome = outcome.await.ok()?;
                                    pending.lock().expect("session lock").insert(pkid);
                                    Some(Outgoing::PubRec {
                                        pkid,
                                        refused: refusal(&outcome),
                                    })
                                }))
                            }
                        }
                    }
                    Incoming::PubRel { pkid } => {
                        let pending = released_pending.clone();
                        owed.push_back(Box::pin(async move {
                            let known = pending.lock().expect("session lock").remove(&pkid);
                            Some(Outgoing::PubComp {
                                pkid,
                                unknown: !known,
                            })
                        }));
                    }
                    Incoming::Subscribe { pkid, filters } => {
                        let answers = subscriptions.subscribe(filters);
                        if !told_alarms_only && answers.contains(&Subscription::Unsupported) {
                            tracing::info!("a client tried to subscribe to something else than alarms/<device>: the MQTT endpoint takes publishes and delivers alarms only (read rows from /stream/<device>)");
                            told_alarms_only = true;
                        }
                        owed.push_back(Box::pin(std::future::ready(Some(Outgoing::SubAck {
                            pkid,
                            answers,
                        }))));
                    }
                    Incoming::Unsubscribe { pkid, filters } => {
                        let found = subscriptions.unsubscribe(&filters);
                        owed.push_back(Box::pin(std::future::ready(Some(Outgoing::UnsubAck {
                            pkid,
                            found,
                        }))));
                    }
                    Incoming::PingReq => {
                        codec::write(conn.version, Outgoing::PingResp, &mut conn.write)
                    }
                    Incoming::Disconnect => {
                        // Answers still owed cannot be sent any more; the
                        // device resends those messages on its next connection.
                        return Ok(None);
                    }
                    Incoming::Connect { .. } => {
                        return Ok(Some((
                            DisconnectReasonCode::ProtocolError,
                            "a second CONNECT".into(),
                        )))
                    }
                    Incoming::Unexpected(what) => {
                        return Ok(Some((
                            DisconnectReasonCode::ProtocolError,
                            format!("unexpected {what} from a client"),
                        )))
                    }
                }
            }
            // Answers that are ready go out together.
            while let Some(Some(answer)) = owed.next().now_or_never() {
                match answer {
                    Some(packet) => codec::write(conn.version, packet, &mut conn.write),
                    None => {
                        return Ok(Some((
                            DisconnectReasonCode::ServerShuttingDown,
                            "the host is stopping".into(),
                        )))
                    }
                }
            }
            conn.flush().await?;

            let can_read = owed.len() < MAX_UNACKED;
            let silent = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            // Biased: bytes already waiting are read before silence is
            // judged, and silence is judged only while the connection reads
            // (while it waits on the store, the device's pings wait unread).
            tokio::select! {
                biased;
                () = kicked.notified() => {
                    return Ok(Some((DisconnectReasonCode::SessionTakenOver, "another connection took the session".into())));
                }
                Some(answer) = owed.next(), if !owed.is_empty() => match answer {
                    Some(packet) => codec::write(conn.version, packet, &mut conn.write),
                    None => return Ok(Some((DisconnectReasonCode::ServerShuttingDown, "the host is stopping".into()))),
                },
                // Written whenever it comes: the answers' order is the queue's.
                alarm = subscriptions.next() => {
                    if let Some((device, token)) = login {
                        if !self.access.still_valid(token).await {
                            return Ok(Some(revoked(device)));
                        }
                    }
                    codec::write(conn.version, alarm, &mut conn.write);
                }
                read = conn.stream.read_buf(&mut conn.read), if can_read => {
                    if read? == 0 {
                        return Ok(None);
                    }
                }
                () = silent, if can_read => {
                    return Ok(Some((DisconnectReasonCode::KeepAliveTimeout, "silent past its keep-alive".into())));
                }
            }
        }
    }

    /// Takes the client's session (a new one if `clean`, or if it has none),
    /// closing the connection that held it. Returns whether one was present,
    /// its QoS 2 state, and what tells this connection to close.
    fn open_session(
        &self,
        client_id: &str,
        clean: bool,
        connection: u64,
    ) -> (bool, Arc<Mutex<HashSet<u16>>>, Arc<Notify>) {
        let kicked = Arc::new(Notify::new());
        let mut sessions = self.sessions.lock().expect("sessions lock");
        // A client without an id gets a session of its own that ends with it.
        if client_id.is_empty() {
            return (false, Arc::default(), kicked);
        }
        let present = sessions.contains_key(client_id);
        if let Some(old) = sessions.get_mut(client_id) {
            if let Some((_, notify)) = old.owner.take() {
                notify.notify_one();
            }
        }
        if clean {
            sessions.remove(client_id);
        }
        if !sessions.contains_key(client_id) && sessions.len() >= MAX_SESSIONS {
            tracing::warn!(
                sessions = MAX_SESSIONS,
                "MQTT session table full: {client_id} gets no session"
            );
            return (false, Arc::default(), kicked);
        }
        let session = sessions.entry(client_id.to_owned()).or_default();
        session.owner = Some((connection, kicked.clone()));
        (present && !clean, session.released_pending.clone(), kicked)
    }

    /// Ends `connection`'s hold on the session; a clean session ends with it.
    fn close_session(&self, client_id: &str, clean: bool, connection: u64) {
        let mut sessions = self.sessions.lock().expect("sessions lock");
        let Some(session) = sessions.get_mut(client_id) else {
            return;
        };
        if session
            .owner
            .as_ref()
            .is_some_and(|(id, _)| *id == connection)
        {
            session.owner = None;
            if clean {
                sessions.remove(client_id);
            }
        }
    }
}

/// Why a connection whose token was revoked is closed.
fn revoked(device: &str) -> (DisconnectReasonCode, String) {
    (
        DisconnectReasonCode::NotAuthorized,
        format!("device `{device}`'s token was revoked"),
    )
}

/// What a refused message's answer says (MQTT 5 reason codes).
fn refusal(outcome: &Outcome) -> Option<Refusal> {
    match outcome {
        Outcome::Stored => None,
        Outcome::Rejected(Rejection::Invalid(_)) => Some(Refusal::PayloadInvalid),
        Outcome::Rejected(Rejection::NoTrigger) => Some(Refusal::NoMatchingTrigger),
    }
}

/// A topic a PUBLISH may name: not empty, no wildcards, no NUL.
fn is_topic_name(topic: &str) -> bool {
    !topic.is_empty() && !topic.contains(['+', '#', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_topics_have_no_wildcards() {
        assert!(is_topic_name("devices/a/telemetry"));
        assert!(!is_topic_name("devices/+/telemetry"));
        assert!(!is_topic_name("devices/#"));
        assert!(!is_topic_name(""));
        assert!(!is_topic_name("a\0b"));
    }
}
