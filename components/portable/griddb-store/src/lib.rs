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
use cromflag_logic::model as m;
use cromflag_store_export::{Exported, ModelStore};
use std::cell::OnceCell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use transport::WasiTransport;

thread_local! {
    /// The store of this instance, made on the first call.
    static STORE: OnceCell<Result<WebApiStore<WasiTransport>, String>> = const { OnceCell::new() };
}

/// Runs `call` on this instance's store; bad settings are a backend error
/// (the components answer 503 with it: the operator must fix a variable).
fn with_store<T>(
    call: impl AsyncFnOnce(&WebApiStore<WasiTransport>) -> Result<T, m::StoreError>,
) -> Result<T, m::StoreError> {
    STORE.with(|cell| {
        let store = cell.get_or_init(|| {
            let settings = GriddbSettings::from_variables(cromflag_guest::variable)?;
            WebApiStore::new(&settings, WasiTransport)
        });
        match store {
            Ok(store) => block_on(call(store)),
            Err(e) => Err(m::StoreError::Backend(format!("griddb-store: {e}"))),
        }
    })
}

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

impl ModelStore for GriddbStore {
    fn put_container(info: m::ContainerInfo) -> Result<m::ContainerInfo, m::StoreError> {
        with_store(async |store| store.put_container(info).await)
    }

    fn get_container(name: &str) -> Result<Option<m::ContainerInfo>, m::StoreError> {
        with_store(async |store| store.get_container(name).await)
    }

    fn list_containers() -> Result<Vec<String>, m::StoreError> {
        with_store(async |store| store.list_containers().await)
    }

    fn multi_put(batches: Vec<(String, Vec<m::Row>)>) -> Result<u64, m::StoreError> {
        with_store(async |store| store.multi_put(batches, |_, _| {}).await)
    }

    fn query(container: &str, tql: &str) -> Result<m::QueryResult, m::StoreError> {
        with_store(async |store| store.query(container, tql).await)
    }

    fn aggregate_ranges(
        container: &str,
        aggregates: &str,
        ranges: &[m::KeyRange],
    ) -> Result<m::RangeAggregates, m::StoreError> {
        with_store(async |store| store.aggregate_ranges(container, aggregates, ranges).await)
    }
}

type Store = Exported<GriddbStore>;
cromflag_store_export::export!(Store with_types_in cromflag_store_export);
