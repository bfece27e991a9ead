//! The application logic of cromflag's components, in plain Rust.
//!
//! Nothing here knows about WebAssembly, HTTP servers or SQLite: the components in
//! `components/*` wrap this crate behind their WIT exports, and the host links it
//! natively for benchmarks. Read it top to bottom as: the store `model`, `device`
//! ids and the containers they map to, the insert `document` and its `schema`
//! inference, then the two operations `insert` and `fetch`, which answer with an
//! `ApiError` when the input is wrong; `report` holds the cron-made reports and
//! their `/reports` endpoints.

pub mod api;
pub mod csv;
pub mod device;
pub mod document;
pub mod encode;
pub mod error;
pub mod fetch;
pub mod grafana;
pub mod http;
pub mod insert;
pub mod json;
/// The store vocabulary (its own crate, `cromflag-model`), under the name
/// the logic has always used.
pub use cromflag_model as model;
pub mod query;
pub mod report;
pub mod schema;
#[cfg(test)]
mod testing;

pub use error::ApiError;
pub use model::*;
