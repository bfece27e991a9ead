//! How one `multi-put` becomes WebAPI requests (pure: no I/O here).
//!
//! GridDB's WebAPI gives a multi-put no order and no atomicity: `PUT
//! containers/rows` collects its entries in a Java `HashMap` keyed by
//! container name, so containers are written in any order, each on its own,
//! and a container named twice in one request keeps only its last entry's
//! rows. So the requests are built for that:
//! - every time-series container's rows go first, then the collections'
//!   (`devices`, `messages`, … hold what refers to the rows): two phases, the
//!   second sent only once the first is in;
//! - within a phase, rows go into as few requests under the size limit as
//!   they fit, in the caller's order, and a request names each container once
//!   (repeated containers' rows are merged in order, so the later row of a
//!   key is put later and wins).

use crate::wire::ContainerRows;
use cromflag_model::ContainerKind;
use serde_json::Value as Json;

/// One container's rows, checked and encoded.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// The stored name (as GridDB spells it).
    pub container: String,
    pub kind: ContainerKind,
    pub rows: Vec<EncodedRow>,
}

/// A row as the WebAPI takes it, and its size by the WebAPI's estimate.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedRow {
    pub json: Vec<Json>,
    pub size: usize,
}

/// The requests of one phase, in sending order; each names a container once.
#[derive(Clone, Debug, PartialEq)]
pub struct Phase {
    pub kind: ContainerKind,
    pub requests: Vec<Vec<ContainerRows>>,
}

/// The phases (time series, then collections; empty ones left out) that put
/// `batches`, no request over `max_request_bytes` unless one row is (the
/// caller refuses such rows first).
pub fn phases(batches: Vec<Batch>, max_request_bytes: usize) -> Vec<Phase> {
    let (series, collections): (Vec<Batch>, Vec<Batch>) = merge(batches)
        .into_iter()
        .partition(|batch| batch.kind == ContainerKind::TimeSeries);
    [
        (ContainerKind::TimeSeries, series),
        (ContainerKind::Collection, collections),
    ]
    .into_iter()
    .map(|(kind, batches)| Phase {
        kind,
        requests: chunk(batches, max_request_bytes),
    })
    .filter(|phase| !phase.requests.is_empty())
    .collect()
}

/// One batch per container (names are case-insensitive), in order of first
/// appearance, rows in the order given.
fn merge(batches: Vec<Batch>) -> Vec<Batch> {
    let mut merged: Vec<Batch> = Vec::new();
    for batch in batches {
        match merged
            .iter_mut()
            .find(|m| m.container.eq_ignore_ascii_case(&batch.container))
        {
            Some(into) => into.rows.extend(batch.rows),
            None => merged.push(batch),
        }
    }
    merged.retain(|batch| !batch.rows.is_empty());
    merged
}

/// Rows in order into requests of at most `max_request_bytes` (moved, not
/// copied: this is every row of every GridDB write).
fn chunk(batches: Vec<Batch>, max_request_bytes: usize) -> Vec<Vec<ContainerRows>> {
    let mut requests: Vec<Vec<ContainerRows>> = Vec::new();
    let mut request: Vec<ContainerRows> = Vec::new();
    let mut size = 0;
    for batch in batches {
        for row in batch.rows {
            if !request.is_empty() && size + row.size > max_request_bytes {
                requests.push(std::mem::take(&mut request));
                size = 0;
            }
            size += row.size;
            // A batch's rows are contiguous, so its entry is the last one if any.
            match request.last_mut() {
                Some(entry) if entry.container_name == batch.container => {
                    entry.rows.push(row.json);
                }
                _ => request.push(ContainerRows {
                    container_name: batch.container.clone(),
                    columns: None,
                    rows: vec![row.json],
                }),
            }
        }
    }
    if !request.is_empty() {
        requests.push(request);
    }
    requests
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn batch(container: &str, kind: ContainerKind, keys: &[i64]) -> Batch {
        Batch {
            container: container.into(),
            kind,
            rows: keys
                .iter()
                .map(|&k| EncodedRow {
                    json: vec![json!(k)],
                    size: 10,
                })
                .collect(),
        }
    }

    /// Each request as `container: keys` entries.
    fn shape(phases: &[Phase]) -> Vec<Vec<String>> {
        phases
            .iter()
            .flat_map(|phase| &phase.requests)
            .map(|request| {
                request
                    .iter()
                    .map(|entry| {
                        let keys: Vec<String> =
                            entry.rows.iter().map(|row| row[0].to_string()).collect();
                        format!("{}: {}", entry.container_name, keys.join(" "))
                    })
                    .collect()
            })
            .collect()
    }

    use ContainerKind::{Collection, TimeSeries};

    #[test]
    fn a_repeated_container_is_one_entry_with_its_rows_in_order() {
        let phases = phases(
            vec![
                batch("sensor", TimeSeries, &[1, 2]),
                batch("other", TimeSeries, &[7]),
                batch("SENSOR", TimeSeries, &[2, 3]),
            ],
            1 << 20,
        );
        // Key 2 twice, the later one last: it is the one that stays.
        assert_eq!(shape(&phases), [["sensor: 1 2 2 3", "other: 7"]]);
    }

    #[test]
    fn time_series_go_before_the_collections_that_refer_to_them() {
        let phases = phases(
            vec![
                batch("devices", Collection, &[1]),
                batch("sample", TimeSeries, &[1, 2]),
                batch("messages", Collection, &[9]),
                batch("other", TimeSeries, &[]),
            ],
            1 << 20,
        );
        let kinds: Vec<ContainerKind> = phases.iter().map(|p| p.kind).collect();
        assert_eq!(kinds, [TimeSeries, Collection]);
        assert_eq!(
            shape(&phases),
            [vec!["sample: 1 2"], vec!["devices: 1", "messages: 9"]]
        );
        // Only collections: one phase.
        let only = super::phases(vec![batch("devices", Collection, &[1])], 100);
        assert_eq!(only.len(), 1);
        assert!(super::phases(vec![], 100).is_empty());
    }

    #[test]
    fn rows_are_chunked_by_size_naming_each_container_once_per_request() {
        // 10 bytes a row, 25 per request: two rows each.
        let phases = phases(
            vec![
                batch("a", TimeSeries, &[1, 2, 3]),
                batch("b", TimeSeries, &[4]),
                batch("a", TimeSeries, &[5]),
                batch("m", Collection, &[6, 7, 8]),
            ],
            25,
        );
        assert_eq!(
            shape(&phases),
            [
                vec!["a: 1 2"],
                vec!["a: 3 5"],
                vec!["b: 4"],
                vec!["m: 6 7"],
                vec!["m: 8"],
            ]
        );
        for request in phases.iter().flat_map(|p| &p.requests) {
            let mut names: Vec<&str> = request.iter().map(|e| e.container_name.as_str()).collect();
            names.dedup();
            assert_eq!(names.len(), request.len());
        }
        // A row as large as the limit has a request of its own.
        let big = Batch {
            container: "big".into(),
            kind: TimeSeries,
            rows: vec![
                EncodedRow {
                    json: vec![json!(1)],
                    size: 25,
                },
                EncodedRow {
                    json: vec![json!(2)],
                    size: 1,
                },
            ],
        };
        assert_eq!(
            shape(&super::phases(vec![big], 25)),
            [["big: 1"], ["big: 2"]]
        );
    }
}
