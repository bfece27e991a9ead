//! HTTP bodies in and out: JSON responses, bounded body reads. A leaf: the
//! HTTP trigger, its admin routes, the `--webapi` server and the CLI's calls
//! to a running host all answer and read through it, and it knows none of them.
//!
//! Responses are built as `Response<Full<Bytes>>`, what the WebAPI server
//! answers; `boxed` turns one into the boxed body type the HTTP trigger returns
//! (`HyperOutgoingBody`, the type of the bodies components stream), so one
//! builder serves both without this module knowing wasmtime.
//!
//! Every body is read through `read`: at most a limit kept, a longer one
//! refused, and (where the caller says so) a body that stalls cut off.

use bytes::{Bytes, BytesMut};
use cromflag_logic::ApiError;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use serde::Serialize;
use std::time::Duration;

/// The content type of the host's own JSON answers (the WebAPI server names
/// its own, with a charset, as the Java WebAPI does).
pub const JSON: &str = "application/json";

/// A response of `status` whose body is `body`, typed `content_type`.
pub fn bytes(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// `value` as a JSON response (`application/json`).
pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    json_as(status, JSON, value)
}

/// `value` as a JSON response typed `content_type`.
pub fn json_as<T: Serialize + ?Sized>(
    status: StatusCode,
    content_type: &'static str,
    value: &T,
) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(value).expect("response bodies serialise");
    bytes(status, content_type, body)
}

/// A JSON error in the components' shape, `{"error": ..., "detail": ...}`:
/// what the host answers itself looks like what its components answer.
pub fn error(
    status: StatusCode,
    message: &str,
    detail: serde_json::Value,
) -> Response<Full<Bytes>> {
    bytes(
        status,
        JSON,
        ApiError::new(status.as_u16(), message, detail).body(),
    )
}

/// A response of `status` with no body and no content type.
pub fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// `response` with its body boxed, as the HTTP trigger answers: `E` is the
/// error type of the bodies it relays (a `Full` body never fails).
pub fn boxed<E>(response: Response<Full<Bytes>>) -> Response<UnsyncBoxBody<Bytes, E>> {
    response.map(|body| body.map_err(|never| match never {}).boxed_unsync())
}

/// How much of a body is taken, and how long it may stall.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit {
    /// The most bytes kept: a longer body (or one declared longer) is refused.
    pub max: usize,
    /// How far a refused body is still read (and dropped) before the refusal,
    /// so that a client still sending gets its answer rather than a broken
    /// pipe; a body declared longer than this is refused unread.
    pub drain: u64,
    /// How long the body may stay silent between two chunks; `None`: no limit.
    pub idle: Option<Duration>,
}

impl BodyLimit {
    /// At most `max` bytes, nothing read past them, no idle limit.
    pub fn new(max: usize) -> BodyLimit {
        BodyLimit {
            max,
            drain: max as u64,
            idle: None,
        }
    }

    /// Reads a refused body on up to `drain` bytes.
    pub fn draining(self, drain: u64) -> BodyLimit {
        BodyLimit { drain, ..self }
    }

    /// Cuts off a body that stays silent for `idle`.
    pub fn idle(self, idle: Duration) -> BodyLimit {
        BodyLimit {
            idle: Some(idle),
            ..self
        }
    }
}

/// Why a body was not taken.
#[derive(Debug)]
pub enum BodyError {
    /// Longer than the limit, or declared so.
    TooLarge,
    /// Silent for longer than the idle limit.
    TimedOut,
    /// The connection failed mid-body.
    Unreadable(String),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge => f.write_str("the body is larger than its limit"),
            BodyError::TimedOut => f.write_str("the body stalled"),
            BodyError::Unreadable(e) => write!(f, "the body could not be read: {e}"),
        }
    }
}

impl std::error::Error for BodyError {}

/// The `Content-Length` in `headers`, if one is there and a number.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
}

/// The whole of `body` (whose message has `headers`), within `limit`: the
/// caller never sees a truncated body. Trailers carry no data and are dropped.
pub async fn read<B>(
    headers: &HeaderMap,
    mut body: B,
    limit: &BodyLimit,
) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let declared = declared_length(headers);
    if declared.is_some_and(|len| len > limit.drain) {
        return Err(BodyError::TooLarge);
    }
    let mut kept = BytesMut::new();
    let mut seen: u64 = 0;
    loop {
        let frame = match limit.idle {
            Some(idle) => tokio::time::timeout(idle, body.frame())
                .await
                .map_err(|_| BodyError::TimedOut)?,
            None => body.frame().await,
        };
        let Some(frame) = frame else {
            break;
        };
        let frame = frame.map_err(|e| BodyError::Unreadable(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len() as u64;
        if seen > limit.drain {
            break;
        }
        if seen <= limit.max as u64 {
            kept.extend_from_slice(&data);
        }
    }
    if seen > limit.max as u64 || declared.is_some_and(|len| len > limit.max as u64) {
        return Err(BodyError::TooLarge);
    }
    Ok(kept.freeze())
}

/// Reads and drops the body of a request refused before its body was read,
/// when it is small: never more than `max` bytes, never longer than `within`,
/// nothing kept. A client still sending then gets its answer rather than a
/// broken pipe; a larger or slower body is not waited for.
pub async fn discard<B>(headers: &HeaderMap, mut body: B, max: u64, within: Duration)
where
    B: Body<Data = Bytes> + Unpin,
{
    if declared_length(headers).is_some_and(|len| len > max) {
        return;
    }
    let mut seen = 0u64;
    let _ = tokio::time::timeout(within, async {
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len() as u64);
            if seen > max {
                break;
            }
        }
    })
    .await;
}

/// A query string's parameters, decoded (`form_urlencoded`): what the
/// host's own routes read their options from.
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub fn parse(query: Option<&str>) -> QueryParams {
        QueryParams(
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;
    use hyper::body::Frame;

    fn chunks(
        parts: &[&'static [u8]],
    ) -> impl Body<Data = Bytes, Error = std::convert::Infallible> + Unpin {
        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn a_body_within_its_limit_is_read_whole() {
        let body = read(
            &HeaderMap::new(),
            chunks(&[b"ab", b"cd"]),
            &BodyLimit::new(4),
        )
        .await;
        assert_eq!(body.unwrap(), Bytes::from_static(b"abcd"));
    }

    #[tokio::test]
    async fn a_longer_body_or_declared_length_is_refused() {
        let long = read(
            &HeaderMap::new(),
            chunks(&[b"ab", b"cde"]),
            &BodyLimit::new(4),
        )
        .await;
        assert!(matches!(long, Err(BodyError::TooLarge)));
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        let declared = read(&headers, chunks(&[b"ab"]), &BodyLimit::new(4).draining(16)).await;
        assert!(matches!(declared, Err(BodyError::TooLarge)));
    }

    #[test]
    fn responses_carry_their_status_type_and_body() {
        let response = json(StatusCode::CREATED, &serde_json::json!({"a": 1}));
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()[header::CONTENT_TYPE], JSON);
        let empty = empty(StatusCode::NO_CONTENT);
        assert!(empty.headers().get(header::CONTENT_TYPE).is_none());
    }
}
