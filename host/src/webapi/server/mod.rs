//! `cromflag up --webapi ADDR`: GridDB's WebAPI v2 answered from any `Backend`,
//! as strict as the Java WebAPI (griddb/webapi; 5.8 unless `webapi_version`
//! says otherwise) wherever a client's correctness depends on it.
//!
//! A request goes through the steps Spring Boot and the WebAPI take, in their
//! order: route, among those of the emulated release (else 404 with Spring's
//! default error body) → method (405) → JSON content type (415) → body read
//! and mapped into the endpoint's request type as the WebAPI's Jackson mapper
//! does (400: unparsable, missing, or naming a field the release's DTO lacks)
//! → Basic header (401) → cluster (400) → database (400) → credentials (401,
//! GridDB's 10005) → the endpoint's own checks and work. Every failure after
//! routing answers the WebAPI error body,
//! `{"version":"v2","errorCode":…,"errorMessage":…}`.
//!
//! This module is that pipeline, from `serve` to the `Call` it hands on, and
//! the failures every step answers with; `endpoints` does each endpoint's
//! own work, running the TQL that `tql` prepares and the SQL that `sql`
//! reads.
//!
//! The settings are Spin variables (`ServerSettings::from_variables`):
//! `webapi_cluster`, `webapi_user`, `webapi_password`,
//! `webapi_max_request_bytes` (`maxRequestSize`), `webapi_max_response_bytes`
//! (`maxResponseSize`), `webapi_time_zone` (`timeZone`), `webapi_version` (the
//! release: its routes and DTO fields) and `webapi_multi_put` (`griddb`: as
//! the Java service; `atomic`).
//!
//! Where this server departs from the Java WebAPI, on purpose:
//!
//! | What | The Java WebAPI | This server |
//! |---|---|---|
//! | a database other than `public` | the GridDB login fails | 400, errorCode 0, "Database '<name>' not found (this server has only 'public')" |
//! | when an endpoint validates its input ("List of TQL is empty", "'limit' is invalid", "Rows data is empty", …) | after the Basic header, before the cluster and credentials are checked | after the credentials: a wrong password is a 401 before any of these 400s |
//! | a field missing from a body (`stmt`, `name`, `containerName`, `rows`, a column's `name`) | mapped as null, then the endpoint's own 400 after the Basic header | 400 "Mapping JSON data error: missing field …", before the Basic header |
//! | Jackson's leniencies: `"5"` or `5.7` for `limit`, a number for a string, a repeated key (the last wins), text after the JSON value | accepted | 400 "Mapping JSON data error: …" (serde's message, without Jackson's path) |
//! | a field of a later release sent as `null` (`"timePrecision": null` to 2.2) | an unknown field: 400 | accepted: `null` is the field's absence here |
//! | `PUT containers/rows` with `webapi_multi_put = atomic` | the containers are written one by one, in no fixed order, a repeated container's last entry winning | one `multi_put`: all or nothing, entries in request order (every entry of a repeated container written, in order) |
//! | the `columns` of a multi-put entry | mapped as GridDB `ColumnInfo`s | any JSON, ignored |
//! | a row of `PUT containers/{c}/rows` that is not an array | skipped | 400 "Row data is invalid" |
//! | a column without a type in a create | fails in GridDB | 400 "Empty column type" |
//! | GEOMETRY and array columns, time precisions finer than ms, indexes | supported | 400 (this store has no such columns); `index` is accepted and not kept (info answers `[]`) |
//! | `POST /tql` | GridDB refuses several aggregates (`SELECT COUNT(*), AVG(a)`) and column lists (`SELECT a, b`) | served: rows with the engine's columns (`total` 1 for aggregates, the matching row count for column lists) |
//! | a `/tql` statement ending in `;` or a `--` comment | may break the LIMIT the WebAPI appends | does not |
//! | TQL errors | `[151001:…] … (address=…)` | errorCode 151001 with this engine's message (which starts with `TQL: `) |
//! | SQL statements (`sql/ddl` 5.7+, `sql/update` 5.5+) | any statement JDBC runs (once `sql/ddl` has checked they are DDL, as this server does too) | `ALTER TABLE <t> ADD [COLUMN] <c> <type>` only (a failing one is a status 0 item); any other statement: 400 "SQL is not supported by this server" |
//! | `sql`, `sql/select`, `sql/dcl`, `sql/dml/query`, `sql/dml/update` | served | 400 "SQL is not supported by this server" (the body is still mapped first) |
//! | `POST containers/rows` (multi-container get), `containers/{c}/rows/blob` | served | 400 (zip transfer is not implemented) |
//! | request body size | Tomcat's limits | 8 × `webapi_max_request_bytes` + 1 MiB (413 past it); the row-put check is then by `wire::estimated_size`, as GridDB's |
//! | `maxResponseSize` | whole MB, 1–2048 | `webapi_max_response_bytes`, in bytes (small limits for tests); `GET containers` is not bounded by it |
//! | `OPTIONS` and `HEAD` | answered by Spring | 405 |

