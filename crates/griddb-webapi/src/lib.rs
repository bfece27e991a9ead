//! GridDB's WebAPI (v2) without the HTTP: everything a client or a server of
//! it decides from bytes and schemas alone.
//!
//! - `wire`: the request and response bodies, type names and how a value is
//!   written as JSON (puts strict, answers read with any time-zone offset).
//! - `dialect`: our TQL as GridDB runs it (column lists → a projection,
//!   several aggregations → one statement each), and its answers as our
//!   `QueryResult` (retyped, exact integer MIN/MAX past 2^53).
//! - `paging`: a row statement as pages under `maxResponseSize`.
//! - `puts`: a multi-put as requests (time series, then collections, each
//!   container once per request, under `maxRequestSize`).
//!
//! A crate of its own, with no I/O (no HTTP client, no SQLite, no async
//! runtime), so that it compiles for `wasm32-wasip2`: the host's `griddb`
//! store and its `--webapi` stand-in use it natively, a store adapter that is
//! itself a component uses the same code. Sending the requests, retrying and
//! caching schemas stay with the caller (`cromflag-store`'s `griddb`).

pub mod dialect;
pub mod paging;
pub mod puts;
pub mod wire;
