//! `cromflag up --webapi ADDR`: the WebAPI served from a `Backend`.
//!
//! Requests go through the steps GridDB's WebAPI (Spring Boot) takes, in its
//! order: route (404, Spring's default error body) → method (405) → Basic
//! header well-formed (401) → cluster known (400) → database known (400) →
//! credentials (401, GridDB's 10005) → JSON content type (415) → body parsed
//! (400) → the endpoint's own checks. Every failure after routing answers the
//! WebAPI error body, `{"version":"v2","errorCode":…,"errorMessage":…}`.
//!
//! Where this server departs from the real one, on purpose:
//! - a database other than the one served (`public`) is 400, errorCode 0,
//!   "Database '<name>' not found (this server has only '<public>')"; GridDB
//!   would fail the login instead;
//! - `POST /tql` also serves our TQL extensions, which GridDB rejects: several
//!   aggregates (`SELECT COUNT(*), AVG(a)`) and column lists (`SELECT a, b`)
//!   answer row-shaped output with the engine's columns (`total` 1 for
//!   aggregates, the matching row count for column lists);
//! - a trailing `;` or `--` comment does not break the LIMIT the server adds;
//! - TQL errors answer errorCode 151001 with this engine's message (which
//!   starts with `TQL: `) rather than GridDB's `[151001:…] … (address=…)`;
//! - the SQL endpoints answer 400 "SQL is not supported by this server",
//!   except `sql/ddl` with `ALTER TABLE <t> ADD [COLUMN] <c> <type>`;
//! - `DELETE containers/<c>/rows` and the BLOB zip endpoints answer 400 (the
//!   `Backend` has no row deletion; zip transfer is not implemented);
//! - request bodies are read up to 8 × `max_request_bytes` + 1 MiB (413 past
//!   that), the row-put size check then uses `wire::estimated_size` as GridDB does;
//! - `maxResponseSize` ("Too many result") is not enforced: `MAX_LIMIT` bounds
//!   every answer instead.

use super::wire::{
    self, ColumnDto, ContainerDto, ContainerList, ContainerRows, ErrorBody, PutCount, RowsQuery,
    RowsResult, TqlQuery, TqlResult, UpdatedRows, AGGREGATION_RESULT, MAX_LIMIT, MAX_QUERIES,
};
use crate::manifest::Variables;
use crate::store::tql::{self, Selection, Statement};
use crate::store::{
    Backend, Column, ColumnType, ContainerInfo, ContainerKind, Row, StoreError, Value,
};
use crate::triggers::http::{accept_loop, ListenerLimits};
use anyhow::{Context, Result};
use base64::Engine as _;
use bytes::Bytes;
use cromflag_logic::query::percent_decode;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value as Json};
use std::sync::Arc;
use tokio::net::TcpListener;

/// Who may call the WebAPI, and under which names.
#[derive(Clone)]
pub struct ServerSettings {
    /// The one cluster name answered; others get 400 "Cluster not found in repository".
    pub cluster: String,
    /// The one database, `public`.
    pub database: String,
    pub user: String,
    pub password: String,
    /// `maxRequestSize`: the largest row put, by `wire::estimated_size`.
    pub max_request_bytes: usize,
}

impl ServerSettings {
    /// Reads `webapi_cluster`, `webapi_user`, `webapi_password` and
    /// `webapi_max_request_bytes` (each with a default when undeclared).
    pub fn from_variables(variables: &Variables) -> Result<ServerSettings> {
        let get = |name: &str, default: &str| variables.get(name).unwrap_or(default).to_owned();
        let max_request_bytes = get(
            "webapi_max_request_bytes",
            &wire::MAX_REQUEST_BYTES.to_string(),
        );
        Ok(ServerSettings {
            cluster: get("webapi_cluster", "defaultCluster"),
            database: "public".into(),
            user: get("webapi_user", "admin"),
            password: get("webapi_password", "admin"),
            max_request_bytes: max_request_bytes.parse().with_context(|| {
                format!("webapi_max_request_bytes `{max_request_bytes}` is not a byte count")
            })?,
        })
    }
}

impl std::fmt::Debug for ServerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSettings")
            .field("cluster", &self.cluster)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("max_request_bytes", &self.max_request_bytes)
            .finish_non_exhaustive()
    }
}

/// Serves the WebAPI on `listener` until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    backend: Arc<dyn Backend>,
    settings: ServerSettings,
) -> Result<()> {
    let server = Arc::new(Server { backend, settings });
    accept_loop(
        listener,
        "WebAPI",
        &ListenerLimits::default(),
        move |req, _client| {
            let server = server.clone();
            async move { server.handle(req).await }
        },
    )
    .await
}

/// The largest request body read, whatever the endpoint: the row-put size
/// check (`maxRequestSize`) is by `wire::estimated_size`, which JSON text
/// exceeds several times over (a timestamp is 8 bytes there, 27 here).
fn body_limit(settings: &ServerSettings) -> usize {
    settings
        .max_request_bytes
        .saturating_mul(8)
        .saturating_add(1 << 20)
}

const JSON_TYPE: &str = "application/json; charset=UTF-8";

/// GridDB's TQL syntax error number, for every error the TQL engine reports.
const TQL_ERROR: i64 = 151_001;

/// GridDB's TXN_AUTH_FAILED.
const AUTH_FAILED: i64 = 10_005;

type Reply = Response<Full<Bytes>>;

/// A failed request: its status and the WebAPI error body.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    body: ErrorBody,
}

fn fail(status: StatusCode, code: i64, message: impl Into<String>) -> Failure {
    Failure {
        status,
        body: ErrorBody::new(code, message),
    }
}

fn bad_request(message: impl Into<String>) -> Failure {
    fail(StatusCode::BAD_REQUEST, 0, message)
}

fn container_missing() -> Failure {
    fail(StatusCode::NOT_FOUND, 0, "Container not existed")
}