mod endpoints;
mod sql;
mod tql;

use super::wire::{
    self, AnswerZone, ColumnDto, ContainerRows, ErrorBody, RowsQuery, SqlStatement, TqlQuery,
};
use crate::access::token::same_secret;
use crate::http_io::{self, BodyError, BodyLimit};
use crate::listener::{accept_loop, ListenerLimits};
use crate::manifest::Variables;
use crate::store::{Backend, StoreError};
use anyhow::{anyhow, Context, Result};
use base64::Engine as _;
use bytes::Bytes;
use cromflag_logic::query::percent_decode;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use std::sync::Arc;
use tokio::net::TcpListener;

// ---------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------

/// Who may call the WebAPI, under which names, and how the emulated WebAPI
/// is configured.
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
    /// `maxResponseSize`: the most the rows of one answer may weigh, by
    /// `wire::estimated_size` ("Too many result" past it).
    pub max_response_bytes: usize,
    /// `timeZone`: how answers write TIMESTAMP values.
    pub time_zone: AnswerZone,
    /// The release emulated: its routes and DTO fields.
    pub release: Release,
    /// How `PUT containers/rows` writes.
    pub multi_put: MultiPut,
}

impl ServerSettings {
    /// Reads `webapi_cluster`, `webapi_user`, `webapi_password`,
    /// `webapi_max_request_bytes`, `webapi_max_response_bytes`,
    /// `webapi_time_zone`, `webapi_version` and `webapi_multi_put` (each with
    /// a default when undeclared).
    pub fn from_variables(variables: &Variables) -> Result<ServerSettings> {
        let get = |name: &str, default: &str| variables.get(name).unwrap_or(default).to_owned();
        let bytes = |name: &str, default: usize| -> Result<usize> {
            let text = get(name, &default.to_string());
            text.trim()
                .parse()
                .with_context(|| format!("{name} `{text}` is not a byte count"))
        };
        let time_zone = get("webapi_time_zone", "");
        let version = get("webapi_version", "5.8");
        let multi_put = get("webapi_multi_put", "griddb");
        Ok(ServerSettings {
            cluster: get("webapi_cluster", "defaultCluster"),
            database: "public".into(),
            user: get("webapi_user", "admin"),
            password: get("webapi_password", "admin"),
            max_request_bytes: bytes("webapi_max_request_bytes", wire::MAX_REQUEST_BYTES)?,
            max_response_bytes: bytes("webapi_max_response_bytes", MAX_RESPONSE_BYTES)?,
            time_zone: AnswerZone::parse(&time_zone)
                .map_err(|e| anyhow!("webapi_time_zone: {e}"))?,
            release: Release::parse(&version).map_err(|e| anyhow!("webapi_version: {e}"))?,
            multi_put: MultiPut::parse(&multi_put).map_err(|e| anyhow!("webapi_multi_put: {e}"))?,
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
            .field("max_response_bytes", &self.max_response_bytes)
            .field("time_zone", &self.time_zone)
            .field("release", &self.release)
            .field("multi_put", &self.multi_put)
            .finish_non_exhaustive()
    }
}

/// The WebAPI's `maxResponseSize` default (20 MB).
const MAX_RESPONSE_BYTES: usize = 20 << 20;

/// A WebAPI release, `major.minor`: which routes exist and which fields its
/// DTOs have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Release {
    pub major: u32,
    pub minor: u32,
}

impl Release {
    /// The 2.x line (2.0.0–2.2.0): checkConnection, containers, info, rows,
    /// tql and the legacy `sql`.
    const FIRST: Release = Release { major: 2, minor: 0 };
    /// 5.5: `containers/rows`, `rows/blob`, `sql/select`, `sql/update`;
    /// `timePrecision` in column DTOs, `fileNameCol` in row queries.
    const V5_5: Release = Release { major: 5, minor: 5 };
    /// 5.7: `sql/ddl`, `sql/dcl`, `sql/dml/query|update`; `hasPartialExecution`.
    const V5_7: Release = Release { major: 5, minor: 7 };

