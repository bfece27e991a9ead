//! What the components answer, independent of any HTTP or MQTT library: the
//! method and path checks of `/insert`, `/fetch`, `/devices`, `/grafana` and
//! `/reports`, the handling of MQTT messages (one or a batch), and the
//! response each outcome maps to.
//!
//! The Wasm components and the native benchmark baseline both call these, so the
//! two run exactly the same logic. `Request` and `Response` live in `http`
//! (re-exported here), so that `report::serve` answers with them without
//! depending back on this module.

use crate::device;
use crate::document::Format;
use crate::error::ApiError;
use crate::fetch;
use crate::http::JSON;
pub use crate::http::{Request, Response};
use crate::insert::{insert, insert_many, DeviceId, Document, Receipt};
use crate::model::{Pipeline, Store};
use serde_json::json;

/// `POST /insert/<device>`: 200 with the body `True` once the rows are committed,
/// as the original Flask collector answered.
pub fn handle_insert(
    store: &mut impl Store,
    pipeline: &mut impl Pipeline,
    req: &Request,
    receipt: Receipt,
) -> Response {
    let result = (|| {
        let device = device_of(req, "/insert/")?;
        require_method(req, "POST")?;
        let document = Document {
            device: &device,
            body: req.body,
            format: Format::from_content_type(req.content_type),
            device_id: DeviceId::Required,
            receipt,
        };
        insert(store, pipeline, &document)
    })();
    match result {
        Ok(_) => Response {
            headers: Vec::new(),
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: b"True".to_vec(),
        },
        Err(err) => err.into(),
    }
}

/// `GET /fetch/<device>` (see `fetch::FetchQuery` for its parameters) and
/// `GET /fetch/devices`; `max_limit` caps `limit` and the number of buckets.
pub fn handle_fetch(store: &mut impl Store, req: &Request, max_limit: u64) -> Response {
    let result = (|| {
        let device = device_of(req, "/fetch/")?;
        require_method(req, "GET")?;
        fetch::fetch(store, &device, req.path_with_query, req.accept, max_limit)
    })();
    result.map_or_else(Response::from, Response::from)
}

/// `GET /devices/<device>/latest` (the newest row) and `GET /devices/<device>/schema`.
pub fn handle_devices(store: &mut impl Store, req: &Request) -> Response {
    let result = (|| {
        require_method(req, "GET")?;
        let path = req.path_with_query.split('?').next().unwrap_or_default();
        if let Some((_, query)) = req.path_with_query.split_once('?') {
            crate::query::parse(Some(query), &[])?;
        }
        match path
            .strip_prefix("/devices/")
            .map(|rest| rest.split('/').collect::<Vec<_>>())
            .as_deref()
        {
            Some([device, "latest"]) => {
                fetch::latest(store, &device::from_path_segment(device)?, req.accept)
            }
            Some([device, "schema"]) => fetch::schema(store, &device::from_path_segment(device)?),
            _ => Err(ApiError::not_found(
                "no such route",
                json!({ "path": path }),
            )),
        }
    })();
    result.map_or_else(Response::from, Response::from)
}

/// The JSON-datasource protocol for Grafana under `/grafana` (see `grafana`).
pub fn handle_grafana(store: &mut impl Store, req: &Request, max_limit: u64) -> Response {
    let path = req.path_with_query.split('?').next().unwrap_or_default();
    let Some(rest) = path.strip_prefix("/grafana") else {
        return ApiError::not_found("no such route", json!({ "path": path })).into();
    };
    match crate::grafana::handle(store, req.method, rest, req.body, max_limit) {
        Ok(body) => Response {
            status: 200,
            content_type: JSON,
            headers: Vec::new(),
            body: serde_json::to_vec(&body).expect("JSON serializes"),
        },
        Err(err) => err.into(),
    }
}

/// `GET /reports` (filters `kind`, `device`, `from`, `to`, `limit`, `offset`) and
/// `GET /reports/<id>` as JSON, `.csv` or `.html` (or by `Accept`).
pub fn handle_reports(store: &mut impl Store, req: &Request) -> Response {
    crate::report::serve::handle(store, req).unwrap_or_else(Response::from)
}

fn require_method(req: &Request, method: &str) -> Result<(), ApiError> {
    if req.method.eq_ignore_ascii_case(method) {
        Ok(())
    } else {
        Err(ApiError::new(
            405,
            "method not allowed",
            json!({ "method": req.method, "allowed": [method] }),
        ))
    }
}

/// The `<device>` segment after `prefix`, percent-decoded; a missing or nested
/// one is an unknown route.
fn device_of(req: &Request, prefix: &str) -> Result<String, ApiError> {
    let path = req.path_with_query.split('?').next().unwrap_or_default();
    match path.strip_prefix(prefix) {
        Some(device) if !device.is_empty() && !device.contains('/') => {
            device::from_path_segment(device)
        }
        _ => Err(ApiError::not_found(
            "no such route",
            json!({ "path": path }),
        )),
    }
}

