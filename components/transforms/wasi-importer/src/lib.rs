//! TEST FIXTURE — a transform built with `std` that really imports WASI: it
//! reads the wall clock (`std::time::SystemTime::now()`, which is
//! `wasi:clocks/wall-clock` on wasm32-wasip2) and writes it into a LONG column
//! `wasi_clock_ms`. Its only purpose is to prove that the host refuses a
//! transform that imports anything but `fermyon:spin/variables@2.0.0`; it must
//! never load.

use std::time::{SystemTime, UNIX_EPOCH};

wit_bindgen::generate!({
    path: "../../../wit",
    world: "transformer",
    generate_all,
});

use cromflag::iot::types::{Batch, Column, ColumnType, Value};

struct WasiImporter;

impl exports::cromflag::iot::transform::Guest for WasiImporter {
    fn transform(_device: String, mut batch: Batch) -> Result<Batch, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_millis() as i64;
        let width = batch.columns.len();
        batch.columns.push(Column {
            name: "wasi_clock_ms".into(),
            type_: ColumnType::Long,
        });
        for row in &mut batch.rows {
            row.resize(width, Value::Null);
            row.push(Value::Long(now));
        }
        // And stderr, for good measure (wasi:cli/stderr).
        eprintln!("wasi-importer: stamped {} rows", batch.rows.len());
        Ok(batch)
    }
}

export!(WasiImporter);
