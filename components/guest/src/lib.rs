//! Glue every cromflag component shares.
//!
//! - `HostStore` adapts the imported `cromflag:iot/store` interface to
//!   `cromflag_logic::Store`, and `HostPipeline` the imported
//!   `cromflag:iot/pipeline` to `cromflag_logic::Pipeline`, converting between
//!   the generated WIT types and the logic crate's model (the only place those
//!   conversions live on the guest side).
//! - `serve` turns a wasi:http request into a `cromflag_logic::api::Request`,
//!   runs a handler, and writes its `Response` back.
//! - `receipt`, `now_ms` and `variable` give the logic what only the host knows:
//!   the time, randomness, and the component's variables.

pub mod convert;

use convert::{column_data_from_wit, column_from_wit, column_to_wit, row_to_wit, value_from_wit};
use cromflag_logic::api;
use cromflag_logic::model as m;
use std::io::{Read, Write};
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wit_bindgen::generate!({
    path: "../../wit",
    world: "host-services",
    generate_all,
});

use cromflag::iot::pipeline;
use cromflag::iot::store as wit;
use fermyon::spin::variables;

/// The wall clock, in epoch milliseconds.
pub fn now_ms() -> i64 {
    let now = wasip2::clocks::wall_clock::now();
    now.seconds as i64 * 1000 + i64::from(now.nanoseconds / 1_000_000)
}

/// The receipt of a document arriving now over `transport`.
pub fn receipt(transport: &'static str) -> cromflag_logic::insert::Receipt {
    cromflag_logic::insert::Receipt {
        received_ms: now_ms(),
        transport,
        nonce: wasip2::random::random::get_random_u64(),
    }
}

/// The component variable `name` (`[component.<id>.variables]`), or `None` when
/// the manifest does not set it.
pub fn variable(name: &str) -> Option<String> {
    variables::get(name).ok()
}

/// The host's store, through the component's `cromflag:iot/store` import.
pub struct HostStore;

impl m::Store for HostStore {
    fn put_container(&mut self, info: m::ContainerInfo) -> Result<m::ContainerInfo, m::StoreError> {
        wit::put_container(&info_to_wit(info))
            .map(info_from_wit)
            .map_err(error_from_wit)
    }

    fn get_container(&mut self, name: &str) -> Result<Option<m::ContainerInfo>, m::StoreError> {
        wit::get_container(name)
            .map(|info| info.map(info_from_wit))
            .map_err(error_from_wit)
    }

    fn get_containers(
        &mut self,
        names: &[&str],
    ) -> Result<Vec<Option<m::ContainerInfo>>, m::StoreError> {
        let names: Vec<String> = names.iter().map(|&n| n.to_owned()).collect();
        wit::get_containers(&names)
            .map(|infos| infos.into_iter().map(|i| i.map(info_from_wit)).collect())
            .map_err(error_from_wit)
    }

    fn list_containers(&mut self) -> Result<Vec<String>, m::StoreError> {
        wit::list_containers().map_err(error_from_wit)
    }

    fn put_rows(&mut self, container: &str, rows: Vec<m::Row>) -> Result<u64, m::StoreError> {
        let rows: Vec<wit::Row> = rows.into_iter().map(row_to_wit).collect();
        wit::put_rows(container, &rows).map_err(error_from_wit)
    }

    fn multi_put(&mut self, batches: Vec<(String, Vec<m::Row>)>) -> Result<u64, m::StoreError> {
        let batches: Vec<wit::ContainerRows> = batches
            .into_iter()
            .map(|(container, rows)| wit::ContainerRows {
                container,
                rows: rows.into_iter().map(row_to_wit).collect(),
            })
            .collect();
        wit::multi_put(&batches).map_err(error_from_wit)
    }

    fn query(&mut self, container: &str, tql: &str) -> Result<m::QueryResult, m::StoreError> {
        let result = wit::query(container, tql).map_err(error_from_wit)?;
        Ok(m::QueryResult {
            columns: result.columns.into_iter().map(column_from_wit).collect(),
            rows: m::from_columns(result.data.into_iter().map(column_data_from_wit).collect()),
        })
    }

    fn aggregate_ranges(
        &mut self,
        container: &str,
        aggregates: &str,
        ranges: &[m::KeyRange],
    ) -> Result<m::RangeAggregates, m::StoreError> {
        let ranges: Vec<wit::KeyRange> = ranges
            .iter()
            .map(|r| wit::KeyRange {
                start: r.start,
                end: r.end,
            })
            .collect();
        let result =
            wit::aggregate_ranges(container, aggregates, &ranges).map_err(error_from_wit)?;
        Ok(m::RangeAggregates {
            columns: result.columns.into_iter().map(column_from_wit).collect(),
            rows: result
                .rows
                .into_iter()
                .map(|row| row.map(|row| row.into_iter().map(value_from_wit).collect()))
                .collect(),
        })
    }
}

/// The host's transform pipeline for this component, through `cromflag:iot/pipeline`.
pub struct HostPipeline;

impl m::Pipeline for HostPipeline {
    fn run(&mut self, device: &str, batch: m::Batch) -> Result<m::Batch, m::Rejection> {
        // Most components have no transforms: then the batch need not cross.
        if !pipeline::has_transforms() {
            return Ok(batch);
        }
        let batch = pipeline::Batch {
            columns: batch.columns.into_iter().map(column_to_wit).collect(),
            rows: batch.rows.into_iter().map(row_to_wit).collect(),
        };
        match pipeline::run(device, &batch) {
            Ok(out) => Ok(m::Batch {
                columns: out.columns.into_iter().map(column_from_wit).collect(),
                rows: out
                    .rows
                    .into_iter()
                    .map(|row| row.into_iter().map(value_from_wit).collect())
                    .collect(),
            }),
            Err(rejection) => Err(m::Rejection {
                transform: rejection.transform,
                reason: rejection.reason,
            }),
        }
    }
}

