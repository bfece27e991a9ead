//! What Grafana and its plugins do to a dashboard's queries before a request
//! reaches the stack, modelled on their sources so that tests send what a real
//! Grafana sends instead of filling in `${device}` by hand:
//!
//! - template interpolation and its `glob` and `regex` formats: grafana/grafana
//!   `public/app/features/templating/formatRegistry.ts` (and `kbn.regexEscape`);
//! - Infinity's variable migration: grafana/grafana-infinity-datasource
//!   `src/app/variablesQuery/index.ts` (`migrateLegacyQuery`) with the defaults
//!   of `src/constants.ts` (`DefaultInfinityQuery`); its interpolation in
//!   `src/interpolate.ts` (`interpolateQuery`: URL, params and headers in `glob`);
//!   its URL in `pkg/infinity/request.go` (`GetQueryURL`: the params added to
//!   the URL's query, which Go's `url.Values.Encode` sorts by key and escapes);
//! - simPod/GrafanaJsonDatasource `src/DataSource.ts` (`processTargets`: targets
//!   without `target` are dropped, the rest interpolated in `regex`; payload
//!   values too), its variable queries (`src/variable/VariableSupport.ts`: the
//!   query text interpolated in `regex` as `{"target": …}`, or with "Raw JSON"
//!   in `json` and parsed; `src/MetricFindQuery.ts`: posted to `/variable` as
//!   `{"payload": …, "range": …}`) and Grafana's `standardAnnotationSupport.ts` (`prepareAnnotation`:
//!   a string `query` replaces the target with `{query}`; `prepareQuery`: the
//!   annotation's `target` is the query).

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};

/// A variable's current value: one, or several (multi-value or "All").
#[derive(Clone, Debug)]
pub enum VarValue {
    One(String),
    Many(Vec<String>),
}

