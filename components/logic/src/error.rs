//! `ApiError`: what a component answers when a request is wrong or the store fails.
//!
//! Every error is an HTTP status plus the JSON body `{"error": "...", "detail": ...}`,
//! where `error` says what is wrong in words and `detail` names the offending
//! field, row or value so that a client can act on it.

use crate::model::StoreError;
use serde_json::{json, Value as Json};

#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub error: String,
    pub detail: Json,
}

impl ApiError {
    pub fn new(status: u16, error: impl Into<String>, detail: Json) -> ApiError {
        ApiError {
            status,
            error: error.into(),
            detail,
        }
    }

    pub fn bad_request(error: impl Into<String>, detail: Json) -> ApiError {
        ApiError::new(400, error, detail)
    }

    pub fn not_found(error: impl Into<String>, detail: Json) -> ApiError {
        ApiError::new(404, error, detail)
    }

    /// The error with its status, as one JSON text: what an MQTT handler reports,
    /// where there is no response status to carry it.
    pub fn to_message(&self) -> String {
        json!({ "status": self.status, "error": self.error, "detail": self.detail }).to_string()
    }

    /// The JSON body of the error response.
    pub fn body(&self) -> Vec<u8> {
        let body = json!({ "error": self.error, "detail": self.detail });
        serde_json::to_vec(&body).expect("a JSON value always serializes")
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match err {
            StoreError::NotFound(m) => ApiError::not_found("not found", json!(m)),
            StoreError::Invalid(m) => ApiError::bad_request("invalid value", json!(m)),
            StoreError::SchemaConflict(m) => ApiError::bad_request("type conflict", json!(m)),
            StoreError::Query(m) => ApiError::bad_request("invalid query", json!(m)),
            StoreError::Backend(m) => ApiError::new(503, "store unavailable", json!(m)),
        }
    }
}
