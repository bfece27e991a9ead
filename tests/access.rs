//! Device identity and access, against the real binary: `cromflag devices` and
//! `cromflag readers` (with and without a running host), every kind of route
//! with no token, a wrong one, another device's, a reader's, a revoked one and
//! both tokens of a rotation; MQTT logins and own-topic publishes; the
//! Mosquitto export used by a real Mosquitto; the listener's header timeout
//! against slowloris clients; and no token in any log line.

use base64::Engine;
use cromflag_tests::access::{bearer, call, cli, insert_as, token_of};
use cromflag_tests::mosquitto::Mosquitto;
use cromflag_tests::{
    cromflag_bin, fetch_rows, get, insert_sample, repo_root, run_page_test, sample_of,
    wait_for_rows, wait_until, Host,
};
use rumqttc::{Client, ConnectReturnCode, Event, MqttOptions, Packet, QoS};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn the_article_curl_needs_a_device_token_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Added before the host runs: straight into the store.
    let token = token_of(&cli(&data, &["devices", "add", "sample"], &[]));
    assert!(token.starts_with("cfd_"), "{token}");
    let host = Host::start_with(
        &repo_root().join("spin.toml"),
        &data,
        &["--listen", "0.0.0.0:0"],
    );
    host.wait_for_log("(tokens required)", 1);

    let refused = insert_as(&host, "sample", None);
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert_eq!(refused.json()["error"], "a token is required");
    let challenges = refused.header_values("www-authenticate");
    assert!(
        challenges.iter().any(|c| c.starts_with("Bearer")),
        "{challenges:?}"
    );

    let stored = insert_as(&host, "sample", Some(&bearer(&token)));
    assert_eq!((stored.status, stored.text()), (200, "True".to_owned()));
    // Basic auth with the token as the password, as devices that only do Basic send it.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("sample:{token}"));
    let stored = insert_as(&host, "sample", Some(&format!("Basic {basic}")));
    assert_eq!(stored.status, 200, "{}", stored.text());

    let read = call("GET", &host.url("/fetch/sample"), None, b"");
    assert_eq!(read.status, 401, "{}", read.text());
    // A reader added while the host runs: through the host, with its control file.
    let reader = token_of(&cli(&data, &["readers", "add", "app"], &[]));
    let rows = call(
        "GET",
        &host.url("/fetch/sample"),
        Some(&bearer(&reader)),
        b"",
    );
    assert_eq!(rows.status, 200, "{}", rows.text());
    assert_eq!(
        rows.json().as_array().unwrap().len(),
        6,
        "one document, stored twice over the same keys"
    );
}

#[test]
fn on_loopback_the_original_api_needs_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(&dir.path().join("data"));
    host.wait_for_log("(open: no token needed)", 1);
    let stored = insert_as(&host, "sample", None);
    assert_eq!((stored.status, stored.text()), (200, "True".to_owned()));
    assert_eq!(get(&host.url("/fetch/sample")).status, 200);
}

/// A host that requires tokens on loopback, with devices `a` and `b`, an
/// all-devices reader and one limited to `a`.
struct Fleet {
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    host: Host,
    a: String,
    b: String,
    reader: String,
    reader_a: String,
}

const ADMIN: &str = "admin-s3cret";

fn fleet() -> Fleet {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [
        ("SPIN_VARIABLE_ACCESS", "required"),
        ("SPIN_VARIABLE_ADMIN_TOKEN", ADMIN),
    ];
    let host = Host::start_with_env(&repo_root().join("spin.toml"), &data, &[], &env);
    let a = token_of(&cli(&data, &["devices", "add", "a"], &[]));
    let b = token_of(&cli(&data, &["devices", "add", "b"], &[]));
    let reader = token_of(&cli(&data, &["readers", "add", "grafana"], &[]));
    let reader_a = token_of(&cli(
        &data,
        &["readers", "add", "only-a", "--device", "a"],
        &[],
    ));
    Fleet {
        _dir: dir,
        data,
        host,
        a,
        b,
        reader,
        reader_a,
    }
}

