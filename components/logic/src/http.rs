//! A request as a component received it and the response it gives: plain
//! data, independent of any HTTP library (`components/guest` fills them from
//! wasi:http, the host's benchmark from its own server). `api` routes them;
//! `report::serve` answers `/reports` with them.

use crate::error::ApiError;
use crate::fetch;

/// The content type of every JSON answer, errors included.
pub const JSON: &str = "application/json";

/// One request, borrowed from whoever read it.
pub struct Request<'a> {
    pub method: &'a str,
    /// The path and query as received, e.g. `/fetch/sample?from=1`.
    pub path_with_query: &'a str,
    pub content_type: Option<&'a str>,
    /// The `Accept` header, for endpoints with more than one representation.
    pub accept: Option<&'a str>,
    pub body: &'a [u8],
}

/// The answer to one request, written out as it is.
#[derive(Debug, PartialEq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    /// Headers besides the content type (e.g. the next page's `link`).
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl From<fetch::Output> for Response {
    fn from(output: fetch::Output) -> Response {
        Response {
            status: 200,
            content_type: output.format.content_type(),
            headers: output.headers,
            body: output.body,
        }
    }
}

impl From<ApiError> for Response {
    fn from(err: ApiError) -> Response {
        // A 405 names the methods its path takes (RFC 9110 §15.5.6), as its detail does.
        let allowed: Vec<&str> = match err.status {
            405 => err.detail["allowed"]
                .as_array()
                .map(|methods| methods.iter().filter_map(|m| m.as_str()).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        Response {
            headers: match allowed.as_slice() {
                [] => Vec::new(),
                methods => vec![("allow", methods.join(", "))],
            },
            status: err.status,
            content_type: JSON,
            body: err.body(),
        }
    }
}
