//! The insert operation: one device's telemetry batch into its time-series
//! container, and its metadata into the `devices` collection.
//!
//! Everything is decoded, typed and checked before the first write, so a bad
//! document writes nothing. The typed batch then goes through the component's
//! transform pipeline (run by the host; without transforms it comes back as it
//! went), and what comes out is what is stored. Then one `multi-put` writes the batch, the device's
//! metadata row and the document's entry in `messages` (what invoices bill, and
//! where reports find the battery level at a given time): on the embedded store
//! all three or none.

use crate::device;
use crate::document::{Field, Format, InsertDocument, Record};
use crate::error::ApiError;
use crate::model::{
    check_rows, Batch, Column, ColumnType, ContainerInfo, ContainerKind, KeyRange, Pipeline,
    QueryResult, RangeAggregates, Row, Store, StoreError, Value,
};
use crate::schema::{needs_put, plan_container, to_row};
use serde_json::json;

/// The collection that holds one row of metadata per device.
pub const DEVICES: &str = "devices";
/// The collection that logs every accepted insert document, one row each.
pub const MESSAGES: &str = "messages";
/// The field of a `tsdata` record that carries the row key, epoch milliseconds.
pub const TIMESTAMP_FIELD: &str = "timestamp";
/// The field of `deviceinfo` that names the device.
pub const DEVICE_ID_FIELD: &str = "deviceid";

/// The `devices` collection's fixed columns, as in the original sample; further
/// `deviceinfo` fields become columns as `tsdata` fields do.
pub fn devices_columns() -> Vec<Column> {
    vec![
        Column::new(DEVICE_ID_FIELD, ColumnType::String),
        Column::new("batt_lvl", ColumnType::Integer),
        Column::new("fw_ver", ColumnType::String),
    ]
}

/// The `messages` collection: one row per accepted document. `first_ts`/`last_ts`
/// bound the rows it carried; `deviceinfo` is its metadata as JSON, so a report
/// can tell what a device reported at the time of its data.
pub fn messages_container() -> ContainerInfo {
    let column = Column::new;
    ContainerInfo {
        name: MESSAGES.to_owned(),
        kind: ContainerKind::Collection,
        columns: vec![
            column("id", ColumnType::String),
            column("device", ColumnType::String),
            column("received", ColumnType::Timestamp),
            column("transport", ColumnType::String),
            column("rows", ColumnType::Long),
            column("bytes", ColumnType::Long),
            column("first_ts", ColumnType::Timestamp),
            column("last_ts", ColumnType::Timestamp),
            column("deviceinfo", ColumnType::String),
        ],
        row_key: true,
    }
}

/// How a document arrived: stamped by the component that received it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// When it was received, epoch milliseconds.
    pub received_ms: i64,
    /// `http` or `mqtt`.
    pub transport: &'static str,
    /// A random number that keeps the ids of row-less documents distinct
    /// within one millisecond.
    pub nonce: u64,
}

/// Whether `deviceinfo.deviceid` must be in the document (HTTP, where the original
/// required it) or may be left out because the device is named elsewhere (an
/// MQTT topic). When it is given, it must match either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceId {
    Required,
    Optional,
}

/// Stores one insert document, through `pipeline`; returns the number of
/// `tsdata` rows written.
pub fn insert(
    store: &mut impl Store,
    pipeline: &mut impl Pipeline,
    document: &Document,
) -> Result<u64, ApiError> {
    let planned = plan(store, pipeline, document)?;
    store.multi_put(planned.writes)?;
    Ok(planned.rows)
}

/// One insert document for `device` (its id, not its container), as it arrived.
#[derive(Clone, Copy)]
pub struct Document<'a> {
    pub device: &'a str,
    pub body: &'a [u8],
    pub format: Format,
    pub device_id: DeviceId,
    pub receipt: Receipt,
}

