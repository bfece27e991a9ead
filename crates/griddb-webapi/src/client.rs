//! One WebAPI endpoint, called well, whatever carries the bytes: Basic auth
//! and a `User-Agent: cromflag/<version>` on every call (GridDB Cloud's
//! samples send one; it also names us in the WebAPI's access log), a
//! deadline per call, and retries with capped, jittered backoff on what may
//! pass (a refused connection, a timeout, a 5xx). Every call made through it
//! is safe to repeat: row puts are upserts on their key, creates answer 409
//! the second time, reads are reads, `ALTER TABLE … ADD COLUMN` fails
//! harmlessly the second time.
//!
//! The exchange itself is a [`Transport`]'s: hyper on the host
//! (`cromflag-store`'s `griddb`), `wasi:http/outgoing-handler` in the
//! `griddb-store` component.

use crate::wire::ErrorBody;
use base64::Engine as _;
use http::{header, HeaderValue, Method, Request, StatusCode};
use std::future::Future;
use std::time::{Duration, Instant};

/// First pause before a retry; doubled each time up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Attempts per call, the first included; fewer if the deadline comes first.
const MAX_ATTEMPTS: u32 = 4;

/// What every call says it is.
pub const USER_AGENT: &str = concat!("cromflag/", env!("CARGO_PKG_VERSION"));

/// One HTTP exchange, as the platform makes it. The futures are `Send` so
/// that the host's multi-threaded runtime can run the store's calls; a
/// transport that blocks (a component's) answers futures that are ready
/// when first polled.
pub trait Transport: Send + Sync {
    /// Sends `request` and reads the whole answer, or says why none came;
    /// gives up at `deadline`.
    fn send(
        &self,
        request: Request<Vec<u8>>,
        deadline: Instant,
    ) -> impl Future<Output = Result<Answer, String>> + Send;

    /// Waits `pause` before a retry.
    fn sleep(&self, pause: Duration) -> impl Future<Output = ()> + Send;
}

/// A WebAPI answer: its status and body.
pub struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
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

/// Where the WebAPI is and who we are to it: what a client is made from.
pub struct Endpoint<'a> {
    /// The WebAPI's base, ending in `/griddb`.
    pub url: &'a str,
    pub cluster: &'a str,
    pub database: &'a str,
    pub user: &'a str,
    pub password: &'a str,
    /// How long one call may take, retries included.
    pub timeout: Duration,
}

pub struct WebApiClient<T> {
    /// `<griddb_url>/v2/<cluster>/dbs/<database>`, without a trailing slash.
    base: String,
    /// The user the credentials are for, for messages (never the password).
    user: String,
    authorization: HeaderValue,
    timeout: Duration,
    transport: T,
}

impl<T: Transport> WebApiClient<T> {
    /// Checks the URL (http or https, no credentials in it) and prepares
    /// the credentials; nothing is sent yet.
    pub fn new(endpoint: &Endpoint, transport: T) -> Result<WebApiClient<T>, String> {
        let url: http::Uri = endpoint
            .url
            .parse()
            .map_err(|e| format!("griddb_url `{}` is not a URL: {e}", endpoint.url))?;
        if !matches!(url.scheme_str(), Some("http" | "https")) {
            return Err(format!(
                "griddb_url `{}` must start with http:// or https://",
                endpoint.url
            ));
        }
        if url.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(
                "griddb_url must not hold credentials: set griddb_user and griddb_password".into(),
            );
        }
        let base = format!(
            "{}/v2/{}/dbs/{}",
            endpoint.url.trim_end_matches('/'),
            endpoint.cluster,
            endpoint.database
        );
        let credentials = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", endpoint.user, endpoint.password));
        let mut authorization = HeaderValue::from_str(&format!("Basic {credentials}"))
            .map_err(|_| "griddb_user and griddb_password must be printable text".to_owned())?;
        // Kept out of any debug output of the request.
        authorization.set_sensitive(true);
        Ok(WebApiClient {
            base,
            user: endpoint.user.to_owned(),
            authorization,
            timeout: endpoint.timeout,
            transport,
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
    /// WebAPI that stays unreachable, slow or failing is `Err`, with every
    /// attempt counted (the store's `Backend` error, which components answer
    /// with 503).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, String> {
        let uri = format!("{}/{path}", self.base);
        let deadline = Instant::now() + self.timeout;
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let request = self.request(&method, &uri, body.as_deref())?;
            let failure = match self.transport.send(request, deadline).await {
                Ok(answer) if !answer.status.is_server_error() => return Ok(answer),
                Ok(answer) => format!("{} {}", answer.status, answer.message()),
                Err(e) => e,
            };
            // Full jitter: hosts that lost GridDB together do not come back in step.
            let pause = backoff.mul_f64(fastrand::f64());
            if attempt >= MAX_ATTEMPTS || Instant::now() + pause >= deadline {
                return Err(format!(
                    "GridDB WebAPI at {} failed after {attempt} attempt{}: {failure}",
                    self.base,
                    if attempt == 1 { "" } else { "s" }
                ));
            }
            tracing::debug!(%method, path, attempt, error = %failure, "WebAPI call failed; retrying");
            self.transport.sleep(pause).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            attempt += 1;
        }
    }

    fn request(
        &self,
        method: &Method,
        uri: &str,
        body: Option<&[u8]>,
    ) -> Result<Request<Vec<u8>>, String> {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(header::AUTHORIZATION, self.authorization.clone())
            .header(header::USER_AGENT, USER_AGENT)
            .header(header::ACCEPT, "application/json");
        if body.is_some_and(|b| !b.is_empty()) {
            request = request.header(header::CONTENT_TYPE, "application/json; charset=UTF-8");
        }
        request
            .body(body.unwrap_or_default().to_vec())
            .map_err(|e| e.to_string())
    }
}

/// Answers as tests write them; `features` reads answers too.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            body: body.as_bytes().to_vec(),
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
        assert_eq!(missing_container.missing(), Some(Missing::Container));
        let unmapped = answer(
            404,
            r#"{"timestamp":"2024-05-01T12:00:00.000+00:00","status":404,"error":"Not Found","path":"/griddb/v2/c/dbs/public/sql/ddl"}"#,
        );
        assert!(unmapped.webapi_error().is_none());
        assert_eq!(unmapped.missing(), Some(Missing::Endpoint));
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
