//! The device endpoint's view of MQTT packets, for 3.1.1 and 5 alike: the few
//! packets a device sends and what it gets (answers, and alarms published at
//! QoS 0 to the filters it subscribed to), read and written by the
//! `mqttbytes` codecs that ship with rumqttc (`rumqttc::mqttbytes::v4`,
//! `rumqttc::v5::mqttbytes::v5`). No packet is parsed here by hand.

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;
use rumqttc::v5::mqttbytes::QoS as V5QoS;
use rumqttc::QoS;

/// The protocol a connection speaks, fixed by its CONNECT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// MQTT 3.1.1 (protocol level 4).
    V4,
    /// MQTT 5.
    V5,
}

/// What a device sends.
#[derive(Debug)]
pub enum Incoming {
    Connect {
        client_id: String,
        /// MQTT 3.1.1 clean session, MQTT 5 clean start.
        clean: bool,
        keep_alive_secs: u16,
        /// The device id, when the host requires tokens.
        username: Option<String>,
        /// The device's token.
        password: Option<Bytes>,
    },
    Publish {
        topic: String,
        qos: QoS,
        pkid: u16,
        payload: Bytes,
        /// MQTT 5 topic alias (we allow none: Topic Alias Maximum is 0).
        topic_alias: bool,
    },
    PubRel {
        pkid: u16,
    },
    /// The topic filters asked for; the QoS asked does not matter (alarms
    /// are delivered at QoS 0).
    Subscribe {
        pkid: u16,
        filters: Vec<String>,
    },
    Unsubscribe {
        pkid: u16,
        filters: Vec<String>,
    },
    PingReq,
    Disconnect,
    /// A packet a client never sends to a server (CONNACK, SUBACK, ...), or an
    /// acknowledgement of a publish we never sent.
    Unexpected(&'static str),
}

/// Why a PUBLISH was refused (MQTT 5 tells the device; 3.1.1 cannot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Stored in `_rejected`: the payload is not a document we can store.
    PayloadInvalid,
    /// No `[[trigger.mqtt]]` takes the topic.
    NoMatchingTrigger,
    /// The topic is another device's: not stored.
    NotAuthorized,
}

/// One filter's answer in a SUBACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subscription {
    /// Granted at QoS 0, whatever QoS was asked.
    Granted,
    /// Not a filter the endpoint serves (only `alarms/...` are).
    Unsupported,
    /// Not a valid topic filter (`a/#/b`, `a+`).
    Invalid,
    /// Another device's alarms.
    NotAuthorized,
}

/// What the endpoint sends.
#[derive(Debug)]
pub enum Outgoing {
    ConnAck {
        session_present: bool,
        /// The most unacked QoS 1/2 messages a v5 client may send (Receive Maximum).
        receive_maximum: u16,
        max_packet_size: u32,
    },
    /// CONNACK refusing an unsupported protocol level (3.1.1 return code 1).
    RefuseProtocol,
    /// CONNACK refusing the credentials: none or unknown (`bad_credentials`,
    /// 3.1.1 return code 4), or a token of another device (5).
    RefuseLogin {
        bad_credentials: bool,
    },
    PubAck {
        pkid: u16,
        refused: Option<Refusal>,
    },
    PubRec {
        pkid: u16,
        refused: Option<Refusal>,
    },
    PubComp {
        pkid: u16,
        /// MQTT 5: the PUBREL named no message of this session.
        unknown: bool,
    },
    /// One answer per filter, in the SUBSCRIBE's order.
    SubAck {
        pkid: u16,
        answers: Vec<Subscription>,
    },
    /// Whether each filter was subscribed to (MQTT 5 says so per filter).
    UnsubAck {
        pkid: u16,
        found: Vec<bool>,
    },
    /// An alarm, at QoS 0, not retained.
    Publish {
        topic: String,
        payload: Bytes,
    },
    PingResp,
    /// MQTT 5 only (3.1.1 has no server DISCONNECT: the connection just closes).
    Disconnect(v5::DisconnectReasonCode),
}

/// Decoding failed: the connection is closed, with `reason` for a v5 client.
#[derive(Debug)]
pub struct Malformed {
    pub error: String,
    pub reason: v5::DisconnectReasonCode,
    /// A CONNECT of a protocol level other than 4 or 5 (MQTT 3.1, say): it
    /// gets a CONNACK refusing the version before the connection closes.
    pub unsupported_version: bool,
}

