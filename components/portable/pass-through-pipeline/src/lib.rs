//! The pipeline on platforms where the `cromflag` host does not run the
//! transforms (Spin, `wasmtime serve`): each batch comes back as it went in,
//! so the insert component stores what it decoded. Transforms under those
//! platforms are composed in instead (see docs/deploy.md).

wit_bindgen::generate!({
    path: "../../../wit",
    world: "pipeline-component",
});

use exports::cromflag::iot::pipeline::{Batch, Guest, Rejection};

struct PassThrough;

impl Guest for PassThrough {
    fn has_transforms() -> bool {
        false
    }

    fn run(_device: String, batch: Batch) -> Result<Batch, Rejection> {
        Ok(batch)
    }
}

export!(PassThrough);
