//! The read side for third-party apps, as a wasi:http component:
//! `GET /fetch/<device>?from=<ms>&to=<ms>`, `GET /fetch/devices`, and the stored
//! reports under `GET /reports`. All logic is in `cromflag_logic::api`; this
//! crate only binds it.

use cromflag_guest::{serve, HostStore};
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Fetch;

impl wasip2::exports::http::incoming_handler::Guest for Fetch {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        serve(request, out, |req| {
            if req.path_with_query.starts_with("/reports") {
                cromflag_logic::api::handle_reports(&mut HostStore, req)
            } else {
                cromflag_logic::api::handle_fetch(&mut HostStore, req)
            }
        });
    }
}

wasip2::http::proxy::export!(Fetch);
