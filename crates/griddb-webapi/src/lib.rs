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
//! - `client`: one call, with auth, a deadline and retries, over a
//!   [`client::Transport`] that carries the bytes; `features`: which
//!   release answers.
//! - `store`: the store's calls as WebAPI calls ([`store::WebApiStore`]).
//!
//! A crate of its own, with no HTTP client, no SQLite and no async runtime,
//! so that it compiles for `wasm32-wasip2`: the host's `griddb` store runs
//! `WebApiStore` over hyper, the `griddb-store` component over
//! `wasi:http/outgoing-handler`, and the host's `--webapi` stand-in serves
//! the same wire format.

pub mod client;
pub mod dialect;
pub mod features;
pub mod paging;
pub mod puts;
pub mod store;
pub mod wire;