#[test]
fn every_route_checks_who_calls() {
    let f = fleet();
    let host = &f.host;
    // Writes: only the device's own token.
    assert_eq!(insert_as(host, "a", None).status, 401);
    assert_eq!(insert_as(host, "a", Some("Bearer cfd_wrong")).status, 401);
    assert_eq!(insert_as(host, "a", Some("Digest x")).status, 401);
    let other = insert_as(host, "a", Some(&bearer(&f.b)));
    assert_eq!(other.status, 403, "{}", other.text());
    assert_eq!(insert_as(host, "a", Some(&bearer(&f.reader))).status, 403);
    assert_eq!(
        insert_as(host, "a", Some(&bearer(ADMIN))).status,
        401,
        "the admin token is not a device's"
    );
    assert_eq!(insert_as(host, "a", Some(&bearer(&f.a))).status, 200);
    assert_eq!(insert_as(host, "b", Some(&bearer(&f.b))).status, 200);

    // Reads of one device, and of all.
    let one_device = ["/fetch/a", "/devices/a/latest", "/devices/a/schema"];
    let all_devices = ["/fetch/devices", "/reports", "/grafana/"];
    for path in one_device.iter().chain(&all_devices) {
        let url = host.url(path);
        let status = |auth: Option<&str>| call("GET", &url, auth, b"").status;
        assert_eq!(status(None), 401, "{path}");
        assert_eq!(status(Some("Bearer cfr_wrong")), 401, "{path}");
        assert_eq!(
            status(Some(&bearer(&f.a))),
            403,
            "{path}: a device token cannot read"
        );
        assert_eq!(status(Some(&bearer(&f.reader))), 200, "{path}");
        assert_eq!(status(Some(&bearer(ADMIN))), 200, "{path}: the admin reads");
        let limited = status(Some(&bearer(&f.reader_a)));
        if one_device.contains(path) {
            assert_eq!(limited, 200, "{path}");
        } else {
            assert_eq!(
                limited, 403,
                "{path}: a limited reader cannot read every device"
            );
        }
    }
    let b_rows = call(
        "GET",
        &host.url("/fetch/b"),
        Some(&bearer(&f.reader_a)),
        b"",
    );
    assert_eq!(b_rows.status, 403, "{}", b_rows.text());
    // The page is public; its data is not.
    assert_eq!(call("GET", &host.url("/"), None, b"").status, 200);
    // The stream takes the token as a query parameter (EventSource sends no headers).
    let stream = |query: &str| {
        let mut stream = TcpStream::connect(host.addr).unwrap();
        write!(
            stream,
            "GET /stream/a{query} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).unwrap();
        String::from_utf8_lossy(&head[9..12]).into_owned()
    };
    assert_eq!(stream(""), "401");
    assert_eq!(stream(&format!("?access_token={}", f.reader_a)), "200");
    assert_eq!(
        call(
            "GET",
            &host.url(&format!("/fetch/a?access_token={}", f.reader)),
            None,
            b""
        )
        .status,
        200,
        "the token parameter is taken out before the component's strict query parsing"
    );

    // Admin routes: the admin token only.
    let admin = |auth: Option<&str>| call("GET", &host.url("/admin/devices"), auth, b"");
    assert_eq!(admin(None).status, 401);
    assert_eq!(admin(Some(&bearer(&f.reader))).status, 401);
    let listed = admin(Some(&bearer(ADMIN)));
    assert_eq!(listed.status, 200);
    let ids: Vec<String> = listed.json()["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["a", "b"]);
    assert!(
        !listed.text().contains(&f.a),
        "a listing shows keys, never tokens"
    );

    // Nothing was stored by the refused writes: a has the rows of one insert.
    let rows = call("GET", &host.url("/fetch/a"), Some(&bearer(&f.reader)), b"");
    assert_eq!(rows.json().as_array().unwrap().len(), 6);

    for token in [&f.a, &f.b, &f.reader, &f.reader_a] {
        assert!(
            !host.log().contains(token.as_str()),
            "a token is in the log"
        );
    }
    assert!(!host.log().contains(ADMIN), "the admin token is in the log");
}

#[test]
fn rotation_overlaps_and_revocation_is_felt_within_a_second() {
    let f = fleet();
    let host = &f.host;
    let second = token_of(&cli(&f.data, &["devices", "rotate", "a"], &[]));
    // Both tokens of a rotation work.
    assert_eq!(insert_as(host, "a", Some(&bearer(&f.a))).status, 200);
    assert_eq!(insert_as(host, "a", Some(&bearer(&second))).status, 200);
    // A third token revokes the oldest: two live at most.
    let third_output = cli(&f.data, &["devices", "rotate", "a"], &[]);
    assert!(third_output.contains("revoked key"), "{third_output}");
    let third = token_of(&third_output);
    wait_until("the first token refused", || {
        (insert_as(host, "a", Some(&bearer(&f.a))).status == 401).then_some(())
    });
    assert_eq!(insert_as(host, "a", Some(&bearer(&second))).status, 200);
    assert_eq!(insert_as(host, "a", Some(&bearer(&third))).status, 200);

    // Revoke through the running host: refused within the cache's second.
    let revoked_at = Instant::now();
    cli(&f.data, &["devices", "revoke", "a"], &[]);
    loop {
        let status = insert_as(host, "a", Some(&bearer(&third))).status;
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            revoked_at.elapsed() < Duration::from_millis(1500),
            "a revoked token still works after {:?}",
            revoked_at.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let shown: serde_json::Value =
        serde_json::from_str(&cli(&f.data, &["devices", "show", "a"], &[])).unwrap();
    assert_eq!(shown["live_tokens"], 0);
    assert_eq!(shown["keys"].as_array().unwrap().len(), 3);
    // Removed devices are not listed; their rows stay.
    cli(&f.data, &["devices", "remove", "b"], &[]);
    let listed: serde_json::Value =
        serde_json::from_str(&cli(&f.data, &["devices", "list"], &[])).unwrap();
    let ids: Vec<&str> = listed["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a"]);
    wait_until("b's token refused", || {
        (insert_as(host, "b", Some(&bearer(&f.b))).status == 401).then_some(())
    });

    // A revoked reader reads no more.
    let read = |token: &str| call("GET", &host.url("/fetch/a"), Some(&bearer(token)), b"").status;
    assert_eq!(read(&f.reader), 200);
    cli(&f.data, &["readers", "revoke", "grafana"], &[]);
    wait_until("the revoked reader refused", || {
        (read(&f.reader) == 401).then_some(())
    });
    assert_eq!(read(&f.reader_a), 200, "the other reader reads on");
}

/// Connects to the endpoint as `user` with `password` and says how CONNECT went.
fn mqtt_connect(
    port: u16,
    user: &str,
    password: &str,
) -> (Client, rumqttc::Connection, ConnectReturnCode) {
    let mut options = MqttOptions::new(format!("test-{user}-{}", fastrand_id()), "127.0.0.1", port);
    options
        .set_credentials(user, password)
        .set_keep_alive(Duration::from_secs(10));
    let (client, mut connection) = Client::new(options, 16);
    for event in connection.iter() {
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => return (client, connection, ack.code),
            Ok(_) => {}
            Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
                return (client, connection, code)
            }
            Err(e) => panic!("MQTT: {e}"),
        }
    }
    unreachable!("the connection iterator never ends by itself")
}

