//! The report writer: on each cron tick (Spin's `handle-cron-event`), the daily
//! and weekly device reports and the monthly invoices of the periods that have
//! just ended, stored in the `reports` collection. For platforms without cron,
//! it also serves `POST /admin/reports/run?kind=&at=` (wasi:http): one tick of
//! one kind, called by their scheduler, guarded by the component's own
//! `admin_token` (see `cromflag_logic::report::run` for why the component
//! checks it too). Settings come from the component's variables; all logic is
//! in `cromflag_logic::report`.

use cromflag_guest::{now_ms, serve, variable, HostStore};
use cromflag_logic::report::{self, run::Guard, settings::Settings};
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

wit_bindgen::generate!({
    path: "../../wit",
    world: "cron-component",
    // The imports are the ones cromflag-guest already binds.
    with: {
        "cromflag:iot/types@0.1.0": cromflag_guest::cromflag::iot::types,
        "cromflag:iot/store@0.1.0": cromflag_guest::cromflag::iot::store,
        "cromflag:iot/pipeline@0.1.0": cromflag_guest::cromflag::iot::pipeline,
        "fermyon:spin/variables@2.0.0": cromflag_guest::fermyon::spin::variables,
    },
    generate_all,
});

struct Report;

impl Guest for Report {
    /// Writes the reports due at the tick's time. An error names what failed:
    /// the host records it as a failed run and the next tick runs as usual.
    fn handle_cron_event(metadata: Metadata) -> Result<(), Error> {
        let settings = Settings::read(variable).map_err(|e| Error::Other(e.to_string()))?;
        let at = i64::try_from(metadata.timestamp)
            .ok()
            .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
            .ok_or_else(|| {
                Error::Other(format!("tick time {} is out of range", metadata.timestamp))
            })?;
        let outcome = report::run_tick(&mut HostStore, at, &settings, now_ms())
            .map_err(|e| Error::Other(format!("writing reports: {e}")))?;
        eprintln!(
            "report: {} reports written for the tick at {at}",
            outcome.written.len()
        );
        Ok(())
    }
}

impl wasip2::exports::http::incoming_handler::Guest for Report {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        // Read here: the request `serve` hands on carries no credentials.
        let authorization = request
            .headers()
            .get("authorization")
            .into_iter()
            .next()
            .and_then(|value| String::from_utf8(value).ok());
        let admin_token = variable("admin_token");
        serve(request, out, |req| {
            let guard = Guard {
                authorization: authorization.as_deref(),
                admin_token: admin_token.as_deref(),
            };
            report::run::handle(
                &mut HostStore,
                req,
                &guard,
                Settings::read(variable),
                now_ms(),
            )
        });
    }
}

wasip2::http::proxy::export!(Report);
export!(Report);