/// A store error as the WebAPI reports GridDB's: missing → 404, refused →
/// 400, TQL → 400 with 151001, anything else (the store itself failing) → 500.
fn store_failure(e: StoreError) -> Failure {
    match e {
        StoreError::NotFound(m) => fail(StatusCode::NOT_FOUND, 0, m),
        StoreError::Invalid(m) | StoreError::SchemaConflict(m) => bad_request(m),
        StoreError::Query(m) => fail(StatusCode::BAD_REQUEST, TQL_ERROR, m),
        StoreError::Backend(m) => {
            tracing::error!(error = %m, "WebAPI: the store failed");
            fail(StatusCode::INTERNAL_SERVER_ERROR, 0, m)
        }
    }
}

fn json_reply<T: Serialize>(status: StatusCode, value: &T) -> Reply {
    let body = serde_json::to_vec(value).expect("response bodies serialise");
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, JSON_TYPE)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid status and header")
}

fn empty_reply(status: StatusCode) -> Reply {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::new()))
        .expect("a valid status")
}

impl Failure {
    fn reply(self) -> Reply {
        json_reply(self.status, &self.body)
    }
}

/// What a path names, below `/griddb/v2/{cluster}/dbs/{database}`.
#[derive(Clone, Debug, PartialEq)]
enum Endpoint {
    CheckConnection,
    Containers,
    /// `containers/rows`: the multi-container put (and get, not served).
    MultiRows,
    Info(String),
    Rows(String),
    Blob(String),
    Tql,
    /// `sql/ddl`.
    SqlDdl,
    /// Every other SQL path.
    Sql,
}

impl Endpoint {
    fn methods(&self) -> &'static [Method] {
        match self {
            Endpoint::CheckConnection | Endpoint::Info(_) => &[Method::GET],
            Endpoint::Containers => &[Method::GET, Method::POST, Method::DELETE],
            Endpoint::MultiRows | Endpoint::Blob(_) | Endpoint::SqlDdl => {
                &[Method::POST, Method::PUT]
            }
            Endpoint::Rows(_) => &[Method::PUT, Method::POST, Method::DELETE],
            Endpoint::Tql | Endpoint::Sql => &[Method::POST],
        }
    }
}

/// A routed request: the cluster and database named, and the endpoint.
#[derive(Debug, PartialEq)]
struct Route {
    cluster: String,
    database: String,
    endpoint: Endpoint,
}

/// Maps a path to its endpoint; `None` is Spring's 404. One trailing `/` is
/// ignored (Spring Boot 2.7 matches it), segments are percent-decoded.
fn route(path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/griddb/v2/")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let segments: Vec<String> = rest.split('/').map(percent_decode).collect();
    if segments.iter().any(String::is_empty) {
        return None;
    }
    let [cluster, dbs, database, tail @ ..] = segments.as_slice() else {
        return None;
    };
    if dbs != "dbs" {
        return None;
    }
    let tail: Vec<&str> = tail.iter().map(String::as_str).collect();
    let endpoint = match tail.as_slice() {
        ["checkConnection"] => Endpoint::CheckConnection,
        ["containers"] => Endpoint::Containers,
        ["containers", "rows"] => Endpoint::MultiRows,
        ["containers", c, "info"] => Endpoint::Info((*c).to_owned()),
        ["containers", c, "rows"] => Endpoint::Rows((*c).to_owned()),
        ["containers", c, "rows", "blob"] => Endpoint::Blob((*c).to_owned()),
        ["tql"] => Endpoint::Tql,
        ["sql", "ddl"] => Endpoint::SqlDdl,
        ["sql"] | ["sql", "select" | "update" | "dcl"] | ["sql", "dml", "query" | "update"] => {
            Endpoint::Sql
        }
        _ => return None,
    };
    Some(Route {
        cluster: cluster.clone(),
        database: database.clone(),
        endpoint,
    })
}

/// The query string's parameters, decoded. Unlike the stack's own API (strict
/// `query::parse`), unknown parameters are ignored, as Spring does.
fn query_params(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

/// Spring Boot's default error body, for paths no controller maps.
fn not_found(path: &str) -> Reply {
    let timestamp = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3f+00:00")
        .to_string();
    json_reply(
        StatusCode::NOT_FOUND,
        &json!({"timestamp": timestamp, "status": 404, "error": "Not Found", "path": path}),
    )
}

/// The user and password of a `Basic` Authorization header, checked as the
/// WebAPI does (§1.2): `Basic ` present, base64, a `:` (split at the first).
fn basic_credentials(headers: &HeaderMap) -> Result<(String, String), Failure> {
    let unauthorized = |m: &str| fail(StatusCode::UNAUTHORIZED, 0, m);
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once("Basic ").map(|(_, rest)| rest.trim()))
        .ok_or_else(|| unauthorized("Basic authentication not found"))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| unauthorized("Basic authentication is not encoded by Base64"))?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or_else(|| unauthorized("Basic authentication is invalid format"))?;
    Ok((user.to_owned(), password.to_owned()))
}

/// Compares without stopping at the first difference.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(!x));
    }
    diff == 0
}

/// Whether a Content-Type names JSON: `application/json` or `application/*+json`,
/// with any parameters.
fn is_json_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"))
}

struct Server {
    backend: Arc<dyn Backend>,
    settings: ServerSettings,
}

impl Server {
    async fn handle(&self, req: Request<Incoming>) -> Reply {
        let started = std::time::Instant::now();
        let (method, path) = (req.method().clone(), req.uri().path().to_owned());
        let reply = match self.dispatch(req).await {
            Ok(reply) => reply,
            Err(failure) => failure.reply(),
        };
        // Never the headers: the Authorization header carries the password.
        tracing::debug!(%method, %path, status = reply.status().as_u16(), elapsed = ?started.elapsed(), "WebAPI request");
        reply
    }

