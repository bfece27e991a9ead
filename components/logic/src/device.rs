//! Device ids and the containers that hold their rows: the one place where an
//! id from a URL path or an MQTT topic becomes a container name, and back.
//!
//! A device id is any UTF-8 text of 1 to 128 bytes without `/`, `+`, `#`, NUL
//! or control characters (a UUID, a MAC address, `capteur-été`), while a
//! GridDB container name is ASCII letters, digits and `_`, not starting with a
//! digit, and GridDB matches it case-insensitively. So:
//!
//! - An id keeps its literal name when it is a valid container name with no
//!   ASCII upper-case letter that cannot be taken for one of the stack's own
//!   containers: not `devices`, `messages` or `reports`, not starting with `_`
//!   (`_rejected`, `_cron_runs`, `_credentials`, …) and not starting with
//!   [`ENCODED_PREFIX`]. Data the original Flask collector wrote for `sample`
//!   stays where it is.
//! - Every other id is `b32_` and the lower-case RFC 4648 base32 of its UTF-8
//!   bytes, unpadded: injective, ASCII lower case only (so GridDB's
//!   case-insensitive matching cannot merge two of them: `Sensor1` and
//!   `sensor1` are two containers), and at most 4 + 205 characters, within the
//!   256 that `is_valid_container_name` allows (GridDB allows 16,384).
//!
//! No literal name starts with the prefix and every encoded one does, so the
//! two sets cannot meet; both are lower case, so case-insensitive matching
//! cannot make them meet either. The mapping is invertible ([`id_of`]): the
//! `devices` collection records only the id (as the Flask collector did) and
//! nothing has to be kept in step with it, since each of the two names is a
//! function of the other.
//!
//! `/fetch/<name>` also reads a few of the stack's own containers by name
//! ([`Fetched`]); those names are refused as device ids, so that every
//! accepted id can be read back.

use crate::error::ApiError;
use crate::model::is_valid_container_name;
use data_encoding::Encoding;
use serde_json::json;
use std::sync::OnceLock;

/// The longest device id, in UTF-8 bytes.
pub const MAX_ID_BYTES: usize = 128;
/// What starts the container name of every id that cannot keep its own.
pub const ENCODED_PREFIX: &str = "b32_";
/// The stack's own containers that `/fetch/<name>` reads by their name: the
/// device metadata, the insert log, the reports, MQTT dead letters (the
/// host's `triggers::mqtt::REJECTED`) and cron runs (`triggers::cron::RUNS`).
/// Other internal containers, such as credentials, are not readable there.
pub const READABLE_CONTAINERS: [&str; 5] =
    ["devices", "messages", "reports", "_rejected", "_cron_runs"];

/// Names no device container may take literally, besides anything starting
/// with `_` (the host's internal containers) or with [`ENCODED_PREFIX`].
const SYSTEM_CONTAINERS: [&str; 3] = ["devices", "messages", "reports"];

/// Lower-case RFC 4648 base32 without padding: container names are matched
/// case-insensitively, so the encoding must not tell letters apart by case.
fn base32() -> &'static Encoding {
    static ENCODING: OnceLock<Encoding> = OnceLock::new();
    ENCODING.get_or_init(|| {
        let mut spec = data_encoding::Specification::new();
        spec.symbols.push_str("abcdefghijklmnopqrstuvwxyz234567");
        spec.encoding().expect("32 distinct symbols make a base32")
    })
}