/// Reads the first packet, which must be a CONNECT, and tells the version by
/// its protocol level. `Ok(None)`: more bytes are needed.
pub fn read_connect(
    buf: &mut BytesMut,
    max_size: usize,
) -> Result<Option<(Version, Incoming)>, Malformed> {
    // A v5 read of a copy tells the level without consuming anything.
    let mut probe = buf.clone();
    match v5::Packet::read(&mut probe, Some(max_size as u32)) {
        Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
        Err(rumqttc::v5::mqttbytes::Error::InvalidProtocolLevel(4)) => {
            match read(Version::V4, buf, max_size)? {
                Some(packet @ Incoming::Connect { .. }) => Ok(Some((Version::V4, packet))),
                Some(_) => Err(not_connect()),
                None => Ok(None),
            }
        }
        Err(rumqttc::v5::mqttbytes::Error::InvalidProtocolLevel(level)) => Err(Malformed {
            error: format!("MQTT protocol level {level} is not supported (4: 3.1.1, 5: 5.0)"),
            reason: v5::DisconnectReasonCode::ProtocolError,
            unsupported_version: true,
        }),
        Err(e) => Err(malformed(e.to_string())),
        Ok(_) => match read(Version::V5, buf, max_size)? {
            Some(packet @ Incoming::Connect { .. }) => Ok(Some((Version::V5, packet))),
            Some(_) => Err(not_connect()),
            None => Ok(None),
        },
    }
}

fn not_connect() -> Malformed {
    Malformed {
        error: "the first packet is not a CONNECT".into(),
        reason: v5::DisconnectReasonCode::ProtocolError,
        unsupported_version: false,
    }
}

fn malformed(error: String) -> Malformed {
    let reason = if error.contains("size limit") {
        v5::DisconnectReasonCode::PacketTooLarge
    } else {
        v5::DisconnectReasonCode::MalformedPacket
    };
    Malformed {
        error,
        reason,
        unsupported_version: false,
    }
}

/// Reads the next whole packet from `buf`; `Ok(None)`: more bytes are needed.
pub fn read(
    version: Version,
    buf: &mut BytesMut,
    max_size: usize,
) -> Result<Option<Incoming>, Malformed> {
    match version {
        Version::V4 => match v4::Packet::read(buf, max_size) {
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
            Err(e) => Err(malformed(e.to_string())),
            Ok(packet) => Ok(Some(from_v4(packet))),
        },
        Version::V5 => match v5::Packet::read(buf, Some(max_size as u32)) {
            Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
            Err(e) => Err(malformed(e.to_string())),
            Ok(packet) => Ok(Some(from_v5(packet))),
        },
    }
}

fn from_v4(packet: v4::Packet) -> Incoming {
    match packet {
        v4::Packet::Connect(c) => Incoming::Connect {
            client_id: c.client_id,
            clean: c.clean_session,
            keep_alive_secs: c.keep_alive,
            username: c.login.as_ref().map(|l| l.username.clone()),
            password: c.login.map(|l| Bytes::from(l.password)),
        },
        v4::Packet::Publish(p) => Incoming::Publish {
            topic: p.topic,
            qos: p.qos,
            pkid: p.pkid,
            payload: p.payload,
            topic_alias: false,
        },
        v4::Packet::PubRel(p) => Incoming::PubRel { pkid: p.pkid },
        v4::Packet::Subscribe(s) => Incoming::Subscribe {
            pkid: s.pkid,
            filters: s.filters.into_iter().map(|f| f.path).collect(),
        },
        v4::Packet::Unsubscribe(u) => Incoming::Unsubscribe {
            pkid: u.pkid,
            filters: u.topics,
        },
        v4::Packet::PingReq => Incoming::PingReq,
        v4::Packet::Disconnect => Incoming::Disconnect,
        v4::Packet::ConnAck(_) => Incoming::Unexpected("CONNACK"),
        v4::Packet::PubAck(_) => Incoming::Unexpected("PUBACK"),
        v4::Packet::PubRec(_) => Incoming::Unexpected("PUBREC"),
        v4::Packet::PubComp(_) => Incoming::Unexpected("PUBCOMP"),
        v4::Packet::SubAck(_) => Incoming::Unexpected("SUBACK"),
        v4::Packet::UnsubAck(_) => Incoming::Unexpected("UNSUBACK"),
        v4::Packet::PingResp => Incoming::Unexpected("PINGRESP"),
    }
}

