//! `cromflag:iot/store` over a GridDB cluster's WebAPI, as a component: what
//! the insert and fetch components are plugged with where the `cromflag`
//! host is not (a Wasm cloud, `wasmtime serve`). Every store call is
//! `cromflag-griddb-webapi`'s `WebApiStore`, the code the host's `griddb`
//! backend runs; only the bytes travel differently (`transport`: outgoing
//! wasi:http requests, which block).
//!
//! Its settings are the host's `griddb_*` variables, read through
//! `fermyon:spin/variables` (Spin's, or the environment's where there is no
//! Spin). An instance serves one request, so the store it makes lives as
//! long: its schema cache and the WebAPI release it probed last for that
//! request only.

mod transport;

use cromflag_griddb_webapi::store::{GriddbSettings, WebApiStore};
use cromflag_guest::convert;
use cromflag_logic::model as m;
use exports::cromflag::iot::store as wit;
use std::cell::OnceCell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use transport::WasiTransport;

wit_bindgen::generate!({
    path: "../../../wit",
    world: "store-component",
    with: {
        "cromflag:iot/types@0.1.0": cromflag_guest::cromflag::iot::types,
        "fermyon:spin/variables@2.0.0": cromflag_guest::fermyon::spin::variables,
    },
});

thread_local! {
    /// The store of this instance, made on the first call.
    static STORE: OnceCell<Result<WebApiStore<WasiTransport>, String>> = const { OnceCell::new() };
}

/// Runs `call` on this instance's store; bad settings are a backend error
/// (the components answer 503 with it: the operator must fix a variable).
fn with_store<T>(
    call: impl FnOnce(&WebApiStore<WasiTransport>) -> Result<T, m::StoreError>,
) -> Result<T, wit::Error> {
    STORE.with(|cell| {
        let store = cell.get_or_init(|| {
            let variables: Vec<(&str, Option<String>)> = SETTINGS
                .iter()
                .map(|name| (*name, cromflag_guest::variable(name)))
                .collect();
            let settings = GriddbSettings::from_variables(|name| {
                variables
                    .iter()
                    .find(|(n, _)| *n == name)
                    .and_then(|(_, v)| v.as_deref())
            })?;
            WebApiStore::new(&settings, WasiTransport)
        });
        match store {
            Ok(store) => call(store).map_err(error_to_wit),
            Err(e) => Err(wit::Error::Backend(format!("griddb-store: {e}"))),
        }
    })
}

/// The variables `GriddbSettings::from_variables` reads.
const SETTINGS: &[&str] = &[
    "griddb_url",
    "griddb_cluster",
    "griddb_database",
    "griddb_user",
    "griddb_password",
    "griddb_timeout_secs",
    "griddb_max_request_bytes",
    "griddb_max_response_bytes",
];

/// Runs a future whose I/O blocks (the transport's), so that it is ready
/// when first polled.
fn block_on<T>(future: impl Future<Output = T>) -> T {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(value) => value,
        Poll::Pending => unreachable!("the wasi:http transport blocks; nothing waits"),
    }
}

struct GriddbStore;

impl wit::Guest for GriddbStore {
    fn put_container(info: wit::ContainerInfo) -> Result<wit::ContainerInfo, wit::Error> {
        with_store(|store| block_on(store.put_container(info_from_wit(info)))).map(info_to_wit)
    }

    fn get_container(name: String) -> Result<Option<wit::ContainerInfo>, wit::Error> {
        with_store(|store| block_on(store.get_container(&name))).map(|i| i.map(info_to_wit))
    }

    fn list_containers() -> Result<Vec<String>, wit::Error> {
        with_store(|store| block_on(store.list_containers()))
    }

    fn put_rows(container: String, rows: Vec<wit::Row>) -> Result<u64, wit::Error> {
        let rows = rows.into_iter().map(convert::row_from_wit).collect();
        with_store(|store| block_on(store.multi_put(vec![(container, rows)], |_, _| {})))
    }

    fn multi_put(batches: Vec<wit::ContainerRows>) -> Result<u64, wit::Error> {
        let batches = batches
            .into_iter()
            .map(|b| {
                let rows = b.rows.into_iter().map(convert::row_from_wit).collect();
                (b.container, rows)
            })
            .collect();
        with_store(|store| block_on(store.multi_put(batches, |_, _| {})))
    }

    fn query(container: String, tql: String) -> Result<wit::QueryResult, wit::Error> {
        with_store(|store| block_on(store.query(&container, &tql))).map(|result| wit::QueryResult {
            columns: result
                .columns
                .into_iter()
                .map(convert::column_to_wit)
                .collect(),
            rows: result.rows.into_iter().map(convert::row_to_wit).collect(),
        })
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

export!(GriddbStore);
