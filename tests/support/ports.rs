//! Ports for the brokers that cannot bind port 0 and say which port they got:
//! Mosquitto reads `listener 0` as "a Unix socket", and rumqttd binds in a
//! thread of its own and reports only the address it was given (and that
//! through `tracing`). What does bind port 0 (the `cromflag` hosts' HTTP,
//! MQTT and WebAPI listeners) reports its port in its log instead; see `Host`.
//!
//! `start_on_free_ports` hands such a broker candidate ports until its own
//! bind succeeds: the broker's bind is the check, so no other process can take
//! a port between a check and the bind unnoticed. A broker is ready once the
//! kernel lists a socket of *its* process listening on each port
//! (`listens`), not merely once something answers there.
//!
//! Candidates come from below the kernel's ephemeral range, which port-0
//! binds and outgoing connections draw from, so no host or client of the
//! tests holds one; this process never hands out one twice.

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;

/// How a broker's start on some ports ended.
pub enum Started<B> {
    /// It listens on every port it was given.
    Listening(B),
    /// Its bind found a port in use: try others.
    AddressInUse,
}

/// Starts a broker with `start` on `count` candidate ports, and again on
/// fresh ones while one is in use; `what` names it in the panic when 50 tries
/// all met ports in use.
pub fn start_on_free_ports<B>(
    what: &str,
    count: usize,
    mut start: impl FnMut(&[u16]) -> Started<B>,
) -> B {
    for _ in 0..50 {
        let ports: Vec<u16> = (0..count).map(|_| candidate()).collect();
        if let Started::Listening(broker) = start(&ports) {
            return broker;
        }
    }
    panic!("{what}: 50 tries all found their ports in use");
}

/// A port below the ephemeral range that this process has not handed out.
fn candidate() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    // The ephemeral range starts at 32768 unless the kernel says otherwise.
    let ephemeral_start: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let low = ephemeral_start.saturating_sub(12_000).max(1024);
    let span = u64::from(ephemeral_start - low);
    let mut given = GIVEN.lock().unwrap();
    let given = given.get_or_insert_with(HashSet::new);
    loop {
        // RandomState seeds each hasher afresh: a random number without a crate.
        let random = RandomState::new().build_hasher().finish();
        let port = low + (random % span) as u16;
        if given.insert(port) {
            return port;
        }
    }
}

/// Whether process `pid` has a TCP socket listening on `port` (IPv4), as
/// `/proc/net/tcp` and the process's file descriptors tell.
pub fn listens(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    // `local_address` is `IP:PORT` in hex; `st` 0A is LISTEN; then the inode.
    let listening: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = u16::from_str_radix(fields.get(1)?.split(':').nth(1)?, 16).ok()?;
            if local_port != port || *fields.get(3)? != "0A" {
                return None;
            }
            fields.get(9).map(|inode| inode.to_string())
        })
        .collect();
    if listening.is_empty() {
        return false;
    }
    let Ok(descriptors) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    descriptors.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            let target = target.to_string_lossy();
            listening
                .iter()
                .any(|inode| target == format!("socket:[{inode}]"))
        })
    })
}
