//! Every WIT-generated binding of the host, one submodule per world: the rest
//! of the host names generated types through here only.
//!
//! `host_services` is generated first and owns the interfaces every other world
//! shares (`cromflag:iot/types`, `store`, `pipeline`, Spin's variables); the
//! other worlds map theirs onto it (`with`), so that a `Batch` or a store error
//! is one Rust type whichever world it came through. That mapping is written
//! once, in `component_world!`, for the worlds that include `host-services`.
//! The transformer world names its two (types, variables) itself: bindgen
//! refuses a `with` entry its world does not use. The HTTP world needs none of
//! its own: wasmtime-wasi-http's `ProxyPre` binds it.

/// The host's imports, as every component world includes them
/// (`runtime::store_import`, `runtime::variables` and `runtime::transforms`
/// implement them).
pub mod host_services {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "host-services",
        imports: { default: async },
    });
}

/// The bindings of a world that includes `host-services`, with its shared
/// interfaces mapped onto `host_services`'s, and the mappings in braces on top.
macro_rules! component_world {
    ($world:tt, { $($with:tt)* }) => {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: $world,
            imports: { default: async },
            exports: { default: async },
            with: {
                "cromflag:iot/types": crate::bindings::host_services::cromflag::iot::types,
                "cromflag:iot/store": crate::bindings::host_services::cromflag::iot::store,
                "cromflag:iot/pipeline": crate::bindings::host_services::cromflag::iot::pipeline,
                "fermyon:spin/variables": crate::bindings::host_services::fermyon::spin::variables,
            },
            with: { $($with)* },
        });
    };
}

/// A transform component (`runtime::transforms` runs it): it imports nothing
/// but its variables and exports `transform`.
pub mod transformer {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "transformer",
        imports: { default: async },
        exports: { default: async },
        with: {
            "cromflag:iot/types": crate::bindings::host_services::cromflag::iot::types,
            "fermyon:spin/variables": crate::bindings::host_services::fermyon::spin::variables,
        },
    });
}

/// A cron component: Spin's `handle-cron-event` (`triggers::cron`).
pub mod cron {
    component_world!("cron-component", {});
}

/// An MQTT component with the batch export, `handle-messages` (`triggers::mqtt`).
pub mod mqtt_batch {
    component_world!("mqtt-batch-component", {});
}

/// An MQTT component with Spin's `handle-message` only (`triggers::mqtt`);
/// its message types are `mqtt_batch`'s.
pub mod mqtt {
    component_world!("mqtt-component", {
        "spin:mqtt-trigger/spin-mqtt-types": crate::bindings::mqtt_batch::spin::mqtt_trigger::spin_mqtt_types,
    });
}
