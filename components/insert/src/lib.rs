//! `POST /insert/<device>`: the telemetry collector as a wasi:http component.
//! All logic is in `cromflag_logic::api::handle_insert`; this crate only binds it.

use cromflag_guest::{serve, HostStore};
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Insert;

impl wasip2::exports::http::incoming_handler::Guest for Insert {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        serve(request, out, |req| {
            cromflag_logic::api::handle_insert(&mut HostStore, req)
        });
    }
}

wasip2::http::proxy::export!(Insert);