    /// `major.minor`, or `major.minor.patch` (the patch is not looked at);
    /// 2.0 or later, the first open-source release.
    pub fn parse(text: &str) -> Result<Release, String> {
        let refused = || format!("`{text}` is not a release such as 5.8 or 2.2 (2.0 or later)");
        let parts: Vec<&str> = text.trim().split('.').collect();
        let number = |part: &str| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(refused());
            }
            part.parse::<u32>().map_err(|_| refused())
        };
        match parts.as_slice() {
            [major, minor] | [major, minor, _] => {
                if let [_, _, patch] = parts.as_slice() {
                    number(patch)?;
                }
                let release = Release {
                    major: number(major)?,
                    minor: number(minor)?,
                };
                if release < Release::FIRST {
                    return Err(refused());
                }
                Ok(release)
            }
            _ => Err(refused()),
        }
    }

    /// Whether column DTOs carry `timePrecision` (in requests and answers).
    fn has_time_precision(self) -> bool {
        self >= Release::V5_5
    }
}

impl std::fmt::Display for Release {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// How `PUT containers/rows` writes its containers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MultiPut {
    /// As the Java service (BulkMultipleContainerServiceImpl): one map entry
    /// per container name as given (a repeated name keeps its last entry's
    /// rows), written container by container in no fixed order.
    Griddb,
    /// Every entry, in request order, in one `Backend::multi_put`.
    Atomic,
}

impl MultiPut {
    pub fn parse(text: &str) -> Result<MultiPut, String> {
        match text.trim() {
            "griddb" => Ok(MultiPut::Griddb),
            "atomic" => Ok(MultiPut::Atomic),
            other => Err(format!("`{other}` is not `griddb` or `atomic`")),
        }
    }
}

// ---------------------------------------------------------------------------
// Serving: a request from route to reply
// ---------------------------------------------------------------------------

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

/// The WebAPI served: the store it answers from and its settings, shared by
/// every connection.
struct Server {
    backend: Arc<dyn Backend>,
    settings: ServerSettings,
}

impl Server {
    /// One request answered: a failure as the WebAPI's error body. Logged
    /// with its method, path and status, never its headers.
    async fn handle(&self, req: Request<Incoming>) -> Reply {
        let started = std::time::Instant::now();
        let (method, path) = (req.method().clone(), req.uri().path().to_owned());
        let reply = match self.dispatch(req).await {
            Ok(reply) => reply,
            Err(failure) => {
                // A body the real WebAPI would not map either: a client bug
                // worth seeing (tests/griddb.rs checks ours never makes one).
                let message = &failure.body.error_message;
                if message.starts_with("Mapping JSON data error")
                    || message.starts_with("JSON parse error")
                {
                    tracing::warn!(%method, %path, error = %message, "WebAPI: a request body does not map");
                }
                failure.reply()
            }
        };
        // Never the headers: the Authorization header carries the password.
        tracing::debug!(%method, %path, status = reply.status().as_u16(), elapsed = ?started.elapsed(), "WebAPI request");
        reply
    }

    /// The steps of the module doc, in their order: route, method, body,
    /// the release's fields, the caller, then the endpoint (`run`).
    async fn dispatch(&self, req: Request<Incoming>) -> Result<Reply, Failure> {
        let path = req.uri().path().to_owned();
        let Some(route) = route(&path).filter(|r| r.endpoint.since() <= self.settings.release)
        else {
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
        let headers = req.headers().clone();
        let call = self.call(route.endpoint.clone(), req).await?;
        call.check_release(self.settings.release)?;
        self.authenticate(&headers, &route)?;
        self.run(call).await
    }
}

// ---------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------

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
    Sql(SqlPath),
}

/// The SQL endpoints, each mapped from its own release on.
#[derive(Clone, Copy, Debug, PartialEq)]
enum SqlPath {
    /// `sql`, the legacy query endpoint.
    Legacy,
    Select,
    Update,
    Ddl,
    Dcl,
    DmlQuery,
    DmlUpdate,
}

