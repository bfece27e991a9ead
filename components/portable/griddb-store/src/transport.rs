//! How this component reaches the WebAPI: one outgoing wasi:http request per
//! exchange, blocking until the answer is read, with the deadline left as
//! the request's timeouts. The platform decides where it may go (Spin's
//! `allowed_outbound_hosts`; `wasmtime serve` lets everything out).

use cromflag_griddb_webapi::client::{Answer, Transport};
use http::{Request, StatusCode};
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};

pub struct WasiTransport;

impl Transport for WasiTransport {
    async fn send(&self, request: Request<Vec<u8>>, deadline: Instant) -> Result<Answer, String> {
        exchange(request, deadline.saturating_duration_since(Instant::now()))
    }

    async fn sleep(&self, pause: Duration) {
        wasip2::clocks::monotonic_clock::subscribe_duration(nanos(pause)).block();
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn exchange(request: Request<Vec<u8>>, allowed: Duration) -> Result<Answer, String> {
    let (parts, body) = request.into_parts();
    let headers: Vec<(String, Vec<u8>)> = parts
        .headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    let headers = Fields::from_list(&headers).map_err(|e| format!("headers: {e:?}"))?;
    let outgoing = OutgoingRequest::new(headers);
    let method = match parts.method.as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        other => Method::Other(other.to_owned()),
    };
    let scheme = match parts.uri.scheme_str() {
        Some("https") => Scheme::Https,
        _ => Scheme::Http,
    };
    outgoing
        .set_method(&method)
        .and_then(|()| outgoing.set_scheme(Some(&scheme)))
        .and_then(|()| outgoing.set_authority(parts.uri.authority().map(|a| a.as_str())))
        .and_then(|()| outgoing.set_path_with_query(parts.uri.path_and_query().map(|p| p.as_str())))
        .map_err(|()| format!("the platform refused the request line of {}", parts.uri))?;
    let request_body = outgoing.body().map_err(|()| "no request body".to_owned())?;
    let options = RequestOptions::new();
    // A platform that does not support a timeout says so; the deadline is
    // then the platform's own.
    let _ = options.set_connect_timeout(Some(nanos(allowed)));
    let _ = options.set_first_byte_timeout(Some(nanos(allowed)));
    let _ = options.set_between_bytes_timeout(Some(nanos(allowed)));
    // Sent first, so that the body's bytes have somewhere to go.
    let pending = outgoing_handler::handle(outgoing, Some(options))
        .map_err(|e| format!("{} {}: {e:?}", parts.method, parts.uri))?;
    // A request the platform refuses closes the body's stream: its answer
    // says why, so a failed write is reported only if the answer does not.
    let written = write_body(request_body, &body);
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or_else(|| "no answer after waiting for one".to_owned())?
        .map_err(|()| "answer already taken".to_owned())?
        .map_err(|e| format!("{} {}: {e:?}", parts.method, parts.uri))?;
    written?;
    let status = StatusCode::from_u16(response.status())
        .map_err(|_| format!("status {} is not HTTP", response.status()))?;
    let incoming = response
        .consume()
        .map_err(|()| "answer body already taken".to_owned())?;
    let mut answer = Vec::new();
    {
        let mut stream = incoming
            .stream()
            .map_err(|()| "answer body stream".to_owned())?;
        stream
            .read_to_end(&mut answer)
            .map_err(|e| format!("reading the answer: {e}"))?;
    }
    drop(IncomingBody::finish(incoming));
    Ok(Answer {
        status,
        body: answer,
    })
}

fn write_body(request_body: OutgoingBody, body: &[u8]) -> Result<(), String> {
    // A bodiless request (a GET) may be sent without waiting for its body,
    // whose stream the platform then closes at any moment: writing nothing
    // to it could fail for no reason (wasmtime serve did, now and then). Its
    // end is all there is to say, and the answer tells how the request went.
    if body.is_empty() {
        let _ = OutgoingBody::finish(request_body, None);
        return Ok(());
    }
    {
        let mut stream = request_body
            .write()
            .map_err(|()| "request body stream".to_owned())?;
        stream
            .write_all(body)
            .map_err(|e| format!("writing the request body: {e}"))?;
        stream
            .blocking_flush()
            .map_err(|e| format!("writing the request body: {e:?}"))?;
    }
    OutgoingBody::finish(request_body, None).map_err(|e| format!("request body: {e:?}"))
}
