//! GridDB's WebAPI (v2), both ways: `wire` is its request and response bodies
//! and value encoding; `server` answers it from any `Backend`, so that WebAPI
//! clients (the `griddb` backend of another host, the Grafana GridDB
//! datasource) work against a local `cromflag up --webapi ADDR`.
//!
//! The client side is the `griddb` backend in `store::griddb`.

pub mod server;
/// The bodies and value encoding, shared with the `griddb` client: they live
/// in `cromflag-griddb-webapi`, which has no I/O (it also builds for
/// wasm32-wasip2).
pub use cromflag_griddb_webapi::wire;
