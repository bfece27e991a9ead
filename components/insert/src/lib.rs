//! The telemetry collector, on both transports: `POST /insert/<device>` as a
//! wasi:http component, and MQTT topic `devices/<device>/telemetry` through the
//! Spin MQTT trigger's `handle-message`. All logic is in `cromflag_logic::api`;
//! this crate only binds it.

use cromflag_guest::{serve, HostStore};
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

wit_bindgen::generate!({
    path: "../../wit",
    world: "mqtt-component",
    // The store import is the one cromflag-guest already binds.
    with: { "cromflag:iot/store@0.1.0": cromflag_guest::cromflag::iot::store },
    generate_all,
});

struct Insert;

impl wasip2::exports::http::incoming_handler::Guest for Insert {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        serve(request, out, |req| {
            cromflag_logic::api::handle_insert(&mut HostStore, req)
        });
    }
}

impl Guest for Insert {
    /// A rejected message reports its `ApiError` (status included) as JSON, so
    /// the host can tell bad input (4xx) from a store failure (5xx).
    fn handle_message(message: Payload, metadata: Metadata) -> Result<(), Error> {
        cromflag_logic::api::handle_message(&mut HostStore, &metadata.topic, &message)
            .map(|_rows| ())
            .map_err(|e| Error::Other(e.to_message()))
    }
}

wasip2::http::proxy::export!(Insert);
export!(Insert);
