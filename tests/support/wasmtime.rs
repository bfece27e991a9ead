//! `wasmtime serve` (wasmtime-cli 48, which `scripts/test` installs) running
//! a composed component from `target/portable/`, as a user runs it: the
//! platform with no cromflag in it. Killed when dropped.

use crate::ports::{listens, start_on_free_ports, Started};
use crate::repo_root;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct WasmtimeServe {
    child: Child,
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// The `wasmtime` command: on the PATH, or where `cargo install` put it.
pub fn wasmtime_bin() -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    let installed = cargo_home.map(|home| home.join("bin/wasmtime"));
    match installed {
        Some(path) if path.exists() => path,
        _ => PathBuf::from("wasmtime"),
    }
}

/// A composed component built by host/build.rs.
pub fn portable(name: &str) -> PathBuf {
    repo_root().join(format!("target/portable/{name}.wasm"))
}

impl WasmtimeServe {
    /// `wasmtime serve -Scli --addr 127.0.0.1:<port> --env K=V … <wasm>` on a
    /// free port, once it listens.
    pub fn start(wasm: &PathBuf, env: &[(&str, String)]) -> WasmtimeServe {
        start_on_free_ports("wasmtime serve", 1, |ports| {
            let dir = tempfile::tempdir().unwrap();
            let log = dir.path().join("wasmtime.log");
            let mut command = Command::new(wasmtime_bin());
            command
                .args(["serve", "-Scli", "--addr"])
                .arg(format!("127.0.0.1:{}", ports[0]));
            for (name, value) in env {
                command.arg("--env").arg(format!("{name}={value}"));
            }
            let file = std::fs::File::create(&log).unwrap();
            let child = command
                .arg(wasm)
                .stdout(Stdio::from(file.try_clone().unwrap()))
                .stderr(Stdio::from(file))
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "{} serve: {e} (scripts/test installs wasmtime-cli 48.0.8)",
                        wasmtime_bin().display()
                    )
                });
            let mut serve = WasmtimeServe {
                child,
                port: ports[0],
                log,
                _dir: dir,
            };
            // It compiles the component before it binds.
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                if listens(serve.child.id(), serve.port) {
                    return Started::Listening(serve);
                }
                if let Some(status) = serve.child.try_wait().unwrap() {
                    let log = serve.log();
                    if log.contains("in use") {
                        return Started::AddressInUse;
                    }
                    panic!("wasmtime serve exited ({status}):\n{log}");
                }
                assert!(
                    Instant::now() < deadline,
                    "wasmtime serve is not listening after 120 s:\n{}",
                    serve.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What it printed (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for WasmtimeServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
