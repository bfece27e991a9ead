//! The telemetry collector, on both transports: `POST /insert/<device>` as a
//! wasi:http component, and MQTT topic `devices/<device>/telemetry` through the
//! Spin MQTT trigger's `handle-message`, and `handle-messages` for batches
//! (`cromflag:iot/mqtt-batch`, which the host prefers). All logic is in
//! `cromflag_logic::api`; this crate only binds it.

use cromflag_guest::{receipt, HostPipeline, HostStore};
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

wit_bindgen::generate!({
    path: "../../wit",
    world: "mqtt-batch-component",
    // The imports are the ones cromflag-guest already binds.
    with: {
        "cromflag:iot/types@0.1.0": cromflag_guest::cromflag::iot::types,
        "cromflag:iot/store@0.1.0": cromflag_guest::cromflag::iot::store,
        "cromflag:iot/pipeline@0.1.0": cromflag_guest::cromflag::iot::pipeline,
        "fermyon:spin/variables@2.0.0": cromflag_guest::fermyon::spin::variables,
    },
    generate_all,
});

struct Insert;

impl wasip2::exports::http::incoming_handler::Guest for Insert {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        cromflag_guest::serve_insert(request, out);
    }
}

impl Guest for Insert {
    /// A rejected message reports its `ApiError` (status included) as JSON, so
    /// the host can tell bad input (4xx) from a store failure (5xx).
    fn handle_message(message: Payload, metadata: Metadata) -> Result<(), Error> {
        cromflag_logic::api::handle_message(
            &mut HostStore,
            &mut HostPipeline,
            &metadata.topic,
            &message,
            receipt("mqtt"),
        )
        .map(|_rows| ())
        .map_err(|e| Error::Other(e.to_message()))
    }
}

impl exports::cromflag::iot::mqtt_batch::Guest for Insert {
    /// One write for the whole batch; each message's error as `handle_message`
    /// reports it.
    fn handle_messages(
        messages: Vec<exports::cromflag::iot::mqtt_batch::Message>,
    ) -> Vec<Result<(), Error>> {
        let messages: Vec<_> = messages
            .iter()
            .map(|m| {
                (
                    m.metadata.topic.as_str(),
                    m.payload.as_slice(),
                    receipt("mqtt"),
                )
            })
            .collect();
        cromflag_logic::api::handle_messages(&mut HostStore, &mut HostPipeline, &messages)
            .into_iter()
            .map(|r| r.map(|_rows| ()).map_err(|e| Error::Other(e.to_message())))
            .collect()
    }
}

wasip2::http::proxy::export!(Insert);
export!(Insert);