    async fn dispatch(&self, req: Request<Incoming>) -> Result<Reply, Failure> {
        let path = req.uri().path().to_owned();
        let Some(route) = route(&path) else {
            return Ok(not_found(&path));
        };
        let allowed = route.endpoint.methods();
        if !allowed.contains(req.method()) {
            let mut reply = fail(
                StatusCode::METHOD_NOT_ALLOWED,
                0,
                format!("Request method '{}' not supported", req.method()),
            )
            .reply();
            let allow = allowed
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            if let Ok(allow) = allow.parse() {
                reply.headers_mut().insert(header::ALLOW, allow);
            }
            return Ok(reply);
        }
        let (user, password) = basic_credentials(req.headers())?;
        if route.cluster != self.settings.cluster {
            return Err(bad_request("Cluster not found in repository"));
        }
        if route.database != self.settings.database {
            return Err(bad_request(format!(
                "Database '{}' not found (this server has only '{}')",
                route.database, self.settings.database
            )));
        }
        // Both compared, whichever differs: no hint which one was wrong.
        let user_ok = same_secret(&user, &self.settings.user);
        let password_ok = same_secret(&password, &self.settings.password);
        if !(user_ok && password_ok) {
            return Err(fail(
                StatusCode::UNAUTHORIZED,
                AUTH_FAILED,
                "[10005:TXN_AUTH_FAILED] Authentication failed",
            ));
        }
        let method = req.method().clone();
        let query = req.uri().query().map(str::to_owned);
        match (route.endpoint, method) {
            (Endpoint::CheckConnection, _) => self.check_connection().await,
            (Endpoint::Containers, Method::GET) => self.list(query.as_deref()).await,
            (Endpoint::Containers, Method::POST) => self.create(self.json(req).await?).await,
            (Endpoint::Containers, _) => self.drop_containers(self.json(req).await?).await,
            (Endpoint::Info(c), _) => self.info(&c).await,
            (Endpoint::Rows(c), Method::PUT) => self.put_rows(&c, self.json(req).await?).await,
            (Endpoint::Rows(c), Method::POST) => self.get_rows(&c, self.json(req).await?).await,
            (Endpoint::Rows(c), _) => {
                self.container(&c).await?;
                Err(bad_request("Deleting rows is not supported by this server"))
            }
            (Endpoint::MultiRows, Method::PUT) => self.multi_put(self.json(req).await?).await,
            (Endpoint::MultiRows, _) => Err(bad_request(
                "Getting rows of several containers is not supported by this server",
            )),
            (Endpoint::Blob(_), _) => Err(bad_request(
                "BLOB zip transfer is not supported by this server",
            )),
            (Endpoint::Tql, _) => self.tql(self.json(req).await?).await,
            (Endpoint::SqlDdl, _) => self.sql_ddl(self.json(req).await?).await,
            (Endpoint::Sql, _) => Err(bad_request("SQL is not supported by this server")),
        }
    }