fn fastrand_id() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[test]
fn mqtt_devices_log_in_and_publish_only_to_their_own_topic() {
    let f = fleet();
    let port = f.host.mqtt_port;
    let (_, _, code) = mqtt_connect(port, "a", "cfd_wrong");
    assert_eq!(code, ConnectReturnCode::BadUserNamePassword);
    let (_, _, code) = mqtt_connect(port, "a", &f.b);
    assert_eq!(
        code,
        ConnectReturnCode::NotAuthorized,
        "b's token is not a's"
    );

    let (client, mut connection, code) = mqtt_connect(port, "a", &f.a);
    assert_eq!(code, ConnectReturnCode::Success);
    client
        .publish(
            "devices/a/telemetry",
            QoS::AtLeastOnce,
            false,
            sample_of("a"),
        )
        .unwrap();
    let acked = connection.iter().find_map(|e| match e {
        Ok(Event::Incoming(Packet::PubAck(_))) => Some(true),
        Ok(_) => None,
        Err(_) => Some(false),
    });
    assert_eq!(acked, Some(true));
    // Another device's topic: 3.1.1 cannot refuse a message but by closing.
    client
        .publish(
            "devices/b/telemetry",
            QoS::AtLeastOnce,
            false,
            sample_of("b"),
        )
        .unwrap();
    let outcome = connection.iter().find_map(|e| match e {
        Ok(Event::Incoming(Packet::PubAck(_))) => Some("acked"),
        Ok(_) => None,
        Err(_) => Some("closed"),
    });
    assert_eq!(outcome, Some("closed"));
    let reader = bearer(&f.reader);
    let a_rows = call("GET", &f.host.url("/fetch/a"), Some(&reader), b"");
    assert_eq!(a_rows.json().as_array().unwrap().len(), 6);
    let b_rows = call("GET", &f.host.url("/fetch/b"), Some(&reader), b"");
    assert_eq!(
        b_rows.json().as_array().map_or(0, Vec::len),
        0,
        "{}",
        b_rows.text()
    );
    assert!(f
        .host
        .log()
        .contains("publish to another device's topic refused"));
}

