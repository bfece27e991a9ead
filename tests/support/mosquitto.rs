//! A real Mosquitto broker for the MQTT tests, on ports of its own (see
//! `ports`: Mosquitto cannot bind port 0) with a configuration of its own,
//! stopped when dropped. `scripts/test` installs the Debian package when it
//! is missing.

use crate::ports::{self, Started};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Mosquitto {
    child: Option<Child>,
    /// The port of its first listener: plain MQTT.
    pub port: u16,
    /// The ports of the listeners `start_with_listeners` added, in order.
    pub listener_ports: Vec<u16>,
    config: PathBuf,
    /// Its stderr, where it says why it stopped.
    log: PathBuf,
}

fn binary() -> PathBuf {
    [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect("mosquitto is not installed: run ./scripts/test, which installs it")
}

impl Mosquitto {
    /// Starts a broker whose files live in `dir`.
    pub fn start(dir: &Path) -> Mosquitto {
        Mosquitto::start_with(dir, "")
    }

    /// Starts a broker with `extra` configuration (authentication, say).
    pub fn start_with(dir: &Path, extra: &str) -> Mosquitto {
        Mosquitto::start_with_listeners(dir, extra, &[])
    }

    /// Starts a broker with `extra` configuration and one more listener on
    /// 127.0.0.1 per entry of `listeners`, with that entry's settings (TLS
    /// files, say); their ports are `listener_ports`.
    pub fn start_with_listeners(dir: &Path, extra: &str, listeners: &[&str]) -> Mosquitto {
        ports::start_on_free_ports("mosquitto", 1 + listeners.len(), |ports| {
            // `user root`: started as root (as CI runs), the broker would switch to
            // the `mosquitto` user and could not read the test's private files (TLS
            // keys); as anyone else it keeps its user anyway.
            let mut text = format!(
                "user root\nper_listener_settings false\nlistener {} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n{extra}\n",
                ports[0]
            );
            for (port, settings) in ports[1..].iter().zip(listeners) {
                text.push_str(&format!("listener {port} 127.0.0.1\n{settings}\n"));
            }
            let config = dir.join("mosquitto.conf");
            std::fs::write(&config, text).unwrap();
            let mut broker = Mosquitto {
                child: None,
                port: ports[0],
                listener_ports: ports[1..].to_vec(),
                config,
                log: dir.join("mosquitto.log"),
            };
            match broker.spawn() {
                Started::Listening(()) => Started::Listening(broker),
                Started::AddressInUse => Started::AddressInUse,
            }
        })
    }

    /// Stops the broker; `restart` brings it back on the same ports.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Restarts the broker on its ports. Clients hold its address, so it
    /// cannot move: should another process have taken a port meanwhile (none
    /// of ours would, see `ports`), the test fails here and says so.
    pub fn restart(&mut self) {
        self.stop();
        if let Started::AddressInUse = self.spawn() {
            panic!(
                "mosquitto could not bind port {} again: another process took it",
                self.port
            );
        }
    }

    /// Runs the broker and waits until its process listens on every port,
    /// or it has exited because a port was in use; any other failure panics
    /// with its log.
    fn spawn(&mut self) -> Started<()> {
        let log = std::fs::File::create(&self.log).unwrap();
        let mut child = Command::new(binary())
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting mosquitto");
        let pid = child.id();
        let ports: Vec<u16> = std::iter::once(self.port)
            .chain(self.listener_ports.iter().copied())
            .collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                if log.contains("Address already in use") {
                    return Started::AddressInUse;
                }
                panic!("mosquitto exited ({status}) on ports {ports:?}:\n{log}");
            }
            if ports.iter().all(|&port| ports::listens(pid, port)) {
                self.child = Some(child);
                return Started::Listening(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "mosquitto did not listen on {ports:?} within 10 s:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn address(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made
/// with the `openssl` command in `dir`: `ca.pem`, `server.pem`/`server.key`,
/// `client.pem`/`client.key`.
pub fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl is not installed: run ./scripts/test, which installs it");
        assert!(status.success(), "openssl {args:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    // Extensions make X.509 v3 certificates, the only version rustls takes.
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for name in ["server", "client"] {
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ]);
        let mut sign = vec![
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{name}.pem"),
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        sign.extend(["-extfile".to_owned(), format!("{name}.ext")]);
        openssl(&sign.iter().map(String::as_str).collect::<Vec<_>>());
    }
}
