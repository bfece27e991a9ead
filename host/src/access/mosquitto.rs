//! `cromflag devices export-mosquitto`: the device credentials as a Mosquitto
//! password file and ACL file, for deployments where devices publish to an
//! external Mosquitto that the host subscribes to.
//!
//! The password file holds each device's newest live token as Mosquitto's `$7$`
//! PBKDF2-SHA512 hash (made when the token was, since the token itself is not
//! kept), plus the host's own subscriber user. The ACL lets each user write
//! only its own telemetry topics (`pattern write devices/%u/telemetry`) and
//! the host read them all.

use crate::manifest::App;
use serde::Serialize;

/// The two files, and the devices that could not be written into them.
#[derive(Debug, Serialize)]
pub struct Export {
    pub passwd: String,
    pub acl: String,
    /// Ids Mosquitto cannot take as user names (a `:` ends the name in its
    /// password file), with why.
    pub skipped: Vec<String>,
}

/// The files for the devices' hashes (`(device, $7$ hash)`) and `app`'s MQTT
/// triggers and subscriber credentials.
pub fn export(devices: &[(String, String)], app: &App) -> Export {
    let mut passwd = String::new();
    let mut skipped = Vec::new();
    for (device, hash) in devices {
        if device.contains(':') || device.chars().any(char::is_whitespace) {
            skipped.push(format!(
                "{device}: a Mosquitto user name has no `:` or white space"
            ));
            continue;
        }
        passwd.push_str(&format!("{device}:{hash}\n"));
    }
    let filters: Vec<&str> = app.mqtt_triggers.iter().map(|t| t.topic.as_str()).collect();
    let mut acl = String::from(
        "# Written by `cromflag devices export-mosquitto`.\n\
         # Each device (user name = device id) may publish only to its own topics.\n",
    );
    for filter in &filters {
        acl.push_str(&format!("pattern write {}\n", filter.replace('+', "%u")));
    }
    let host = app.mqtt.as_ref().and_then(|m| {
        Some((
            m.username.clone().filter(|u| !u.is_empty())?,
            m.password.clone().unwrap_or_default(),
        ))
    });
    if let Some((user, password)) = host {
        passwd.push_str(&format!(
            "{user}:{}\n",
            super::token::mosquitto_hash(&password)
        ));
        acl.push_str("\n# The cromflag host's subscriber reads every telemetry topic.\n");
        acl.push_str(&format!("user {user}\n"));
        for filter in &filters {
            acl.push_str(&format!("topic read {filter}\n"));
        }
    }
    Export {
        passwd,
        acl,
        skipped,
    }
}
