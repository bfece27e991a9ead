//! One HTTP/1 listener, served well: at most `max_connections` at once (the
//! rest wait in the accept backlog), a deadline for each request's headers,
//! keep-alive, and accept errors survived. A leaf: the HTTP trigger and the
//! WebAPI server both serve through it, and it knows neither.

use anyhow::Result;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use wasmtime_wasi_http::io::TokioIo;

/// What one listener allows its clients: slow or too many clients are cut
/// off rather than left to hold the host's connections (slowloris).
#[derive(Clone, Debug)]
pub struct ListenerLimits {
    /// Connections served at once; further ones wait in the accept backlog.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers (the first
    /// request of a connection, and every next one on a kept-alive connection).
    pub header_timeout: Duration,
    /// How long a request body may stay silent between two chunks (408).
    pub body_idle_timeout: Duration,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            max_connections: 10_000,
            header_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves HTTP/1 (keep-alive) on every connection `listener` accepts, each
/// request answered by `handle`, until the task is dropped. `what` names the
/// server in logs. Shared by the trigger and the WebAPI server.
pub async fn accept_loop<F, Fut, B>(
    listener: TcpListener,
    what: &'static str,
    limits: &ListenerLimits,
    handle: F,
) -> Result<()>
where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut told_full = false;
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if !told_full {
                    tracing::warn!(
                        server = what,
                        limit = limits.max_connections,
                        "connection limit reached: new connections wait"
                    );
                    told_full = true;
                }
                slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed")
            }
        };
        let (stream, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!(server = what, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let handle = handle.clone();
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req| {
                let answer = handle(req, client);
                async move { Ok::<_, Infallible>(answer.await) }
            });
            if let Err(e) = http1::Builder::new()
                .keep_alive(true)
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(server = what, %client, error = %e, "connection ended with an error");
            }
        });
    }
}