/// Stores several documents with one write: each is planned and checked on
/// its own (a bad one fails alone, writing nothing), then the rows of all the
/// good ones go into one `multi-put`, in document order, so that on equal
/// timestamps the later document wins. One result per document, in order.
///
/// Should that write fail for a reason other than the store being
/// unavailable, each document is written alone, so that the one at fault
/// fails alone.
pub fn insert_many(
    store: &mut impl Store,
    pipeline: &mut impl Pipeline,
    documents: &[Document],
) -> Vec<Result<u64, ApiError>> {
    let mut store = SchemaCache::new(store);
    // Every schema the documents need, in one call.
    let mut names: Vec<String> = documents
        .iter()
        .filter(|d| device::check(d.device).is_ok())
        .map(|d| device::container_of(d.device))
        .collect();
    names.extend([DEVICES.to_owned(), MESSAGES.to_owned()]);
    // Should it fail, each document's plan asks again and fails on its own,
    // a bad document with its own error first.
    let _ = store.prefetch(&names);
    let planned: Vec<Result<Planned, ApiError>> = documents
        .iter()
        .map(|d| plan(&mut store, pipeline, d))
        .collect();
    let mut writes: Vec<(String, Vec<Row>)> = Vec::new();
    for planned in planned.iter().flatten() {
        for (container, rows) in &planned.writes {
            // One entry per container, its rows in document order.
            match writes.iter_mut().find(|(c, _)| c == container) {
                Some((_, all)) => all.extend(rows.iter().cloned()),
                None => writes.push((container.clone(), rows.clone())),
            }
        }
    }
    if writes.is_empty() {
        return planned.into_iter().map(|p| p.map(|p| p.rows)).collect();
    }
    // Every container insert writes has a row key first: of several rows with
    // one key only the last would stay, so only the last is written (the
    // device's metadata row, above all, once per batch instead of once per
    // message).
    for (_, rows) in &mut writes {
        keep_last_per_key(rows);
    }
    let store = store.inner;
    match store.multi_put(writes) {
        Ok(_) => planned.into_iter().map(|p| p.map(|p| p.rows)).collect(),
        Err(StoreError::Backend(m)) => {
            let failed = ApiError::from(StoreError::Backend(m));
            planned
                .into_iter()
                .map(|p| p.and(Err(failed.clone())))
                .collect()
        }
        Err(_) => planned
            .into_iter()
            .map(|p| {
                let p = p?;
                store.multi_put(p.writes)?;
                Ok(p.rows)
            })
            .collect(),
    }
}

/// Drops every row whose key (its first value, a timestamp or a string) a
/// later row repeats; the others keep their order.
fn keep_last_per_key(rows: &mut Vec<Row>) {
    #[derive(PartialEq, Eq, Hash)]
    enum Key<'a> {
        Timestamp(i64),
        String(&'a str),
    }
    fn key(row: &Row) -> Option<Key<'_>> {
        match row.first() {
            Some(Value::Timestamp(ms)) => Some(Key::Timestamp(*ms)),
            Some(Value::String(s)) => Some(Key::String(s)),
            _ => None,
        }
    }
    let mut seen = std::collections::HashSet::new();
    let mut keep: Vec<bool> = rows
        .iter()
        .rev()
        .map(|row| key(row).is_none_or(|k| seen.insert(k)))
        .collect();
    keep.reverse();
    let mut flags = keep.into_iter();
    rows.retain(|_| flags.next().expect("one flag per row"));
}

/// What one document writes, planned and checked against the stored schemas
/// (containers and columns it needs already created).
struct Planned {
    writes: Vec<(String, Vec<Row>)>,
    /// Its `tsdata` rows.
    rows: u64,
}

/// Decodes, checks and plans one document: everything but the final write.
fn plan(
    store: &mut impl Store,
    pipeline: &mut impl Pipeline,
    document: &Document,
) -> Result<Planned, ApiError> {
    let Document {
        device,
        body,
        format,
        device_id,
        receipt,
    } = *document;
    device::check(device)?;
    let container = device::container_of(device);
    let mut doc = InsertDocument::decode(body, format)?;
    match doc.deviceinfo.get(DEVICE_ID_FIELD) {
        Some(Field::String(id)) if id == device => {}
        None if device_id == DeviceId::Optional => {
            let id = (DEVICE_ID_FIELD.to_owned(), Field::String(device.to_owned()));
            doc.deviceinfo.0.insert(0, id);
        }
        other => {
            return Err(ApiError::bad_request(
                "deviceinfo.deviceid does not match the device",
                json!({ "field": "deviceinfo.deviceid", "expected": device, "got": other.map(field_json) }),
            ))
        }
    }

    // Plan both containers and build every row before writing anything.
    let ts_required = [Column::new(TIMESTAMP_FIELD, ColumnType::Timestamp)];
    let ts_existing = store.get_container(&container)?;
    let ts_plan = plan_container(
        &container,
        ContainerKind::TimeSeries,
        ts_existing.as_ref(),
        &ts_required,
        &doc.tsdata,
        "tsdata",
    )?;
    // The batch has the columns this document carries (the key first), typed
    // as the container has them: a transform sees the data, not the schema.
    let carried = ContainerInfo {
        columns: ts_plan
            .columns
            .iter()
            .enumerate()
            .filter(|(i, c)| *i == 0 || doc.tsdata.iter().any(|r| has_field(r, &c.name)))
            .map(|(_, c)| c.clone())
            .collect(),
        ..ts_plan.clone()
    };
    let batch = Batch {
        rows: rows_for(&doc.tsdata, &carried, "tsdata")?,
        columns: carried.columns,
    };
    let batch = pipeline.run(device, batch).map_err(|rejection| {
        ApiError::new(
            422,
            "transform rejected the batch",
            json!({ "transform": rejection.transform, "reason": rejection.reason }),
        )
    })?;
    let (ts_plan, ts_rows) = adopt(device, &container, ts_existing.as_ref(), batch)?;
    // The store's own checks (a FLOAT out of range, NaN, a timestamp out of
    // range) before any container or column is put: a refused document
    // leaves no trace.
    check_rows(&ts_plan, &ts_rows)?;

    let dev_info = std::slice::from_ref(&doc.deviceinfo);
    let dev_existing = store.get_container(DEVICES)?;
    let dev_plan = plan_container(
        DEVICES,
        ContainerKind::Collection,
        dev_existing.as_ref(),
        &devices_columns(),
        dev_info,
        "deviceinfo",
    )?;
    let dev_rows = rows_for(dev_info, &dev_plan, "deviceinfo")?;
    check_rows(&dev_plan, &dev_rows)?;

    let log = messages_container();
    let log_existing = store.get_container(MESSAGES)?;
    let log_row = message_row(device, body, &doc, &ts_rows, receipt);

    // Containers and columns first (rarely: only when the schema grows); rows are
    // rebuilt against the schema as stored.
    let mut batches = Vec::with_capacity(3);
    let written = ts_rows.len() as u64;
    // A batch with no rows creates no container: there is nothing to type it by.
    if !ts_rows.is_empty() {
        let ts_rows = match needs_put(ts_existing.as_ref(), &ts_plan) {
            false => ts_rows,
            true => {
                let stored = put(store, ts_plan.clone())?;
                lay_out(&ts_plan.columns, ts_rows, &stored.columns)
            }
        };
        batches.push((container, ts_rows));
    }
    let dev_rows = match needs_put(dev_existing.as_ref(), &dev_plan) {
        false => dev_rows,
        true => rows_for(dev_info, &put(store, dev_plan)?, "deviceinfo")?,
    };
    batches.push((DEVICES.to_owned(), dev_rows));
    if needs_put(log_existing.as_ref(), &log) {
        put(store, log)?;
    }
    batches.push((MESSAGES.to_owned(), vec![log_row]));
    // Then the telemetry, the device's metadata and the log entry in one write.
    Ok(Planned {
        writes: batches,
        rows: written,
    })
}