    /// The body as JSON: a JSON content type (else 415), at most the body
    /// limit (else 413), well-formed (else 400).
    async fn json(&self, req: Request<Incoming>) -> Result<Json, Failure> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        if !is_json_type(&content_type) {
            return Err(fail(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                0,
                format!("Content type '{content_type}' not supported"),
            ));
        }
        let limit = body_limit(&self.settings);
        let too_large = || {
            fail(
                StatusCode::PAYLOAD_TOO_LARGE,
                0,
                format!("Request body is larger than {limit} bytes"),
            )
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            return Err(too_large());
        }
        let mut body = req.into_body();
        let mut kept = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| bad_request(format!("Request body could not be read: {e}")))?;
            if let Ok(data) = frame.into_data() {
                if kept.len() + data.len() > limit {
                    return Err(too_large());
                }
                kept.extend_from_slice(&data);
            }
        }
        if kept.is_empty() {
            return Err(bad_request("Required request body is missing"));
        }
        serde_json::from_slice(&kept).map_err(|e| bad_request(format!("JSON parse error: {e}")))
    }

    async fn container(&self, name: &str) -> Result<ContainerInfo, Failure> {
        self.backend
            .get_container(name)
            .await
            .map_err(store_failure)?
            .ok_or_else(container_missing)
    }

    async fn query(
        &self,
        container: &str,
        tql: &str,
    ) -> Result<crate::store::QueryResult, Failure> {
        self.backend
            .query(container, tql)
            .await
            .map_err(store_failure)
    }

    /// `select count(*) …` as a number.
    async fn count(&self, container: &str, tql: &str) -> Result<i64, Failure> {
        let result = self.query(container, tql).await?;
        match result.rows.first().and_then(|row| row.first()) {
            Some(Value::Long(n)) => Ok(*n),
            Some(other) => Ok(other.as_f64().unwrap_or(0.0) as i64),
            None => Ok(0),
        }
    }

    /// §2.1: the store answers, so the connection is good.
    async fn check_connection(&self) -> Result<Reply, Failure> {
        self.backend
            .list_containers()
            .await
            .map_err(store_failure)?;
        Ok(empty_reply(StatusCode::OK))
    }

    /// §2.2.
    async fn list(&self, query: Option<&str>) -> Result<Reply, Failure> {
        let params = query_params(query);
        let param = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let number = |name: &str| -> Result<Option<u64>, Failure> {
            match param(name) {
                None | Some("") => Ok(None),
                Some(text) => text
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| bad_request(format!("'{name}' is invalid"))),
            }
        };
        let limit = number("limit")?.ok_or_else(|| bad_request("'limit' is required"))?;
        let offset = number("offset")?.unwrap_or(0);
        let kind = match param("type") {
            None | Some("") => None,
            Some("COLLECTION") => Some(ContainerKind::Collection),
            Some("TIME_SERIES") => Some(ContainerKind::TimeSeries),
            Some(_) => return Err(bad_request("'type' is invalid")),
        };
        let descending = match param("sort") {
            None | Some("") | Some("ASC") => false,
            Some("DESC") => true,
            Some(_) => return Err(bad_request("'sort' is invalid")),
        };
        let mut names = self
            .backend
            .list_containers()
            .await
            .map_err(store_failure)?;
        if let Some(kind) = kind {
            let mut kept = Vec::with_capacity(names.len());
            for name in names {
                let info = self
                    .backend
                    .get_container(&name)
                    .await
                    .map_err(store_failure)?;
                if info.is_some_and(|info| info.kind == kind) {
                    kept.push(name);
                }
            }
            names = kept;
        }
        // Java's String.compareTo: code-unit order (byte order here; the two
        // differ only between supplementary and high BMP characters).
        names.sort();
        if descending {
            names.reverse();
        }
        let total = names.len() as u64;
        let limit = limit.min(MAX_LIMIT);
        let names = names
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect();
        Ok(json_reply(
            StatusCode::OK,
            &ContainerList {
                names,
                total,
                offset,
                limit,
            },
        ))
    }

    /// §2.4.
    async fn create(&self, body: Json) -> Result<Reply, Failure> {
        let Json::Object(fields) = &body else {
            return Err(bad_request(
                "Mapping JSON data error: a container object is expected",
            ));
        };
        let present = |name: &str| fields.get(name).filter(|v| !v.is_null());
        if present("container_type").is_none() {
            return Err(bad_request("'container_type' is required"));
        }
        if present("container_name")
            .and_then(Json::as_str)
            .is_none_or(|name| name.trim().is_empty())
        {
            return Err(bad_request("Container name is invalid"));
        }
        let columns = present("columns").and_then(Json::as_array);
        if columns.is_none_or(Vec::is_empty) {
            return Err(bad_request("'columns' is required"));
        }
        if columns.into_iter().flatten().any(|column| {
            column
                .get("type")
                .and_then(Json::as_str)
                .is_none_or(str::is_empty)
        }) {
            return Err(bad_request("Empty column type"));
        }
        let dto: ContainerDto = mapped(body)?;
        let info = dto.info().map_err(bad_request)?;
        if self
            .backend
            .get_container(&info.name)
            .await
            .map_err(store_failure)?
            .is_some()
        {
            return Err(fail(StatusCode::CONFLICT, 0, "Container already existed"));
        }
        self.backend
            .put_container(info)
            .await
            .map_err(store_failure)?;
        Ok(empty_reply(StatusCode::CREATED))
    }

    /// §2.5: 204 whatever happened to each name.
    async fn drop_containers(&self, body: Json) -> Result<Reply, Failure> {
        let names: Vec<String> = mapped(body)?;
        for name in names {
            if let Err(e) = self.backend.drop_container(&name).await {
                tracing::warn!(container = %name, error = %e, "WebAPI: dropping a container failed");
            }
        }
        Ok(empty_reply(StatusCode::NO_CONTENT))
    }

    /// §2.3.
    async fn info(&self, name: &str) -> Result<Reply, Failure> {
        let info = self.container(name).await?;
        Ok(json_reply(StatusCode::OK, &ContainerDto::describe(&info)))
    }

    /// Converts `rows` (JSON rows) for `info`: every row, before anything is written.
    fn convert(info: &ContainerInfo, rows: &[Json]) -> Result<Vec<Row>, Failure> {
        rows.iter()
            .map(|row| {
                let values = row
                    .as_array()
                    .ok_or_else(|| bad_request("Row data is invalid"))?;
                wire::decode_row(values, &info.columns).map_err(bad_request)
            })
            .collect()
    }

    fn check_size<'a>(&self, rows: impl IntoIterator<Item = &'a Row>) -> Result<(), Failure> {
        let mut size = 0usize;
        for row in rows {
            size = size.saturating_add(wire::estimated_size(row));
            if size > self.settings.max_request_bytes {
                return Err(bad_request("Too many rows data"));
            }
        }
        Ok(())
    }

    /// §2.6: all rows converted and sized, then one `put_rows`.
    async fn put_rows(&self, name: &str, body: Json) -> Result<Reply, Failure> {
        let Json::Array(rows) = body else {
            return Err(bad_request(
                "Mapping JSON data error: an array of rows is expected",
            ));
        };
        if rows.is_empty() {
            return Err(bad_request("Rows data is empty"));
        }
        let info = self.container(name).await?;
        let rows = Self::convert(&info, &rows)?;
        self.check_size(&rows)?;
        let count = rows.len() as u64;
        self.backend
            .put_rows(&info.name, rows)
            .await
            .map_err(store_failure)?;
        Ok(json_reply(StatusCode::OK, &PutCount { count }))
    }

    /// §2.7.
    async fn get_rows(&self, name: &str, body: Json) -> Result<Reply, Failure> {
        let request: RowsQuery = mapped(body)?;
        let limit = request
            .limit
            .filter(|&l| l >= 1)
            .ok_or_else(|| bad_request("'limit' is invalid"))?;
        let offset = request.offset.unwrap_or(0);
        if offset < 0 {
            return Err(bad_request("'offset' is invalid"));
        }
        let info = self.container(name).await?;
        let limit = (limit as u64).min(MAX_LIMIT);
        let offset = offset as u64;
        let (rows_tql, count_tql) = rows_queries(
            request.condition.as_deref(),
            request.sort.as_deref(),
            limit,
            offset,
        );
        let result = self.query(&info.name, &rows_tql).await?;
        let total = self.count(&info.name, &count_tql).await?;
        Ok(json_reply(
            StatusCode::OK,
            &RowsResult {
                columns: result
                    .columns
                    .iter()
                    .map(|c| ColumnDto::describe(c, false))
                    .collect(),
                rows: result.rows.iter().map(|r| wire::encode_row(r)).collect(),
                offset,
                limit,
                total: total.max(0) as u64,
            },
        ))
    }

    /// §2.11 PUT: every container's rows converted and the whole request
    /// sized first, then one `multi_put` (atomic here, unlike GridDB).
    async fn multi_put(&self, body: Json) -> Result<Reply, Failure> {
        let request: Vec<ContainerRows> = mapped(body)?;
        if request.is_empty() {
            return Err(bad_request("Rows data is empty"));
        }
        let mut batches = Vec::with_capacity(request.len());
        let mut answer = Vec::with_capacity(request.len());
        for entry in &request {
            let info = self.container(&entry.container_name).await?;
            let rows = entry
                .rows
                .iter()
                .map(|row| wire::decode_row(row, &info.columns).map_err(bad_request))
                .collect::<Result<Vec<Row>, Failure>>()?;
            answer.push(UpdatedRows {
                container_name: entry.container_name.clone(),
                updated_rows: rows.len() as u64,
            });
            batches.push((info.name, rows));
        }
        self.check_size(batches.iter().flat_map(|(_, rows)| rows))?;
        self.backend
            .multi_put(batches)
            .await
            .map_err(store_failure)?;
        Ok(json_reply(StatusCode::OK, &answer))
    }

    /// §2.9: the statements in order; the first failure fails the request.
    async fn tql(&self, body: Json) -> Result<Reply, Failure> {
        let Json::Array(items) = body else {
            return Err(bad_request(
                "Mapping JSON data error: an array of queries is expected",
            ));
        };
        if items.is_empty() {
            return Err(bad_request("Query list is empty"));
        }
        if items.len() > MAX_QUERIES {
            return Err(bad_request(format!(
                "Number of queries exceeds the limit ({MAX_QUERIES})"
            )));
        }
        let mut answers = Vec::with_capacity(items.len());
        for item in items {
            let query: TqlQuery = mapped(item)?;
            answers.push(self.tql_one(&query).await?);
        }
        Ok(json_reply(StatusCode::OK, &answers))
    }

    async fn tql_one(&self, query: &TqlQuery) -> Result<TqlResult, Failure> {
        if query.name.trim().is_empty() {
            return Err(bad_request("Container name is invalid"));
        }
        if query.stmt.trim().is_empty() {
            return Err(bad_request("'stmt' is required"));
        }
        let info = self.container(&query.name).await?;
        let projection = query.columns.as_deref().unwrap_or_default();
        for name in projection {
            if !info.columns.iter().any(|c| &c.name == name) {
                return Err(bad_request(format!("Column '{name}' not existed")));
            }
        }
        let prepared = prepare_tql(&query.stmt)?;
        let mut result = self.query(&info.name, &prepared.text).await?;
        result
            .rows
            .truncate(usize::try_from(prepared.limit).unwrap_or(usize::MAX));
        let total = match (&prepared.statement.selection, &prepared.count) {
            (_, Some(count)) => self.count(&info.name, count).await?,
            (Selection::Aggregates(_), None) => 1,
            _ => -1,
        };
        let rows_of =
            |columns: &[Column], rows: Vec<Vec<Json>>, size: usize, total: i64| TqlResult {
                columns: columns
                    .iter()
                    .map(|c| ColumnDto::describe(c, false))
                    .collect(),
                results: rows,
                offset: Some(prepared.offset),
                limit: Some(prepared.limit),
                total: Some(total),
                response_size_byte: Some(size as u64),
            };
        match &prepared.statement.selection {
            Selection::Aggregates(aggregates) if aggregates.len() == 1 => {
                let value = result.rows.first().and_then(|row| row.first());
                let column = result.columns.first();
                match (value, column) {
                    (Some(value), Some(column)) if !value.is_null() => {
                        Ok(aggregation(value, column.column_type))
                    }
                    // No value (AVG over no rows): the row shape, empty.
                    _ => Ok(rows_of(&info.columns, Vec::new(), 0, total)),
                }
            }
            Selection::Aggregates(_) => {
                // Our extension: several aggregates, one row; no projection.
                let size = result.rows.iter().map(|r| wire::estimated_size(r)).sum();
                let rows = result.rows.iter().map(|r| wire::encode_row(r)).collect();
                Ok(rows_of(&result.columns, rows, size, total))
            }
            _ => {
                let (columns, rows) = project(result.columns, result.rows, projection)?;
                let size = rows.iter().map(|r| wire::estimated_size(r)).sum();
                let rows = rows.iter().map(|r| wire::encode_row(r)).collect();
                Ok(rows_of(&columns, rows, size, total))
            }
        }
    }

    /// `sql/ddl`: `ALTER TABLE <t> ADD [COLUMN] <c> <type>` only (what a
    /// client needs to add a column); any other kind of statement → 400.
    async fn sql_ddl(&self, body: Json) -> Result<Reply, Failure> {
        let Json::Array(items) = body else {
            return Err(bad_request(
                "Mapping JSON data error: an array of statements is expected",
            ));
        };
        if items.is_empty() || items.len() > MAX_QUERIES {
            return Err(bad_request("Statement list is invalid"));
        }
        let mut statements = Vec::with_capacity(items.len());
        for item in items {
            let stmt = item
                .get("stmt")
                .and_then(Json::as_str)
                .ok_or_else(|| bad_request("'stmt' is required"))?
                .to_owned();
            if !stmt
                .trim_start()
                .get(..5)
                .is_some_and(|w| w.eq_ignore_ascii_case("alter"))
            {
                return Err(bad_request("SQL is not supported by this server"));
            }
            statements.push(stmt);
        }
        let mut answers = Vec::with_capacity(statements.len());
        for stmt in statements {
            let outcome = match parse_add_column(&stmt) {
                Ok((table, column)) => self.add_column(&table, column).await,
                Err(message) => Err(message),
            };
            answers.push(match outcome {
                Ok(()) => json!({"status": 1, "message": null, "stmt": stmt}),
                Err(message) => json!({"status": 0, "message": message, "stmt": stmt}),
            });
        }
        Ok(json_reply(StatusCode::OK, &answers))
    }

    async fn add_column(&self, table: &str, column: Column) -> Result<(), String> {
        let mut info = self
            .backend
            .get_container(table)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("Table '{table}' not found"))?;
        if info.column_index(&column.name).is_some() {
            return Err(format!("Column '{}' already exists", column.name));
        }
        info.columns.push(column);
        self.backend
            .put_container(info)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// `body` read as `T`; 400 with the mapping error otherwise.
