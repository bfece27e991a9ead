//! The host side of `cromflag:iot/store`: the import every component
//! instance gets, served by a `Backend`.
//!
//! The only place that converts between the WIT-generated store types
//! (`bindings::host_services`) and the model types (`cromflag_logic::model`)
//! that backends speak.

use crate::bindings::host_services::cromflag::iot::store as wit;
use crate::metrics::{metrics, Transport};
use crate::store::{
    Backend, Column, ColumnType, ContainerInfo, ContainerKind, KeyRange, Row, StoreError, Value,
};
use cromflag_model::{to_columns, ColumnData, ColumnValues};
use std::sync::Arc;
use wasmtime::component::{HasData, Linker};

/// What a component instance's store import talks to.
pub struct StoreHost {
    backend: Arc<dyn Backend>,
    /// Set when the instance ingests messages: the transport they came by.
    ingest: Option<Transport>,
}

impl StoreHost {
    pub fn new(backend: Arc<dyn Backend>) -> StoreHost {
        StoreHost {
            backend,
            ingest: None,
        }
    }

    pub fn set_ingest_transport(&mut self, transport: Transport) {
        self.ingest = Some(transport);
    }

    /// The rows of device containers (telemetry) in a write, for an
    /// ingesting instance (0 otherwise): counted once the write commits.
    fn telemetry_rows<'a>(&self, writing: impl Iterator<Item = (&'a str, usize)>) -> u64 {
        if self.ingest.is_none() {
            return 0;
        }
        writing
            .filter(|(container, _)| cromflag_logic::device::id_of(container).is_some())
            .map(|(_, rows)| rows as u64)
            .sum()
    }

    fn count_ingested(&self, telemetry_rows: u64) {
        if let (Some(transport), 1..) = (self.ingest, telemetry_rows) {
            metrics().ingested_rows(transport, telemetry_rows);
        }
    }
}

struct StoreImport;

impl HasData for StoreImport {
    type Data<'a> = &'a mut StoreHost;
}

/// Adds `cromflag:iot/store` to `linker`, served by the `StoreHost` in each store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut StoreHost,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, StoreImport>(linker, get)
}

impl wit::Host for StoreHost {
    async fn put_container(
        &mut self,
        info: wit::ContainerInfo,
    ) -> Result<wit::ContainerInfo, wit::Error> {
        let info = self.backend.put_container(info_from_wit(info)).await?;
        Ok(info_to_wit(info))
    }

    async fn get_container(
        &mut self,
        name: String,
    ) -> Result<Option<wit::ContainerInfo>, wit::Error> {
        Ok(self.backend.get_container(&name).await?.map(info_to_wit))
    }

    async fn get_containers(
        &mut self,
        names: Vec<String>,
    ) -> Result<Vec<Option<wit::ContainerInfo>>, wit::Error> {
        let mut infos = Vec::with_capacity(names.len());
        for name in &names {
            infos.push(self.backend.get_container(name).await?.map(info_to_wit));
        }
        Ok(infos)
    }

    /// Every name, sorted, as the WIT promises: the backend's pages, one
    /// after the other (`Backend::list_containers`).
    async fn list_containers(&mut self) -> Result<Vec<String>, wit::Error> {
        Ok(self.backend.list_containers().await?)
    }

    async fn put_rows(
        &mut self,
        container: String,
        rows: Vec<wit::Row>,
    ) -> Result<u64, wit::Error> {
        let rows = rows_from_wit(rows);
        let telemetry = self.telemetry_rows(std::iter::once((container.as_str(), rows.len())));
        let written = self.backend.put_rows(&container, rows).await?;
        self.count_ingested(telemetry);
        Ok(written)
    }

    async fn multi_put(&mut self, batches: Vec<wit::ContainerRows>) -> Result<u64, wit::Error> {
        let batches: Vec<(String, Vec<Row>)> = batches
            .into_iter()
            .map(|batch| (batch.container, rows_from_wit(batch.rows)))
            .collect();
        let telemetry = self.telemetry_rows(
            batches
                .iter()
                .map(|(container, rows)| (container.as_str(), rows.len())),
        );
        let written = self.backend.multi_put(batches).await?;
        self.count_ingested(telemetry);
        Ok(written)
    }

    async fn query(
        &mut self,
        container: String,
        tql: String,
    ) -> Result<wit::QueryResult, wit::Error> {
        let result = self.backend.query(&container, &tql).await?;
        let data = to_columns(result.columns.len(), result.rows)?;
        Ok(wit::QueryResult {
            columns: result.columns.into_iter().map(column_to_wit).collect(),
            data: data.into_iter().map(column_data_to_wit).collect(),
        })
    }

    async fn aggregate_ranges(
        &mut self,
        container: String,
        aggregates: String,
        ranges: Vec<wit::KeyRange>,
    ) -> Result<wit::RangeAggregates, wit::Error> {
        let ranges: Vec<KeyRange> = ranges
            .into_iter()
            .map(|r| KeyRange {
                start: r.start,
                end: r.end,
            })
            .collect();
        let result = self
            .backend
            .aggregate_ranges(&container, &aggregates, &ranges)
            .await?;
        Ok(wit::RangeAggregates {
            columns: result.columns.into_iter().map(column_to_wit).collect(),
            rows: result
                .rows
                .into_iter()
                .map(|row| row.map(|row| row.into_iter().map(value_to_wit).collect()))
                .collect(),
        })
    }
}