/// The store during one `insert_many`: container schemas are read once and
/// kept, as the batch's own `put-container`s return them. Other writers can
/// only append columns meanwhile, and rows may omit trailing columns, so rows
/// laid out against a kept schema stay valid.
struct SchemaCache<'s, S: Store> {
    inner: &'s mut S,
    known: Vec<(String, Option<ContainerInfo>)>,
}

impl<'s, S: Store> SchemaCache<'s, S> {
    fn new(inner: &'s mut S) -> Self {
        SchemaCache {
            inner,
            known: Vec::new(),
        }
    }

    /// What is kept of `name` (container names match case-insensitively):
    /// `Some(None)` for a container known not to exist.
    fn known(&self, name: &str) -> Option<&Option<ContainerInfo>> {
        self.known
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, info)| info)
    }

    /// Reads and keeps the schemas of `names` not known yet, in one call.
    fn prefetch(&mut self, names: &[String]) -> Result<(), StoreError> {
        let mut unknown: Vec<&str> = Vec::new();
        for name in names {
            if self.known(name).is_none() && !unknown.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                unknown.push(name);
            }
        }
        if unknown.is_empty() {
            return Ok(());
        }
        let infos = self.inner.get_containers(&unknown)?;
        for (name, info) in unknown.into_iter().zip(infos) {
            self.remember(name, info);
        }
        Ok(())
    }

    fn remember(&mut self, name: &str, info: Option<ContainerInfo>) {
        match self
            .known
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some((_, known)) => *known = info,
            None => self.known.push((name.to_owned(), info)),
        }
    }
}

impl<S: Store> Store for SchemaCache<'_, S> {
    fn put_container(&mut self, info: ContainerInfo) -> Result<ContainerInfo, StoreError> {
        let name = info.name.clone();
        let stored = self.inner.put_container(info)?;
        self.remember(&name, Some(stored.clone()));
        Ok(stored)
    }

    fn get_container(&mut self, name: &str) -> Result<Option<ContainerInfo>, StoreError> {
        if let Some(info) = self.known(name) {
            return Ok(info.clone());
        }
        let info = self.inner.get_container(name)?;
        self.remember(name, info.clone());
        Ok(info)
    }

    fn list_containers(&mut self) -> Result<Vec<String>, StoreError> {
        self.inner.list_containers()
    }

    fn put_rows(&mut self, container: &str, rows: Vec<Row>) -> Result<u64, StoreError> {
        self.inner.put_rows(container, rows)
    }

    fn multi_put(&mut self, batches: Vec<(String, Vec<Row>)>) -> Result<u64, StoreError> {
        self.inner.multi_put(batches)
    }

    fn query(&mut self, container: &str, tql: &str) -> Result<QueryResult, StoreError> {
        self.inner.query(container, tql)
    }

    fn aggregate_ranges(
        &mut self,
        container: &str,
        aggregates: &str,
        ranges: &[KeyRange],
    ) -> Result<RangeAggregates, StoreError> {
        self.inner.aggregate_ranges(container, aggregates, ranges)
    }
}