#[test]
fn the_mosquitto_export_lets_a_real_mosquitto_check_devices() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let host_user = [
        ("SPIN_VARIABLE_MQTT_USERNAME", "cromflag-host"),
        ("SPIN_VARIABLE_MQTT_PASSWORD", "host-pw"),
    ];
    let device = token_of(&cli(&data, &["devices", "add", "sensor-1"], &[]));
    let passwd = dir.path().join("mosquitto.passwd");
    let acl = dir.path().join("mosquitto.acl");
    cli(
        &data,
        &[
            "devices",
            "export-mosquitto",
            "--passwd",
            passwd.to_str().unwrap(),
            "--acl",
            acl.to_str().unwrap(),
        ],
        &host_user,
    );
    let acl_text = std::fs::read_to_string(&acl).unwrap();
    assert!(
        acl_text.contains("pattern write devices/%u/telemetry"),
        "{acl_text}"
    );
    assert!(std::fs::read_to_string(&passwd)
        .unwrap()
        .starts_with("sensor-1:$7$101$"));

    let broker = Mosquitto::start_with(
        dir.path(),
        &format!(
            "allow_anonymous false\npassword_file {}\nacl_file {}\n",
            passwd.display(),
            acl.display()
        ),
    );
    let mut env = host_user.to_vec();
    let address = broker.address();
    env.push(("SPIN_VARIABLE_MQTT_ADDRESS", &address));
    let host = Host::start_with_env(&repo_root().join("spin.toml"), &data, &[], &env);
    host.wait_for_log("subscribed", 1);

    let port: u16 = address.rsplit(':').next().unwrap().parse().unwrap();
    let (_, _, code) = mqtt_connect(port, "sensor-1", "cfd_wrong");
    // Mosquitto answers a wrong password with 3.1.1's "not authorized".
    assert_eq!(
        code,
        ConnectReturnCode::NotAuthorized,
        "Mosquitto checks the $7$ hash"
    );
    let (client, mut connection, code) = mqtt_connect(port, "sensor-1", &device);
    assert_eq!(
        code,
        ConnectReturnCode::Success,
        "Mosquitto takes the device's token"
    );
    // Mosquitto drops what the ACL forbids (and acks it: 3.1.1 has no refusal).
    client
        .publish(
            "devices/intruder/telemetry",
            QoS::AtLeastOnce,
            false,
            sample_of("intruder"),
        )
        .unwrap();
    client
        .publish(
            "devices/sensor-1/telemetry",
            QoS::AtLeastOnce,
            false,
            sample_of("sensor-1"),
        )
        .unwrap();
    let mut acks = 0;
    for event in connection.iter() {
        if let Ok(Event::Incoming(Packet::PubAck(_))) = event {
            acks += 1;
            if acks == 2 {
                break;
            }
        }
    }
    let rows = wait_for_rows(&host, "sensor-1", 6);
    assert_eq!(rows.len(), 6);
    assert!(fetch_rows(&host, "intruder").unwrap_or_default().is_empty());
    drop(broker);
}