impl Endpoint {
    /// The methods its controllers map (the same in every release).
    fn methods(&self) -> &'static [Method] {
        match self {
            Endpoint::CheckConnection | Endpoint::Info(_) => &[Method::GET],
            Endpoint::Containers => &[Method::GET, Method::POST, Method::DELETE],
            Endpoint::MultiRows | Endpoint::Blob(_) => &[Method::POST, Method::PUT],
            Endpoint::Rows(_) => &[Method::PUT, Method::POST, Method::DELETE],
            Endpoint::Tql | Endpoint::Sql(_) => &[Method::POST],
        }
    }

    /// The first release whose controllers map it.
    fn since(&self) -> Release {
        match self {
            Endpoint::MultiRows
            | Endpoint::Blob(_)
            | Endpoint::Sql(SqlPath::Select | SqlPath::Update) => Release::V5_5,
            Endpoint::Sql(SqlPath::Ddl | SqlPath::Dcl | SqlPath::DmlQuery | SqlPath::DmlUpdate) => {
                Release::V5_7
            }
            _ => Release::FIRST,
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

/// Maps a path to its endpoint, whatever the release; `None` is Spring's 404.
/// One trailing `/` is ignored (Spring Boot 2.7 matches it), segments are
/// percent-decoded.
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
        ["sql"] => Endpoint::Sql(SqlPath::Legacy),
        ["sql", "select"] => Endpoint::Sql(SqlPath::Select),
        ["sql", "update"] => Endpoint::Sql(SqlPath::Update),
        ["sql", "ddl"] => Endpoint::Sql(SqlPath::Ddl),
        ["sql", "dcl"] => Endpoint::Sql(SqlPath::Dcl),
        ["sql", "dml", "query"] => Endpoint::Sql(SqlPath::DmlQuery),
        ["sql", "dml", "update"] => Endpoint::Sql(SqlPath::DmlUpdate),
        _ => return None,
    };
    Some(Route {
        cluster: cluster.clone(),
        database: database.clone(),
        endpoint,
    })
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

// ---------------------------------------------------------------------------
// The body, mapped as the WebAPI maps it
// ---------------------------------------------------------------------------

/// A request whose body is read and mapped, ready to run once the caller is
/// authenticated.
#[derive(Debug)]
enum Call {
    CheckConnection,
    /// `GET containers`, with its query string.
    List(Option<String>),
    Create(CreateBody),
    Drop(Vec<String>),
    Info(String),
    /// `PUT containers/{c}/rows`: the rows as JSON, checked one by one later.
    PutRows(String, Vec<Json>),
    GetRows(String, RowsQuery),
    /// `DELETE containers/{c}/rows`: the row keys as JSON.
    DeleteRows(String, Vec<Json>),
    MultiPut(Vec<ContainerRows>),
    MultiGet,
    Blob,
    Tql(Vec<TqlQuery>),
    SqlDdl(Vec<SqlStatement>),
    SqlUpdate(Vec<SqlStatement>),
    /// Any other SQL endpoint.
    Sql,
}

impl Server {
    /// The request's body read and mapped into the endpoint's request type;
    /// no credential has been looked at yet (Spring maps the body before the
    /// controller runs).
    async fn call(&self, endpoint: Endpoint, req: Request<Incoming>) -> Result<Call, Failure> {
        let method = req.method().clone();
        let query = req.uri().query().map(str::to_owned);
        Ok(match (endpoint, method) {
            (Endpoint::CheckConnection, _) => Call::CheckConnection,
            (Endpoint::Containers, Method::GET) => Call::List(query),
            (Endpoint::Containers, Method::POST) => Call::Create(self.body(req).await?),
            (Endpoint::Containers, _) => Call::Drop(self.body(req).await?),
            (Endpoint::Info(c), _) => Call::Info(c),
            (Endpoint::Rows(c), Method::PUT) => Call::PutRows(c, self.body(req).await?),
            (Endpoint::Rows(c), Method::POST) => Call::GetRows(c, self.body(req).await?),
            (Endpoint::Rows(c), _) => Call::DeleteRows(c, self.body(req).await?),
            (Endpoint::MultiRows, Method::PUT) => Call::MultiPut(self.body(req).await?),
            (Endpoint::MultiRows, _) => {
                let _queries: Vec<Json> = self.body(req).await?;
                Call::MultiGet
            }
            (Endpoint::Blob(_), Method::POST) => {
                let _query: RowsQuery = self.body(req).await?;
                Call::Blob
            }
            // Multipart parts, not read.
            (Endpoint::Blob(_), _) => Call::Blob,
            (Endpoint::Tql, _) => Call::Tql(self.body(req).await?),
            (Endpoint::Sql(SqlPath::Ddl), _) => Call::SqlDdl(self.body(req).await?),
            (Endpoint::Sql(SqlPath::Update), _) => Call::SqlUpdate(self.body(req).await?),
            (Endpoint::Sql(_), _) => {
                let _statements: Vec<SqlStatement> = self.body(req).await?;
                Call::Sql
            }
        })
    }

    /// The body mapped into `T` ([`mapped`]): a JSON content type (else
    /// 415), at most the body limit (else 413), present (else 400).
    async fn body<T: DeserializeOwned>(&self, req: Request<Incoming>) -> Result<T, Failure> {
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
        let (parts, body) = req.into_parts();
        let kept = http_io::read(&parts.headers, body, &BodyLimit::new(limit))
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => too_large(),
                BodyError::Unreadable(e) => {
                    bad_request(format!("Request body could not be read: {e}"))
                }
                // Not set here: no idle limit.
                BodyError::TimedOut => bad_request("Request body could not be read: it stalled"),
            })?;
        if kept.is_empty() {
            return Err(bad_request("Required request body is missing"));
        }
        mapped(&kept)
    }
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

