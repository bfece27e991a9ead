//! The telemetry collector over HTTP alone: the `insert` component without
//! its MQTT exports, whose Spin trigger types would otherwise stay imports of
//! the composed component. The same handler as `insert`'s HTTP side.

use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Insert;

impl wasip2::exports::http::incoming_handler::Guest for Insert {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        cromflag_guest::serve_insert(request, out);
    }
}

wasip2::http::proxy::export!(Insert);