/// The `messages` row of one document; `ts_rows` are its rows, key first.
fn message_row(
    device: &str,
    bytes: &[u8],
    doc: &InsertDocument,
    ts_rows: &[crate::model::Row],
    receipt: Receipt,
) -> crate::model::Row {
    let key = |row: &crate::model::Row| match row.first() {
        Some(Value::Timestamp(ms)) => Some(*ms),
        _ => None,
    };
    let first = ts_rows.iter().filter_map(key).min();
    let last = ts_rows.iter().filter_map(key).max();
    let deviceinfo: serde_json::Map<String, serde_json::Value> = doc
        .deviceinfo
        .0
        .iter()
        .map(|(name, field)| (name.clone(), field_value(field)))
        .collect();
    vec![
        Value::String(message_id(device, bytes, ts_rows.is_empty(), receipt)),
        Value::String(device.to_owned()),
        Value::Timestamp(receipt.received_ms),
        Value::String(receipt.transport.to_owned()),
        Value::Long(ts_rows.len() as i64),
        Value::Long(bytes.len() as i64),
        first.map_or(Value::Null, Value::Timestamp),
        last.map_or(Value::Null, Value::Timestamp),
        Value::String(serde_json::Value::Object(deviceinfo).to_string()),
    ]
}

/// The `messages` key of a document. A document with rows is keyed by its
/// content, so that a redelivered MQTT message or a retried request (whose rows
/// upsert anyway) is logged, and billed, once. One without rows (a heartbeat,
/// often byte-identical) is keyed by its arrival.
fn message_id(device: &str, body: &[u8], no_rows: bool, receipt: Receipt) -> String {
    use sha2::Digest;
    if no_rows {
        return format!("{device}-{}-{:016x}", receipt.received_ms, receipt.nonce);
    }
    let digest = sha2::Sha256::digest(body);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{device}-{hex}")
}

fn field_value(field: &Field) -> serde_json::Value {
    match field {
        Field::Null | Field::Unsupported(_) => serde_json::Value::Null,
        Field::Bool(b) => json!(b),
        Field::Int(i) => json!(i),
        Field::BigInt(u) => json!(u),
        Field::Float(f) => json!(f),
        Field::String(s) => json!(s),
    }
}

/// `put-container`, returning the schema as stored: another request may have
/// added columns meanwhile, so rows are rebuilt against what comes back.
fn put(store: &mut impl Store, plan: ContainerInfo) -> Result<ContainerInfo, ApiError> {
    Ok(store.put_container(plan)?)
}

/// The container plan and rows for the batch the pipeline let through. Its
/// columns must agree with the device's container where they share a name
/// (new ones are appended), and its key must still be `timestamp`.
fn adopt(
    device: &str,
    container: &str,
    existing: Option<&ContainerInfo>,
    batch: Batch,
) -> Result<(ContainerInfo, Vec<Row>), ApiError> {
    let invalid = |reason: String| {
        ApiError::new(
            422,
            "transformed batch does not fit the device",
            json!({ "device": device, "reason": reason }),
        )
    };
    match batch.columns.first() {
        Some(key) if key.name == TIMESTAMP_FIELD && key.column_type == ColumnType::Timestamp => {}
        _ => {
            return Err(invalid(format!(
                "its first column must be `{TIMESTAMP_FIELD}` (TIMESTAMP)"
            )))
        }
    }
    let mut columns = existing.map_or_else(Vec::new, |e| e.columns.clone());
    for column in &batch.columns {
        match columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(&column.name))
        {
            Some(stored) if stored.column_type != column.column_type => {
                return Err(invalid(format!(
                    "column `{}` is {} in the container, {} in the batch",
                    stored.name, stored.column_type, column.column_type
                )))
            }
            Some(_) => {}
            None => columns.push(column.clone()),
        }
    }
    let plan = ContainerInfo {
        name: existing.map_or_else(|| container.to_owned(), |e| e.name.clone()),
        kind: ContainerKind::TimeSeries,
        columns,
        row_key: true,
    };
    let rows = lay_out(&batch.columns, batch.rows, &plan.columns);
    Ok((plan, rows))
}

/// `rows` (in `from`'s column order) in `to`'s column order, matched by name
/// regardless of case; columns `from` lacks are null.
fn lay_out(from: &[Column], rows: Vec<Row>, to: &[Column]) -> Vec<Row> {
    if from.len() == to.len() && from.iter().zip(to).all(|(a, b)| a.name == b.name) {
        return rows;
    }
    let sources: Vec<Option<usize>> = to
        .iter()
        .map(|c| {
            from.iter()
                .position(|f| f.name.eq_ignore_ascii_case(&c.name))
        })
        .collect();
    rows.into_iter()
        .map(|row| {
            sources
                .iter()
                .map(|source| {
                    source
                        .and_then(|i| row.get(i).cloned())
                        .unwrap_or(Value::Null)
                })
                .collect()
        })
        .collect()
}

