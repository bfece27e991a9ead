//! The native baseline of a component: hyper straight into the same
//! `cromflag_logic::api` handler, compiled natively, over a backend. What a
//! benchmark's Wasm/native ratio divides by.

use bytes::Bytes;
use cromflag::store::{
    Backend, ContainerInfo, KeyRange, QueryResult, RangeAggregates, Row, StoreError,
};
use cromflag_logic::api;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use wasmtime_wasi_http::io::TokioIo;

/// A component's request handler, natively: the logic over a store.
pub type Handler = Arc<dyn Fn(&mut BlockingStore, &api::Request) -> api::Response + Send + Sync>;

/// Serves `handler` over `backend` on a loopback port; returns the address.
pub async fn serve(backend: Arc<dyn Backend>, handler: Handler) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (backend, handler) = (backend.clone(), handler.clone());
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (backend, handler) = (backend.clone(), handler.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let handle = Handle::current();
                            // The logic is synchronous, as it is inside the component.
                            let response = tokio::task::spawn_blocking(move || {
                                let path = parts
                                    .uri
                                    .path_and_query()
                                    .map_or("/", |p| p.as_str())
                                    .to_owned();
                                let header = |name: &str| {
                                    parts.headers.get(name).and_then(|v| v.to_str().ok())
                                };
                                let request = api::Request {
                                    method: parts.method.as_str(),
                                    path_with_query: &path,
                                    content_type: header("content-type"),
                                    accept: header("accept"),
                                    body: &body,
                                };
                                handler(&mut BlockingStore { backend, handle }, &request)
                            })
                            .await
                            .expect("handler task");
                            let response = http::Response::builder()
                                .status(response.status)
                                .header("content-type", response.content_type)
                                .body(Full::new(Bytes::from(response.body)))
                                .expect("valid response");
                            Ok::<_, Infallible>(response)
                        }
                    });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// `cromflag_logic::Store` over a backend, blocking on each call as a component does.
pub struct BlockingStore {
    backend: Arc<dyn Backend>,
    handle: Handle,
}

impl cromflag_logic::Store for BlockingStore {
    fn put_container(&mut self, info: ContainerInfo) -> Result<ContainerInfo, StoreError> {
        self.handle.block_on(self.backend.put_container(info))
    }
    fn get_container(&mut self, name: &str) -> Result<Option<ContainerInfo>, StoreError> {
        self.handle.block_on(self.backend.get_container(name))
    }
    fn list_containers(&mut self) -> Result<Vec<String>, StoreError> {
        self.handle.block_on(self.backend.list_containers())
    }
    fn put_rows(&mut self, container: &str, rows: Vec<Row>) -> Result<u64, StoreError> {
        self.handle.block_on(self.backend.put_rows(container, rows))
    }
    fn multi_put(&mut self, batches: Vec<(String, Vec<Row>)>) -> Result<u64, StoreError> {
        self.handle.block_on(self.backend.multi_put(batches))
    }
    fn query(&mut self, container: &str, tql: &str) -> Result<QueryResult, StoreError> {
        self.handle.block_on(self.backend.query(container, tql))
    }
    fn aggregate_ranges(
        &mut self,
        container: &str,
        aggregates: &str,
        ranges: &[KeyRange],
    ) -> Result<RangeAggregates, StoreError> {
        self.handle
            .block_on(self.backend.aggregate_ranges(container, aggregates, ranges))
    }
}
