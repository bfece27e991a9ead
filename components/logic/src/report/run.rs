//! `POST /admin/reports/run?kind=<daily|weekly|invoice>[&at=<instant>]`: one
//! report tick over HTTP, for the platforms that have no cron trigger
//! (SpinKube, Fermyon Wasm Functions, `wasmtime serve`), so that their
//! scheduler (a Kubernetes CronJob, `spin aka cron`) can call it.
//!
//! It runs exactly what a cron tick at `at` (default: now) does for `kind`
//! (`run_kind`): the reports of the latest period of that kind that has ended
//! at `at`, upserted, so that running the same `at` twice replaces them as a
//! re-run tick does. It answers the period and the reports written.
//!
//! The route is the admin token's, and this module checks it itself
//! (`Guard`): under cromflag the host has already refused a caller without
//! it (every `/admin/` route needs it there), but under Spin, SpinKube or
//! `wasmtime serve` no host checks anything, and a route that writes reports
//! for every device must not be open there. So the component holds the token
//! too (its `admin_token` variable) and compares it in constant time; with no
//! token set, the route is off (404), as uploads are on the host.

use super::body::ReportKind;
use super::period::ms_to_rfc3339;
use super::serve::parse_instant;
use super::settings::{SettingError, Settings};
use crate::device;
use crate::error::ApiError;
use crate::http::{Request, Response, JSON};
use crate::model::Store;
use crate::query;
use serde_json::json;

/// Who may call: the `Authorization` header as received and the component's
/// `admin_token` variable (`None` or empty: the route is off).
pub struct Guard<'a> {
    pub authorization: Option<&'a str>,
    pub admin_token: Option<&'a str>,
}

/// Answers one call of the run route. `settings` are the component's, as read
/// (a bad variable is a 500 naming it, once the caller is known to be the
/// admin); `now_ms` is the default `at` and the reports' `generated_at`.
pub fn handle(
    store: &mut impl Store,
    req: &Request,
    guard: &Guard,
    settings: Result<Settings, SettingError>,
    now_ms: i64,
) -> Response {
    run(store, req, guard, settings, now_ms).unwrap_or_else(Response::from)
}

fn run(
    store: &mut impl Store,
    req: &Request,
    guard: &Guard,
    settings: Result<Settings, SettingError>,
    now_ms: i64,
) -> Result<Response, ApiError> {
    // Who calls comes first: nothing about the route (not even its methods)
    // is told to a caller without the token.
    if let Err(refused) = guard.check() {
        return Ok(refused);
    }
    if !req.method.eq_ignore_ascii_case("POST") {
        return Err(ApiError::new(
            405,
            "method not allowed",
            json!({ "method": req.method, "allowed": ["POST"] }),
        ));
    }
    let query = req.path_with_query.split_once('?').map(|(_, q)| q);
    let mut kind = None;
    let mut at_ms = now_ms;
    for (key, value) in query::parse(query, &["kind", "at"])? {
        if key == "kind" {
            kind = Some(
                ReportKind::from_name(&value)
                    .ok_or_else(|| query::invalid(&key, &value, "daily, weekly or invoice"))?,
            );
        } else {
            at_ms = parse_instant(&value).ok_or_else(|| {
                query::invalid(&key, &value, "epoch milliseconds or an RFC 3339 time")
            })?;
        }
    }
    let kind = kind.ok_or_else(|| {
        ApiError::bad_request(
            "missing query parameter",
            json!({ "parameter": "kind", "expected": "daily, weekly or invoice" }),
        )
    })?;
    let settings = settings.map_err(|e| {
        ApiError::new(
            500,
            "the report component is misconfigured",
            json!(e.to_string()),
        )
    })?;
    // A component makes the kinds its `reports` variable lists, on this
    // route as on its cron trigger (an invoice component carries the billing
    // settings; a daily one may not).
    if !settings.kinds.contains(&kind) {
        let made: Vec<&str> = settings.kinds.iter().map(|k| k.name()).collect();
        return Err(query::invalid(
            "kind",
            kind.name(),
            &format!(
                "a kind this component makes (its `reports` variable): {}",
                made.join(", ")
            ),
        ));
    }
    let at = chrono::DateTime::from_timestamp_millis(at_ms).expect("parse_instant bounds it");
    let outcome = super::run_kind(store, kind, at, &settings, now_ms)?;
    let reports: Vec<_> = outcome
        .reports
        .iter()
        .map(|(id, device)| {
            let path = format!("/reports/{}", device::to_path_segment(id));
            json!({
                "id": id,
                "device": device,
                "links": {
                    "json": path,
                    "csv": format!("{path}.csv"),
                    "html": format!("{path}.html"),
                },
            })
        })
        .collect();
    let body = json!({
        "kind": kind.name(),
        "at": ms_to_rfc3339(settings.time_zone, at_ms),
        "at_ms": at_ms,
        "period": outcome.period,
        "count": reports.len(),
        "reports": reports,
    });
    Ok(Response {
        status: 200,
        content_type: JSON,
        headers: Vec::new(),
        body: serde_json::to_vec(&body).expect("JSON serializes"),
    })
}