fn info_to_wit(info: m::ContainerInfo) -> wit::ContainerInfo {
    wit::ContainerInfo {
        name: info.name,
        kind: match info.kind {
            m::ContainerKind::Collection => wit::ContainerKind::Collection,
            m::ContainerKind::TimeSeries => wit::ContainerKind::TimeSeries,
        },
        columns: info.columns.into_iter().map(column_to_wit).collect(),
        row_key: info.row_key,
    }
}

fn info_from_wit(info: wit::ContainerInfo) -> m::ContainerInfo {
    m::ContainerInfo {
        name: info.name,
        kind: match info.kind {
            wit::ContainerKind::Collection => m::ContainerKind::Collection,
            wit::ContainerKind::TimeSeries => m::ContainerKind::TimeSeries,
        },
        columns: info.columns.into_iter().map(column_from_wit).collect(),
        row_key: info.row_key,
    }
}

fn error_from_wit(e: wit::Error) -> m::StoreError {
    match e {
        wit::Error::NotFound(m) => m::StoreError::NotFound(m),
        wit::Error::Invalid(m) => m::StoreError::Invalid(m),
        wit::Error::SchemaConflict(m) => m::StoreError::SchemaConflict(m),
        wit::Error::Query(m) => m::StoreError::Query(m),
        wit::Error::Backend(m) => m::StoreError::Backend(m),
    }
}

/// `POST /insert/<device>`, the collector's HTTP side: `insert`'s, and
/// `insert-http`'s (the same without MQTT, for other platforms).
pub fn serve_insert(request: IncomingRequest, out: ResponseOutparam) {
    serve(request, out, |req| {
        api::handle_insert(&mut HostStore, &mut HostPipeline, req, receipt("http"))
    });
}

/// Serves one wasi:http request with `handler`.
pub fn serve(
    request: IncomingRequest,
    out: ResponseOutparam,
    handler: impl FnOnce(&api::Request) -> api::Response,
) {
    let response = match read_request(&request) {
        Ok(parts) => handler(&api::Request {
            method: &parts.method,
            path_with_query: &parts.path_with_query,
            content_type: parts.content_type.as_deref(),
            accept: parts.accept.as_deref(),
            body: &parts.body,
        }),
        Err(err) => err.into(),
    };
    write_response(out, response);
}

struct RequestParts {
    method: String,
    path_with_query: String,
    content_type: Option<String>,
    accept: Option<String>,
    body: Vec<u8>,
}

fn read_request(request: &IncomingRequest) -> Result<RequestParts, cromflag_logic::ApiError> {
    let method = match request.method() {
        Method::Get => "GET".to_owned(),
        Method::Head => "HEAD".to_owned(),
        Method::Post => "POST".to_owned(),
        Method::Put => "PUT".to_owned(),
        Method::Delete => "DELETE".to_owned(),
        Method::Connect => "CONNECT".to_owned(),
        Method::Options => "OPTIONS".to_owned(),
        Method::Trace => "TRACE".to_owned(),
        Method::Patch => "PATCH".to_owned(),
        Method::Other(other) => other,
    };
    let path_with_query = request.path_with_query().unwrap_or_else(|| "/".to_owned());
    let headers = request.headers();
    let header = |name: &str| {
        headers
            .get(name)
            .into_iter()
            .next()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    };
    let content_type = header("content-type");
    let accept = header("accept");
    let unreadable = |reason: String| {
        cromflag_logic::ApiError::bad_request("request body could not be read", reason.into())
    };
    let incoming = request
        .consume()
        .map_err(|()| unreadable("body already consumed".into()))?;
    let mut body = Vec::new();
    {
        let mut stream = incoming
            .stream()
            .map_err(|()| unreadable("no body stream".into()))?;
        stream
            .read_to_end(&mut body)
            .map_err(|e| unreadable(e.to_string()))?;
    }
    drop(wasip2::http::types::IncomingBody::finish(incoming));
    Ok(RequestParts {
        method,
        path_with_query,
        content_type,
        accept,
        body,
    })
}

fn write_response(out: ResponseOutparam, response: api::Response) {
    let mut fields = vec![
        (
            "content-type".to_owned(),
            response.content_type.as_bytes().to_vec(),
        ),
        (
            "content-length".to_owned(),
            response.body.len().to_string().into_bytes(),
        ),
    ];
    fields.extend(
        response
            .headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.as_bytes().to_vec())),
    );
    let headers = Fields::from_list(&fields).expect("handlers only set valid headers");
    let outgoing = OutgoingResponse::new(headers);
    outgoing
        .set_status_code(response.status)
        .expect("handlers only produce valid status codes");
    let body = outgoing.body().expect("a new response has a body");
    ResponseOutparam::set(out, Ok(outgoing));
    // The status and headers are sent; if the client went away there is nobody
    // left to tell, so a failed write only ends the response early.
    if let Ok(mut stream) = body.write() {
        if stream.write_all(&response.body).is_ok() {
            let _ = stream.blocking_flush();
        }
    }
    let _ = OutgoingBody::finish(body, None);
}