fn mapped<T: DeserializeOwned>(body: Json) -> Result<T, Failure> {
    serde_json::from_value(body).map_err(|e| bad_request(format!("Mapping JSON data error: {e}")))
}

/// One aggregate's answer (§2.9): `aggregationResult`, DOUBLE (COUNT 6 → 6.0),
/// or TIMESTAMP for MIN/MAX over a timestamp.
fn aggregation(value: &Value, column_type: ColumnType) -> TqlResult {
    let (type_name, json) = match (column_type, value.as_f64()) {
        (ColumnType::Timestamp, _) | (_, None) => (column_type.name(), wire::encode_value(value)),
        (_, Some(v)) => (
            ColumnType::Double.name(),
            wire::encode_value(&Value::Double(v)),
        ),
    };
    TqlResult {
        columns: vec![ColumnDto::typed(AGGREGATION_RESULT, type_name, false)],
        results: vec![vec![json]],
        offset: None,
        limit: None,
        total: None,
        response_size_byte: None,
    }
}

/// The `columns` projection of `/tql`: the named columns, in the order given,
/// matched exactly; none named → all of them.
fn project(
    columns: Vec<Column>,
    rows: Vec<Row>,
    names: &[String],
) -> Result<(Vec<Column>, Vec<Row>), Failure> {
    if names.is_empty() {
        return Ok((columns, rows));
    }
    let picks = names
        .iter()
        .map(|name| {
            columns
                .iter()
                .position(|c| &c.name == name)
                .ok_or_else(|| bad_request(format!("Column '{name}' not existed")))
        })
        .collect::<Result<Vec<usize>, Failure>>()?;
    let projected = picks.iter().map(|&i| columns[i].clone()).collect();
    let rows = rows
        .into_iter()
        .map(|row| picks.iter().map(|&i| row[i].clone()).collect())
        .collect();
    Ok((projected, rows))
}

