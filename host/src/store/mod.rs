//! Storage, as the host sees it: the `cromflag-store` crate (the `Backend`
//! trait, the embedded and griddb backends; the WebAPI wire format is
//! `cromflag-griddb-webapi`'s). The host side of `cromflag:iot/store` is
//! `runtime::store_import`.

pub use cromflag_store::*;