#[test]
fn slowloris_clients_are_cut_off_while_requests_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start_with(
        &repo_root().join("spin.toml"),
        &dir.path().join("data"),
        &["--header-timeout-secs", "2"],
    );
    let started = Instant::now();
    let mut drippers: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = TcpStream::connect(host.addr).unwrap();
            s.write_all(b"GET /fetch/devices HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s
        })
        .collect();
    // They drip a header line now and then; real requests are answered while
    // every one of them is still connected (checked after each answer, so
    // this holds however fast the machine is, up to the header timeout).
    let still_connected = |s: &TcpStream| {
        s.set_nonblocking(true).unwrap();
        let held =
            matches!(s.peek(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
        s.set_nonblocking(false).unwrap();
        held
    };
    for served in 0..5 {
        for s in &mut drippers {
            let _ = s.write_all(b"X-Drip: 1\r\n");
        }
        assert_eq!(insert_sample(&host).status, 200);
        assert!(
            drippers.iter().all(still_connected),
            "the header timeout cut the slow clients before request {} was answered ({:?})",
            served + 1,
            started.elapsed()
        );
    }
    // Every dripping connection is closed by the host at its header timeout
    // (read gives EOF or the 408 hyper sends before closing).
    for mut s in drippers {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = Vec::new();
        let closed = s.read_to_end(&mut buf).is_ok();
        assert!(
            closed,
            "a slowloris connection is still open after {:?}",
            started.elapsed()
        );
        assert!(
            buf.is_empty() || buf.starts_with(b"HTTP/1.1 408"),
            "{}",
            String::from_utf8_lossy(&buf)
        );
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn tokens_are_checked_before_any_body_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("SPIN_VARIABLE_ACCESS", "required")];
    let host = Host::start_with_env(
        &repo_root().join("spin.toml"),
        &dir.path().join("data"),
        &[],
        &env,
    );
    // Headers promising 60 MiB, and no body at all: the answer comes at once.
    let mut stream = TcpStream::connect(host.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "POST /insert/a HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 62914560\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    stream
        .read_exact(&mut head)
        .expect("an answer without a body sent");
    assert_eq!(&head, b"HTTP/1.1 401");
}

/// The built-in page on a host that requires tokens: it asks for a reader
/// token, signs in through its form, and charts what the device inserts (its
/// live stream authenticated by the token as a query parameter).
#[test]
fn the_page_signs_in_with_a_reader_token() {
    let f = fleet();
    let sample = token_of(&cli(&f.data, &["devices", "add", "sample"], &[]));
    let screenshot = repo_root().join("target/ui-screenshot-signed-in.png");
    run_page_test(
        &f.host,
        &screenshot,
        &[
            ("CROMFLAG_READ_TOKEN", &f.reader),
            ("CROMFLAG_DEVICE_TOKEN", &sample),
        ],
    );
    assert!(!f.host.log().contains(&f.reader), "the token is in the log");
}

/// The value of `key: value` in the shipped datasource provisioning, with
/// Grafana's `${VAR}` expansion of `CROMFLAG_READ_TOKEN` applied.
fn provisioned(key: &str, read_token: &str) -> String {
    let text =
        std::fs::read_to_string(repo_root().join("grafana/provisioning/datasources/cromflag.yaml"))
            .unwrap();
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in the provisioning"));
    line.trim().replace("${CROMFLAG_READ_TOKEN}", read_token)
}

/// Grafana's datasources as provisioned reach a host that requires tokens:
/// the JSON datasource's proxy adds `httpHeaderName1: httpHeaderValue1`, and
/// Infinity with `auth_method: bearerToken` sends `Authorization: Bearer
/// <bearerToken>`.
#[test]
fn the_provisioned_grafana_datasources_send_a_read_token() {
    let f = fleet();
    let name = provisioned("httpHeaderName1", &f.reader);
    let value = provisioned("httpHeaderValue1", &f.reader);
    assert_eq!(name, "Authorization");
    let search = ureq::post(&f.host.url("/grafana/search"))
        .set(&name, &value)
        .set("Content-Type", "application/json")
        .send_string(r#"{"target":""}"#)
        .expect("the JSON datasource's search is answered");
    assert_eq!(search.status(), 200);

    assert_eq!(provisioned("auth_method", &f.reader), "bearerToken");
    let infinity = bearer(&provisioned("bearerToken", &f.reader));
    let devices = call("GET", &f.host.url("/fetch/devices"), Some(&infinity), b"");
    assert_eq!(devices.status, 200, "{}", devices.text());
}

/// MQTT 5 can refuse one message: a publish to another device's topic gets
/// PUBACK 0x87 (not authorized), is not stored, and the connection goes on.
#[test]
fn mqtt5_devices_are_told_another_topic_is_not_theirs() {
    use cromflag_tests::mqtt::v5_puback_reasons;
    use rumqttc::v5::mqttbytes::v5::PubAckReason;
    use rumqttc::v5::mqttbytes::QoS as V5QoS;
    use rumqttc::v5::{Client as V5Client, MqttOptions as V5Options};
    let f = fleet();
    let mut options = V5Options::new("v5-a", "127.0.0.1", f.host.mqtt_port);
    options
        .set_credentials("a", f.a.as_str())
        .set_keep_alive(Duration::from_secs(10));
    let (client, mut connection) = V5Client::new(options, 10);
    for topic in ["devices/b/telemetry", "devices/a/telemetry"] {
        let device = topic.split('/').nth(1).unwrap();
        client
            .publish(topic, V5QoS::AtLeastOnce, false, sample_of(device))
            .unwrap();
    }
    let reasons = v5_puback_reasons(&mut connection, 2);
    assert_eq!(
        reasons,
        [PubAckReason::NotAuthorized, PubAckReason::Success]
    );
    let reader = bearer(&f.reader);
    let b_rows = call("GET", &f.host.url("/fetch/b"), Some(&reader), b"");
    assert_eq!(b_rows.json().as_array().map_or(0, Vec::len), 0);
    let a_rows = call("GET", &f.host.url("/fetch/a"), Some(&reader), b"");
    assert_eq!(a_rows.json().as_array().unwrap().len(), 6);
}

/// Starts `cromflag up` with `args` and expects it to refuse to start: its
/// stderr once it has exited on its own (within a minute).
fn up_refused(data: &std::path::Path, args: &[&str]) -> String {
    let mut child = Command::new(cromflag_bin())
        .arg("up")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .arg("--manifest")
        .arg(repo_root().join("spin.toml"))
        .arg("--cache-dir")
        .arg(repo_root().join("target/test-compile-cache"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success());
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return stderr;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("cromflag up {args:?} kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_webapi_refuses_admin_admin_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = up_refused(
        &dir.path().join("data"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--mqtt-broker",
            "off",
            "--webapi",
            "0.0.0.0:0",
        ],
    );
    assert!(stderr.contains("admin/admin is refused"), "{stderr}");
}

/// At most `--max-connections` are served at once: another waits to be
/// accepted until one closes, then is answered.
#[test]
fn connections_past_the_cap_wait_their_turn() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start_with(
        &repo_root().join("spin.toml"),
        &dir.path().join("data"),
        &["--max-connections", "2"],
    );
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(host.addr).unwrap())
        .collect();
    // The kernel completes the handshake; the host does not take the connection yet.
    let mut waiting = TcpStream::connect(host.addr).unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(800)))
        .unwrap();
    write!(waiting, "GET /fetch/devices HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut head = [0u8; 12];
    assert!(
        waiting.read_exact(&mut head).is_err(),
        "answered past the cap"
    );
    drop(held);
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    waiting
        .read_exact(&mut head)
        .expect("answered once a slot is free");
    assert_eq!(&head, b"HTTP/1.1 200");
}

/// A body that stops coming is answered 408 after `--body-timeout-secs`.
#[test]
fn a_stalled_body_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start_with(
        &repo_root().join("spin.toml"),
        &dir.path().join("data"),
        &["--body-timeout-secs", "1"],
    );
    let mut stream = TcpStream::connect(host.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    write!(
        stream,
        "POST /insert/sample HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"deviceinfo\""
    )
    .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).expect("an answer");
    assert_eq!(&head, b"HTTP/1.1 408");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(insert_sample(&host).status, 200, "the host goes on");
}

