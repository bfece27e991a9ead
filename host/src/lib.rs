//! cromflag's host: a thin wasmtime embedding that binds WebAssembly components
//! to triggers declared in `spin.toml`, over a GridDB-model store.
//!
//! Map: `manifest` reads `spin.toml`; `runtime` owns the engine, the per-instance
//! state and the compile cache; `triggers` turn outside events into component
//! calls; `store` holds the backends; `bindings` is every WIT-generated binding;
//! `triggers::mqtt::endpoint` is the device-facing MQTT endpoint; `access` decides
//! who may call what (device and reader tokens, the admin API); `webapi` speaks
//! GridDB's WebAPI; `listener` serves HTTP/1 for both and `http_io` builds
//! their JSON answers and reads their bodies; `health` answers the liveness
//! and readiness probes; `metrics` counts what happens and exports it for
//! Prometheus; `alarms` tracks when devices were last seen and raises and
//! clears alarms; `retention` deletes what is older than its retention; `app` wires them together for `cromflag up`.

pub mod access;
pub mod alarms;
pub mod app;
pub mod bindings;
pub mod health;
pub mod http_io;
pub mod listener;
pub mod live;
pub mod manifest;
pub mod metrics;
pub mod retention;
pub mod runtime;
pub mod store;
pub mod triggers;
pub mod webapi;