/// A result column as it crosses: the lists move, nothing is copied here.
fn column_data_to_wit(data: ColumnData) -> wit::ColumnData {
    use crate::bindings::host_services::cromflag::iot::types::ColumnValues as W;
    use ColumnValues as M;
    wit::ColumnData {
        values: match data.values {
            M::Bool(v) => W::Bool(v),
            M::String(v) => W::String(v),
            M::Byte(v) => W::Byte(v),
            M::Short(v) => W::Short(v),
            M::Integer(v) => W::Integer(v),
            M::Long(v) => W::Long(v),
            M::Float(v) => W::Float(v),
            M::Double(v) => W::Double(v),
            M::Timestamp(v) => W::Timestamp(v),
            M::Blob(v) => W::Blob(v),
        },
        nulls: data.nulls,
    }
}

fn rows_from_wit(rows: Vec<wit::Row>) -> Vec<Row> {
    rows.into_iter()
        .map(|row| row.into_iter().map(value_from_wit).collect())
        .collect()
}

impl From<StoreError> for wit::Error {
    fn from(e: StoreError) -> wit::Error {
        match e {
            StoreError::NotFound(m) => wit::Error::NotFound(m),
            StoreError::Invalid(m) => wit::Error::Invalid(m),
            StoreError::SchemaConflict(m) => wit::Error::SchemaConflict(m),
            StoreError::Query(m) => wit::Error::Query(m),
            StoreError::Backend(m) => wit::Error::Backend(m),
        }
    }
}

fn info_from_wit(info: wit::ContainerInfo) -> ContainerInfo {
    ContainerInfo {
        name: info.name,
        kind: match info.kind {
            wit::ContainerKind::Collection => ContainerKind::Collection,
            wit::ContainerKind::TimeSeries => ContainerKind::TimeSeries,
        },
        columns: info
            .columns
            .into_iter()
            .map(|c| Column::new(c.name, type_from_wit(c.type_)))
            .collect(),
        row_key: info.row_key,
    }
}

fn info_to_wit(info: ContainerInfo) -> wit::ContainerInfo {
    wit::ContainerInfo {
        name: info.name,
        kind: match info.kind {
            ContainerKind::Collection => wit::ContainerKind::Collection,
            ContainerKind::TimeSeries => wit::ContainerKind::TimeSeries,
        },
        columns: info.columns.into_iter().map(column_to_wit).collect(),
        row_key: info.row_key,
    }
}

fn column_to_wit(c: Column) -> wit::Column {
    wit::Column {
        name: c.name,
        type_: match c.column_type {
            ColumnType::Bool => wit::ColumnType::Bool,
            ColumnType::String => wit::ColumnType::String,
            ColumnType::Byte => wit::ColumnType::Byte,
            ColumnType::Short => wit::ColumnType::Short,
            ColumnType::Integer => wit::ColumnType::Integer,
            ColumnType::Long => wit::ColumnType::Long,
            ColumnType::Float => wit::ColumnType::Float,
            ColumnType::Double => wit::ColumnType::Double,
            ColumnType::Timestamp => wit::ColumnType::Timestamp,
            ColumnType::Blob => wit::ColumnType::Blob,
        },
    }
}

fn type_from_wit(t: wit::ColumnType) -> ColumnType {
    match t {
        wit::ColumnType::Bool => ColumnType::Bool,
        wit::ColumnType::String => ColumnType::String,
        wit::ColumnType::Byte => ColumnType::Byte,
        wit::ColumnType::Short => ColumnType::Short,
        wit::ColumnType::Integer => ColumnType::Integer,
        wit::ColumnType::Long => ColumnType::Long,
        wit::ColumnType::Float => ColumnType::Float,
        wit::ColumnType::Double => ColumnType::Double,
        wit::ColumnType::Timestamp => ColumnType::Timestamp,
        wit::ColumnType::Blob => ColumnType::Blob,
    }
}

fn value_from_wit(v: wit::Value) -> Value {
    match v {
        wit::Value::Null => Value::Null,
        wit::Value::Bool(v) => Value::Bool(v),
        wit::Value::String(v) => Value::String(v),
        wit::Value::Byte(v) => Value::Byte(v),
        wit::Value::Short(v) => Value::Short(v),
        wit::Value::Integer(v) => Value::Integer(v),
        wit::Value::Long(v) => Value::Long(v),
        wit::Value::Float(v) => Value::Float(v),
        wit::Value::Double(v) => Value::Double(v),
        wit::Value::Timestamp(v) => Value::Timestamp(v),
        wit::Value::Blob(v) => Value::Blob(v),
    }
}

fn value_to_wit(v: Value) -> wit::Value {
    match v {
        Value::Null => wit::Value::Null,
        Value::Bool(v) => wit::Value::Bool(v),
        Value::String(v) => wit::Value::String(v),
        Value::Byte(v) => wit::Value::Byte(v),
        Value::Short(v) => wit::Value::Short(v),
        Value::Integer(v) => wit::Value::Integer(v),
        Value::Long(v) => wit::Value::Long(v),
        Value::Float(v) => wit::Value::Float(v),
        Value::Double(v) => wit::Value::Double(v),
        Value::Timestamp(v) => wit::Value::Timestamp(v),
        Value::Blob(v) => wit::Value::Blob(v),
    }
}