/// Checks a device id; a 400 naming the id and what is wrong with it.
pub fn check(id: &str) -> Result<(), ApiError> {
    let refuse = |reason: String| {
        Err(ApiError::bad_request(
            "invalid device id",
            json!({ "device": id, "reason": reason }),
        ))
    };
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return refuse(format!(
            "a device id is 1 to {MAX_ID_BYTES} bytes of UTF-8, not {}",
            id.len()
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|&c| matches!(c, '/' | '+' | '#') || c.is_control())
    {
        return refuse(format!(
            "a device id holds no `/`, `+`, `#`, NUL or control character (found {c:?})"
        ));
    }
    if READABLE_CONTAINERS.contains(&id) {
        return refuse(format!(
            "`{id}` is one of the stack's own containers (`/fetch/{id}` reads it)"
        ));
    }
    Ok(())
}

/// The container that holds the rows of device `id`.
pub fn container_of(id: &str) -> String {
    if keeps_its_name(id) {
        id.to_owned()
    } else {
        format!("{ENCODED_PREFIX}{}", base32().encode(id.as_bytes()))
    }
}

/// The device whose rows `container` holds, if it is a device container's name
/// (the inverse of [`container_of`]).
pub fn id_of(container: &str) -> Option<String> {
    match container.strip_prefix(ENCODED_PREFIX) {
        Some(encoded) => {
            let bytes = base32().decode(encoded.as_bytes()).ok()?;
            String::from_utf8(bytes)
                .ok()
                .filter(|id| !keeps_its_name(id))
        }
        None => keeps_its_name(container).then(|| container.to_owned()),
    }
}

fn keeps_its_name(id: &str) -> bool {
    is_valid_container_name(id)
        && !id.bytes().any(|b| b.is_ascii_uppercase())
        && !id.starts_with('_')
        && !id.starts_with(ENCODED_PREFIX)
        && !SYSTEM_CONTAINERS.contains(&id)
}

/// A path segment as the id or name it carries: `%XX` escapes decoded (a
/// Unicode id arrives as `capteur-%C3%A9t%C3%A9`), `+` left as it is (that is
/// a query string's convention, not a path's).
pub fn from_path_segment(segment: &str) -> Result<String, ApiError> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| {
            ApiError::bad_request(
                "invalid device id",
                json!({ "device": segment, "reason": "the percent-decoded path segment is not UTF-8" }),
            )
        })
}

/// Characters a path segment keeps as they are (RFC 3986's unreserved ones,
/// as `encodeURIComponent` leaves them, less its `!'()*`).
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `text` as one path segment: everything but unreserved characters
/// percent-encoded (UTF-8), so that `from_path_segment` gives it back.
pub fn to_path_segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, PATH_SEGMENT).to_string()
}

