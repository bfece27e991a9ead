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