/// The variables Grafana knows while it runs a query.
pub type Vars<'a> = &'a [(&'a str, VarValue)];

/// Grafana's template formats the plugins ask for.
#[derive(Clone, Copy, Debug)]
pub enum Format {
    /// `{a,b}` for several values, a value as is (Infinity, SimpleJSON).
    Glob,
    /// Each value regex-escaped, several as `(a|b)` (simpod).
    Regex,
    /// `JSON.stringify` of the value: a quoted string, or an array of them
    /// (simpod's "Raw JSON" variable queries).
    Json,
}

/// `kbn.regexEscape`: a `\` before each of `\^$*+?.()|[]{}/`.
fn regex_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if "\\^$*+?.()|[]{}/".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn format_value(value: &VarValue, format: Format) -> String {
    match (value, format) {
        (VarValue::One(v), Format::Glob) => v.clone(),
        (VarValue::One(v), Format::Regex) => regex_escape(v),
        (VarValue::Many(vs), Format::Glob) if vs.len() > 1 => format!("{{{}}}", vs.join(",")),
        (VarValue::Many(vs), Format::Glob) => vs.join(","),
        (VarValue::One(v), Format::Json) => json!(v).to_string(),
        (VarValue::Many(vs), Format::Json) => json!(vs).to_string(),
        (VarValue::Many(vs), Format::Regex) => {
            let escaped: Vec<String> = vs.iter().map(|v| regex_escape(v)).collect();
            match escaped.as_slice() {
                [one] => one.clone(),
                _ => format!("({})", escaped.join("|")),
            }
        }
    }
}

/// `templateSrv.replace(text, scopedVars, format)` for `${name}` and `$name`
/// (a name is word characters); unknown names stay as they are.
pub fn interpolate(text: &str, vars: Vars, format: Format) -> String {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, consumed) = match after.strip_prefix('{') {
            Some(braced) => match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            },
            None => {
                let end = after.find(|c| !is_word(c)).unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        match vars
            .iter()
            .find(|(n, _)| *n == name)
            .filter(|_| consumed > 0)
        {
            Some((_, value)) => {
                out.push_str(&format_value(value, format));
                rest = &after[consumed..];
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Infinity's `migrateLegacyQuery`: a string is a legacy query; an object with
/// a `queryType` keeps it, its `infinityQuery` completed by `DefaultInfinityQuery`
/// (lodash `defaultsDeep`); anything else becomes a legacy query with no text.
pub fn migrate_legacy_variable_query(query: &Value) -> Value {
    match query {
        Value::String(text) => json!({ "refId": "variable", "query": text, "queryType": "legacy" }),
        Value::Object(fields) if fields.get("queryType").is_some() => {
            let mut migrated = query.clone();
            let mut infinity = query["infinityQuery"].clone();
            if infinity.is_null() {
                infinity = json!({});
            }
            defaults_deep(&mut infinity, &default_infinity_query());
            migrated["infinityQuery"] = infinity;
            migrated
        }
        _ => json!({ "refId": "variable", "query": "", "queryType": "legacy" }),
    }
}

/// `DefaultInfinityQuery` of `src/constants.ts`.
fn default_infinity_query() -> Value {
    json!({
        "refId": "", "type": "json", "source": "url", "format": "table", "url": "",
        "url_options": { "method": "GET", "data": "" },
        "root_selector": "", "columns": [], "filters": []
    })
}

fn defaults_deep(target: &mut Value, defaults: &Value) {
    let (Some(target), Some(defaults)) = (target.as_object_mut(), defaults.as_object()) else {
        return;
    };
    for (key, default) in defaults {
        match target.get_mut(key) {
            None | Some(Value::Null) => {
                target.insert(key.clone(), default.clone());
            }
            Some(present) => defaults_deep(present, default),
        }
    }
}

/// What Go's `url.QueryEscape` leaves alone.
const QUERY_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// What Go's `url.URL.EscapedPath` leaves alone in a path (`shouldEscape`
/// with `encodePath`: the unreserved characters and `$&+,/:;=@`). A `{a,b}`
/// list goes out as `%7Ba,b%7D`.
const PATH_ESCAPE: &AsciiSet = &QUERY_ESCAPE
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b',')
    .remove(b'/')
    .remove(b':')
    .remove(b';')
    .remove(b'=')
    .remove(b'@');

/// The path and query an Infinity URL query requests, after `interpolateQuery`
/// (the URL and each param's value in `glob`) and `GetQueryURL` (the path as Go
/// escapes it, params added to the URL's own query, sorted by key, escaped as
/// Go escapes them).
pub fn infinity_request_path(query: &Value, vars: Vars) -> String {
    assert_eq!(query["source"], "url", "{query}");
    let url = interpolate(query["url"].as_str().unwrap(), vars, Format::Glob);
    let (path, own_query) = url.split_once('?').unwrap_or((&url, ""));
    let path = utf8_percent_encode(path, PATH_ESCAPE).to_string();
    let path = path.as_str();
    let mut params: Vec<(String, String)> = own_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    for param in query["url_options"]["params"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let value = interpolate(param["value"].as_str().unwrap_or(""), vars, Format::Glob);
        params.push((param["key"].as_str().unwrap().to_owned(), value));
    }
    // Go's Encode sorts by key; values of one key keep their order.
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let escape = |s: &str| utf8_percent_encode(s, QUERY_ESCAPE).to_string();
    let encoded: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect();
    match encoded.as_slice() {
        [] => path.to_owned(),
        _ => format!("{path}?{}", encoded.join("&")),
    }
}

/// simpod's `processTargets`: the targets it sends to `/query` (those with a
/// `target`, interpolated in `regex`, their payload values too).
pub fn simpod_targets(targets: &[Value], vars: Vars) -> Vec<Value> {
    targets
        .iter()
        .filter(|t| t.get("target").is_some())
        .map(|t| {
            let mut t = t.clone();
            let target = t["target"].as_str().unwrap_or("");
            t["target"] = json!(interpolate(target, vars, Format::Regex));
            if let Some(payload) = t.get_mut("payload").and_then(Value::as_object_mut) {
                for value in payload.values_mut() {
                    if let Some(text) = value.as_str() {
                        *value = json!(interpolate(text, vars, Format::Regex));
                    }
                }
            }
            t
        })
        .collect()
}

/// The body simpod posts to `/variable` for a variable whose query text is
/// `query` (`raw_json`: its "Raw JSON" switch), over `range`.
pub fn simpod_variable_request(query: &str, raw_json: bool, vars: Vars, range: &Value) -> Value {
    let payload = if raw_json {
        serde_json::from_str(&interpolate(query, vars, Format::Json))
            .unwrap_or_else(|e| panic!("not JSON once interpolated ({e}): {query}"))
    } else {
        json!({ "target": interpolate(query, vars, Format::Regex) })
    };
    json!({ "payload": payload, "range": range })
}

/// The query Grafana's standard annotation support hands the datasource for a
/// dashboard's annotation entry (`prepareAnnotation`, then `prepareQuery`).
pub fn annotation_query(annotation: &Value) -> Value {
    match annotation.get("query").and_then(Value::as_str) {
        Some(query) => json!({ "query": query }),
        None => annotation["target"].clone(),
    }
}
