//! The read side for third-party apps, as a wasi:http component:
//! `GET /fetch/<device>` (ranges, paging, aggregation, formats), `GET
//! /fetch/devices`, `GET /devices/<device>/latest|schema`, the stored reports
//! under `GET /reports`, and Grafana's JSON-datasource protocol under `/grafana`. All logic is in `cromflag_logic::api`; this
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
            } else if path.starts_with("/grafana") {
                cromflag_logic::api::handle_grafana(&mut HostStore, req, max_limit())
            } else {
                cromflag_logic::api::handle_fetch(&mut HostStore, req, max_limit())
            }
        });
    }
}

/// `fetch_max_limit` caps `limit` (and buckets); an unset or unreadable one is the default.
fn max_limit() -> u64 {
    variable("fetch_max_limit")
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_MAX_LIMIT)
}

wasip2::http::proxy::export!(Fetch);
