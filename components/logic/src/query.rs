//! Query strings and content negotiation, as every endpoint reads them:
//! strictly (an unknown or repeated parameter is a 400 naming it), with
//! `%XX` escapes decoded, and `Accept` weighed by its `q` values.

use crate::error::ApiError;
use serde_json::json;

/// The `key=value` pairs of `query`, values decoded. Only `allowed` keys are
/// accepted, each at most once.
pub fn parse(query: Option<&str>, allowed: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key);
        if !allowed.contains(&key.as_str()) {
            return Err(ApiError::bad_request(
                "unknown query parameter",
                json!({ "parameter": key, "allowed": allowed }),
            ));
        }
        if pairs.iter().any(|(k, _)| *k == key) {
            return Err(ApiError::bad_request(
                "query parameter given twice",
                json!({ "parameter": key }),
            ));
        }
        pairs.push((key, percent_decode(value)));
    }
    Ok(pairs)
}

/// The 400 for a parameter whose value is wrong: what came and what was expected.
pub fn invalid(parameter: &str, got: &str, expected: &str) -> ApiError {
    ApiError::bad_request(
        "invalid query parameter",
        json!({ "parameter": parameter, "got": got, "expected": expected }),
    )
}

/// Decodes `%XX` escapes (and `+` as a space), as forms and browsers send them.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The representation `accept` prefers among `offered` (media type, value);
/// `None` when it names none of them (the caller's default then applies).
pub fn preferred<T: Copy>(accept: Option<&str>, offered: &[(&str, T)]) -> Option<T> {
    let mut best: Option<(f32, T)> = None;
    for item in accept.unwrap_or("").split(',') {
        let mut parts = item.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let quality = parts
            .find_map(|p| p.strip_prefix("q="))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let Some(&(_, value)) = offered.iter().find(|(m, _)| *m == media) else {
            continue;
        };
        if quality > 0.0 && best.is_none_or(|(q, _)| quality > q) {
            best = Some((quality, value));
        }
    }
    best.map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_strict_and_decoded() {
        let pairs = parse(Some("tz=Europe%2FBerlin&columns=a,b"), &["tz", "columns"]).unwrap();
        assert_eq!(
            pairs,
            [
                ("tz".into(), "Europe/Berlin".into()),
                ("columns".into(), "a,b".into())
            ]
        );
        assert_eq!(
            parse(Some("x=1"), &["tz"]).unwrap_err().detail["parameter"],
            "x"
        );
        assert_eq!(
            parse(Some("tz=a&tz=b"), &["tz"]).unwrap_err().error,
            "query parameter given twice"
        );
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%41+b"), "A b");
    }

    #[test]
    fn accept_picks_the_preferred_representation() {
        let offered = [("application/json", 1), ("text/csv", 2)];
        assert_eq!(preferred(None, &offered), None);
        assert_eq!(preferred(Some("text/csv"), &offered), Some(2));
        assert_eq!(
            preferred(Some("text/csv;q=0.5, application/json"), &offered),
            Some(1)
        );
        assert_eq!(preferred(Some("image/png, */*;q=0.8"), &offered), None);
        assert_eq!(preferred(Some("text/csv;q=0"), &offered), None);
    }
}
