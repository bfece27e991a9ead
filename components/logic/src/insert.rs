//! The insert operation: one device's telemetry batch into its time-series
//! container, and its metadata into the `devices` collection.
//!
//! Everything is decoded, typed and checked before the first write, so a bad
//! document writes nothing. Writes are ordered so that the batch (the data a
//! client cares about) lands in one all-or-nothing `put-rows`, then the device's
//! metadata row is upserted.

use crate::document::{Field, Format, InsertDocument, Record};
use crate::error::ApiError;
use crate::model::{
    is_valid_container_name, Column, ColumnType, ContainerInfo, ContainerKind, Store,
};
use crate::schema::{needs_put, plan_container, to_row};
use serde_json::json;

/// The collection that holds one row of metadata per device.
pub const DEVICES: &str = "devices";
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

/// Checks a device name taken from a URL path or MQTT topic.
pub fn check_device_name(device: &str) -> Result<(), ApiError> {
    if device.eq_ignore_ascii_case(DEVICES) {
        return Err(ApiError::bad_request(
            "invalid device name",
            json!({ "device": device, "reason": "`devices` is the device metadata collection" }),
        ));
    }
    if !is_valid_container_name(device) {
        return Err(ApiError::bad_request(
            "invalid device name",
            json!({
                "device": device,
                "reason": "use 1 to 256 ASCII letters, digits or `_`, not starting with a digit",
            }),
        ));
    }
    Ok(())
}

/// Whether `deviceinfo.deviceid` must be in the document (HTTP, where the original
/// required it) or may be left out because the device is named elsewhere (an
/// MQTT topic). When it is given, it must match either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceId {
    Required,
    Optional,
}

/// Stores one insert document for `device`; returns the number of `tsdata` rows written.
pub fn insert(
    store: &mut impl Store,
    device: &str,
    body: &[u8],
    format: Format,
    device_id: DeviceId,
) -> Result<u64, ApiError> {
    check_device_name(device)?;
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
    let ts_existing = store.get_container(device)?;
    let ts_plan = plan_container(
        device,
        ContainerKind::TimeSeries,
        ts_existing.as_ref(),
        &ts_required,
        &doc.tsdata,
        "tsdata",
    )?;
    let ts_rows = rows_for(&doc.tsdata, &ts_plan, "tsdata")?;

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

    // A batch with no rows creates no container: there is nothing to type it by.
    let mut written = 0;
    if !ts_rows.is_empty() {
        let ts_rows = match needs_put(ts_existing.as_ref(), &ts_plan) {
            false => ts_rows,
            true => rows_for(&doc.tsdata, &put(store, ts_plan)?, "tsdata")?,
        };
        written = store.put_rows(device, ts_rows)?;
    }
    let dev_rows = match needs_put(dev_existing.as_ref(), &dev_plan) {
        false => dev_rows,
        true => rows_for(dev_info, &put(store, dev_plan)?, "deviceinfo")?,
    };
    store.put_rows(DEVICES, dev_rows)?;
    Ok(written)
}

/// `put-container`, returning the schema as stored: another request may have
/// added columns meanwhile, so rows are rebuilt against what comes back.
fn put(store: &mut impl Store, plan: ContainerInfo) -> Result<ContainerInfo, ApiError> {
    Ok(store.put_container(plan)?)
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
