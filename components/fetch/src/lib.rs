//! `GET /fetch/<device>?from=<ms>&to=<ms>` and `GET /fetch/devices`: stored rows
//! for third-party apps, as a wasi:http component. All logic is in
//! `cromflag_logic::api::handle_fetch`; this crate only binds it.

use cromflag_guest::{serve, HostStore};
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Fetch;

impl wasip2::exports::http::incoming_handler::Guest for Fetch {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        serve(request, out, |req| {
            cromflag_logic::api::handle_fetch(&mut HostStore, req)
        });
    }
}

wasip2::http::proxy::export!(Fetch);
