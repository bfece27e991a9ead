//! What the HTTP trigger serves itself, where no manifest route matches: the
//! built-in page (`/`, `/ui`, and its `/ui/app.js`, `/ui/app.css`, bundled at
//! build time) and live streams of committed rows (`/stream/<device>`).
//!
//! A stream is Server-Sent Events: `event: ready` once subscribed, then one
//! `event: rows` per committed batch of the device (`data:` the rows as
//! `/fetch` shapes them). Each client has its own bounded buffer; a client too
//! slow to keep up is sent `event: dropped` and closed, and never slows ingestion.
//! `<device>` is a percent-encoded device id, mapped to its container by
//! `cromflag_logic::device` as inserts map it.

use crate::http_io::{self, boxed, error};
use crate::store::{Backend, Committed};
use bytes::Bytes;
use cromflag_logic::device;
use cromflag_logic::json::RowObjects;
use cromflag_logic::ApiError;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use serde_json::json;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// Events buffered for one stream client before it counts as slow.
const CLIENT_BUFFER: usize = 64;
/// A comment line this often tells a gone client from an idle one.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A built-in answer for `method path`, if there is one.
pub enum Builtin {
    Page(&'static str, &'static [u8]),
    Stream(Device),
    /// A stream asked for with an invalid device id: a 400 naming the problem.
    Refused(ApiError),
}

/// A device by its id and the container its rows are committed to.
pub struct Device {
    id: String,
    container: String,
}

pub fn route(method: &http::Method, path: &str) -> Option<Builtin> {
    if method != http::Method::GET {
        return None;
    }
    match path {
        "/" | "/ui" | "/ui/" => Some(Builtin::Page("text/html; charset=utf-8", page::INDEX)),
        "/ui/app.js" => Some(Builtin::Page(
            "text/javascript; charset=utf-8",
            page::SCRIPT,
        )),
        "/ui/app.css" => Some(Builtin::Page("text/css; charset=utf-8", page::STYLE)),
        _ => {
            let segment = path.strip_prefix("/stream/")?;
            if segment.is_empty() || segment.contains('/') {
                return None;
            }
            let id = device::from_path_segment(segment).and_then(|id| {
                device::check(&id)?;
                Ok(id)
            });
            Some(match id {
                Ok(id) => Builtin::Stream(Device {
                    container: device::container_of(&id),
                    id,
                }),
                Err(refused) => Builtin::Refused(refused),
            })
        }
    }
}

/// The page's files, built from `ui/` by `build.rs` (esbuild, uPlot from npm);
/// empty in a build made without them (`CROMFLAG_BUILD_ASSETS=0`, or no npm).
mod page {
    pub const INDEX: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ui/index.html"));
    pub const SCRIPT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ui/app.js"));
    pub const STYLE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ui/app.css"));
}

pub fn serve(builtin: Builtin, backend: &dyn Backend) -> Response<HyperOutgoingBody> {
    match builtin {
        Builtin::Page(_, []) => boxed(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this build of cromflag has no built-in page",
            json!({"why": "it was built with CROMFLAG_BUILD_ASSETS=0 or without npm; build it again with Node.js and npm on the PATH"}),
        )),
        Builtin::Page(content_type, body) => {
            let mut page = http_io::bytes(StatusCode::OK, content_type, Bytes::from_static(body));
            page.headers_mut().insert(
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("no-cache"),
            );
            boxed(page)
        }
        Builtin::Stream(device) => stream(backend, device),
        Builtin::Refused(refused) => boxed(error(
            StatusCode::from_u16(refused.status).unwrap_or(StatusCode::BAD_REQUEST),
            &refused.error,
            refused.detail,
        )),
    }
}

fn stream(backend: &dyn Backend, device: Device) -> Response<HyperOutgoingBody> {
    let Some(commits) = backend.commits() else {
        return boxed(error(
            StatusCode::NOT_IMPLEMENTED,
            "this store does not publish its commits",
            json!({ "device": device.id }),
        ));
    };
    let (events, body) = mpsc::channel(CLIENT_BUFFER);
    tokio::spawn(forward(commits, events, device));
    Response::builder()
        .header(http::header::CONTENT_TYPE, "text/event-stream")
        .header(http::header::CACHE_CONTROL, "no-cache")
        .body(
            EventBody(body)
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .expect("static headers are valid")
}

/// Copies `device`'s committed rows into one client's event buffer until the
/// client goes away or falls too far behind.
async fn forward(
    mut commits: broadcast::Receiver<Arc<Committed>>,
    events: mpsc::Sender<Bytes>,
    device: Device,
) {
    let _following = crate::metrics::metrics().stream_client();
    if events
        .send(event("ready", &json!({ "device": device.id }).to_string()))
        .await
        .is_err()
    {
        return;
    }
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
    keep_alive.tick().await;
    loop {
        tokio::select! {
            received = commits.recv() => match received {
                Ok(batch) if batch.container.eq_ignore_ascii_case(&device.container) => {
                    let rows = RowObjects { columns: &batch.columns, rows: &batch.rows }.to_vec();
                    let rows = String::from_utf8(rows).expect("JSON is UTF-8");
                    if events.send(event("rows", &rows)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::info!(device = %device.id, missed, "a live stream client fell behind; dropped");
                    let reason = json!({ "reason": "the client fell behind", "missed_batches": missed });
                    let _ = tokio::time::timeout(Duration::from_secs(1), events.send(event("dropped", &reason.to_string()))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = keep_alive.tick() => {
                if events.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// One SSE event; `data` is one line of JSON.
fn event(name: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// A response body fed by a channel: it ends when the sender does.
struct EventBody(mpsc::Receiver<Bytes>);

impl Body for EventBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|next| next.map(|bytes| Ok(Frame::data(bytes))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::EmbeddedStore;

    #[test]
    fn a_build_without_the_page_says_so() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = std::sync::Arc::new(EmbeddedStore::open(&dir.path().join("store.db")).unwrap());
        let page = serve(Builtin::Page("text/html; charset=utf-8", b""), &store);
        assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
        let page = serve(Builtin::Page("text/html; charset=utf-8", b"<html>"), &store);
        assert_eq!(page.status(), StatusCode::OK);
    }
}
