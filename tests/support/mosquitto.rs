//! A real Mosquitto broker for the MQTT tests, on an ephemeral port with a
//! configuration of its own, stopped when dropped. `scripts/test` installs the
//! Debian package when it is missing.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Mosquitto {
    child: Option<Child>,
    pub port: u16,
    config: PathBuf,
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

    /// Starts a broker with `extra` configuration (more listeners, say).
    pub fn start_with(dir: &Path, extra: &str) -> Mosquitto {
        // The port is picked by the kernel, then handed to the broker.
        let port = crate::free_port();
        let config = dir.join("mosquitto.conf");
        // `user root`: started as root (as CI runs), the broker would switch to
        // the `mosquitto` user and could not read the test's private files (TLS
        // keys); as anyone else it keeps its user anyway.
        std::fs::write(
            &config,
            format!(
                "user root\nper_listener_settings false\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n{extra}"
            ),
        )
        .unwrap();
        let mut broker = Mosquitto {
            child: None,
            port,
            config,
        };
        broker.restart();
        broker
    }

    /// Stops the broker; `restart` brings it back on the same port.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new(binary())
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting mosquitto");
        self.child = Some(child);
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not start on {addr}"
            );
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
