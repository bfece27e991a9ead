//! A test fixture: the MQTT collector as a plain Spin MQTT component, which
//! exports only `handle-message` (world `mqtt-component`), as components
//! written for Spin do. The host has no batch export to prefer here and calls
//! it once per message. A payload of exactly `trap` makes it trap.

use cromflag_guest::{receipt, HostPipeline, HostStore};

wit_bindgen::generate!({
    path: "../../wit",
    world: "mqtt-component",
    with: {
        "cromflag:iot/types@0.1.0": cromflag_guest::cromflag::iot::types,
        "cromflag:iot/store@0.1.0": cromflag_guest::cromflag::iot::store,
        "cromflag:iot/pipeline@0.1.0": cromflag_guest::cromflag::iot::pipeline,
        "fermyon:spin/variables@2.0.0": cromflag_guest::fermyon::spin::variables,
    },
    generate_all,
});

struct SpinInsert;

impl Guest for SpinInsert {
    fn handle_message(message: Payload, metadata: Metadata) -> Result<(), Error> {
        if message == b"trap" {
            std::process::abort();
        }
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

export!(SpinInsert);
