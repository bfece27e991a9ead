//! Answers every HTTP request with `200 {"build": "<BUILD>"}` and nothing
//! else: the live-swap tests' fixture. A test makes "a new build" by copying
//! the `.wasm` with the `BUILD` text replaced by another of the same length,
//! and then sees which build answers.

use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// Kept whole in the data section, where the tests find and replace it.
const BUILD: &str = "probe-build-0001";

struct Probe;

impl wasip2::exports::http::incoming_handler::Guest for Probe {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let headers = Fields::new();
        let _ = headers.set("content-type", &[b"application/json".to_vec()]);
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("a fresh response has a body");
        ResponseOutparam::set(out, Ok(response));
        let text = format!("{{\"build\":\"{}\"}}", std::hint::black_box(BUILD));
        let stream = body.write().expect("a fresh body has a stream");
        let _ = stream.blocking_write_and_flush(text.as_bytes());
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
    }
}

wasip2::http::proxy::export!(Probe);