/// The two TQL texts of get-rows (§2.7), as the WebAPI builds them.
fn rows_queries(
    condition: Option<&str>,
    sort: Option<&str>,
    limit: u64,
    offset: u64,
) -> (String, String) {
    let condition = condition.map(str::trim).filter(|c| !c.is_empty());
    let sort = sort.map(str::trim).filter(|s| !s.is_empty());
    let mut filter = String::new();
    if let Some(condition) = condition {
        filter = format!(" where {condition}");
    }
    let mut rows = format!("select *{filter}");
    if let Some(sort) = sort {
        rows.push_str(&format!(" order by {sort}"));
    }
    rows.push_str(&format!(" limit {limit} offset {offset}"));
    (rows, format!("select count(*){filter}"))
}

/// A `/tql` statement made ready to run (§2.9 steps 3–5).
#[derive(Debug)]
struct PreparedTql {
    /// The text to run: CR/LF as spaces, LIMIT capped or added.
    text: String,
    /// `text`, parsed.
    statement: Statement,
    /// The effective LIMIT and OFFSET, as the response reports them.
    limit: u64,
    offset: u64,
    /// The `count(*)` giving `total`, for row statements (`*` or a column list).
    count: Option<String>,
}

fn prepare_tql(stmt: &str) -> Result<PreparedTql, Failure> {
    let text = stmt.replace(['\r', '\n'], " ");
    if text
        .trim_start()
        .get(..7)
        .is_some_and(|w| w.eq_ignore_ascii_case("explain"))
    {
        return Err(bad_request("EXPLAIN is not supported"));
    }
    let statement = tql::parse(&text).map_err(store_failure)?;
    let span = statement.selection_span.clone();
    let tail = scan_tail(&text, span.end);
    let (run, limit, offset) = match statement.limit {
        // A line break, so that a trailing `--` comment cannot swallow it.
        None => (
            format!("{}\nlimit {MAX_LIMIT}", &text[..tail.end]),
            MAX_LIMIT,
            0,
        ),
        Some(l) if l.count > MAX_LIMIT => {
            let offset = l.offset.unwrap_or(0);
            match tail.limit {
                Some(at) => (
                    format!("{}limit {MAX_LIMIT} offset {offset}", &text[..at]),
                    MAX_LIMIT,
                    offset,
                ),
                // Not found (cannot happen for a parsed statement): run it
                // as it is, the rows past MAX_LIMIT are cut afterwards.
                None => (text.clone(), MAX_LIMIT, offset),
            }
        }
        Some(l) => (text.clone(), l.count, l.offset.unwrap_or(0)),
    };
    let count = matches!(statement.selection, Selection::All | Selection::Columns(_)).then(|| {
        format!(
            "{}count(*) {}",
            &text[..span.start],
            &text[span.end..tail.cut]
        )
    });
    let statement = if run == text {
        statement
    } else {
        tql::parse(&run).map_err(store_failure)?
    };
    Ok(PreparedTql {
        text: run,
        statement,
        limit,
        offset,
        count,
    })
}

/// Where the clauses after the WHERE start, found by scanning the statement's
/// tokens from `from` (the end of its selection) at top level: outside string
/// literals, quoted names and comments. ORDER and LIMIT are reserved words in
/// TQL, so unquoted they can only start those clauses.
#[derive(Debug, PartialEq)]
struct Tail {
    /// The start of `ORDER BY`, `LIMIT` or `;`, whichever comes first (else the end).
    cut: usize,
    /// The start of `LIMIT`.
    limit: Option<usize>,
    /// The statement's end: its `;`, or the end of the text.
    end: usize,
}

fn scan_tail(text: &str, from: usize) -> Tail {
    let bytes = text.as_bytes();
    let mut i = from.min(text.len());
    let mut order = None;
    let mut limit = None;
    let mut semicolon = None;
    let mut previous_word: Option<(usize, String)> = None;
    while i < text.len() {
        let rest = &text[i..];
        let c = rest.chars().next().expect("not at the end");
        if rest.starts_with("--") {
            break;
        } else if let Some(body) = rest.strip_prefix("/*") {
            i += body.find("*/").map_or(rest.len(), |n| 2 + n + 2);
            continue;
        } else if c == '\'' || c == '"' {
            // To the closing quote; a doubled quote stands for one.
            let mut j = i + 1;
            loop {
                match text[j..].find(c) {
                    None => {
                        j = text.len();
                        break;
                    }
                    Some(n) => {
                        j += n + 1;
                        if bytes.get(j) == Some(&(c as u8)) {
                            j += 1;
                        } else {
                            break;
                        }
                    }
                }
            }
            i = j;
            previous_word = None;
            continue;
        } else if c.is_alphanumeric() || c == '_' {
            let len = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
                .unwrap_or(rest.len());
            let word = rest[..len].to_ascii_uppercase();
            if word == "BY" {
                if let Some((at, prev)) = &previous_word {
                    if prev == "ORDER" && order.is_none() {
                        order = Some(*at);
                    }
                }
            }
            if word == "LIMIT" && limit.is_none() {
                limit = Some(i);
            }
            previous_word = Some((i, word));
            i += len;
            continue;
        } else if c == ';' {
            semicolon = Some(i);
            break;
        } else if !c.is_whitespace() {
            previous_word = None;
        }
        i += c.len_utf8();
    }
    let end = semicolon.unwrap_or(text.len());
    let cut = [order, limit, semicolon]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(text.len());
    Tail { cut, limit, end }
}