/// `body` read as `T` the way the WebAPI's `new ObjectMapper()` reads its
/// DTOs, with FAIL_ON_UNKNOWN_PROPERTIES: a field `T` does not know is a 400
/// naming where it is, as GWExceptionHandler words it ("Mapping JSON data
/// error at " and then ` object N` for the Nth item of a list, ` field 'x'`
/// for a field). Whichever comes first in the text wins, an unknown field or
/// another mapping error, as Jackson stops at the first.
fn mapped<T: DeserializeOwned>(body: &[u8]) -> Result<T, Failure> {
    let mut unknown: Option<String> = None;
    let mut json = serde_json::Deserializer::from_slice(body);
    let value: Result<T, serde_json::Error> = serde_ignored::deserialize(&mut json, |path| {
        unknown.get_or_insert_with(|| jackson_path(&path));
    });
    // An unknown field was met before any error: the mapping stopped there.
    if let Some(path) = unknown {
        return Err(mapping_error_at(&path));
    }
    let refused = |e: serde_json::Error| match e.classify() {
        serde_json::error::Category::Data => bad_request(format!("Mapping JSON data error: {e}")),
        _ => bad_request(format!("JSON parse error: {e}")),
    };
    let value = value.map_err(refused)?;
    json.end().map_err(refused)?;
    Ok(value)
}

/// Where a field is, as GWExceptionHandler lists Jackson's path: ` object N`
/// (1-based) for a list item, ` field 'name'` for an object's field.
fn jackson_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{} object {}", jackson_path(parent), index + 1),
        Path::Map { parent, key } => format!("{} field '{key}'", jackson_path(parent)),
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => jackson_path(parent),
    }
}

/// The 400 of a mapping error at `path` (as [`jackson_path`] writes it): a
/// field the DTO lacks, or a value its Java enum has no constant for.
fn mapping_error_at(path: &str) -> Failure {
    bad_request(format!("Mapping JSON data error at {path}"))
}

/// The body of `POST containers`: GWContainerInfo, every field nullable as
/// in Java (the endpoint then says which is missing). Its columns are
/// GWColumnInfo's fields: `ColumnDto`.
#[derive(Debug, Deserialize)]
struct CreateBody {
    #[serde(default)]
    container_name: Option<String>,
    #[serde(default)]
    container_type: Option<String>,
    /// A Java `boolean`: `null` reads as false.
    #[serde(default)]
    rowkey: Option<bool>,
    #[serde(default)]
    columns: Option<Vec<ColumnDto>>,
}

/// The names of the Java enums that GWContainerInfo and GWColumnInfo map
/// (`ContainerType`, `GSType`, `TimeUnit`, `IndexType`): any other value is
/// a mapping error at its field, as Jackson's enum deserializer makes it.
const CONTAINER_TYPES: &[&str] = &["COLLECTION", "TIME_SERIES"];

const GS_TYPES: &[&str] = &[
    "STRING",
    "BOOL",
    "BYTE",
    "SHORT",
    "INTEGER",
    "LONG",
    "FLOAT",
    "DOUBLE",
    "TIMESTAMP",
    "GEOMETRY",
    "BLOB",
    "STRING_ARRAY",
    "BOOL_ARRAY",
    "BYTE_ARRAY",
    "SHORT_ARRAY",
    "INTEGER_ARRAY",
    "LONG_ARRAY",
    "FLOAT_ARRAY",
    "DOUBLE_ARRAY",
    "TIMESTAMP_ARRAY",
];

const TIME_UNITS: &[&str] = &[
    "YEAR",
    "MONTH",
    "DAY",
    "HOUR",
    "MINUTE",
    "SECOND",
    "MILLISECOND",
    "MICROSECOND",
    "NANOSECOND",
];

const INDEX_TYPES: &[&str] = &["TREE", "HASH", "SPATIAL", "DEFAULT"];

