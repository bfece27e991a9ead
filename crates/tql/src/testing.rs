//! Test material shared with the store and the host (feature `testing`):
//! random TQL-ish text for no-panic tests, and the sample device the
//! translation's tests query (here for its SQL text, in the store on SQLite).

use crate::layout::Storage;
use cromflag_model::{Column, ColumnType, ContainerInfo, ContainerKind};

/// Where the sample device's rows are: the shared time-series table, as
/// container 3.
pub const SAMPLE_STORAGE: Storage = Storage::Series { container: 3 };

/// The sample device: a time series keyed by `timestamp`, with a column of
/// each kind the translation treats apart (BOOL, FLOAT, LONG, STRING).
pub fn sample_device() -> ContainerInfo {
    ContainerInfo {
        name: "device1".into(),
        kind: ContainerKind::TimeSeries,
        columns: vec![
            Column::new("timestamp", ColumnType::Timestamp),
            Column::new("motion", ColumnType::Bool),
            Column::new("temperature", ColumnType::Float),
            Column::new("humidity", ColumnType::Float),
            Column::new("month", ColumnType::Long),
            Column::new("label", ColumnType::String),
        ],
        row_key: true,
    }
}

/// A small deterministic generator, so the garbage test needs no dependency.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Random text built from TQL fragments and raw characters, for no-panic tests.
pub fn garbage(rng: &mut XorShift) -> String {
    const PIECES: [&str; 60] = [
        "like",
        "escape",
        "'%'",
        "'a_'",
        "timestampadd(",
        "timestampdiff(",
        "to_epoch_ms(",
        "day",
        "month",
        "count(",
        "max_rows(",
        "time_sampling(",
        "select",
        "*",
        "from",
        "where",
        "order",
        "by",
        "limit",
        "offset",
        "and",
        "or",
        "not",
        "is",
        "null",
        "asc",
        "desc",
        "(",
        ")",
        ",",
        ";",
        "=",
        "==",
        "<>",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "-",
        "+",
        "'",
        "''",
        "\"",
        "--",
        "/*",
        "*/",
        "1",
        "-0",
        "9223372036854775808",
        "1.5e",
        ".",
        "timestamp(",
        "to_timestamp_ms(",
        "now()",
        "motion",
        "temperature",
        "label",
        "é",
        "\u{0}",
    ];
    let mut text = String::new();
    for _ in 0..rng.below(24) {
        if rng.below(5) == 0 {
            // Any character at all, including multi-byte ones.
            let c = char::from_u32(rng.below(0x800) as u32).unwrap_or('?');
            text.push(c);
        } else {
            text.push_str(PIECES[rng.below(PIECES.len())]);
        }
        if rng.below(2) == 0 {
            text.push(' ');
        }
    }
    text
}

/// A collection keyed by `name` (STRING) with an INTEGER `age`: the people
/// the translation's collection tests read.
pub fn sample_collection() -> ContainerInfo {
    ContainerInfo {
        name: "people".into(),
        kind: ContainerKind::Collection,
        columns: vec![
            Column::new("name", ColumnType::String),
            Column::new("age", ColumnType::Integer),
        ],
        row_key: true,
    }
}
