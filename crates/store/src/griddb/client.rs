//! One WebAPI endpoint, called well: pooled keep-alive connections (HTTP or
//! HTTPS), Basic auth and a `User-Agent: cromflag/<version>` on every call
//! (GridDB Cloud's samples send one; it also names us in the WebAPI's access
//! log), a deadline per call, and retries with capped, jittered backoff on
//! what may pass (a refused connection, a timeout, a 5xx). Every call here is
//! safe to repeat: row puts are upserts on their key, creates answer 409 the
//! second time, reads are reads, `ALTER TABLE … ADD COLUMN` fails harmlessly
//! the second time.

use super::GriddbSettings;
use crate::StoreError;
use base64::Engine as _;
use bytes::Bytes;
use cromflag_griddb_webapi::wire::ErrorBody;
use http::{header, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::time::{Duration, Instant};

/// First pause before a retry; doubled each time up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Attempts per call, the first included; fewer if the deadline comes first.
const MAX_ATTEMPTS: u32 = 4;

/// What every call says it is.
const USER_AGENT: &str = concat!("cromflag/", env!("CARGO_PKG_VERSION"));

/// A WebAPI answer other than a 5xx: its status and body.
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

/// What a 404 says is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// The WebAPI's own 404 (its error body): the container named.
    Container,
    /// Anyone else's (Spring's, a proxy's): the endpoint itself.
    Endpoint,
}

impl Answer {
    /// What is missing, if this is a 404 (see [`Answer::webapi_error`]).
    pub fn missing(&self) -> Option<Missing> {
        (self.status == StatusCode::NOT_FOUND).then(|| match self.webapi_error() {
            Some(_) => Missing::Container,
            None => Missing::Endpoint,
        })
    }

    /// The WebAPI's own error body, if this is one. A path no controller maps
    /// is answered by Spring (`{"timestamp", "status", "error", "path"}`) or
    /// by whatever stands in front of the WebAPI, never with this shape: so
    /// a 404 with it is a missing container, a 404 without it a missing endpoint.
    pub fn webapi_error(&self) -> Option<ErrorBody> {
        serde_json::from_slice::<ErrorBody>(&self.body).ok()
    }

    /// The error body's message (or the raw text when it is not one).
    pub fn message(&self) -> String {
        match self.webapi_error() {
            Some(error) => error.error_message,
            None => String::from_utf8_lossy(&self.body).into_owned(),
        }
    }
}

pub struct WebApiClient {
    /// `<griddb_url>/v2/<cluster>/dbs/<database>`, without a trailing slash.
    base: String,
    /// The user the credentials are for, for messages (never the password).
    user: String,
    authorization: HeaderValue,
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl WebApiClient {
    pub fn new(settings: &GriddbSettings) -> anyhow::Result<WebApiClient> {
        let url: http::Uri = settings
            .url
            .parse()
            .map_err(|e| anyhow::anyhow!("griddb_url `{}` is not a URL: {e}", settings.url))?;
        if !matches!(url.scheme_str(), Some("http" | "https")) {
            anyhow::bail!(
                "griddb_url `{}` must start with http:// or https://",
                settings.url
            );
        }
        if url.authority().is_some_and(|a| a.as_str().contains('@')) {
            anyhow::bail!(
                "griddb_url must not hold credentials: set griddb_user and griddb_password"
            );
        }
        let base = format!(
            "{}/v2/{}/dbs/{}",
            settings.url.trim_end_matches('/'),
            settings.cluster,
            settings.database
        );
        let credentials = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", settings.user, settings.password));
        let mut authorization = HeaderValue::from_str(&format!("Basic {credentials}"))?;
        // Kept out of any debug output hyper or we might produce.
        authorization.set_sensitive(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(WebApiClient {
            base,
            user: settings.user.clone(),
            authorization,
            http,
            timeout: settings.timeout,
        })
    }

    /// Where calls go (no credentials in it), for messages.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// Calls `method path` (relative to the database) with an optional JSON
    /// body, retrying what may pass; 2xx, 4xx come back as an `Answer`. A
    /// WebAPI that stays unreachable, slow or failing is `StoreError::Backend`,
    /// which the components answer with 503.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, StoreError> {
        let uri = format!("{}/{path}", self.base);
        let body = Bytes::from(body.unwrap_or_default());
        let deadline = Instant::now() + self.timeout;
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let failure = match self.attempt(&method, &uri, body.clone(), deadline).await {
                Ok(answer) if !answer.status.is_server_error() => return Ok(answer),
                Ok(answer) => format!("{} {}", answer.status, answer.message()),
                Err(e) => e,
            };
            // Full jitter: hosts that lost GridDB together do not come back in step.
            let pause = backoff.mul_f64(fastrand::f64());
            if attempt >= MAX_ATTEMPTS || Instant::now() + pause >= deadline {
                return Err(StoreError::Backend(format!(
                    "GridDB WebAPI at {} failed after {attempt} attempt{}: {failure}",
                    self.base,
                    if attempt == 1 { "" } else { "s" }
                )));
            }
            tracing::debug!(%method, path, attempt, error = %failure, "WebAPI call failed; retrying");
            tokio::time::sleep(pause).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            attempt += 1;
        }
    }

    async fn attempt(
        &self,
        method: &Method,
        uri: &str,
        body: Bytes,
        deadline: Instant,
    ) -> Result<Answer, String> {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(header::AUTHORIZATION, self.authorization.clone())
            .header(header::USER_AGENT, USER_AGENT)
            .header(header::ACCEPT, "application/json");
        if !body.is_empty() {
            request = request.header(header::CONTENT_TYPE, "application/json; charset=UTF-8");
        }
        let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
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
            Ok(Answer { status, body })
        };
        match tokio::time::timeout_at(deadline.into(), exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An answer as a test writes it; `features` reads answers too.
    pub(in crate::griddb) fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn the_webapi_error_body_is_told_from_spring_and_proxies() {
        let missing_container = answer(
            404,
            r#"{"version":"v2","errorCode":0,"errorMessage":"Container not existed"}"#,
        );
        assert_eq!(
            missing_container.webapi_error().unwrap().error_message,
            "Container not existed"
        );
        assert_eq!(missing_container.message(), "Container not existed");
        let unmapped = answer(
            404,
            r#"{"timestamp":"2024-05-01T12:00:00.000+00:00","status":404,"error":"Not Found","path":"/griddb/v2/c/dbs/public/sql/ddl"}"#,
        );
        assert!(unmapped.webapi_error().is_none());
        assert!(answer(404, "<html>Not Found</html>")
            .webapi_error()
            .is_none());
    }

    #[test]
    fn every_call_names_this_release() {
        assert_eq!(
            USER_AGENT,
            format!("cromflag/{}", env!("CARGO_PKG_VERSION"))
        );
    }
}