impl CreateBody {
    /// What Jackson refuses while mapping, beyond unknown fields: enum
    /// values that name no constant, and `timePrecision` before 5.5 (whose
    /// GWColumnInfo has no such field).
    fn check_mapping(&self, release: Release) -> Result<(), Failure> {
        let named = |value: Option<&str>, names: &[&str]| {
            // An empty string maps to null, which the endpoint then checks.
            value.is_none_or(|v| v.is_empty() || names.contains(&v))
        };
        if !named(self.container_type.as_deref(), CONTAINER_TYPES) {
            return Err(mapping_error_at(" field 'container_type'"));
        }
        for (i, column) in self.columns.iter().flatten().enumerate() {
            let at = |field: &str| format!(" field 'columns' object {} field '{field}'", i + 1);
            if !named(column.column_type.as_deref(), GS_TYPES) {
                return Err(mapping_error_at(&at("type")));
            }
            if column.time_precision.is_some() && !release.has_time_precision() {
                return Err(mapping_error_at(&at("timePrecision")));
            }
            if !named(column.time_precision.as_deref(), TIME_UNITS) {
                return Err(mapping_error_at(&at("timePrecision")));
            }
            if let Some(index) = &column.index {
                if let Some(j) = index
                    .iter()
                    .position(|t| !INDEX_TYPES.contains(&t.as_str()))
                {
                    return Err(mapping_error_at(&format!(
                        "{} object {}",
                        at("index"),
                        j + 1
                    )));
                }
            }
        }
        Ok(())
    }
}

