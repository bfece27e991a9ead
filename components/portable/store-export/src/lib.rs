//! The `cromflag:iot/store` export of a store component (`griddb-store`,
//! `spin-sqlite-store`), written once: a component implements [`ModelStore`]
//! in the model's types and exports it with
//! `cromflag_store_export::export!(Store with_types_in cromflag_store_export)`
//! for `type Store = Exported<ItsStore>`. The WIT types on the way in and out
//! are converted here (values, columns and rows by `cromflag_guest::convert`).

use cromflag_guest::convert;
use cromflag_logic::model as m;
use exports::cromflag::iot::store as wit;
use std::marker::PhantomData;

wit_bindgen::generate!({
    path: "../../../wit",
    world: "store-component",
    with: {
        "cromflag:iot/types@0.1.0": cromflag_guest::cromflag::iot::types,
        "fermyon:spin/variables@2.0.0": cromflag_guest::fermyon::spin::variables,
    },
    pub_export_macro: true,
    default_bindings_module: "cromflag_store_export",
});

/// A store in the model's types: the calls of `wit/store.wit`'s `store`.
/// `put-rows` is a `multi_put` of one container.
pub trait ModelStore {
    fn put_container(info: m::ContainerInfo) -> Result<m::ContainerInfo, m::StoreError>;
    fn get_container(name: &str) -> Result<Option<m::ContainerInfo>, m::StoreError>;
    fn list_containers() -> Result<Vec<String>, m::StoreError>;
    /// Every row or none, where the store can promise it (see the WIT).
    fn multi_put(batches: Vec<(String, Vec<m::Row>)>) -> Result<u64, m::StoreError>;
    fn query(container: &str, tql: &str) -> Result<m::QueryResult, m::StoreError>;
    fn aggregate_ranges(
        container: &str,
        aggregates: &str,
        ranges: &[m::KeyRange],
    ) -> Result<m::RangeAggregates, m::StoreError>;
}

/// `S` as the exported WIT interface.
pub struct Exported<S>(PhantomData<S>);

impl<S: ModelStore> wit::Guest for Exported<S> {
    fn put_container(info: wit::ContainerInfo) -> Result<wit::ContainerInfo, wit::Error> {
        S::put_container(info_from_wit(info))
            .map(info_to_wit)
            .map_err(error_to_wit)
    }

    fn get_container(name: String) -> Result<Option<wit::ContainerInfo>, wit::Error> {
        S::get_container(&name)
            .map(|info| info.map(info_to_wit))
            .map_err(error_to_wit)
    }

    fn get_containers(names: Vec<String>) -> Result<Vec<Option<wit::ContainerInfo>>, wit::Error> {
        names
            .iter()
            .map(|name| S::get_container(name).map(|info| info.map(info_to_wit)))
            .collect::<Result<_, _>>()
            .map_err(error_to_wit)
    }

    fn list_containers() -> Result<Vec<String>, wit::Error> {
        S::list_containers().map_err(error_to_wit)
    }

    fn put_rows(container: String, rows: Vec<wit::Row>) -> Result<u64, wit::Error> {
        let rows = rows.into_iter().map(convert::row_from_wit).collect();
        S::multi_put(vec![(container, rows)]).map_err(error_to_wit)
    }

    fn multi_put(batches: Vec<wit::ContainerRows>) -> Result<u64, wit::Error> {
        let batches = batches
            .into_iter()
            .map(|b| {
                let rows = b.rows.into_iter().map(convert::row_from_wit).collect();
                (b.container, rows)
            })
            .collect();
        S::multi_put(batches).map_err(error_to_wit)
    }

    fn query(container: String, tql: String) -> Result<wit::QueryResult, wit::Error> {
        let result = S::query(&container, &tql).map_err(error_to_wit)?;
        let data = m::to_columns(result.columns.len(), result.rows).map_err(error_to_wit)?;
        Ok(wit::QueryResult {
            columns: result
                .columns
                .into_iter()
                .map(convert::column_to_wit)
                .collect(),
            data: data.into_iter().map(convert::column_data_to_wit).collect(),
        })
    }

    fn aggregate_ranges(
        container: String,
        aggregates: String,
        ranges: Vec<wit::KeyRange>,
    ) -> Result<wit::RangeAggregates, wit::Error> {
        let ranges: Vec<m::KeyRange> = ranges
            .into_iter()
            .map(|r| m::KeyRange {
                start: r.start,
                end: r.end,
            })
            .collect();
        S::aggregate_ranges(&container, &aggregates, &ranges)
            .map(|result| wit::RangeAggregates {
                columns: result
                    .columns
                    .into_iter()
                    .map(convert::column_to_wit)
                    .collect(),
                rows: result
                    .rows
                    .into_iter()
                    .map(|row| row.map(convert::row_to_wit))
                    .collect(),
            })
            .map_err(error_to_wit)
    }
}

fn info_to_wit(info: m::ContainerInfo) -> wit::ContainerInfo {
    wit::ContainerInfo {
        name: info.name,
        kind: match info.kind {
            m::ContainerKind::Collection => wit::ContainerKind::Collection,
            m::ContainerKind::TimeSeries => wit::ContainerKind::TimeSeries,
        },
        columns: info
            .columns
            .into_iter()
            .map(convert::column_to_wit)
            .collect(),
        row_key: info.row_key,
    }
}

fn info_from_wit(info: wit::ContainerInfo) -> m::ContainerInfo {
    m::ContainerInfo {
        name: info.name,
        kind: match info.kind {
            wit::ContainerKind::Collection => m::ContainerKind::Collection,
            wit::ContainerKind::TimeSeries => m::ContainerKind::TimeSeries,
        },
        columns: info
            .columns
            .into_iter()
            .map(convert::column_from_wit)
            .collect(),
        row_key: info.row_key,
    }
}

fn error_to_wit(e: m::StoreError) -> wit::Error {
    match e {
        m::StoreError::NotFound(m) => wit::Error::NotFound(m),
        m::StoreError::Invalid(m) => wit::Error::Invalid(m),
        m::StoreError::SchemaConflict(m) => wit::Error::SchemaConflict(m),
        m::StoreError::Query(m) => wit::Error::Query(m),
        m::StoreError::Backend(m) => wit::Error::Backend(m),
    }
}