fn from_v5(packet: v5::Packet) -> Incoming {
    match packet {
        v5::Packet::Connect(c, _will, login) => Incoming::Connect {
            client_id: c.client_id,
            clean: c.clean_start,
            keep_alive_secs: c.keep_alive,
            username: login.as_ref().map(|l| l.username.clone()),
            password: login.map(|l| Bytes::from(l.password)),
        },
        v5::Packet::Publish(p) => Incoming::Publish {
            // A topic that is not UTF-8 cannot match any filter.
            topic: String::from_utf8_lossy(&p.topic).into_owned(),
            qos: match p.qos {
                V5QoS::AtMostOnce => QoS::AtMostOnce,
                V5QoS::AtLeastOnce => QoS::AtLeastOnce,
                V5QoS::ExactlyOnce => QoS::ExactlyOnce,
            },
            pkid: p.pkid,
            payload: p.payload,
            topic_alias: p.properties.is_some_and(|p| p.topic_alias.is_some()),
        },
        v5::Packet::PubRel(p) => Incoming::PubRel { pkid: p.pkid },
        v5::Packet::Subscribe(s) => Incoming::Subscribe {
            pkid: s.pkid,
            filters: s.filters.into_iter().map(|f| f.path).collect(),
        },
        v5::Packet::Unsubscribe(u) => Incoming::Unsubscribe {
            pkid: u.pkid,
            filters: u.filters,
        },
        v5::Packet::PingReq(_) => Incoming::PingReq,
        v5::Packet::Disconnect(_) => Incoming::Disconnect,
        v5::Packet::Auth(_) => Incoming::Unexpected("AUTH"),
        v5::Packet::ConnAck(_) => Incoming::Unexpected("CONNACK"),
        v5::Packet::PubAck(_) => Incoming::Unexpected("PUBACK"),
        v5::Packet::PubRec(_) => Incoming::Unexpected("PUBREC"),
        v5::Packet::PubComp(_) => Incoming::Unexpected("PUBCOMP"),
        v5::Packet::SubAck(_) => Incoming::Unexpected("SUBACK"),
        v5::Packet::UnsubAck(_) => Incoming::Unexpected("UNSUBACK"),
        v5::Packet::PingResp(_) => Incoming::Unexpected("PINGRESP"),
    }
}

/// Appends `packet` to `buf`, in `version`'s encoding.
pub fn write(version: Version, packet: Outgoing, buf: &mut BytesMut) {
    let written = match version {
        Version::V4 => to_v4(packet).map(|p| {
            p.write(buf, usize::MAX)
                .map(drop)
                .map_err(|e| e.to_string())
        }),
        Version::V5 => Some(
            to_v5(packet)
                .write(buf, None)
                .map(drop)
                .map_err(|e| e.to_string()),
        ),
    };
    if let Some(Err(e)) = written {
        // Only our own small packets are written: this would be a bug here.
        tracing::error!(error = %e, "could not encode an MQTT packet");
    }
}

/// `None`: 3.1.1 has no such packet (a server DISCONNECT).
fn to_v4(packet: Outgoing) -> Option<v4::Packet> {
    Some(match packet {
        Outgoing::ConnAck {
            session_present, ..
        } => v4::Packet::ConnAck(v4::ConnAck::new(
            v4::ConnectReturnCode::Success,
            session_present,
        )),
        Outgoing::RefuseProtocol => v4::Packet::ConnAck(v4::ConnAck::new(
            v4::ConnectReturnCode::RefusedProtocolVersion,
            false,
        )),
        Outgoing::RefuseLogin { bad_credentials } => v4::Packet::ConnAck(v4::ConnAck::new(
            if bad_credentials {
                v4::ConnectReturnCode::BadUserNamePassword
            } else {
                v4::ConnectReturnCode::NotAuthorized
            },
            false,
        )),
        // 3.1.1 has no way to refuse a PUBLISH: a rejected message is in
        // `_rejected`, so it is acked all the same.
        Outgoing::PubAck { pkid, .. } => v4::Packet::PubAck(v4::PubAck::new(pkid)),
        Outgoing::PubRec { pkid, .. } => v4::Packet::PubRec(v4::PubRec::new(pkid)),
        Outgoing::PubComp { pkid, .. } => v4::Packet::PubComp(v4::PubComp::new(pkid)),
        Outgoing::SubAck { pkid, answers } => v4::Packet::SubAck(v4::SubAck::new(
            pkid,
            answers
                .into_iter()
                .map(|answer| match answer {
                    Subscription::Granted => v4::SubscribeReasonCode::Success(QoS::AtMostOnce),
                    // 3.1.1 has one refusal code, 0x80.
                    _ => v4::SubscribeReasonCode::Failure,
                })
                .collect(),
        )),
        Outgoing::UnsubAck { pkid, .. } => v4::Packet::UnsubAck(v4::UnsubAck::new(pkid)),
        Outgoing::Publish { topic, payload } => {
            v4::Packet::Publish(v4::Publish::from_bytes(topic, QoS::AtMostOnce, payload))
        }
        Outgoing::PingResp => v4::Packet::PingResp,
        Outgoing::Disconnect(_) => return None,
    })
}

