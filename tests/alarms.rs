//! Inactivity alarms: raised once when a device stops sending for
//! `inactivity_timeout`, acknowledged, cleared when it sends again; open
//! alarms survive a restart without being raised twice.

use cromflag_tests::access::call;
use cromflag_tests::{get, insert_sample, Host};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use tempfile::TempDir;

fn start(data: &Path) -> Host {
    Host::start_inactive_after_2s(data)
}

fn alarms(host: &Host, query: &str) -> Vec<Value> {
    let answer = get(&host.url(&format!("/alarms{query}")));
    assert_eq!(answer.status, 200, "{}", answer.text());
    let listed = answer.json();
    let alarms = listed["alarms"].as_array().unwrap().clone();
    assert_eq!(listed["count"], alarms.len());
    alarms
}

/// Polls `/alarms{query}` until it lists `count` alarms, within `within`.
fn wait_for_alarms(host: &Host, query: &str, count: usize, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let listed = alarms(host, query);
        if listed.len() == count {
            return listed;
        }
        assert!(
            Instant::now() < deadline,
            "{count} alarms for {query} within {within:?}; have {listed:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_silent_device_raises_one_inactivity_alarm_cleared_when_it_sends_again() {
    let dir = TempDir::new().unwrap();
    let host = start(&dir.path().join("data"));
    let sent = chrono::Utc::now().timestamp_millis();
    assert_eq!(insert_sample(&host).status, 200);

    let open = wait_for_alarms(&host, "?device=sample", 1, Duration::from_secs(10));
    let alarm = &open[0];
    assert_eq!(alarm["rule"], "inactivity");
    assert_eq!(alarm["device"], "sample");
    assert_eq!(alarm["state"], "raised");
    assert_eq!(alarm["severity"], "warning");
    let raised = alarm["raised"].as_i64().unwrap();
    assert!(raised - sent >= 2000, "raised after the timeout: {alarm}");
    // The value that fired it: when the device was last seen.
    let last_seen: i64 = alarm["value"].as_str().unwrap().parse().unwrap();
    assert!(last_seen >= sent && last_seen < raised, "{alarm}");
    // One condition, one alarm: later evaluations raise no other.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(alarms(&host, "?device=sample").len(), 1);
    assert_eq!(alarms(&host, "?state=open").len(), 1);

    // Acknowledged by an operator, twice: the same answer.
    let id = alarm["id"].as_str().unwrap();
    let ack = |host: &Host| {
        let path = format!("/alarms/{}/ack", cromflag_tests::path_segment(id));
        call("POST", &host.url(&path), None, b"")
    };
    let acked = ack(&host);
    assert_eq!(acked.status, 200, "{}", acked.text());
    assert_eq!(acked.json()["state"], "acknowledged");
    let again = ack(&host);
    assert_eq!(again.json()["acknowledged"], acked.json()["acknowledged"]);

    // The device sends again: the alarm clears, and stays one alarm.
    assert_eq!(insert_sample(&host).status, 200);
    let cleared = wait_for_alarms(&host, "?state=cleared", 1, Duration::from_secs(5));
    assert_eq!(cleared[0]["id"], alarm["id"]);
    assert!(cleared[0]["cleared"].as_i64().unwrap() >= raised);
    assert_eq!(alarms(&host, "?state=open"), Vec::<Value>::new());
    // A cleared alarm cannot be acknowledged; an unknown one is not found.
    assert_eq!(ack(&host).status, 409);
    let unknown = call("POST", &host.url("/alarms/nothing/ack"), None, b"");
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    let bad = get(&host.url("/alarms?state=sleepy"));
    assert_eq!(bad.status, 400, "{}", bad.text());
}

#[test]
fn open_alarms_survive_a_restart_without_being_raised_twice() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let host = start(&data);
    assert_eq!(insert_sample(&host).status, 200);
    let open = wait_for_alarms(&host, "?state=open", 1, Duration::from_secs(10));
    host.stop();

    let host = start(&data);
    // Evaluations after the restart find the alarm open: no second one.
    std::thread::sleep(Duration::from_millis(3000));
    assert_eq!(alarms(&host, ""), open);
    // The last-seen time came back too: sending clears it.
    assert_eq!(insert_sample(&host).status, 200);
    let cleared = wait_for_alarms(&host, "?state=cleared", 1, Duration::from_secs(5));
    assert_eq!(cleared[0]["id"], open[0]["id"]);
}

