//! How the host reaches the WebAPI: hyper's pooled keep-alive connections,
//! HTTP or HTTPS (GridDB Cloud), with a deadline per exchange. What is sent
//! and what is retried is `cromflag-griddb-webapi`'s `client`.

use bytes::Bytes;
use cromflag_griddb_webapi::client::{Answer, Transport};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::time::{Duration, Instant};

pub struct HyperTransport {
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl HyperTransport {
    pub fn new() -> HyperTransport {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        HyperTransport { http }
    }
}

impl Default for HyperTransport {
    fn default() -> HyperTransport {
        HyperTransport::new()
    }
}

impl Transport for HyperTransport {
    async fn send(&self, request: Request<Vec<u8>>, deadline: Instant) -> Result<Answer, String> {
        let allowed = deadline.saturating_duration_since(Instant::now());
        let request = request.map(|body| Full::new(Bytes::from(body)));
        let exchange = async {
            let response = self.http.request(request).await.map_err(|e| {
                // The outermost error says little ("client error (Connect)"): show the cause too.
                match std::error::Error::source(&e) {
                    Some(cause) => format!("{e}: {cause}"),
                    None => e.to_string(),
                }
            })?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok(Answer {
                status,
                body: body.to_vec(),
            })
        };
        match tokio::time::timeout_at(deadline.into(), exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(format!("no answer within {allowed:?}")),
        }
    }

    async fn sleep(&self, pause: Duration) {
        tokio::time::sleep(pause).await;
    }
}