/// MQTT telemetry: topic `devices/<device>/telemetry`, payload the insert
/// document in JSON or MessagePack. Returns the number of rows written.
pub fn handle_message(
    store: &mut impl Store,
    pipeline: &mut impl Pipeline,
    topic: &str,
    payload: &[u8],
    receipt: Receipt,
) -> Result<u64, ApiError> {
    let document = Document {
        device: telemetry_device(topic)?,
        body: payload,
        format: Format::sniff(payload),
        device_id: DeviceId::Optional,
        receipt,
    };
    insert(store, pipeline, &document)
}

/// Many MQTT messages (topic, payload, receipt) in one write (`insert_many`):
/// one result per message, in order; a bad message fails alone.
pub fn handle_messages(
    store: &mut impl Store,
    pipeline: &mut impl Pipeline,
    messages: &[(&str, &[u8], Receipt)],
) -> Vec<Result<u64, ApiError>> {
    let devices: Vec<Result<&str, ApiError>> = messages
        .iter()
        .map(|(topic, _, _)| telemetry_device(topic))
        .collect();
    let documents: Vec<Document> = messages
        .iter()
        .zip(&devices)
        .filter_map(|((_, payload, receipt), device)| {
            Some(Document {
                device: device.as_ref().ok()?,
                body: payload,
                format: Format::sniff(payload),
                device_id: DeviceId::Optional,
                receipt: *receipt,
            })
        })
        .collect();
    let mut stored = insert_many(store, pipeline, &documents).into_iter();
    devices
        .into_iter()
        .map(|device| {
            device?;
            stored.next().expect("one result per document")
        })
        .collect()
}