/// What `/fetch/<name>` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fetched<'a> {
    /// One of [`READABLE_CONTAINERS`], by its name.
    Container(&'static str),
    /// The rows of a device, by its id.
    Device(&'a str),
}

impl<'a> Fetched<'a> {
    /// Reads `name` (already percent-decoded) as a readable container or a device id.
    pub fn of(name: &'a str) -> Result<Fetched<'a>, ApiError> {
        match READABLE_CONTAINERS.iter().find(|&&c| c == name) {
            Some(container) => Ok(Fetched::Container(container)),
            None => check(name).map(|()| Fetched::Device(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Ids of every kind: literal names, their case variants, ids that look
    /// like internal or encoded names, Unicode, and the longest.
    fn ids() -> Vec<String> {
        let mut ids: Vec<String> = [
            "sample",
            "Sample",
            "SAMPLE",
            "sensor1",
            "Sensor1",
            "sEnSoR1",
            "a",
            "A",
            "_rejected_",
            "_Rejected",
            "_x",
            "Devices",
            "DEVICES",
            "devices2",
            "Messages",
            "report",
            "b32_",
            "b32_mfrgg",
            "B32_mfrgg",
            "b32",
            "1sensor",
            "123e4567-e89b-12d3-a456-426614174000",
            "123E4567-E89B-12D3-A456-426614174000",
            "00:1A:2B:3C:4D:5E",
            "00:1a:2b:3c:4d:5e",
            "capteur-été",
            "CAPTEUR-ÉTÉ",
            "датчик",
            "温度計",
            "🌡️ kitchen",
            "sensor.kitchen",
            "a b",
            "x%41",
            " ",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        ids.push("é".repeat(MAX_ID_BYTES / 2));
        ids.push("z".repeat(MAX_ID_BYTES));
        ids.push("Z".repeat(MAX_ID_BYTES));
        // Every id of up to two characters over letters of both cases, a digit,
        // `_`, `-` and a non-ASCII letter.
        let alphabet = ["a", "A", "b", "B", "0", "_", "-", "é", "É"];
        for x in alphabet {
            ids.push(x.to_owned());
            for y in alphabet {
                ids.push(format!("{x}{y}"));
            }
        }
        ids.sort();
        ids.dedup();
        ids
    }

    #[test]
    fn the_mapping_is_injective_even_ignoring_case() {
        let mut seen: HashMap<String, String> = HashMap::new();
        for id in ids() {
            check(&id).unwrap();
            let container = container_of(&id);
            assert!(
                is_valid_container_name(&container),
                "{id:?} → {container:?}"
            );
            // GridDB matches names case-insensitively: compare them as it does.
            if let Some(other) = seen.insert(container.to_ascii_lowercase(), id.clone()) {
                panic!("{other:?} and {id:?} share the container {container:?}");
            }
        }
    }

    #[test]
    fn every_container_name_gives_its_id_back() {
        for id in ids() {
            let container = container_of(&id);
            assert_eq!(
                id_of(&container).as_deref(),
                Some(id.as_str()),
                "{container}"
            );
        }
    }

    #[test]
    fn valid_lower_case_names_are_kept_and_the_rest_encoded() {
        for literal in [
            "sample", "sensor1", "a", "devices2", "report", "b32", "x_y_z",
        ] {
            assert_eq!(container_of(literal), literal);
        }
        assert_eq!(container_of("Sensor1"), "b32_knsw443poiyq");
        assert_eq!(container_of("a b"), "b32_meqge");
        for encoded in [
            "Sample",
            "1sensor",
            "_rejected_",
            "b32_mfrgg",
            "Devices",
            "123e4567-e89b-12d3-a456-426614174000",
            "00:1A:2B:3C:4D:5E",
            "capteur-été",
        ] {
            let container = container_of(encoded);
            assert!(container.starts_with(ENCODED_PREFIX), "{encoded}");
            assert!(
                !container.bytes().any(|b| b.is_ascii_uppercase()),
                "{container}"
            );
        }
        // The longest id still makes a valid container name.
        let longest = container_of(&"é".repeat(MAX_ID_BYTES / 2));
        assert_eq!(longest.len(), ENCODED_PREFIX.len() + 205);
    }

    #[test]
    fn no_device_container_is_an_internal_one() {
        for internal in [
            "devices",
            "messages",
            "reports",
            "_rejected",
            "_credentials",
        ] {
            assert_eq!(id_of(internal), None, "{internal}");
            assert_ne!(container_of(internal), internal);
        }
        // Not base32, base32 of something else than UTF-8, non-canonical base32,
        // and the encoding of an id that keeps its own name.
        for foreign in [
            "b32_!!",
            "b32_74",
            "b32_mfrgh",
            "b32_ON2W24DMMU",
            "b32_onqw24dmmu",
        ] {
            assert_eq!(id_of(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn bad_ids_are_refused_naming_the_problem() {
        for bad in [
            "",
            "a/b",
            "devices/+",
            "a+b",
            "a#b",
            "nul\0",
            "tab\t",
            "del\u{7f}",
            "c1\u{85}",
            "devices",
            "messages",
            "reports",
            "_rejected",
            "_cron_runs",
        ] {
            let err = check(bad).unwrap_err();
            assert_eq!((err.status, err.error.as_str()), (400, "invalid device id"));
            assert_eq!(err.detail["device"], bad);
            assert!(err.detail["reason"].is_string(), "{bad:?}");
        }
        assert!(check(&"x".repeat(MAX_ID_BYTES + 1)).is_err());
        assert!(check(&"é".repeat(MAX_ID_BYTES / 2 + 1)).is_err());
        assert!(check(&"x".repeat(MAX_ID_BYTES)).is_ok());
    }

    #[test]
    fn path_segments_are_percent_decoded() {
        assert_eq!(
            from_path_segment("capteur-%C3%A9t%C3%A9").unwrap(),
            "capteur-été"
        );
        assert_eq!(from_path_segment("00:1A:2B").unwrap(), "00:1A:2B");
        assert_eq!(from_path_segment("a+b%20c").unwrap(), "a+b c");
        assert_eq!(from_path_segment("a%2Fb").unwrap(), "a/b");
        assert_eq!(from_path_segment("%FF").unwrap_err().status, 400);
        for id in ids() {
            let segment = to_path_segment(&id);
            assert!(!segment.contains(['/', '?', '#', ' ']), "{segment}");
            assert_eq!(from_path_segment(&segment).unwrap(), id);
        }
        assert_eq!(
            to_path_segment("00:1A:2B capteur-été"),
            "00%3A1A%3A2B%20capteur-%C3%A9t%C3%A9"
        );
    }

    #[test]
    fn fetch_reads_internal_containers_by_name_and_devices_by_id() {
        assert_eq!(Fetched::of("devices"), Ok(Fetched::Container("devices")));
        assert_eq!(
            Fetched::of("_rejected"),
            Ok(Fetched::Container("_rejected"))
        );
        assert_eq!(Fetched::of("Devices"), Ok(Fetched::Device("Devices")));
        assert_eq!(
            Fetched::of("_credentials"),
            Ok(Fetched::Device("_credentials"))
        );
        assert_eq!(Fetched::of("a#b").unwrap_err().status, 400);
    }
}
