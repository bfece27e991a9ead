//! The telemetry collector over HTTP alone: the `insert` component without
//! its MQTT exports, whose Spin trigger types would otherwise stay imports of
//! the composed component. The same handler as `insert`'s HTTP side.

use cromflag_guest::{receipt, serve, HostPipeline, HostStore};
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Insert;

impl wasip2::exports::http::incoming_handler::Guest for Insert {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        serve(request, out, |req| {
            cromflag_logic::api::handle_insert(
                &mut HostStore,
                &mut HostPipeline,
                req,
                receipt("http"),
            )
        });
    }
}

wasip2::http::proxy::export!(Insert);