fn to_v5(packet: Outgoing) -> v5::Packet {
    match packet {
        Outgoing::ConnAck {
            session_present,
            receive_maximum,
            max_packet_size,
        } => v5::Packet::ConnAck(v5::ConnAck {
            session_present,
            code: v5::ConnectReturnCode::Success,
            // What the endpoint is: it takes publishes (the retain flag is
            // ignored; no topic aliases) and offers subscriptions to alarms
            // (wildcards allowed; not shared, no subscription ids).
            properties: Some(v5::ConnAckProperties {
                session_expiry_interval: None,
                receive_max: Some(receive_maximum),
                max_qos: None,
                retain_available: None,
                max_packet_size: Some(max_packet_size),
                assigned_client_identifier: None,
                topic_alias_max: None,
                reason_string: None,
                user_properties: Vec::new(),
                wildcard_subscription_available: None,
                subscription_identifiers_available: Some(0),
                shared_subscription_available: Some(0),
                server_keep_alive: None,
                response_information: None,
                server_reference: None,
                authentication_method: None,
                authentication_data: None,
            }),
        }),
        Outgoing::RefuseProtocol => v5::Packet::ConnAck(v5::ConnAck {
            session_present: false,
            code: v5::ConnectReturnCode::UnsupportedProtocolVersion,
            properties: None,
        }),
        Outgoing::RefuseLogin { bad_credentials } => v5::Packet::ConnAck(v5::ConnAck {
            session_present: false,
            code: if bad_credentials {
                v5::ConnectReturnCode::BadUserNamePassword
            } else {
                v5::ConnectReturnCode::NotAuthorized
            },
            properties: None,
        }),
        Outgoing::PubAck { pkid, refused } => v5::Packet::PubAck(v5::PubAck {
            pkid,
            reason: match refused {
                None => v5::PubAckReason::Success,
                Some(Refusal::PayloadInvalid) => v5::PubAckReason::PayloadFormatInvalid,
                Some(Refusal::NoMatchingTrigger) => v5::PubAckReason::TopicNameInvalid,
                Some(Refusal::NotAuthorized) => v5::PubAckReason::NotAuthorized,
            },
            properties: None,
        }),
        Outgoing::PubRec { pkid, refused } => v5::Packet::PubRec(v5::PubRec {
            pkid,
            reason: match refused {
                None => v5::PubRecReason::Success,
                Some(Refusal::PayloadInvalid) => v5::PubRecReason::PayloadFormatInvalid,
                Some(Refusal::NoMatchingTrigger) => v5::PubRecReason::TopicNameInvalid,
                Some(Refusal::NotAuthorized) => v5::PubRecReason::NotAuthorized,
            },
            properties: None,
        }),
        Outgoing::PubComp { pkid, unknown } => v5::Packet::PubComp(v5::PubComp {
            pkid,
            reason: if unknown {
                v5::PubCompReason::PacketIdentifierNotFound
            } else {
                v5::PubCompReason::Success
            },
            properties: None,
        }),
        Outgoing::SubAck { pkid, answers } => v5::Packet::SubAck(v5::SubAck {
            pkid,
            return_codes: answers
                .into_iter()
                .map(|answer| match answer {
                    Subscription::Granted => v5::SubscribeReasonCode::Success(V5QoS::AtMostOnce),
                    Subscription::Unsupported => v5::SubscribeReasonCode::ImplementationSpecific,
                    Subscription::Invalid => v5::SubscribeReasonCode::TopicFilterInvalid,
                    Subscription::NotAuthorized => v5::SubscribeReasonCode::NotAuthorized,
                })
                .collect(),
            properties: None,
        }),
        Outgoing::UnsubAck { pkid, found } => v5::Packet::UnsubAck(v5::UnsubAck {
            pkid,
            reasons: found
                .into_iter()
                .map(|found| {
                    if found {
                        v5::UnsubAckReason::Success
                    } else {
                        v5::UnsubAckReason::NoSubscriptionExisted
                    }
                })
                .collect(),
            properties: None,
        }),
        Outgoing::Publish { topic, payload } => v5::Packet::Publish(v5::Publish::new(
            topic,
            V5QoS::AtMostOnce,
            payload,
            Some(v5::PublishProperties {
                // UTF-8 JSON.
                payload_format_indicator: Some(1),
                content_type: Some("application/json".into()),
                ..Default::default()
            }),
        )),
        Outgoing::PingResp => v5::Packet::PingResp(v5::PingResp),
        Outgoing::Disconnect(reason_code) => v5::Packet::Disconnect(v5::Disconnect {
            reason_code,
            properties: None,
        }),
    }
}
