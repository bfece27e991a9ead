//! The admin routes the HTTP trigger serves itself, under `/admin/` where no
//! manifest route matches: `POST /admin/components/<id>` (a new version of a
//! component, handed to whatever takes uploads: the live-change controller),
//! `POST /admin/cron/run` (one cron tick now, in this host: `cromflag cron
//! run` while the host runs) and the credentials' admin API
//! (`access::admin`, the rest of `/admin/`). Routes other host parts answer
//! (`/admin/retention`, `/alarms`) reach them through `JsonRoutes`.
//!
//! The trigger has checked the admin (or control) token before calling in
//! here: no byte of an upload is read for a caller who may not upload.

use crate::access;
use crate::access::credentials::Credentials;
use crate::http_io::{self, boxed, error, BodyError, BodyLimit};
use crate::manifest::App;
use crate::triggers::cron::CronTrigger;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// The largest component `POST /admin/components/<id>` takes.
const MAX_UPLOAD_BYTES: usize = 64 << 20;

/// What takes uploaded component versions. A trait, so that the trigger
/// knows what an upload needs and nothing of who applies it (`live::Live`).
#[async_trait::async_trait]
pub trait Uploads: Send + Sync {
    /// Keeps `bytes` as component `id`'s new version and applies it.
    async fn upload(&self, id: &str, bytes: &[u8]) -> Result<Uploaded, UploadRefused>;
}

/// An upload applied.
#[derive(Debug)]
pub enum Uploaded {
    /// The component runs the new version from the next request on.
    Swapped { old: String, new: String },
    /// The upload is the version already running.
    Unchanged,
}

/// Why an upload was not applied; the running version goes on.
#[derive(Debug)]
pub enum UploadRefused {
    /// No trigger binds a component of that id (404).
    NoSuchComponent,
    /// The upload could not be kept on disk (500).
    NotKept(String),
    /// It does not compile, link or export what its triggers call, or the
    /// application change it was part of failed (422).
    Invalid(String),
}

/// What the host's own admin routes reach, each once set.
pub struct HostAdmin<'a> {
    pub uploads: Option<&'a dyn Uploads>,
    pub cron: Option<&'a CronTrigger>,
}

/// Answers `req`, a call under `/admin/`.
pub async fn serve(
    host: &HostAdmin<'_>,
    credentials: &Credentials,
    app: &App,
    req: Request<Incoming>,
) -> Response<HyperOutgoingBody> {
    let path = req.uri().path();
    if path == "/admin/cron/run" {
        return boxed(run_cron(host.cron, req.method(), req.uri().query()).await);
    }
    let uploads = host.uploads;
    if let Some(component) = path.strip_prefix("/admin/components/") {
        let component = component.to_owned();
        return match uploads {
            Some(uploads) => boxed(upload(uploads, &component, req).await),
            // A trigger run without a live-change controller (the benchmarks'):
            // the route does not exist.
            None => boxed(error(
                StatusCode::NOT_FOUND,
                "no such route",
                json!({ "path": req.uri().path() }),
            )),
        };
    }
    let (status, body) =
        access::admin::handle(credentials, app, req.method(), path, req.uri().query()).await;
    boxed(http_io::json(status, &body))
}

/// `POST /admin/cron/run?component=<id>&at=<RFC 3339>`: runs one tick of the
/// component as if at `at`, recorded as a manual run, and answers its run
/// record (200 whether the run succeeded or failed: the record says which).
async fn run_cron(
    cron: Option<&CronTrigger>,
    method: &Method,
    query: Option<&str>,
) -> Response<http_body_util::Full<bytes::Bytes>> {
    if method != Method::POST {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
            json!({ "allowed": ["POST"] }),
        );
    }
    let Some(cron) = cron else {
        return error(
            StatusCode::NOT_FOUND,
            "no such route",
            json!({ "path": "/admin/cron/run" }),
        );
    };
    let params = http_io::QueryParams::parse(query);
    let (Some(component), Some(at)) = (params.get("component"), params.get("at")) else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing parameter",
            json!("give component=<id> and at=<RFC 3339 time>"),
        );
    };
    let at = match chrono::DateTime::parse_from_rfc3339(at) {
        Ok(at) => at.to_utc(),
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid parameter",
                json!({ "at": at, "reason": format!("not an RFC 3339 time: {e}") }),
            )
        }
    };
    match cron.run_manual(component, at).await {
        Ok(record) => http_io::json(StatusCode::OK, &record),
        Err(e) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the tick could not run",
            json!({ "component": component, "reason": format!("{e:#}") }),
        ),
    }
}

/// `POST /admin/components/<id>`: a new version of component `id`, in the body.
async fn upload(
    uploads: &dyn Uploads,
    id: &str,
    req: Request<Incoming>,
) -> Response<http_body_util::Full<bytes::Bytes>> {
    let refuse =
        |status: StatusCode, detail: serde_json::Value| error(status, "upload refused", detail);
    if req.method() != Method::POST {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
            json!({ "allowed": ["POST"] }),
        );
    }
    let (parts, body) = req.into_parts();
    let body = match http_io::read(&parts.headers, body, &BodyLimit::new(MAX_UPLOAD_BYTES)).await {
        Ok(body) if body.is_empty() => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!("the body must be the component's .wasm bytes"),
            )
        }
        Ok(body) => body,
        Err(e) => {
            let reason = match e {
                BodyError::TooLarge => {
                    format!("a component may be at most {MAX_UPLOAD_BYTES} bytes")
                }
                BodyError::Unreadable(e) => e,
                BodyError::TimedOut => e.to_string(),
            };
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, json!(reason));
        }
    };
    match uploads.upload(id, &body).await {
        Ok(Uploaded::Swapped { old, new }) => http_io::json(
            StatusCode::OK,
            &json!({ "component": id, "old": old, "new": new }),
        ),
        Ok(Uploaded::Unchanged) => http_io::json(
            StatusCode::OK,
            &json!({ "component": id, "unchanged": true }),
        ),
        Err(refused) => {
            let (status, reason) = match refused {
                UploadRefused::NoSuchComponent => (
                    StatusCode::NOT_FOUND,
                    format!("no trigger binds a component `{id}`"),
                ),
                UploadRefused::NotKept(e) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("keeping the upload: {e}"),
                ),
                UploadRefused::Invalid(reason) => (StatusCode::UNPROCESSABLE_ENTITY, reason),
            };
            refuse(status, json!({ "component": id, "reason": reason }))
        }
    }
}