/// The device of a telemetry topic, `devices/<device>/telemetry`.
fn telemetry_device(topic: &str) -> Result<&str, ApiError> {
    match topic.split('/').collect::<Vec<_>>()[..] {
        ["devices", device, "telemetry"] if !device.is_empty() => Ok(device),
        _ => Err(ApiError::bad_request(
            "unexpected topic",
            json!({ "topic": topic, "expected": "devices/<device>/telemetry" }),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insert::{DEVICES, MESSAGES};
    use crate::model::{NoTransforms, Value};
    use crate::testing::MemoryStore;
    use serde_json::Value as Json;

    const MAX_LIMIT: u64 = 1000;

    fn receipt() -> Receipt {
        Receipt {
            received_ms: 1_700_000_000_000,
            transport: "http",
            nonce: 7,
        }
    }

    fn request<'a>(method: &'a str, path_with_query: &'a str, body: &'a [u8]) -> Request<'a> {
        Request {
            method,
            path_with_query,
            content_type: Some("application/json"),
            accept: None,
            body,
        }
    }

    /// A document of `device` with one row per timestamp, `t` = its index.
    fn document(device: &str, timestamps: &[i64]) -> Vec<u8> {
        let rows: Vec<Json> = timestamps
            .iter()
            .enumerate()
            .map(|(i, ts)| json!({"timestamp": ts, "t": i as f64 + 0.5}))
            .collect();
        json!({"deviceinfo": {"deviceid": device}, "tsdata": rows})
            .to_string()
            .into_bytes()
    }

    fn post_insert(store: &mut MemoryStore, path: &str, body: &[u8]) -> Response {
        handle_insert(
            store,
            &mut NoTransforms,
            &request("POST", path, body),
            receipt(),
        )
    }

    fn get_fetch(store: &mut MemoryStore, path: &str) -> Response {
        handle_fetch(store, &request("GET", path, b""), MAX_LIMIT)
    }

    fn json_of(response: &Response) -> Json {
        serde_json::from_slice(&response.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}",
                String::from_utf8_lossy(&response.body)
            )
        })
    }

    /// An error answer: its status, a JSON body with `error` (returned) and a `detail`.
    fn error_of(response: &Response, status: u16) -> String {
        let body = json_of(response);
        assert_eq!(
            (response.status, response.content_type),
            (status, JSON),
            "{body}"
        );
        assert!(body.get("detail").is_some(), "{body}");
        body["error"].as_str().expect("`error` is text").to_owned()
    }

    #[test]
    fn an_insert_answers_true_once_its_rows_are_stored() {
        let mut store = MemoryStore::default();
        let answer = post_insert(&mut store, "/insert/kitchen", &document("kitchen", &[1, 2]));
        assert_eq!(
            (answer.status, answer.content_type, answer.body.as_slice()),
            (200, "text/html; charset=utf-8", &b"True"[..])
        );
        assert_eq!(store.rows("kitchen").len(), 2);
        assert_eq!(store.rows(DEVICES).len(), 1);
        assert_eq!(store.rows(MESSAGES).len(), 1);
    }

    #[test]
    fn a_bad_insert_request_is_a_json_error_and_stores_nothing() {
        let mut store = MemoryStore::default();
        let good = document("kitchen", &[1]);
        for (method, path, body, status, error) in [
            ("POST", "/insert/", &good[..], 404, "no such route"),
            (
                "POST",
                "/insert/kitchen/more",
                &good[..],
                404,
                "no such route",
            ),
            ("POST", "/other/kitchen", &good[..], 404, "no such route"),
            ("POST", "/insert/a%23b", &good[..], 400, "invalid device id"),
            (
                "POST",
                "/insert/kitchen",
                b"{\"deviceinfo\":",
                400,
                "malformed JSON",
            ),
            (
                "POST",
                "/insert/hall",
                &good[..],
                400,
                "deviceinfo.deviceid does not match the device",
            ),
        ] {
            let answer = post_insert_with(&mut store, method, path, body);
            assert_eq!(error_of(&answer, status), error, "{method} {path}");
        }
        // A wrong method is a 405 that names the right one, in `Allow` too.
        let answer = post_insert_with(&mut store, "GET", "/insert/kitchen", &good);
        assert_eq!(error_of(&answer, 405), "method not allowed");
        assert_eq!(answer.headers, [("allow", "POST".to_owned())]);
        assert_eq!(json_of(&answer)["detail"]["allowed"], json!(["POST"]));
        assert_eq!(store.names(), Vec::<&str>::new());
        assert!(store.writes.is_empty());
    }

    fn post_insert_with(
        store: &mut MemoryStore,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Response {
        handle_insert(
            store,
            &mut NoTransforms,
            &request(method, path, body),
            receipt(),
        )
    }

    #[test]
    fn a_fetch_answers_rows_as_json_objects_a_page_at_a_time() {
        let mut store = MemoryStore::default();
        let posted = post_insert(
            &mut store,
            "/insert/kitchen",
            &document("kitchen", &[30, 10, 20]),
        );
        assert_eq!(posted.status, 200);

        let all = get_fetch(&mut store, "/fetch/kitchen");
        assert_eq!((all.status, all.content_type), (200, JSON));
        assert!(all.headers.is_empty(), "one page: no link");
        assert_eq!(
            json_of(&all),
            json!([
                {"timestamp": 10, "t": 1.5},
                {"timestamp": 20, "t": 2.5},
                {"timestamp": 30, "t": 0.5},
            ])
        );

        let first = get_fetch(&mut store, "/fetch/kitchen?limit=2");
        assert_eq!(
            json_of(&first),
            json!([{"timestamp": 10, "t": 1.5}, {"timestamp": 20, "t": 2.5}])
        );
        // Two at a time: a `link` to the next page and its cursor, which ends the rows.
        let [("link", link), ("x-next-cursor", cursor)] = first.headers.as_slice() else {
            panic!("a link and a cursor: {:?}", first.headers)
        };
        assert_eq!(cursor, "a20", "after the last row sent");
        let next = link
            .strip_prefix('<')
            .and_then(|l| l.strip_suffix(">; rel=\"next\""))
            .unwrap_or_else(|| panic!("a next link: {link}"));
        let second = get_fetch(&mut store, next);
        assert_eq!(json_of(&second), json!([{"timestamp": 30, "t": 0.5}]));
        assert!(second.headers.is_empty());

        let newest_first = get_fetch(&mut store, "/fetch/kitchen?order=desc&limit=1&columns=t");
        assert_eq!(json_of(&newest_first), json!([{"timestamp": 30, "t": 0.5}]));
        let ranged = get_fetch(&mut store, "/fetch/kitchen?from=15&to=25");
        assert_eq!(json_of(&ranged), json!([{"timestamp": 20, "t": 2.5}]));
    }

    #[test]
    fn a_bad_fetch_request_is_a_json_error() {
        let mut store = MemoryStore::default();
        post_insert(&mut store, "/insert/kitchen", &document("kitchen", &[1]));
        for (path, status) in [
            ("/fetch/hall", 404),
            ("/fetch/", 404),
            ("/fetch/kitchen/x", 404),
            ("/fetch/kitchen?limit=abc", 400),
            ("/fetch/kitchen?limit=0", 400),
            ("/fetch/kitchen?bogus=1", 400),
            ("/fetch/kitchen?columns=nope", 400),
            ("/fetch/kitchen?from=1&from=2", 400),
        ] {
            let answer = get_fetch(&mut store, path);
            error_of(&answer, status);
        }
        let unknown = get_fetch(&mut store, "/fetch/hall");
        assert_eq!(json_of(&unknown)["detail"], json!({"device": "hall"}));
        let bad_limit = get_fetch(&mut store, "/fetch/kitchen?limit=abc");
        assert_eq!(json_of(&bad_limit)["detail"]["parameter"], "limit");
        let posted = handle_fetch(
            &mut store,
            &request("POST", "/fetch/kitchen", b""),
            MAX_LIMIT,
        );
        assert_eq!(error_of(&posted, 405), "method not allowed");
        assert_eq!(posted.headers, [("allow", "GET".to_owned())]);
    }

    #[test]
    fn devices_answer_their_latest_row_and_their_schema() {
        let mut store = MemoryStore::default();
        post_insert(
            &mut store,
            "/insert/kitchen",
            &document("kitchen", &[10, 30, 20]),
        );
        let mut get = |path: &str| handle_devices(&mut store, &request("GET", path, b""));

        let latest = get("/devices/kitchen/latest");
        assert_eq!((latest.status, latest.content_type), (200, JSON));
        assert_eq!(json_of(&latest), json!({"timestamp": 30, "t": 1.5}));
        // Its health is unknown (no host wrote `_last_seen`): no health headers.
        assert_eq!(latest.headers, []);
        let schema = get("/devices/kitchen/schema");
        assert_eq!(
            json_of(&schema),
            json!({
                "device": "kitchen",
                "container": "kitchen",
                "type": "TIME_SERIES",
                "row_key": true,
                "columns": [
                    {"name": "timestamp", "type": "TIMESTAMP"},
                    {"name": "t", "type": "FLOAT"},
                ],
            })
        );
        assert_eq!(
            error_of(&get("/devices/kitchen/other"), 404),
            "no such route"
        );
        assert_eq!(
            error_of(&get("/devices/hall/latest"), 404),
            "unknown device"
        );
        error_of(&get("/devices/kitchen/latest?bogus=1"), 400);
    }

    #[test]
    fn an_mqtt_message_names_its_device_by_the_topic() {
        let mut store = MemoryStore::default();
        let payload = br#"{"deviceinfo":{},"tsdata":[{"timestamp":5,"t":1.0}]}"#;
        let stored = handle_message(
            &mut store,
            &mut NoTransforms,
            "devices/porch/telemetry",
            payload,
            receipt(),
        );
        assert_eq!(stored, Ok(1));
        assert_eq!(
            store.rows("porch"),
            [vec![Value::Timestamp(5), Value::Float(1.0)]]
        );
        assert_eq!(store.rows(DEVICES)[0][0], Value::String("porch".to_owned()));

        for topic in [
            "devices/porch",
            "devices//telemetry",
            "other/porch/telemetry",
            "devices/porch/telemetry/x",
        ] {
            let refused = handle_message(&mut store, &mut NoTransforms, topic, payload, receipt());
            assert_eq!(refused.unwrap_err().error, "unexpected topic", "{topic}");
        }
        assert_eq!(store.writes.len(), 1);
    }

    #[test]
    fn a_batch_of_mqtt_messages_is_one_write_and_a_bad_topic_fails_alone() {
        let mut store = MemoryStore::default();
        let payload =
            |ts: i64| format!(r#"{{"deviceinfo":{{}},"tsdata":[{{"timestamp":{ts},"t":1.0}}]}}"#);
        let (a, b, c) = (payload(1), payload(2), payload(3));
        let messages = [
            ("devices/porch/telemetry", a.as_bytes(), receipt()),
            ("nowhere", b.as_bytes(), receipt()),
            ("devices/hall/telemetry", c.as_bytes(), receipt()),
        ];
        let results = handle_messages(&mut store, &mut NoTransforms, &messages);
        assert_eq!(results[0], Ok(1));
        assert_eq!(results[1].as_ref().unwrap_err().status, 400);
        assert_eq!(results[2], Ok(1));
        assert_eq!(store.writes.len(), 1);
        assert_eq!(
            (store.rows("porch").len(), store.rows("hall").len()),
            (1, 1)
        );
        assert_eq!(store.rows(MESSAGES).len(), 2);
    }

    #[test]
    fn grafana_and_reports_route_only_their_paths() {
        let mut store = MemoryStore::default();
        let outside = handle_grafana(&mut store, &request("GET", "/fetch/x", b""), MAX_LIMIT);
        assert_eq!(error_of(&outside, 404), "no such route");
        let health = handle_grafana(&mut store, &request("GET", "/grafana", b""), MAX_LIMIT);
        assert_eq!((health.status, health.content_type), (200, JSON));
        let posted = handle_reports(&mut store, &request("POST", "/reports", b""));
        assert_eq!(error_of(&posted, 405), "method not allowed");
        assert_eq!(posted.headers, [("allow", "GET".to_owned())]);
    }
}
