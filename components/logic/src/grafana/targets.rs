//! What a target names once a plugin has interpolated a dashboard variable into
//! it. simpod renders variables in Grafana's `regex` format (each value's regex
//! characters escaped with `\`, several values as `(a|b)`); SimpleJSON and
//! Infinity in `glob` (several values as `{a,b}`). `readings` turns such a text
//! back into the plain targets it stands for, one per combination of values.

use crate::error::ApiError;
use serde_json::json;

/// At most this many readings come of one text: a guard against a target whose
/// groups multiply out of all proportion.
const MOST_READINGS: usize = 1000;

/// The plain texts `text` stands for: `\x` is `x`; `(a|b)` and `{a,b}` are
/// alternatives (with `\` escapes inside a `(…)` group, as the `regex` format
/// writes them); a group that never closes is literal text.
pub fn readings(text: &str) -> Result<Vec<String>, ApiError> {
    let mut readings = vec![String::new()];
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        let alternatives = match c {
            '\\' => vec![chars.next().unwrap_or('\\').to_string()],
            '(' | '{' => group(c, &mut chars),
            c => vec![c.to_string()],
        };
        if readings.len() * alternatives.len() > MOST_READINGS {
            return Err(ApiError::bad_request(
                "the target stands for too many series",
                json!({ "target": text, "most": MOST_READINGS }),
            ));
        }
        readings = readings
            .iter()
            .flat_map(|r| alternatives.iter().map(move |a| format!("{r}{a}")))
            .collect();
    }
    Ok(readings)
}

/// The alternatives of the group `open` starts (`(a|b)` or `{a,b}`); if it
/// never closes, the text read, literally.
fn group(open: char, chars: &mut std::str::Chars) -> Vec<String> {
    let (close, separator, escapes) = match open {
        '(' => (')', '|', true),
        _ => ('}', ',', false),
    };
    let mut literal = open.to_string();
    let mut alternatives = vec![String::new()];
    let mut escaped = false;
    for c in chars.by_ref() {
        literal.push(c);
        let current = alternatives.last_mut().expect("never empty");
        if escaped {
            current.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' if escapes => escaped = true,
            c if c == close => return alternatives,
            c if c == separator => alternatives.push(String::new()),
            c => current.push(c),
        }
    }
    vec![literal]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Vec<String> {
        readings(text).unwrap()
    }

    #[test]
    fn regex_and_glob_forms_read_as_their_values() {
        assert_eq!(read("sample.temperature"), ["sample.temperature"]);
        // simpod (`regex`): one value escaped, several as a group.
        assert_eq!(read(r"sensor\.kitchen.t"), ["sensor.kitchen.t"]);
        assert_eq!(
            read(r"(sample|sensor\.kitchen).t"),
            ["sample.t", "sensor.kitchen.t"]
        );
        assert_eq!(read(r"(a\|b|c)"), ["a|b", "c"]);
        // SimpleJSON and Infinity (`glob`).
        assert_eq!(read("{sample,other}.t"), ["sample.t", "other.t"]);
        assert_eq!(read("{a,b}.{x,y}"), ["a.x", "a.y", "b.x", "b.y"]);
        // A group that never closes is text.
        assert_eq!(read("(open"), ["(open"]);
        assert_eq!(read("{open,"), ["{open,"]);
    }

    #[test]
    fn too_many_readings_are_refused() {
        let text = "{a,b,c,d,e,f,g,h,i,j}".repeat(4);
        assert_eq!(readings(&text).unwrap_err().status, 400);
        assert_eq!(readings(&text[..63]).unwrap().len(), 1000);
    }
}
