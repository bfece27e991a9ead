//! Storage, as the host sees it: the `cromflag-store` crate (the `Backend`
//! trait, the embedded and griddb backends, the WebAPI wire format), and the
//! host side of `cromflag:iot/store` (`bindings`, the one place that knows the
//! WIT-generated types).

pub mod bindings;

pub use cromflag_store::*;