fn has_field(record: &Record, name: &str) -> bool {
    record.0.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
}

fn rows_for(
    records: &[Record],
    info: &ContainerInfo,
    what: &str,
) -> Result<Vec<crate::model::Row>, ApiError> {
    records
        .iter()
        .enumerate()
        .map(|(index, record)| to_row(record, info, &format!("{what}[{index}]")))
        .collect()
}

fn field_json(field: &Field) -> serde_json::Value {
    match field {
        Field::String(s) => json!(s),
        other => json!(other.kind()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NoTransforms, Rejection};
    use crate::testing::MemoryStore;

    const RECEIVED_MS: i64 = 1_700_000_000_000;

    fn document<'a>(device: &'a str, body: &'a str) -> Document<'a> {
        Document {
            device,
            body: body.as_bytes(),
            format: Format::Json,
            device_id: DeviceId::Optional,
            receipt: Receipt {
                received_ms: RECEIVED_MS,
                transport: "mqtt",
                nonce: 0,
            },
        }
    }

    /// `body` for `device` as HTTP sends it: `deviceinfo.deviceid` required.
    fn posted<'a>(device: &'a str, body: &'a str) -> Document<'a> {
        Document {
            device_id: DeviceId::Required,
            receipt: Receipt {
                transport: "http",
                ..document(device, body).receipt
            },
            ..document(device, body)
        }
    }

    fn text(s: &str) -> Value {
        Value::String(s.to_owned())
    }

    /// Everything `store` holds: each container's schema and rows.
    fn contents(store: &MemoryStore) -> Vec<(ContainerInfo, Vec<Row>)> {
        store
            .names()
            .into_iter()
            .map(|name| (store.info(name).unwrap().clone(), store.rows(name)))
            .collect()
    }

    const KITCHEN: &str = r#"{"deviceinfo":{"deviceid":"kitchen","fw_ver":"1.2","batt_lvl":80},
        "tsdata":[{"timestamp":2000,"temperature":21.5,"count":3,"motion":true,"note":"ok"},
                  {"timestamp":1000,"temperature":22,"count":4,"motion":false}]}"#;

    #[test]
    fn a_new_devices_document_creates_its_container_its_devices_row_and_its_messages_entry() {
        let mut store = MemoryStore::default();
        let stored = insert(&mut store, &mut NoTransforms, &posted("kitchen", KITCHEN));
        assert_eq!(stored, Ok(2));

        // The time series: the key first, then the fields in first-seen order,
        // typed by inference (the integer 22 in a FLOAT column is a FLOAT).
        let column = Column::new;
        assert_eq!(
            store.info("kitchen"),
            Some(&ContainerInfo {
                name: "kitchen".to_owned(),
                kind: ContainerKind::TimeSeries,
                columns: vec![
                    column("timestamp", ColumnType::Timestamp),
                    column("temperature", ColumnType::Float),
                    column("count", ColumnType::Long),
                    column("motion", ColumnType::Bool),
                    column("note", ColumnType::String),
                ],
                row_key: true,
            })
        );
        assert_eq!(
            store.rows("kitchen"),
            vec![
                vec![
                    Value::Timestamp(1000),
                    Value::Float(22.0),
                    Value::Long(4),
                    Value::Bool(false),
                    Value::Null,
                ],
                vec![
                    Value::Timestamp(2000),
                    Value::Float(21.5),
                    Value::Long(3),
                    Value::Bool(true),
                    text("ok"),
                ],
            ]
        );

        // The device's metadata: the fixed columns, typed as they are.
        let devices = store.info(DEVICES).unwrap();
        assert_eq!(
            (devices.kind, devices.row_key, &devices.columns),
            (ContainerKind::Collection, true, &devices_columns())
        );
        assert_eq!(
            store.rows(DEVICES),
            vec![vec![text("kitchen"), Value::Integer(80), text("1.2")]]
        );

        // The log entry: what arrived, when, how, and the span of its rows.
        assert_eq!(store.info(MESSAGES), Some(&messages_container()));
        let log = store.rows(MESSAGES);
        let [entry] = log.as_slice() else {
            panic!("one messages row: {log:?}")
        };
        let Value::String(id) = &entry[0] else {
            panic!("the id is a string: {entry:?}")
        };
        assert!(id.starts_with("kitchen-"), "{id}");
        assert_eq!(
            entry[1..8],
            [
                text("kitchen"),
                Value::Timestamp(RECEIVED_MS),
                text("http"),
                Value::Long(2),
                Value::Long(KITCHEN.len() as i64),
                Value::Timestamp(1000),
                Value::Timestamp(2000),
            ]
        );
        let Value::String(deviceinfo) = &entry[8] else {
            panic!("deviceinfo is JSON text: {entry:?}")
        };
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(deviceinfo).unwrap(),
            json!({"deviceid": "kitchen", "fw_ver": "1.2", "batt_lvl": 80})
        );

        // All of it in one write.
        assert_eq!(store.writes.len(), 1);
        let written: Vec<&str> = store.writes[0].iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(written, ["kitchen", DEVICES, MESSAGES]);
    }

    #[test]
    fn a_bad_document_is_refused_and_writes_nothing() {
        let mut store = MemoryStore::default();
        insert(&mut store, &mut NoTransforms, &posted("kitchen", KITCHEN)).unwrap();
        let before = contents(&store);
        let writes = store.writes.len();
        // Each is refused whole, even where its first rows are good.
        for (body, error) in [
            (
                r#"{"deviceinfo":{"deviceid":"kitchen"},"tsdata":[{"timestamp":3"#,
                "malformed JSON",
            ),
            (
                r#"{"deviceinfo":{},"tsdata":[{"timestamp":3000}]}"#,
                "deviceinfo.deviceid does not match the device",
            ),
            (
                r#"{"deviceinfo":{"deviceid":"hall"},"tsdata":[{"timestamp":3000}]}"#,
                "deviceinfo.deviceid does not match the device",
            ),
            (
                r#"{"deviceinfo":{"deviceid":"kitchen"},"tsdata":[{"timestamp":3000,"count":5},{"count":6}]}"#,
                "missing timestamp",
            ),
            (
                r#"{"deviceinfo":{"deviceid":"kitchen"},"tsdata":[{"timestamp":3000,"count":5},{"timestamp":4000,"count":"six"}]}"#,
                "type conflict",
            ),
            (
                r#"{"deviceinfo":{"deviceid":"kitchen"},"tsdata":[{"timestamp":3000,"temperature":"warm"}]}"#,
                "type conflict",
            ),
            (
                r#"{"deviceinfo":{"deviceid":"kitchen","batt_lvl":"full"},"tsdata":[{"timestamp":3000}]}"#,
                "type conflict",
            ),
            (
                r#"{"deviceinfo":{"deviceid":"kitchen"},"tsdata":[{"timestamp":3000,"nested":{"a":1}}]}"#,
                "unsupported value",
            ),
            (
                r#"{"deviceinfo":{"deviceid":"kitchen"},"tsdata":[{"timestamp":3000,"new":1},{"timestamp":4000,"new":true}]}"#,
                "type conflict",
            ),
        ] {
            let refused =
                insert(&mut store, &mut NoTransforms, &posted("kitchen", body)).expect_err(body);
            assert_eq!(
                (refused.status, refused.error.as_str()),
                (400, error),
                "{body}: {refused:?}"
            );
            assert_eq!(contents(&store), before, "{body} changed the store");
            assert_eq!(store.writes.len(), writes, "{body} wrote");
        }
        // A new device's bad document creates no container either, nor does
        // one whose value the store refuses (1e300 is infinite as a FLOAT),
        // nor a new column for an old device.
        let bad = r#"{"deviceinfo":{"deviceid":"hall"},"tsdata":[{"timestamp":1,"t":1},{"timestamp":2,"t":"x"}]}"#;
        let huge = r#"{"deviceinfo":{"deviceid":"hall"},"tsdata":[{"timestamp":1,"t":1e300}]}"#;
        for body in [bad, huge] {
            assert!(insert(&mut store, &mut NoTransforms, &posted("hall", body)).is_err());
            assert_eq!(store.info("hall"), None);
            assert_eq!(contents(&store), before);
        }
        let huge =
            r#"{"deviceinfo":{"deviceid":"kitchen"},"tsdata":[{"timestamp":5,"wide":1e300}]}"#;
        let refused = insert(&mut store, &mut NoTransforms, &posted("kitchen", huge)).unwrap_err();
        assert_eq!(refused.status, 400, "{refused:?}");
        assert_eq!(contents(&store), before);
        assert_eq!(store.writes.len(), writes);
    }

    #[test]
    fn new_fields_add_columns_and_old_rows_read_null_in_them() {
        let mut store = MemoryStore::default();
        let first = r#"{"deviceinfo":{},"tsdata":[{"timestamp":1,"t":1.5}]}"#;
        let second = r#"{"deviceinfo":{"room":"hall"},"tsdata":[{"timestamp":2,"h":50,"t":3}]}"#;
        assert_eq!(
            insert(&mut store, &mut NoTransforms, &document("a", first)),
            Ok(1)
        );
        assert_eq!(
            insert(&mut store, &mut NoTransforms, &document("a", second)),
            Ok(1)
        );
        let columns: Vec<(&str, ColumnType)> = store
            .info("a")
            .unwrap()
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.column_type))
            .collect();
        // `t` keeps its type (the integer 3 is stored as a FLOAT); `h` is appended.
        assert_eq!(
            columns,
            [
                ("timestamp", ColumnType::Timestamp),
                ("t", ColumnType::Float),
                ("h", ColumnType::Long),
            ]
        );
        assert_eq!(
            store.rows("a"),
            vec![
                vec![Value::Timestamp(1), Value::Float(1.5), Value::Null],
                vec![Value::Timestamp(2), Value::Float(3.0), Value::Long(50)],
            ]
        );
        // A new `deviceinfo` field is a new `devices` column; the device's one
        // row is replaced, not repeated.
        assert_eq!(
            store.info(DEVICES).unwrap().columns.last(),
            Some(&Column::new("room", ColumnType::String))
        );
        assert_eq!(
            store.rows(DEVICES),
            vec![vec![text("a"), Value::Null, Value::Null, text("hall")]]
        );
    }

    #[test]
    fn a_document_sent_twice_is_stored_and_logged_once() {
        let mut store = MemoryStore::default();
        for _ in 0..2 {
            assert_eq!(
                insert(&mut store, &mut NoTransforms, &posted("kitchen", KITCHEN)),
                Ok(2)
            );
        }
        assert_eq!(store.rows("kitchen").len(), 2);
        assert_eq!(
            store.rows(MESSAGES).len(),
            1,
            "a retried document is billed once"
        );
    }

    #[test]
    fn a_document_without_rows_creates_no_container_but_is_logged() {
        let mut store = MemoryStore::default();
        let heartbeat = r#"{"deviceinfo":{"batt_lvl":12},"tsdata":[]}"#;
        assert_eq!(
            insert(&mut store, &mut NoTransforms, &document("quiet", heartbeat)),
            Ok(0)
        );
        assert_eq!(store.info("quiet"), None);
        assert_eq!(
            store.rows(DEVICES),
            vec![vec![text("quiet"), Value::Integer(12), Value::Null]]
        );
        let log = store.rows(MESSAGES);
        assert_eq!(log.len(), 1);
        // No rows: no span, and the id is the arrival's.
        assert_eq!(
            log[0][4..8],
            [
                Value::Long(0),
                Value::Long(heartbeat.len() as i64),
                Value::Null,
                Value::Null
            ]
        );
        assert_eq!(log[0][0], text(&format!("quiet-{RECEIVED_MS}-{:016x}", 0)));
    }

    /// A pipeline that answers every batch with `answer`'s result.
    struct Transforms<F: FnMut(Batch) -> Result<Batch, Rejection>>(F);

    impl<F: FnMut(Batch) -> Result<Batch, Rejection>> Pipeline for Transforms<F> {
        fn run(&mut self, _device: &str, batch: Batch) -> Result<Batch, Rejection> {
            (self.0)(batch)
        }
    }

    #[test]
    fn what_the_transforms_return_is_stored_and_what_they_refuse_is_not() {
        let mut store = MemoryStore::default();
        let body = r#"{"deviceinfo":{},"tsdata":[{"timestamp":1,"f":212.0}]}"#;
        // The batch the transforms see: the document's columns, typed.
        let mut fahrenheit_to_celsius = Transforms(|batch: Batch| {
            assert_eq!(
                batch.columns,
                [
                    Column::new("timestamp", ColumnType::Timestamp),
                    Column::new("f", ColumnType::Float)
                ]
            );
            assert_eq!(batch.rows, [vec![Value::Timestamp(1), Value::Float(212.0)]]);
            Ok(Batch {
                columns: vec![
                    Column::new("timestamp", ColumnType::Timestamp),
                    Column::new("c", ColumnType::Double),
                ],
                rows: vec![vec![Value::Timestamp(1), Value::Double(100.0)]],
            })
        });
        assert_eq!(
            insert(
                &mut store,
                &mut fahrenheit_to_celsius,
                &document("oven", body)
            ),
            Ok(1)
        );
        assert_eq!(
            store.info("oven").unwrap().columns,
            [
                Column::new("timestamp", ColumnType::Timestamp),
                Column::new("c", ColumnType::Double)
            ]
        );
        assert_eq!(
            store.rows("oven"),
            [vec![Value::Timestamp(1), Value::Double(100.0)]]
        );
        let before = contents(&store);

        let mut refusing = Transforms(|_| {
            Err(Rejection {
                transform: "range".to_owned(),
                reason: "too hot".to_owned(),
            })
        });
        let refused = insert(&mut store, &mut refusing, &document("oven", body)).unwrap_err();
        assert_eq!(
            (refused.status, refused.detail["transform"].as_str()),
            (422, Some("range"))
        );

        // A batch that retypes a stored column, or drops the key, does not fit.
        for columns in [
            vec![
                Column::new("timestamp", ColumnType::Timestamp),
                Column::new("c", ColumnType::String),
            ],
            vec![Column::new("c", ColumnType::Double)],
        ] {
            let mut misfit = Transforms(|_| {
                Ok(Batch {
                    columns: columns.clone(),
                    rows: Vec::new(),
                })
            });
            let refused = insert(&mut store, &mut misfit, &document("oven", body)).unwrap_err();
            assert_eq!(
                (refused.status, refused.error.as_str()),
                (422, "transformed batch does not fit the device")
            );
        }
        assert_eq!(contents(&store), before);
    }

    #[test]
    fn a_store_that_fails_the_write_is_a_503_or_a_400_by_its_error() {
        for (error, status) in [
            (StoreError::Backend("down".into()), 503),
            (StoreError::Invalid("no".into()), 400),
        ] {
            let mut store = MemoryStore::failing_first_write(error);
            let failed = insert(&mut store, &mut NoTransforms, &posted("kitchen", KITCHEN));
            assert_eq!(failed.unwrap_err().status, status);
            assert_eq!(store.row_count(), 0);
        }
    }

    #[test]
    fn a_batch_is_one_write_and_a_bad_document_fails_alone() {
        let mut store = MemoryStore::default();
        let first = r#"{"deviceinfo":{},"tsdata":[{"timestamp":1,"t":1.5}]}"#;
        let bad = r#"{"deviceinfo":{},"tsdata":[{"t":2.5}]}"#;
        let later = r#"{"deviceinfo":{},"tsdata":[{"timestamp":1,"t":9.5}]}"#;
        let other = r#"{"deviceinfo":{},"tsdata":[{"timestamp":2,"t":3.5}]}"#;
        let docs = [
            document("a", first),
            document("a", bad),
            document("a", later),
            document("b", other),
        ];
        let results = insert_many(&mut store, &mut NoTransforms, &docs);
        assert_eq!(results[0], Ok(1));
        assert_eq!(results[1].as_ref().unwrap_err().status, 400);
        assert_eq!((&results[2], &results[3]), (&Ok(1), &Ok(1)));
        assert_eq!(store.writes.len(), 1, "one write for the batch");
        let writes = &store.writes[0];
        let rows_of = |name: &str| &writes.iter().find(|(c, _)| c == name).unwrap().1;
        // Device a's two rows share a key: the later document's is the one written.
        assert_eq!(
            rows_of("a"),
            &vec![vec![Value::Timestamp(1), Value::Float(9.5)]]
        );
        // One metadata row per device (the latest), one log entry per document.
        assert_eq!(rows_of(DEVICES).len(), 2);
        assert_eq!(rows_of(MESSAGES).len(), 3);
        assert_eq!(
            store.rows("a"),
            [vec![Value::Timestamp(1), Value::Float(9.5)]]
        );
        assert_eq!(store.rows(MESSAGES).len(), 3);
    }

    #[test]
    fn a_device_id_names_the_rows_and_its_container_holds_them() {
        let mut store = MemoryStore::default();
        let row = r#"{"deviceinfo":{},"tsdata":[{"timestamp":1,"t":1}]}"#;
        let docs = [document("Sensor1", row), document("capteur-été", row)];
        let results = insert_many(&mut store, &mut NoTransforms, &docs);
        assert_eq!(results, vec![Ok(1), Ok(1)]);
        for id in ["Sensor1", "capteur-été"] {
            let container = device::container_of(id);
            assert_ne!(container, id);
            assert_eq!(store.rows(&container).len(), 1, "{id}");
        }
        // The metadata and the log name the device by its id.
        let ids = |name: &str, column: usize| -> Vec<Value> {
            store
                .rows(name)
                .iter()
                .map(|row| row[column].clone())
                .collect()
        };
        let mut logged = ids(MESSAGES, 1);
        logged.sort_by_key(|v| format!("{v:?}"));
        assert_eq!(ids(DEVICES, 0), [text("Sensor1"), text("capteur-été")]);
        assert_eq!(logged, [text("Sensor1"), text("capteur-été")]);

        let bad = insert(&mut store, &mut NoTransforms, &document("a#b", row));
        assert_eq!(bad.unwrap_err().error, "invalid device id");
    }

    /// One row each for devices `a` and `b`, into a store whose first write fails with `error`.
    fn two_documents_into_a_store_failing_with(
        error: StoreError,
    ) -> (MemoryStore, Vec<Result<u64, ApiError>>) {
        let mut store = MemoryStore::failing_first_write(error);
        let row = r#"{"deviceinfo":{},"tsdata":[{"timestamp":1,"t":1}]}"#;
        let docs = [document("a", row), document("b", row)];
        let results = insert_many(&mut store, &mut NoTransforms, &docs);
        (store, results)
    }

    #[test]
    fn an_unavailable_store_fails_every_document_of_the_batch() {
        let (store, results) =
            two_documents_into_a_store_failing_with(StoreError::Backend("down".into()));
        assert!(results
            .iter()
            .all(|r| r.as_ref().unwrap_err().status == 503));
        assert_eq!(store.row_count(), 0);
    }

    #[test]
    fn a_refused_batch_is_retried_document_by_document() {
        let (store, results) =
            two_documents_into_a_store_failing_with(StoreError::Invalid("row 3".into()));
        assert_eq!(results, vec![Ok(1), Ok(1)]);
        assert_eq!(store.writes.len(), 2);
        assert_eq!((store.rows("a").len(), store.rows("b").len()), (1, 1));
    }
}
