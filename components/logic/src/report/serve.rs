//! `GET /reports` and `GET /reports/<id>[.json|.csv|.html]`: stored reports
//! for people and programs. The representation comes from the extension, else
//! from `Accept` (`text/csv`, `text/html`), else JSON.

use super::body::ReportKind;
use super::render;
use super::stored::{self, Filter};
use crate::device;
use crate::error::ApiError;
use crate::http::{Request, Response};
use crate::model::{Store, TIMESTAMP_RANGE};
use crate::query;
use serde_json::json;

/// Reports listed per request unless `limit` says otherwise, and the most.
const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Representation {
    Json,
    Csv,
    Html,
}

pub fn handle(store: &mut impl Store, req: &Request) -> Result<Response, ApiError> {
    let (path, query) = req
        .path_with_query
        .split_once('?')
        .unwrap_or((req.path_with_query, ""));
    if !req.method.eq_ignore_ascii_case("GET") {
        return Err(ApiError::new(
            405,
            "method not allowed",
            json!({ "method": req.method, "allowed": ["GET"] }),
        ));
    }
    match path.strip_prefix("/reports") {
        Some("" | "/") => list(store, query),
        Some(rest) => match rest.strip_prefix('/') {
            // Report ids hold device ids, so they come percent-encoded.
            Some(name) if !name.contains('/') => {
                one(store, &device::from_path_segment(name)?, query, req.accept)
            }
            _ => Err(no_route(path)),
        },
        None => Err(no_route(path)),
    }
}

fn no_route(path: &str) -> ApiError {
    ApiError::not_found("no such route", json!({ "path": path }))
}

fn list(store: &mut impl Store, query: &str) -> Result<Response, ApiError> {
    let filter = parse_filter(query)?;
    let reports = stored::list(store, &filter)?;
    let items: Vec<_> = reports
        .into_iter()
        .map(|r| {
            let id = device::to_path_segment(&r.id);
            let links = json!({
                "json": format!("/reports/{id}"),
                "csv": format!("/reports/{id}.csv"),
                "html": format!("/reports/{id}.html"),
            });
            let mut item = serde_json::to_value(r).expect("listed reports serialize");
            item["links"] = links;
            item
        })
        .collect();
    let body = json!({ "count": items.len(), "limit": filter.limit, "offset": filter.offset, "reports": items });
    Ok(Response {
        headers: Vec::new(),
        status: 200,
        content_type: "application/json",
        body: serde_json::to_vec(&body).expect("JSON serializes"),
    })
}

/// Parses `kind`, `device`, `from`, `to` (epoch ms or RFC 3339), `limit` and `offset`.
fn parse_filter(query: &str) -> Result<Filter, ApiError> {
    let mut filter = Filter {
        limit: DEFAULT_LIMIT,
        ..Filter::default()
    };
    let allowed = ["kind", "device", "from", "to", "limit", "offset"];
    for (key, value) in query::parse(Some(query), &allowed)? {
        let invalid = |expected: &str| query::invalid(&key, &value, expected);
        match key.as_str() {
            "kind" => {
                filter.kind = Some(
                    ReportKind::from_name(&value)
                        .ok_or_else(|| invalid("daily, weekly or invoice"))?,
                )
            }
            "device" => {
                device::check(&value).map_err(|_| invalid("a device id"))?;
                filter.device = Some(value.clone());
            }
            "from" | "to" => {
                let ms = parse_instant(&value)
                    .ok_or_else(|| invalid("epoch milliseconds or an RFC 3339 time"))?;
                *(if key == "from" {
                    &mut filter.from
                } else {
                    &mut filter.to
                }) = Some(ms);
            }
            "limit" => {
                filter.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| invalid("an integer from 1 to 1000"))?
            }
            _ => {
                filter.offset = value
                    .parse()
                    .ok()
                    .filter(|n| *n <= i64::MAX as u64)
                    .ok_or_else(|| invalid("a non-negative integer"))?
            }
        }
    }
    Ok(filter)
}