/// `ALTER TABLE <t> ADD [COLUMN] <c> <type>` → the table and the new column;
/// the failure message otherwise.
fn parse_add_column(stmt: &str) -> Result<(String, Column), String> {
    let refused = || {
        "Only `ALTER TABLE <table> ADD [COLUMN] <column> <type>` is supported by this server"
            .to_owned()
    };
    let words = sql_words(stmt.trim().trim_end_matches(';')).ok_or_else(refused)?;
    let keyword = |w: &(String, bool), k: &str| !w.1 && w.0.eq_ignore_ascii_case(k);
    let mut rest = words.as_slice();
    for k in ["ALTER", "TABLE"] {
        match rest.split_first() {
            Some((w, tail)) if keyword(w, k) => rest = tail,
            _ => return Err(refused()),
        }
    }
    let Some(((table, _), tail)) = rest.split_first() else {
        return Err(refused());
    };
    rest = tail;
    match rest.split_first() {
        Some((w, tail)) if keyword(w, "ADD") => rest = tail,
        _ => return Err(refused()),
    }
    if let Some((w, tail)) = rest.split_first() {
        if keyword(w, "COLUMN") {
            rest = tail;
        }
    }
    let Some(((column, _), tail)) = rest.split_first() else {
        return Err(refused());
    };
    let type_text = tail
        .iter()
        .map(|(w, _)| w.to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(" ");
    let column_type = sql_type(&type_text)
        .ok_or_else(|| format!("Column type '{type_text}' is not supported by this server"))?;
    Ok((table.clone(), Column::new(column.clone(), column_type)))
}

/// The words of a statement; a double-quoted one is marked (and unescaped).
/// `None` for an unterminated quote.
fn sql_words(text: &str) -> Option<Vec<(String, bool)>> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut word = String::new();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        word.push('"');
                    }
                    '"' => break,
                    other => word.push(other),
                }
            }
            words.push((word, true));
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '"' {
                    break;
                }
                word.push(c);
                chars.next();
            }
            words.push((word, false));
        }
    }
    Some(words)
}

