//! The read side for third-party apps, as a wasi:http component:
//! `GET /fetch/<device>` (ranges, paging, aggregation, formats), `GET
//! /fetch/devices`, `GET /devices/<device>/latest|schema`, and the stored
//! reports under `GET /reports`. All logic is in `cromflag_logic::api`; this
//! crate only binds it.

use cromflag_guest::{serve, variable, HostStore};
use cromflag_logic::fetch::DEFAULT_MAX_LIMIT;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Fetch;

impl wasip2::exports::http::incoming_handler::Guest for Fetch {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        serve(request, out, |req| {
            let path = req.path_with_query;
            if path.starts_with("/reports") {
                cromflag_logic::api::handle_reports(&mut HostStore, req)
            } else if path.starts_with("/devices/") {
                cromflag_logic::api::handle_devices(&mut HostStore, req)
            } else {
                // `fetch_max_limit` caps `limit`; an unset or unreadable one is the default.
                let max_limit = variable("fetch_max_limit")
                    .and_then(|v| v.parse().ok())
                    .filter(|n| *n > 0)
                    .unwrap_or(DEFAULT_MAX_LIMIT);
                cromflag_logic::api::handle_fetch(&mut HostStore, req, max_limit)
            }
        });
    }
}

wasip2::http::proxy::export!(Fetch);