/// MQTT delivery from the host's own endpoint: a subscriber to `alarms/...`
/// gets every alarm event on `alarms/<device>` at QoS 0, with the alarm as
/// `GET /alarms` lists it; other filters are refused, and where tokens are
/// required a device subscribes to its own alarms only.
mod mqtt_delivery {
    use super::{alarms, start, wait_for_alarms};
    use cromflag_tests::access::{bearer, call, cli, insert_as, token_of};
    use cromflag_tests::{insert_sample, repo_root, Host};
    use rumqttc::v5::mqttbytes::v5;
    use rumqttc::{
        Client, Event, MqttOptions, Packet, Publish, QoS, SubscribeFilter, SubscribeReasonCode,
    };
    use serde_json::Value;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};
    use tempfile::TempDir;

    /// A 3.1.1 client of the host's endpoint, logged in as `login` (device,
    /// token) when given, and the packets it receives (the channel closes
    /// with the connection).
    fn watcher(
        host: &Host,
        id: &str,
        login: Option<(&str, &str)>,
    ) -> (Client, mpsc::Receiver<Packet>) {
        let mut options = MqttOptions::new(id, "127.0.0.1", host.mqtt_port);
        options.set_keep_alive(Duration::from_secs(10));
        if let Some((device, token)) = login {
            options.set_credentials(device, token);
        }
        let (client, mut connection) = Client::new(options, 16);
        let (received, packets) = mpsc::channel();
        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(packet)) => {
                        if received.send(packet).is_err() {
                            return;
                        }
                    }
                    Ok(Event::Outgoing(_)) => {}
                    Err(e) => {
                        eprintln!("MQTT watcher: {e}");
                        return;
                    }
                }
            }
        });
        (client, packets)
    }

    /// Subscribes to `filters` (asking QoS 1) and returns the SUBACK's codes.
    fn subscribe(
        client: &Client,
        packets: &mpsc::Receiver<Packet>,
        filters: &[&str],
    ) -> Vec<SubscribeReasonCode> {
        let filters = filters
            .iter()
            .map(|f| SubscribeFilter::new(f.to_string(), QoS::AtLeastOnce));
        client.subscribe_many(filters).unwrap();
        next(packets, Duration::from_secs(10), |packet| match packet {
            Packet::SubAck(ack) => Some(ack.return_codes),
            _ => None,
        })
        .expect("a SUBACK")
    }

    /// The next packet `pick` takes, within `within`.
    fn next<T>(
        packets: &mpsc::Receiver<Packet>,
        within: Duration,
        pick: impl Fn(Packet) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            if let Some(found) = pick(packets.recv_timeout(left).ok()?) {
                return Some(found);
            }
        }
    }

    fn next_publish(packets: &mpsc::Receiver<Packet>, within: Duration) -> Option<Publish> {
        next(packets, within, |packet| match packet {
            Packet::Publish(publish) => Some(publish),
            _ => None,
        })
    }

    /// The alarm a PUBLISH carries, checking it is one of `device`'s at QoS 0.
    fn alarm_of(publish: &Publish, device: &str) -> Value {
        assert_eq!(publish.topic, format!("alarms/{device}"));
        assert_eq!(publish.qos, QoS::AtMostOnce, "alarms go out at QoS 0");
        assert!(!publish.retain);
        serde_json::from_slice(&publish.payload).expect("the payload is the alarm's JSON")
    }

    const GRANTED: SubscribeReasonCode = SubscribeReasonCode::Success(QoS::AtMostOnce);

    /// An MQTT 5 client logged in as `device`, subscribed to `filters`: the
    /// SUBACK's codes, and the alarm PUBLISHes it receives from then on.
    fn v5_watcher(
        host: &Host,
        device: &str,
        token: &str,
        filters: &[&str],
    ) -> (
        rumqttc::v5::Client,
        Vec<v5::SubscribeReasonCode>,
        mpsc::Receiver<v5::Publish>,
    ) {
        let mut options = rumqttc::v5::MqttOptions::new(device, "127.0.0.1", host.mqtt_port);
        options
            .set_credentials(device, token)
            .set_keep_alive(Duration::from_secs(10));
        let (client, mut connection) = rumqttc::v5::Client::new(options, 16);
        let filters = filters
            .iter()
            .map(|f| v5::Filter::new(*f, rumqttc::v5::mqttbytes::QoS::AtLeastOnce));
        client.subscribe_many(filters).unwrap();
        let (acked, ack) = mpsc::channel();
        let (received, publishes) = mpsc::channel();
        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(rumqttc::v5::Event::Incoming(v5::Packet::SubAck(sub))) => {
                        let _ = acked.send(sub.return_codes);
                    }
                    Ok(rumqttc::v5::Event::Incoming(v5::Packet::Publish(publish))) => {
                        if received.send(publish).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("MQTT 5 watcher: {e}");
                        return;
                    }
                }
            }
        });
        let codes = ack.recv_timeout(Duration::from_secs(10)).expect("a SUBACK");
        (client, codes, publishes)
    }

    #[test]
    fn a_subscriber_to_alarms_receives_each_alarm_event() {
        let dir = TempDir::new().unwrap();
        let host = start(&dir.path().join("data"));
        let (client, packets) = watcher(&host, "alarm-watcher", None);
        // Granted at QoS 0 whatever was asked; not a broker for anything else.
        let codes = subscribe(&client, &packets, &["alarms/#", "devices/+/telemetry", "#"]);
        assert_eq!(
            codes,
            [
                GRANTED,
                SubscribeReasonCode::Failure,
                SubscribeReasonCode::Failure
            ]
        );

        assert_eq!(insert_sample(&host).status, 200);
        let raised = next_publish(&packets, Duration::from_secs(15)).expect("the raised alarm");
        let alarm = alarm_of(&raised, "sample");
        assert_eq!(alarm["rule"], "inactivity");
        assert_eq!(alarm["device"], "sample");
        assert_eq!(alarm["state"], "raised");
        // The alarm as GET /alarms lists it, id and all.
        let listed = wait_for_alarms(&host, "?device=sample", 1, Duration::from_secs(5));
        assert_eq!(alarm, listed[0]);

        // Acknowledged, then cleared: each change is published too.
        let id = alarm["id"].as_str().unwrap();
        let path = format!("/alarms/{}/ack", cromflag_tests::path_segment(id));
        assert_eq!(call("POST", &host.url(&path), None, b"").status, 200);
        let acked = alarm_of(
            &next_publish(&packets, Duration::from_secs(5)).unwrap(),
            "sample",
        );
        assert_eq!(acked["id"], alarm["id"]);
        assert_eq!(acked["state"], "acknowledged");
        assert_eq!(insert_sample(&host).status, 200);
        let cleared = alarm_of(
            &next_publish(&packets, Duration::from_secs(5)).unwrap(),
            "sample",
        );
        assert_eq!(cleared["id"], alarm["id"]);
        assert_eq!(cleared["state"], "cleared");
        assert_eq!(cleared, alarms(&host, "?state=cleared")[0]);
    }

    #[test]
    fn where_tokens_are_required_a_device_subscribes_to_its_own_alarms_only() {
        let dir = TempDir::new().unwrap();
        let data = dir.path().join("data");
        let env = [
            ("SPIN_VARIABLE_ACCESS", "required"),
            ("SPIN_VARIABLE_ADMIN_TOKEN", "admin-s3cret"),
            ("SPIN_VARIABLE_INACTIVITY_TIMEOUT", "2s"),
        ];
        let host = Host::start_with_env(&repo_root().join("spin.toml"), &data, &[], &env);
        let a = token_of(&cli(&data, &["devices", "add", "a"], &[]));
        let b = token_of(&cli(&data, &["devices", "add", "b"], &[]));
        let reader = bearer(&token_of(&cli(&data, &["readers", "add", "ops"], &[])));

        let (client, packets) = watcher(&host, "a", Some(("a", &a)));
        let codes = subscribe(
            &client,
            &packets,
            &["alarms/a", "alarms/#", "alarms/b", "alarms/+"],
        );
        let refused = SubscribeReasonCode::Failure;
        assert_eq!(codes, [GRANTED, refused, refused, refused]);
        // MQTT 5 says why: another device's alarms, or not an alarm filter.
        let (_b_client, codes, b_alarms) = v5_watcher(
            &host,
            "b",
            &b,
            &["alarms/b", "alarms/a", "devices/b/telemetry"],
        );
        assert_eq!(
            codes,
            [
                v5::SubscribeReasonCode::Success(rumqttc::v5::mqttbytes::QoS::AtMostOnce),
                v5::SubscribeReasonCode::NotAuthorized,
                v5::SubscribeReasonCode::ImplementationSpecific,
            ]
        );

        // Both devices fall silent: a hears of its own alarm only.
        assert_eq!(insert_as(&host, "b", Some(&bearer(&b))).status, 200);
        assert_eq!(insert_as(&host, "a", Some(&bearer(&a))).status, 200);
        let raised = next_publish(&packets, Duration::from_secs(15)).expect("a's alarm");
        assert_eq!(alarm_of(&raised, "a")["state"], "raised");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let open = call("GET", &host.url("/alarms?state=open"), Some(&reader), b"");
            assert_eq!(open.status, 200, "{}", open.text());
            if open.json()["count"] == 2 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "both alarms raised: {}",
                open.text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let more = next_publish(&packets, Duration::from_millis(1500));
        assert!(more.is_none(), "only a's alarm reaches a: {more:?}");
        // b, over MQTT 5, got its own, said to be JSON.
        let b_alarm = b_alarms.try_recv().expect("b's alarm");
        assert_eq!(b_alarm.topic, "alarms/b");
        let properties = b_alarm.properties.expect("publish properties");
        assert_eq!(properties.payload_format_indicator, Some(1));
        assert_eq!(properties.content_type.as_deref(), Some("application/json"));
        let alarm: Value = serde_json::from_slice(&b_alarm.payload).unwrap();
        assert_eq!(
            (alarm["device"].as_str(), alarm["state"].as_str()),
            (Some("b"), Some("raised"))
        );
        assert!(b_alarms.try_recv().is_err(), "b got b's alarm only");
    }
}