/// Epoch milliseconds or an RFC 3339 time, within GridDB's TIMESTAMP range.
pub fn parse_instant(text: &str) -> Option<i64> {
    let ms = match text.parse::<i64>() {
        Ok(ms) => ms,
        Err(_) => chrono::DateTime::parse_from_rfc3339(text)
            .ok()?
            .timestamp_millis(),
    };
    TIMESTAMP_RANGE.contains(&ms).then_some(ms)
}

fn one(
    store: &mut impl Store,
    name: &str,
    query: &str,
    accept: Option<&str>,
) -> Result<Response, ApiError> {
    if !query.is_empty() {
        return Err(ApiError::bad_request(
            "unknown query parameter",
            json!({ "parameter": query.split(['=', '&']).next(), "allowed": [] }),
        ));
    }
    // Device ids (and so report ids) may hold a `.`: only a known extension is one.
    let formats = [
        (".json", Representation::Json),
        (".csv", Representation::Csv),
        (".html", Representation::Html),
    ];
    let (id, representation) = formats
        .iter()
        .find_map(|&(extension, r)| name.strip_suffix(extension).map(|id| (id, r)))
        .unwrap_or((name, from_accept(accept)));
    let report = stored::get(store, id)?.ok_or_else(|| match name.rsplit_once('.') {
        // Report ids end with their period (`2020-02-18`): `x.pdf` asks for a format.
        Some((_, other)) if id == name && other.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            ApiError::not_found(
                "unknown report format",
                json!({ "extension": other, "allowed": ["json", "csv", "html"] }),
            )
        }
        _ => ApiError::not_found("no such report", json!({ "id": id })),
    })?;
    Ok(match representation {
        Representation::Json => Response {
            headers: Vec::new(),
            status: 200,
            content_type: "application/json",
            body: serde_json::to_vec(&report).expect("reports serialize"),
        },
        Representation::Csv => Response {
            headers: Vec::new(),
            status: 200,
            content_type: "text/csv; charset=utf-8",
            body: render::csv(&report).into_bytes(),
        },
        Representation::Html => Response {
            headers: Vec::new(),
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: render::html(&report).into_bytes(),
        },
    })
}

/// The representation `Accept` prefers among ours; JSON when it names none.
fn from_accept(accept: Option<&str>) -> Representation {
    let offered = [
        ("application/json", Representation::Json),
        ("text/csv", Representation::Csv),
        ("text/html", Representation::Html),
    ];
    query::preferred(accept, &offered).unwrap_or(Representation::Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_picks_the_preferred_representation() {
        assert_eq!(from_accept(None), Representation::Json);
        assert_eq!(from_accept(Some("text/csv")), Representation::Csv);
        assert_eq!(
            from_accept(Some("text/html,application/xhtml+xml,*/*;q=0.8")),
            Representation::Html
        );
        assert_eq!(
            from_accept(Some("text/csv;q=0.5, application/json")),
            Representation::Json
        );
        assert_eq!(from_accept(Some("image/png")), Representation::Json);
    }

    #[test]
    fn filters_parse_strictly() {
        let filter =
            parse_filter("kind=daily&from=2020-02-18T00:00:00Z&to=1582070400000&device=sample")
                .unwrap();
        assert_eq!(filter.kind, Some(ReportKind::Daily));
        assert_eq!(filter.from, Some(1_581_984_000_000));
        assert_eq!(filter.to, Some(1_582_070_400_000));
        assert_eq!(filter.device.as_deref(), Some("sample"));
        assert_eq!(filter.limit, DEFAULT_LIMIT);
        for bad in [
            "kind=hourly",
            "from=yesterday",
            "limit=0",
            "limit=5000",
            "nope=1",
            "kind=daily&kind=weekly",
            "device=a%23b",
            "device=devices",
        ] {
            assert_eq!(parse_filter(bad).unwrap_err().status, 400, "{bad}");
        }
        assert_eq!(
            parse_filter("from=2020-02-18T00%3A00%3A00%2B01%3A00")
                .unwrap()
                .from,
            Some(1_581_980_400_000)
        );
    }
}