impl Guard<'_> {
    /// `Ok` for the admin token as a Bearer credential; otherwise the answer.
    fn check(&self) -> Result<(), Response> {
        let Some(expected) = self.admin_token.filter(|t| !t.is_empty()) else {
            return Err(ApiError::not_found(
                "no such route",
                json!("set the admin_token variable (of the application and this component) to run reports over HTTP"),
            )
            .into());
        };
        let presented = self.authorization.and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
        match presented {
            Some(token) if same_secret(token, expected) => Ok(()),
            _ => {
                let mut refused: Response = ApiError::new(
                    401,
                    "missing or wrong token",
                    json!("send Authorization: Bearer <admin_token>"),
                )
                .into();
                refused
                    .headers
                    .push(("www-authenticate", "Bearer realm=\"cromflag\"".to_owned()));
                Err(refused)
            }
        }
    }
}

/// Whether `presented` is `expected`, in a time that depends on their lengths
/// only: every byte of `expected` is compared, and the differences are
/// gathered rather than returned at the first, so the time taken does not
/// tell how much of a guess was right. (The host compares SHA-256 digests
/// with `subtle`; a component has neither, and needs no more than this.)
fn same_secret(presented: &str, expected: &str) -> bool {
    let (presented, expected) = (presented.as_bytes(), expected.as_bytes());
    let mut difference = presented.len() ^ expected.len();
    for (i, &byte) in expected.iter().enumerate() {
        let other = presented.get(i).copied().unwrap_or(!byte);
        difference |= usize::from(byte ^ other);
    }
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Column, ColumnType, ContainerInfo, ContainerKind, Value};
    use crate::testing::MemoryStore;

    const TOKEN: &str = "s3cret-admin";
    /// 2020-02-19T00:05:00Z: a daily tick for the 18th.
    const AT: i64 = 1_582_070_700_000;

    fn call(store: &mut MemoryStore, method: &str, path: &str, auth: Option<&str>) -> Response {
        let req = Request {
            method,
            path_with_query: path,
            content_type: None,
            accept: None,
            body: b"",
        };
        let guard = Guard {
            authorization: auth,
            admin_token: Some(TOKEN),
        };
        let settings = Settings::read(|name| (name == "reports").then(|| "daily, weekly".into()));
        handle(store, &req, &guard, settings, AT + 60_000)
    }

    fn json_of(response: &Response) -> serde_json::Value {
        serde_json::from_slice(&response.body).unwrap()
    }

    /// A store with device `d1` and one row on 2020-02-18.
    fn store_with_a_device() -> MemoryStore {
        let mut store = MemoryStore::default();
        let devices = ContainerInfo {
            name: "devices".into(),
            kind: ContainerKind::Collection,
            columns: vec![Column::new("deviceid", ColumnType::String)],
            row_key: true,
        };
        store.put_container(devices).unwrap();
        store
            .put_rows("devices", vec![vec![Value::String("d1".into())]])
            .unwrap();
        store
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        for wrong in ["", "ab", "abd", "abcd", "xbc", "ABC"] {
            assert!(!same_secret(wrong, "abc"), "{wrong}");
        }
        assert!(!same_secret("", "\u{ff}"));
    }

    #[test]
    fn only_the_admin_token_runs_reports() {
        let mut store = store_with_a_device();
        let path = "/admin/reports/run?kind=daily";
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Bearer"),
            Some("Basic czNjcmV0LWFkbWlu"),
            Some("Bearer s3cret-admin2"),
        ] {
            let refused = call(&mut store, "POST", path, auth);
            assert_eq!(refused.status, 401, "{auth:?}");
            assert_eq!(json_of(&refused)["error"], "missing or wrong token");
            assert_eq!(
                refused.headers,
                [("www-authenticate", "Bearer realm=\"cromflag\"".to_owned())]
            );
        }
        assert_eq!(store.rows("reports").len(), 0);
        // The same caller with the token is served; the scheme's case is free.
        let ran = call(&mut store, "POST", path, Some("bearer  s3cret-admin "));
        assert_eq!(ran.status, 200, "{:?}", json_of(&ran));

        // No token set: the route is off, for everyone.
        let req = Request {
            method: "POST",
            path_with_query: path,
            content_type: None,
            accept: None,
            body: b"",
        };
        for admin_token in [None, Some("")] {
            let guard = Guard {
                authorization: Some("Bearer "),
                admin_token,
            };
            let off = handle(&mut store, &req, &guard, Settings::read(|_| None), AT);
            assert_eq!(off.status, 404);
            assert_eq!(json_of(&off)["error"], "no such route");
        }
    }

    #[test]
    fn a_run_writes_the_ticks_reports_and_lists_them() {
        let mut store = store_with_a_device();
        let auth = Some("Bearer s3cret-admin");
        let ran = call(
            &mut store,
            "POST",
            "/admin/reports/run?kind=daily&at=2020-02-19T00%3A05%3A00Z",
            auth,
        );
        assert_eq!(ran.status, 200);
        let body = json_of(&ran);
        assert_eq!(body["kind"], "daily");
        assert_eq!(body["at"], "2020-02-19T00:05:00.000+00:00");
        assert_eq!(body["at_ms"], AT);
        assert_eq!(body["period"]["label"], "2020-02-18");
        assert_eq!(body["count"], 1);
        assert_eq!(body["reports"][0]["id"], "daily-d1-2020-02-18");
        assert_eq!(body["reports"][0]["device"], "d1");
        assert_eq!(
            body["reports"][0]["links"]["csv"],
            "/reports/daily-d1-2020-02-18.csv"
        );
        assert_eq!(store.rows("reports").len(), 1);

        // `at` defaults to now (here a minute after AT); epoch ms works too.
        let now = call(&mut store, "POST", "/admin/reports/run?kind=weekly", auth);
        assert_eq!(json_of(&now)["at_ms"], AT + 60_000);
        assert_eq!(json_of(&now)["period"]["label"], "2020-W07");
        let again = call(
            &mut store,
            "POST",
            &format!("/admin/reports/run?at={AT}&kind=daily"),
            auth,
        );
        assert_eq!(json_of(&again)["reports"], body["reports"]);
        assert_eq!(store.rows("reports").len(), 2, "the same period replaces");
    }

    #[test]
    fn bad_calls_say_what_is_wrong() {
        let mut store = store_with_a_device();
        let auth = Some("Bearer s3cret-admin");
        for (path, parameter) in [
            ("/admin/reports/run?kind=hourly", "kind"),
            ("/admin/reports/run?kind=invoice", "kind"),
            ("/admin/reports/run?kind=daily&at=yesterday", "at"),
            ("/admin/reports/run?kind=daily&at=99999999999999999", "at"),
            ("/admin/reports/run?kind=daily&device=d1", "device"),
            ("/admin/reports/run?kind=daily&kind=weekly", "kind"),
            ("/admin/reports/run", "kind"),
        ] {
            let bad = call(&mut store, "POST", path, auth);
            assert_eq!(bad.status, 400, "{path}");
            assert_eq!(json_of(&bad)["detail"]["parameter"], parameter, "{path}");
        }
        let not_made = call(&mut store, "POST", "/admin/reports/run?kind=invoice", auth);
        assert!(json_of(&not_made)["detail"]["expected"]
            .as_str()
            .unwrap()
            .ends_with("daily, weekly"));
        let get = call(&mut store, "GET", "/admin/reports/run?kind=daily", auth);
        assert_eq!(get.status, 405);
        assert_eq!(get.headers, [("allow", "POST".to_owned())]);
        assert_eq!(store.rows("reports").len(), 0);

        let req = Request {
            method: "POST",
            path_with_query: "/admin/reports/run?kind=daily",
            content_type: None,
            accept: None,
            body: b"",
        };
        let guard = Guard {
            authorization: auth,
            admin_token: Some(TOKEN),
        };
        let settings = Settings::read(|name| (name == "time_zone").then(|| "Mars/Olympus".into()));
        let misconfigured = handle(&mut store, &req, &guard, settings, AT);
        assert_eq!(misconfigured.status, 500);
        assert!(json_of(&misconfigured)["detail"]
            .as_str()
            .unwrap()
            .contains("`time_zone`"));
    }
}