impl Call {
    /// The fields that later releases added to the request DTOs, refused in
    /// the emulated `release` as unknown. (A field sent as `null` reads as
    /// absent here and goes through.)
    fn check_release(&self, release: Release) -> Result<(), Failure> {
        match self {
            Call::GetRows(_, query) if query.file_name_col.is_some() && release < Release::V5_5 => {
                Err(mapping_error_at(" field 'fileNameCol'"))
            }
            Call::Tql(queries) if release < Release::V5_7 => {
                match queries
                    .iter()
                    .position(|q| q.has_partial_execution.is_some())
                {
                    Some(i) => Err(mapping_error_at(&format!(
                        " object {} field 'hasPartialExecution'",
                        i + 1
                    ))),
                    None => Ok(()),
                }
            }
            Call::Create(body) => body.check_mapping(release),
            _ => Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------
// The caller
// ---------------------------------------------------------------------------

impl Server {
    /// The Basic header (401), the cluster and the database (400), then the
    /// credentials (401 with GridDB's 10005).
    fn authenticate(&self, headers: &HeaderMap, route: &Route) -> Result<(), Failure> {
        let (user, password) = basic_credentials(headers)?;
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
        Ok(())
    }
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

/// GridDB's TXN_AUTH_FAILED.
const AUTH_FAILED: i64 = 10_005;

// ---------------------------------------------------------------------------
// Failures and replies
// ---------------------------------------------------------------------------

/// An answer, as `http_io` builds them.
type Reply = Response<Full<Bytes>>;

/// A failed request: its status and the WebAPI error body.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    body: ErrorBody,
}

impl Failure {
    fn reply(self) -> Reply {
        json_reply(self.status, &self.body)
    }
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

fn too_many_result() -> Failure {
    bad_request("Too many result")
}

fn sql_refused() -> Failure {
    bad_request("SQL is not supported by this server")
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

/// GridDB's TQL syntax error number, for every error the TQL engine reports.
const TQL_ERROR: i64 = 151_001;

/// `value` as a JSON answer, typed as the Java WebAPI types its own.
fn json_reply<T: Serialize>(status: StatusCode, value: &T) -> Reply {
    http_io::json_as(status, JSON_TYPE, value)
}

const JSON_TYPE: &str = "application/json; charset=UTF-8";

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
            ("/sql/ddl", Endpoint::Sql(SqlPath::Ddl)),
            ("/sql/dml/query", Endpoint::Sql(SqlPath::DmlQuery)),
            ("/sql/update", Endpoint::Sql(SqlPath::Update)),
            ("/sql", Endpoint::Sql(SqlPath::Legacy)),
        ] {
            assert_eq!(route_of(&format!("{base}{tail}")), Some(endpoint), "{tail}");
        }
        for path in [
            "/griddb/v2/c/dbs/d",
            "/griddb/v2/c/dbs/d/nothing",
            "/griddb/v2/c/db/d/tql",
            "/griddb/v1/c/dbs/d/tql",
            "/griddb/v2/c/dbs//tql",
            "/griddb/v2/c/dbs/d/sql/dml",
            "/other",
        ] {
            assert_eq!(route_of(path), None, "{path}");
        }
    }

    #[test]
    fn releases_decide_the_routes() {
        let release = |text: &str| Release::parse(text).unwrap();
        assert_eq!(release("5.8"), Release { major: 5, minor: 8 });
        assert_eq!(release(" 5.8.0 "), release("5.8"));
        assert!(release("2.2") < release("5.5") && release("5.6") < release("5.7"));
        assert!(release("5.10") > release("5.8"));
        for bad in ["", "5", "5.", "x.8", "5.8.1.2", "5.-1", "1.9", "+5.8"] {
            assert!(Release::parse(bad).is_err(), "{bad}");
        }
        let routes_in = |text: &str| {
            let base = "/griddb/v2/c/dbs/d";
            [
                "/checkConnection",
                "/containers",
                "/containers/a/info",
                "/containers/a/rows",
                "/tql",
                "/sql",
                "/containers/rows",
                "/containers/a/rows/blob",
                "/sql/select",
                "/sql/update",
                "/sql/ddl",
                "/sql/dcl",
                "/sql/dml/query",
                "/sql/dml/update",
            ]
            .into_iter()
            .filter(|tail| {
                route(&format!("{base}{tail}")).unwrap().endpoint.since() <= release(text)
            })
            .count()
        };
        assert_eq!(routes_in("2.2"), 6);
        assert_eq!(routes_in("5.5"), 10);
        assert_eq!(routes_in("5.6"), 10);
        assert_eq!(routes_in("5.7"), 14);
        assert_eq!(routes_in("5.8"), 14);
        assert_eq!(Endpoint::Sql(SqlPath::Ddl).methods(), [Method::POST]);
    }

    #[test]
    fn settings_default_to_the_webapi_defaults() {
        let settings = ServerSettings::from_variables(&Variables::default()).unwrap();
        assert_eq!(settings.release, Release { major: 5, minor: 8 });
        assert_eq!(settings.multi_put, MultiPut::Griddb);
        assert_eq!(settings.time_zone, AnswerZone::Utc);
        assert_eq!(settings.max_response_bytes, 20 << 20);
        assert_eq!(settings.max_request_bytes, 20 << 20);
        assert_eq!(MultiPut::parse("atomic"), Ok(MultiPut::Atomic));
        assert!(MultiPut::parse("GridDB").is_err());
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

    /// The message `mapped` refuses `body` with, as `T`.
    fn refusal<T: DeserializeOwned + std::fmt::Debug>(body: &str) -> String {
        let failure = mapped::<T>(body.as_bytes()).unwrap_err();
        assert_eq!(
            (failure.status, failure.body.error_code),
            (StatusCode::BAD_REQUEST, 0)
        );
        failure.body.error_message
    }

    #[test]
    fn unknown_fields_are_refused_where_jackson_finds_them() {
        assert_eq!(
            refusal::<CreateBody>(r#"{"container_name": "a", "bogus": 1}"#),
            "Mapping JSON data error at  field 'bogus'"
        );
        assert_eq!(
            refusal::<CreateBody>(
                r#"{"container_name": "a", "columns": [{"name": "ts", "type": "TIMESTAMP"}, {"name": "v", "type": "LONG", "size": 8}]}"#
            ),
            "Mapping JSON data error at  field 'columns' object 2 field 'size'"
        );
        assert_eq!(
            refusal::<Vec<TqlQuery>>(
                r#"[{"name": "a", "stmt": "select *"}, {"name": "a", "stmt": "select *", "column": ["x"]}]"#
            ),
            "Mapping JSON data error at  object 2 field 'column'"
        );
        assert_eq!(
            refusal::<Vec<ContainerRows>>(r#"[{"container_name": "a", "rows": [[1]]}]"#),
            "Mapping JSON data error at  object 1 field 'container_name'"
        );
        assert_eq!(
            refusal::<RowsQuery>(r#"{"limit": 1, "where": "a > 1"}"#),
            "Mapping JSON data error at  field 'where'"
        );
        assert_eq!(
            refusal::<Vec<SqlStatement>>(r#"[{"stmt": "x", "params": []}]"#),
            "Mapping JSON data error at  object 1 field 'params'"
        );
        // Jackson stops at the first problem in the text.
        assert_eq!(
            refusal::<RowsQuery>(r#"{"bogus": 1, "limit": "ten"}"#),
            "Mapping JSON data error at  field 'bogus'"
        );
        assert!(refusal::<RowsQuery>(r#"{"limit": "ten", "bogus": 1}"#)
            .starts_with("Mapping JSON data error: "));
        assert!(refusal::<Vec<TqlQuery>>(r#"[{"name": "a"}]"#).contains("stmt"));
        assert!(refusal::<RowsQuery>(r#"{"limit": 1"#).starts_with("JSON parse error: "));
        assert!(refusal::<RowsQuery>(r#"{"limit": 1} {}"#).starts_with("JSON parse error: "));
    }

    #[test]
    fn every_field_of_the_java_dtos_is_known() {
        let create: CreateBody = mapped(
            br#"{"container_name": "a", "container_type": "TIME_SERIES", "rowkey": null,
                 "columns": [{"name": "ts", "type": "TIMESTAMP", "index": ["TREE"], "timePrecision": "MILLISECOND"}]}"#,
        )
        .unwrap();
        assert_eq!(create.rowkey, None);
        let rows: RowsQuery = mapped(
            br#"{"limit": 1, "offset": 0, "condition": "a > 1", "sort": "a", "fileNameCol": "f"}"#,
        )
        .unwrap();
        assert_eq!(rows.file_name_col.as_deref(), Some("f"));
        let tql: Vec<TqlQuery> = mapped(
            br#"[{"name": "a", "stmt": "select *", "columns": null, "hasPartialExecution": true}]"#,
        )
        .unwrap();
        assert_eq!(tql[0].has_partial_execution, Some(true));
        let puts: Vec<ContainerRows> =
            mapped(br#"[{"containerName": "a", "columns": null, "rows": [[1]]}]"#).unwrap();
        assert_eq!(puts[0].rows, [[json!(1)]]);
        let sql: Vec<SqlStatement> =
            mapped(br#"[{"type": "sql-select", "stmt": "select 1"}]"#).unwrap();
        assert_eq!(sql[0].kind.as_deref(), Some("sql-select"));
    }

    #[test]
    fn enum_values_and_later_fields_are_mapping_errors() {
        let create = |body: &str| Call::Create(mapped(body.as_bytes()).unwrap());
        let refused = |call: Call, release: &str| {
            call.check_release(Release::parse(release).unwrap())
                .unwrap_err()
                .body
                .error_message
        };
        let columns = |column: &str| {
            format!(
                r#"{{"container_name": "a", "container_type": "COLLECTION", "columns": [{{"name": "k", "type": "STRING"}}, {column}]}}"#
            )
        };
        assert_eq!(
            refused(create(r#"{"container_type": "TABLE"}"#), "5.8"),
            "Mapping JSON data error at  field 'container_type'"
        );
        assert_eq!(
            refused(
                create(&columns(r#"{"name": "v", "type": "decimal"}"#)),
                "5.8"
            ),
            "Mapping JSON data error at  field 'columns' object 2 field 'type'"
        );
        assert_eq!(
            refused(
                create(&columns(
                    r#"{"name": "v", "type": "LONG", "index": ["TREE", "BTREE"]}"#
                )),
                "5.8"
            ),
            "Mapping JSON data error at  field 'columns' object 2 field 'index' object 2"
        );
        assert_eq!(
            refused(
                create(&columns(
                    r#"{"name": "t", "type": "TIMESTAMP", "timePrecision": "ms"}"#
                )),
                "5.8"
            ),
            "Mapping JSON data error at  field 'columns' object 2 field 'timePrecision'"
        );
        // GridDB's own types and units map (the store may refuse them later).
        let geometry = create(&columns(
            r#"{"name": "g", "type": "GEOMETRY"}, {"name": "t", "type": "TIMESTAMP", "timePrecision": "NANOSECOND"}"#,
        ));
        assert!(geometry
            .check_release(Release::parse("5.8").unwrap())
            .is_ok());
        // 2.2's GWColumnInfo has no timePrecision; 5.5's has.
        let precise = || {
            create(&columns(
                r#"{"name": "t", "type": "TIMESTAMP", "timePrecision": "MILLISECOND"}"#,
            ))
        };
        assert_eq!(
            refused(precise(), "2.2"),
            "Mapping JSON data error at  field 'columns' object 2 field 'timePrecision'"
        );
        assert!(precise()
            .check_release(Release::parse("5.5").unwrap())
            .is_ok());
        // An empty type is the endpoint's "Empty column type", not a mapping error.
        assert!(create(&columns(r#"{"name": "v", "type": ""}"#))
            .check_release(Release::parse("5.8").unwrap())
            .is_ok());

        let rows = || {
            Call::GetRows(
                "a".into(),
                mapped(br#"{"limit": 1, "fileNameCol": "f"}"#).unwrap(),
            )
        };
        assert_eq!(
            refused(rows(), "2.2"),
            "Mapping JSON data error at  field 'fileNameCol'"
        );
        assert!(rows().check_release(Release::parse("5.5").unwrap()).is_ok());
        let tql = || {
            Call::Tql(
                mapped(br#"[{"name": "a", "stmt": "s"}, {"name": "a", "stmt": "s", "hasPartialExecution": false}]"#)
                    .unwrap(),
            )
        };
        assert_eq!(
            refused(tql(), "5.6"),
            "Mapping JSON data error at  object 2 field 'hasPartialExecution'"
        );
        assert!(tql().check_release(Release::parse("5.7").unwrap()).is_ok());
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
}
