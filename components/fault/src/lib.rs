//! A wasi:http component that traps on purpose, before answering.
//!
//! The host's tests route a path to it to show that a trapping component costs
//! one 500 response and nothing else: the host keeps serving.

use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Fault;

impl wasip2::exports::http::incoming_handler::Guest for Fault {
    fn handle(_request: IncomingRequest, _out: ResponseOutparam) {
        // `unreachable` is a trap in wasm32; no response is ever set.
        std::process::abort();
    }
}

wasip2::http::proxy::export!(Fault);