/// An SQL type name (GridDB's own, or the SQL aliases GridDB accepts).
fn sql_type(text: &str) -> Option<ColumnType> {
    Some(match text {
        "BOOL" | "BOOLEAN" => ColumnType::Bool,
        "STRING" | "VARCHAR" | "CHAR" | "TEXT" => ColumnType::String,
        "BYTE" | "TINYINT" => ColumnType::Byte,
        "SHORT" | "SMALLINT" => ColumnType::Short,
        "INTEGER" | "INT" => ColumnType::Integer,
        "LONG" | "BIGINT" => ColumnType::Long,
        "FLOAT" | "REAL" => ColumnType::Float,
        "DOUBLE" | "DOUBLE PRECISION" => ColumnType::Double,
        "TIMESTAMP" | "TIMESTAMP(3)" => ColumnType::Timestamp,
        "BLOB" => ColumnType::Blob,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_to_endpoints() {
        let route_of = |path: &str| route(path).map(|r| r.endpoint);
        let r = route("/griddb/v2/defaultCluster/dbs/public/checkConnection").unwrap();
        assert_eq!(
            (r.cluster.as_str(), r.database.as_str(), r.endpoint),
            ("defaultCluster", "public", Endpoint::CheckConnection)
        );
        let base = "/griddb/v2/c/dbs/d";
        for (tail, endpoint) in [
            ("/containers", Endpoint::Containers),
            ("/containers/", Endpoint::Containers),
            ("/containers/rows", Endpoint::MultiRows),
            (
                "/containers/sensor_a/info",
                Endpoint::Info("sensor_a".into()),
            ),
            ("/containers/rows/info", Endpoint::Info("rows".into())),
            ("/containers/a%5Fb/rows", Endpoint::Rows("a_b".into())),
            ("/containers/a/rows/blob", Endpoint::Blob("a".into())),
            ("/tql", Endpoint::Tql),
            ("/sql/ddl", Endpoint::SqlDdl),
            ("/sql/dml/query", Endpoint::Sql),
            ("/sql", Endpoint::Sql),
        ] {
            assert_eq!(route_of(&format!("{base}{tail}")), Some(endpoint), "{tail}");
        }
        for path in [
            "/griddb/v2/c/dbs/d",
            "/griddb/v2/c/dbs/d/nothing",
            "/griddb/v2/c/db/d/tql",
            "/griddb/v1/c/dbs/d/tql",
            "/griddb/v2/c/dbs//tql",
            "/other",
        ] {
            assert_eq!(route_of(path), None, "{path}");
        }
    }

    #[test]
    fn basic_credentials_are_checked_like_the_webapi() {
        let headers = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            headers
        };
        assert_eq!(
            basic_credentials(&headers("Basic YWRtaW46YTpi")).unwrap(),
            ("admin".to_owned(), "a:b".to_owned())
        );
        for (value, message) in [
            ("Bearer x", "Basic authentication not found"),
            ("Basic !!", "Basic authentication is not encoded by Base64"),
            ("Basic YWRtaW4=", "Basic authentication is invalid format"),
        ] {
            let failure = basic_credentials(&headers(value)).unwrap_err();
            assert_eq!(failure.status, StatusCode::UNAUTHORIZED);
            assert_eq!(failure.body.error_message, message);
        }
        assert!(basic_credentials(&HeaderMap::new()).is_err());
        assert!(same_secret("admin", "admin"));
        for other in ["admin2", "admi", "", "Admin"] {
            assert!(!same_secret("admin", other), "{other}");
        }
    }

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "application/json; charset=UTF-8",
            "Application/JSON;charset=utf-8",
            "application/problem+json",
        ] {
            assert!(is_json_type(ok), "{ok}");
        }
        for bad in [
            "",
            "text/plain",
            "application/x-www-form-urlencoded",
            "text/json",
        ] {
            assert!(!is_json_type(bad), "{bad}");
        }
    }

    #[test]
    fn query_strings_decode() {
        assert_eq!(
            query_params(Some("limit=10&type=TIME_SERIES&x&sort=%41SC&a+b=c+d")),
            [
                ("limit".to_owned(), "10".to_owned()),
                ("type".to_owned(), "TIME_SERIES".to_owned()),
                ("x".to_owned(), String::new()),
                ("sort".to_owned(), "ASC".to_owned()),
                ("a b".to_owned(), "c d".to_owned()),
            ]
        );
        assert!(query_params(None).is_empty());
    }

    #[test]
    fn get_rows_builds_the_documented_tql() {
        assert_eq!(
            rows_queries(Some("temp > 30"), Some("temp desc, ts asc"), 100, 5),
            (
                "select * where temp > 30 order by temp desc, ts asc limit 100 offset 5".to_owned(),
                "select count(*) where temp > 30".to_owned()
            )
        );
        assert_eq!(
            rows_queries(Some("  "), None, 1, 0),
            (
                "select * limit 1 offset 0".to_owned(),
                "select count(*)".to_owned()
            )
        );
    }

    #[test]
    fn the_tail_is_found_outside_quotes_and_comments() {
        let text =
            "select * where a = 'order by limit' and \"limit\" > 1 order by a limit 5 offset 2;";
        let tail = scan_tail(text, 9);
        assert_eq!(&text[tail.cut..], "order by a limit 5 offset 2;");
        assert_eq!(&text[tail.limit.unwrap()..], "limit 5 offset 2;");
        assert_eq!(tail.end, text.len() - 1);
        let text = "select * where x_limit > 1 /* limit 3 */ -- limit 4";
        assert_eq!(
            scan_tail(text, 9),
            Tail {
                cut: text.len(),
                limit: None,
                end: text.len()
            }
        );
    }

    #[test]
    fn tql_statements_get_their_limit_and_count() {
        let p = prepare_tql("select * where temp > 21\r\norder by ts desc").unwrap();
        assert_eq!(
            p.text,
            "select * where temp > 21  order by ts desc\nlimit 1000000"
        );
        assert_eq!((p.limit, p.offset), (MAX_LIMIT, 0));
        assert_eq!(
            p.count.as_deref(),
            Some("select count(*) where temp > 21  ")
        );

        let p = prepare_tql("SELECT * FROM s WHERE a > 1 LIMIT 5000000 OFFSET 3;").unwrap();
        assert_eq!(p.text, "SELECT * FROM s WHERE a > 1 limit 1000000 offset 3");
        assert_eq!((p.limit, p.offset), (MAX_LIMIT, 3));
        assert_eq!(
            p.count.as_deref(),
            Some("SELECT count(*) FROM s WHERE a > 1 ")
        );

        let p = prepare_tql("select * limit 10").unwrap();
        assert_eq!(
            (p.text.as_str(), p.limit, p.offset),
            ("select * limit 10", 10, 0)
        );

        let p = prepare_tql("select * -- all").unwrap();
        assert_eq!(p.text, "select * -- all\nlimit 1000000");
        assert_eq!(p.statement.limit.map(|l| l.count), Some(MAX_LIMIT));

        let p = prepare_tql("select avg(temp);").unwrap();
        assert_eq!(p.text, "select avg(temp)\nlimit 1000000");
        assert!(p.count.is_none());
        assert!(matches!(p.statement.selection, Selection::Aggregates(_)));

        let p = prepare_tql("select a, b where a > 1 order by b").unwrap();
        assert_eq!(p.count.as_deref(), Some("select count(*) where a > 1 "));

        let p = prepare_tql("select TIME_SAMPLING(*, TIMESTAMP('2024-05-01T00:00:00Z'), TIMESTAMP('2024-05-01T01:00:00Z'), 1, MINUTE)").unwrap();
        assert!(p.count.is_none());
        assert!(matches!(p.statement.selection, Selection::Function(_)));

        let explain = prepare_tql("  explain select *").unwrap_err();
        assert_eq!(explain.status, StatusCode::BAD_REQUEST);
        assert_eq!(explain.body.error_code, 0);
        let syntax = prepare_tql("select * where").unwrap_err();
        assert_eq!(
            (syntax.status, syntax.body.error_code),
            (StatusCode::BAD_REQUEST, TQL_ERROR)
        );
    }

    #[test]
    fn aggregates_answer_a_double_or_a_timestamp() {
        let json = |r: &TqlResult| serde_json::to_string(r).unwrap();
        assert_eq!(
            json(&aggregation(&Value::Long(6), ColumnType::Long)),
            r#"{"columns":[{"name":"aggregationResult","type":"DOUBLE"}],"results":[[6.0]]}"#
        );
        assert_eq!(
            json(&aggregation(&Value::Timestamp(0), ColumnType::Timestamp)),
            r#"{"columns":[{"name":"aggregationResult","type":"TIMESTAMP","timePrecision":"MILLISECOND"}],"results":[["1970-01-01T00:00:00.000Z"]]}"#
        );
    }

    #[test]
    fn alter_table_add_column_is_the_one_ddl() {
        assert_eq!(
            parse_add_column("ALTER TABLE sensor_a ADD COLUMN humidity DOUBLE").unwrap(),
            (
                "sensor_a".to_owned(),
                Column::new("humidity", ColumnType::Double)
            )
        );
        assert_eq!(
            parse_add_column("alter table \"My\"\"T\" add \"select\" bigint;").unwrap(),
            ("My\"T".to_owned(), Column::new("select", ColumnType::Long))
        );
        assert_eq!(
            parse_add_column("ALTER TABLE t ADD x DOUBLE PRECISION")
                .unwrap()
                .1,
            Column::new("x", ColumnType::Double)
        );
        for bad in [
            "ALTER TABLE t DROP COLUMN x",
            "ALTER TABLE t ADD COLUMN x",
            "ALTER TABLE t ADD COLUMN x GEOMETRY",
            "ALTER TABLE t ADD COLUMN x INTEGER NOT NULL",
            "ALTER TABLE",
            "ALTER TABLE \"t ADD x INTEGER",
        ] {
            assert!(parse_add_column(bad).is_err(), "{bad}");
        }
    }
}
