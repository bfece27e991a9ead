//! A component that traps on purpose, on every trigger it serves: before
//! answering an HTTP request, and on a cron tick.
//!
//! The host's tests bind it to show that a trapping component costs one 500
//! response (or one failed cron run) and nothing else: the host keeps serving.

use wasip2::http::types::{IncomingRequest, ResponseOutparam};

wit_bindgen::generate!({
    path: "../../wit",
    inline: "package cromflag:fault; world fault { include fermyon:spin-cron/spin-cron@2.0.0; }",
    generate_all,
});

struct Fault;

impl wasip2::exports::http::incoming_handler::Guest for Fault {
    fn handle(_request: IncomingRequest, _out: ResponseOutparam) {
        // `unreachable` is a trap in wasm32; no response is ever set.
        std::process::abort();
    }
}

impl Guest for Fault {
    fn handle_cron_event(_metadata: Metadata) -> Result<(), Error> {
        std::process::abort();
    }
}

wasip2::http::proxy::export!(Fault);
export!(Fault);
