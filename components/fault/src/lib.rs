//! A component that misbehaves on purpose, for the host's tests: it traps
//! before answering an HTTP request, and on a cron tick it traps too, or, when
//! its variable `sleep_secs` is set, takes that long and succeeds.
//!
//! The tests bind it to show that a trapping component costs one 500 response
//! (or one failed cron run) and nothing else, and that a slow cron run is not
//! overlapped by the next tick.

use wasip2::http::types::{IncomingRequest, ResponseOutparam};

wit_bindgen::generate!({
    path: "../../wit",
    inline: "package cromflag:fault; world fault {
        import fermyon:spin/variables@2.0.0;
        include fermyon:spin-cron/spin-cron@2.0.0;
    }",
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
        let sleep = fermyon::spin::variables::get("sleep_secs").ok();
        match sleep.and_then(|secs| secs.parse::<f64>().ok()) {
            Some(secs) => {
                std::thread::sleep(std::time::Duration::from_secs_f64(secs));
                Ok(())
            }
            None => std::process::abort(),
        }
    }
}

wasip2::http::proxy::export!(Fault);
export!(Fault);