/// At the rates devices reach, with tokens required: several devices, each
/// logged in with its own token, publish thousands of QoS 1 messages as fast
/// as their connections take them; every PUBACKed message is stored, once.
#[test]
fn a_burst_of_logged_in_devices_stores_every_acked_message() {
    const MESSAGES: usize = 2_000;
    let f = fleet();
    let devices: Vec<(String, String)> = (0..4)
        .map(|d| {
            let id = format!("burst{d}");
            let token = token_of(&cli(&f.data, &["devices", "add", &id], &[]));
            (id, token)
        })
        .collect();
    let bursts: Vec<_> = devices
        .iter()
        .map(|(id, token)| {
            let topic = format!("devices/{id}/telemetry");
            cromflag_tests::mqtt::publish_burst_as(
                f.host.mqtt_port,
                &format!("client-{id}"),
                Some((id, token)),
                MESSAGES,
                move |i| {
                    let row = serde_json::json!({
                        "deviceinfo": { "batt_lvl": 50 },
                        "tsdata": [{ "timestamp": 1_700_000_000_000i64 + i as i64, "seq": i }],
                    });
                    (topic.clone(), row.to_string().into_bytes())
                },
            )
        })
        .collect();
    let reader = bearer(&f.reader);
    for ((id, _), burst) in devices.iter().zip(bursts) {
        let acked = burst.join().unwrap();
        assert_eq!(acked.len(), MESSAGES, "{id}: PUBACKs");
        let url = f.host.url(&format!("/fetch/{id}?limit=100000"));
        let rows = call("GET", &url, Some(&reader), b"").json();
        let mut seqs: Vec<i64> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["seq"].as_i64().unwrap())
            .collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (0..MESSAGES as i64).collect::<Vec<_>>(), "{id}");
    }
}
