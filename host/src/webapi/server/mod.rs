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
//! | `DELETE containers/{c}/rows`, `POST containers/rows` (multi-container get), `containers/{c}/rows/blob` | served | 400 (the `Backend` deletes no rows; zip transfer is not implemented) |
//! | request body size | Tomcat's limits | 8 × `webapi_max_request_bytes` + 1 MiB (413 past it); the row-put check is then by `wire::estimated_size`, as GridDB's |
//! | `maxResponseSize` | whole MB, 1–2048 | `webapi_max_response_bytes`, in bytes (small limits for tests); `GET containers` is not bounded by it |
//! | `OPTIONS` and `HEAD` | answered by Spring | 405 |

use super::wire::{
    self, AnswerZone, ColumnDto, ContainerDto, ContainerList, ContainerRows, ErrorBody, PutCount,
    RowsQuery, RowsResult, SqlOutcome, SqlStatement, TqlQuery, TqlResult, UpdatedRows,
    AGGREGATION_RESULT, MAX_LIMIT, MAX_QUERIES,
};
use crate::access::token::same_secret;
use crate::listener::{accept_loop, ListenerLimits};
use crate::manifest::Variables;
use crate::store::tql::{self, Selection, Statement};
use crate::store::{
    Backend, Column, ColumnType, ContainerInfo, ContainerKind, Row, StoreError, Value,
};
use anyhow::{anyhow, Context, Result};
use base64::Engine as _;
use bytes::Bytes;
use cromflag_logic::query::percent_decode;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::net::TcpListener;

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

/// The WebAPI's `maxResponseSize` default (20 MB).
const MAX_RESPONSE_BYTES: usize = 20 << 20;

/// The WebAPI's `maxTotalResponseSize` default (2048 MB): the most the row
/// answers of one `/tql` request may weigh together.
const MAX_TOTAL_RESPONSE_BYTES: u64 = 2048 << 20;

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
    DeleteRows(String),
    MultiPut(Vec<ContainerRows>),
    MultiGet,
    Blob,
    Tql(Vec<TqlQuery>),
    SqlDdl(Vec<SqlStatement>),
    SqlUpdate(Vec<SqlStatement>),
    /// Any other SQL endpoint.
    Sql,
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

/// The estimated size of the rows of one answer, refused with "Too many
/// result" as soon as the running sum exceeds `max`, as the WebAPI's
/// `rowSetToTqlResult` adds and checks row by row.
fn response_size<'a>(rows: impl IntoIterator<Item = &'a Row>, max: usize) -> Result<u64, Failure> {
    let mut size = 0usize;
    for row in rows {
        size = size.saturating_add(wire::estimated_size(row));
        if size > max {
            return Err(too_many_result());
        }
    }
    Ok(size as u64)
}

/// Whether a statement is of the kind `sql/ddl` accepts, by the WebAPI's
/// check: lower-cased and trimmed, it matches `(create|alter|drop).*`, where
/// `.` crosses no line break (so a statement of several lines never does).
fn is_ddl(stmt: &str) -> bool {
    let text = stmt.trim_matches(|c: char| c <= ' ').to_lowercase();
    ["create", "alter", "drop"]
        .iter()
        .any(|kind| text.starts_with(kind))
        && !text.contains(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'])
}

/// The SQL endpoints' list checks (ExecuteSqlServiceImpl.validateInput).
fn check_statements(statements: &[SqlStatement]) -> Result<(), Failure> {
    if statements.is_empty() {
        return Err(bad_request("List of SQL is empty"));
    }
    if statements.len() > MAX_QUERIES {
        return Err(bad_request("Exceed maximum of SQLs that can be executed"));
    }
    if statements.iter().any(|s| s.stmt.trim().is_empty()) {
        return Err(bad_request("Statement is invalid"));
    }
    Ok(())
}

/// Whether a statement starts with `ALTER`: the one statement served.
fn is_alter(stmt: &str) -> bool {
    stmt.trim_start()
        .get(..5)
        .is_some_and(|w| w.eq_ignore_ascii_case("alter"))
}

/// What `griddb` mode writes for a multi-put: one entry per container name
/// as given (`HashMap` in BulkMultipleContainerServiceImpl, so a repeated
/// name keeps its last entry's rows), in a random order. Each item is the
/// name given, the stored name, and the rows.
fn griddb_writes(entries: Vec<(String, String, Vec<Row>)>) -> Vec<(String, Vec<Row>)> {
    let mut by_name: HashMap<String, (String, Vec<Row>)> = HashMap::new();
    for (given, stored, rows) in entries {
        by_name.insert(given, (stored, rows));
    }
    let mut writes: Vec<(String, Vec<Row>)> = by_name.into_values().collect();
    fastrand::shuffle(&mut writes);
    writes
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
            (Endpoint::Rows(c), _) => {
                let _keys: Vec<Json> = self.body(req).await?;
                Call::DeleteRows(c)
            }
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

    async fn run(&self, call: Call) -> Result<Reply, Failure> {
        match call {
            Call::CheckConnection => self.check_connection().await,
            Call::List(query) => self.list(query.as_deref()).await,
            Call::Create(body) => self.create(body).await,
            Call::Drop(names) => self.drop_containers(names).await,
            Call::Info(c) => self.info(&c).await,
            Call::PutRows(c, rows) => self.put_rows(&c, rows).await,
            Call::GetRows(c, query) => self.get_rows(&c, query).await,
            Call::DeleteRows(c) => {
                self.container(&c).await?;
                Err(bad_request("Deleting rows is not supported by this server"))
            }
            Call::MultiPut(entries) => self.multi_put(entries).await,
            Call::MultiGet => Err(bad_request(
                "Getting rows of several containers is not supported by this server",
            )),
            Call::Blob => Err(bad_request(
                "BLOB zip transfer is not supported by this server",
            )),
            Call::Tql(queries) => self.tql(queries).await,
            Call::SqlDdl(statements) => self.sql_ddl(statements).await,
            Call::SqlUpdate(statements) => self.sql_update(statements).await,
            Call::Sql => Err(sql_refused()),
        }
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
        mapped(&kept)
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

    /// Column descriptions as the emulated release writes them: no
    /// `timePrecision` before 5.5 (GWColumnInfo and GWTQLColumnInfo had none).
    fn described(&self, mut columns: Vec<ColumnDto>) -> Vec<ColumnDto> {
        if !self.settings.release.has_time_precision() {
            for column in &mut columns {
                column.time_precision = None;
            }
        }
        columns
    }

    /// Rows as answers write them: timestamps in the `timeZone` setting.
    fn answer_rows(&self, rows: &[Row]) -> Vec<Vec<Json>> {
        rows.iter()
            .map(|row| wire::encode_answer_row(row, self.settings.time_zone))
            .collect()
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

    /// §2.4: Validation.validateGWContainerInfo's checks in its order, then
    /// the columns this store can keep.
    async fn create(&self, body: CreateBody) -> Result<Reply, Failure> {
        let CreateBody {
            container_name,
            container_type,
            rowkey,
            columns,
        } = body;
        let container_name = container_name
            .filter(|name| !name.trim().is_empty())
            .ok_or_else(|| bad_request("Container name is invalid"))?;
        let container_type = container_type
            .filter(|kind| !kind.is_empty())
            .ok_or_else(|| bad_request("'container_type' is required"))?;
        let columns = columns
            .filter(|columns| !columns.is_empty())
            .ok_or_else(|| bad_request("'columns' is required"))?;
        if columns
            .iter()
            .any(|c| c.column_type.as_deref().is_none_or(str::is_empty))
        {
            return Err(bad_request("Empty column type"));
        }
        let dto = ContainerDto {
            container_name,
            container_type,
            rowkey: rowkey.unwrap_or(false),
            columns,
        };
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
    async fn drop_containers(&self, names: Vec<String>) -> Result<Reply, Failure> {
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
        let mut dto = ContainerDto::describe(&info);
        dto.columns = self.described(dto.columns);
        Ok(json_reply(StatusCode::OK, &dto))
    }

    /// Converts `rows` for `info` as WebAPIServiceImpl.setRowValue does, row
    /// by row: the values, then the running size (`size`, shared by every
    /// container of one request) against `maxRequestSize`.
    fn convert<'a>(
        &self,
        info: &ContainerInfo,
        rows: impl IntoIterator<Item = &'a [Json]>,
        size: &mut usize,
    ) -> Result<Vec<Row>, Failure> {
        let mut converted = Vec::new();
        for values in rows {
            let row = wire::decode_row(values, &info.columns).map_err(bad_request)?;
            *size = size.saturating_add(wire::estimated_size(&row));
            if *size > self.settings.max_request_bytes {
                return Err(bad_request("Too many rows data"));
            }
            converted.push(row);
        }
        Ok(converted)
    }

    /// §2.6: all rows converted and sized, then one `put_rows`.
    async fn put_rows(&self, name: &str, rows: Vec<Json>) -> Result<Reply, Failure> {
        if rows.is_empty() {
            return Err(bad_request("Rows data is empty"));
        }
        let info = self.container(name).await?;
        let rows = rows
            .iter()
            .map(|row| {
                row.as_array()
                    .map(Vec::as_slice)
                    .ok_or_else(|| bad_request("Row data is invalid"))
            })
            .collect::<Result<Vec<&[Json]>, Failure>>()?;
        let rows = self.convert(&info, rows, &mut 0)?;
        let count = rows.len() as u64;
        self.backend
            .put_rows(&info.name, rows)
            .await
            .map_err(store_failure)?;
        Ok(json_reply(StatusCode::OK, &PutCount { count }))
    }

    /// §2.7.
    async fn get_rows(&self, name: &str, request: RowsQuery) -> Result<Reply, Failure> {
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
        response_size(&result.rows, self.settings.max_response_bytes)?;
        let total = self.count(&info.name, &count_tql).await?;
        let columns = result
            .columns
            .iter()
            .map(|c| ColumnDto::describe(c, false))
            .collect();
        Ok(json_reply(
            StatusCode::OK,
            &RowsResult {
                columns: self.described(columns),
                rows: self.answer_rows(&result.rows),
                offset,
                limit,
                total: total.max(0) as u64,
            },
        ))
    }

    /// §2.11 PUT: the entries checked, looked up and converted in request
    /// order (any failure: nothing written; the size counted across them),
    /// then written as `webapi_multi_put` says. The answer lists every entry
    /// with its own row count.
    async fn multi_put(&self, entries: Vec<ContainerRows>) -> Result<Reply, Failure> {
        let mut answer = Vec::with_capacity(entries.len());
        let mut converted = Vec::with_capacity(entries.len());
        let mut size = 0usize;
        for entry in entries {
            if entry.container_name.trim().is_empty() {
                return Err(bad_request("The container is invalid"));
            }
            if entry.rows.is_empty() {
                return Err(bad_request("Row data is invalid"));
            }
            let info = self.container(&entry.container_name).await?;
            let rows = self.convert(&info, entry.rows.iter().map(Vec::as_slice), &mut size)?;
            answer.push(UpdatedRows {
                container_name: entry.container_name.clone(),
                updated_rows: rows.len() as u64,
            });
            converted.push((entry.container_name, info.name, rows));
        }
        match self.settings.multi_put {
            MultiPut::Griddb => {
                for (name, rows) in griddb_writes(converted) {
                    self.backend
                        .put_rows(&name, rows)
                        .await
                        .map_err(store_failure)?;
                }
            }
            MultiPut::Atomic if converted.is_empty() => {}
            MultiPut::Atomic => {
                let batches = converted
                    .into_iter()
                    .map(|(_, stored, rows)| (stored, rows))
                    .collect();
                self.backend
                    .multi_put(batches)
                    .await
                    .map_err(store_failure)?;
            }
        }
        Ok(json_reply(StatusCode::OK, &answer))
    }

    /// §2.9: the list and every statement checked (Validation.validateGWTQLInput),
    /// then the statements run in order, the first failure failing the request;
    /// the row answers together stay within `maxTotalResponseSize`.
    async fn tql(&self, queries: Vec<TqlQuery>) -> Result<Reply, Failure> {
        if queries.is_empty() {
            return Err(bad_request("List of TQL is empty"));
        }
        if queries.len() > MAX_QUERIES {
            return Err(bad_request("Exceed maximum of TQLs that can be executed"));
        }
        for query in &queries {
            if query.name.trim().is_empty() {
                return Err(bad_request("Container invalid"));
            }
            if query.stmt.trim().is_empty() {
                return Err(bad_request("Statement invalid"));
            }
            if query.stmt.contains('\0') {
                return Err(bad_request("Invalid character(s) found"));
            }
        }
        let mut answers = Vec::with_capacity(queries.len());
        let mut total = 0u64;
        for query in &queries {
            let answer = self.tql_one(query).await?;
            total = total.saturating_add(answer.response_size_byte.unwrap_or(0));
            answers.push(answer);
        }
        if total > MAX_TOTAL_RESPONSE_BYTES {
            return Err(too_many_result());
        }
        Ok(json_reply(StatusCode::OK, &answers))
    }

    async fn tql_one(&self, query: &TqlQuery) -> Result<TqlResult, Failure> {
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
        // Rows sized as the WebAPI's getSelectedColumnsByTQL / rowSetToTqlResult
        // do: the projected values, "Too many result" past maxResponseSize.
        let rows_of =
            |columns: &[Column], rows: &[Row], total: i64| -> Result<TqlResult, Failure> {
                let size = response_size(rows, self.settings.max_response_bytes)?;
                let columns = columns
                    .iter()
                    .map(|c| ColumnDto::describe(c, false))
                    .collect();
                Ok(TqlResult {
                    columns: self.described(columns),
                    results: self.answer_rows(rows),
                    offset: Some(prepared.offset),
                    limit: Some(prepared.limit),
                    total: Some(total),
                    response_size_byte: Some(size),
                })
            };
        match &prepared.statement.selection {
            Selection::Aggregates(aggregates) if aggregates.len() == 1 => {
                let value = result.rows.first().and_then(|row| row.first());
                let column = result.columns.first();
                match (value, column) {
                    (Some(value), Some(column)) if !value.is_null() => {
                        let mut answer =
                            aggregation(value, column.column_type, self.settings.time_zone);
                        answer.columns = self.described(answer.columns);
                        Ok(answer)
                    }
                    // No value (AVG over no rows): the row shape, empty.
                    _ => rows_of(&info.columns, &[], total),
                }
            }
            // Our extension: several aggregates, one row; no projection.
            Selection::Aggregates(_) => rows_of(&result.columns, &result.rows, total),
            _ => {
                let (columns, rows) = project(result.columns, result.rows, projection)?;
                rows_of(&columns, &rows, total)
            }
        }
    }

    /// `sql/ddl` (5.7+): the list checked as ExecuteSqlServiceImpl does
    /// (every statement of the DDL kind, else "Statement is invalid"); of DDL,
    /// `ALTER TABLE <t> ADD [COLUMN] <c> <type>` only (any other: 400). Each
    /// statement answers `{status, message, stmt}`, status 0 for a failure.
    async fn sql_ddl(&self, statements: Vec<SqlStatement>) -> Result<Reply, Failure> {
        check_statements(&statements)?;
        if !statements.iter().all(|s| is_ddl(&s.stmt)) {
            return Err(bad_request("Statement is invalid"));
        }
        self.alter_all(statements, None).await
    }

    /// `sql/update` (5.5+): JDBC's `executeUpdate` of any statement in the
    /// WebAPI; here the ALTER that `sql/ddl` serves (any other statement:
    /// 400). Each statement answers `{updatedRows, status, message, stmt}`:
    /// `updatedRows` 0 (what executeUpdate counts for DDL, and the Java
    /// default when it fails), status 1, or status 0 with the message.
    async fn sql_update(&self, statements: Vec<SqlStatement>) -> Result<Reply, Failure> {
        check_statements(&statements)?;
        self.alter_all(statements, Some(0)).await
    }

    /// Runs statements that must all be `ALTER TABLE … ADD [COLUMN] …` (else
    /// 400 before any runs), one outcome each, `updated_rows` as given.
    async fn alter_all(
        &self,
        statements: Vec<SqlStatement>,
        updated_rows: Option<i64>,
    ) -> Result<Reply, Failure> {
        if !statements.iter().all(|s| is_alter(&s.stmt)) {
            return Err(sql_refused());
        }
        let mut answers = Vec::with_capacity(statements.len());
        for statement in statements {
            let outcome = self.alter(&statement.stmt).await;
            answers.push(SqlOutcome {
                updated_rows,
                status: i64::from(outcome.is_ok()),
                message: outcome.err(),
                stmt: statement.stmt,
            });
        }
        Ok(json_reply(StatusCode::OK, &answers))
    }

    /// Runs one `ALTER TABLE … ADD [COLUMN] …`; the failure's message otherwise.
    async fn alter(&self, stmt: &str) -> Result<(), String> {
        let (table, column) = parse_add_column(stmt)?;
        self.add_column(&table, column).await
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

/// One aggregate's answer (§2.9): `aggregationResult`, DOUBLE (COUNT 6 → 6.0),
/// or TIMESTAMP for MIN/MAX over a timestamp (written in `zone`).
fn aggregation(value: &Value, column_type: ColumnType, zone: AnswerZone) -> TqlResult {
    let (type_name, json) = match (column_type, value.as_f64()) {
        (ColumnType::Timestamp, _) | (_, None) => {
            (column_type.name(), wire::encode_answer(value, zone))
        }
        (_, Some(v)) => (
            ColumnType::Double.name(),
            wire::encode_answer(&Value::Double(v), zone),
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
        return Err(bad_request("'EXPLAIN/ANALYZE' is not supported"));
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

    /// What a `/tql` statement runs as, whatever comments, quotes, case and
    /// whitespace it has around its clauses: the text run, the LIMIT and
    /// OFFSET answered, and the count of its rows.
    #[test]
    fn tql_clauses_are_found_through_comments_quotes_case_and_whitespace() {
        for (stmt, run, limit, offset, count) in [
            // Clause words inside string literals and quoted names.
            (
                "select * where a = 'order by limit' and \"limit\" > 1 order by a limit 5 offset 2;",
                "select * where a = 'order by limit' and \"limit\" > 1 order by a limit 5 offset 2;",
                5,
                2,
                Some("select count(*) where a = 'order by limit' and \"limit\" > 1 "),
            ),
            (
                "select * where s = 'a;b' ;",
                "select * where s = 'a;b' \nlimit 1000000",
                MAX_LIMIT,
                0,
                Some("select count(*) where s = 'a;b' "),
            ),
            (
                "select * where s = 'ä''--ö' limit 2000000 offset 1",
                "select * where s = 'ä''--ö' limit 1000000 offset 1",
                MAX_LIMIT,
                1,
                Some("select count(*) where s = 'ä''--ö' "),
            ),
            // Clause words inside comments; a comment between ORDER and BY.
            (
                "select * /* limit 3 */ where x_limit > 1 -- limit 4",
                "select * /* limit 3 */ where x_limit > 1 -- limit 4\nlimit 1000000",
                MAX_LIMIT,
                0,
                Some("select count(*) where x_limit > 1 -- limit 4"),
            ),
            (
                "select * order /* x */ by a limit 2000000",
                "select * order /* x */ by a limit 1000000 offset 0",
                MAX_LIMIT,
                0,
                Some("select count(*) "),
            ),
            // A line break is a space: the comment then runs to the end.
            (
                "select * where a > 1 -- no limit\nlimit 2000000",
                "select * where a > 1 -- no limit limit 2000000\nlimit 1000000",
                MAX_LIMIT,
                0,
                Some("select count(*) where a > 1 -- no limit limit 2000000"),
            ),
            // Any case; what follows the `;` is dropped with it.
            (
                "SELECT * WHERE a > 1 ORDER BY a DESC LIMIT 2000000",
                "SELECT * WHERE a > 1 ORDER BY a DESC limit 1000000 offset 0",
                MAX_LIMIT,
                0,
                Some("SELECT count(*) WHERE a > 1 "),
            ),
            (
                "select * from s oRdEr bY \"order\" LiMiT 3000000 OfFsEt 7 ;  -- c",
                "select * from s oRdEr bY \"order\" limit 1000000 offset 7",
                MAX_LIMIT,
                7,
                Some("select count(*) from s "),
            ),
            (
                "select max(a) /* max */ ; -- c",
                "select max(a) /* max */ \nlimit 1000000",
                MAX_LIMIT,
                0,
                None,
            ),
            // Tabs, line breaks, runs of spaces.
            (
                "select\t*\nwhere a > 1\r\n\torder by a\nlimit 10",
                "select\t* where a > 1  \torder by a limit 10",
                10,
                0,
                Some("select\tcount(*) where a > 1  \t"),
            ),
            (
                "select a,b   where a > 1   order   by b   limit   2000000   offset   4  ",
                "select a,b   where a > 1   order   by b   limit 1000000 offset 4",
                MAX_LIMIT,
                4,
                Some("select count(*) where a > 1   "),
            ),
        ] {
            let p = prepare_tql(stmt).unwrap();
            assert_eq!(
                (p.text.as_str(), p.limit, p.offset, p.count.as_deref()),
                (run, limit, offset, count),
                "{stmt}"
            );
        }
    }

    #[test]
    fn aggregates_answer_a_double_or_a_timestamp() {
        let json = |r: &TqlResult| serde_json::to_string(r).unwrap();
        assert_eq!(
            json(&aggregation(
                &Value::Long(6),
                ColumnType::Long,
                AnswerZone::Utc
            )),
            r#"{"columns":[{"name":"aggregationResult","type":"DOUBLE"}],"results":[[6.0]]}"#
        );
        assert_eq!(
            json(&aggregation(
                &Value::Timestamp(0),
                ColumnType::Timestamp,
                AnswerZone::Utc
            )),
            r#"{"columns":[{"name":"aggregationResult","type":"TIMESTAMP","timePrecision":"MILLISECOND"}],"results":[["1970-01-01T00:00:00.000Z"]]}"#
        );
        let tokyo = AnswerZone::parse("+09:00").unwrap();
        assert_eq!(
            aggregation(&Value::Timestamp(0), ColumnType::Timestamp, tokyo).results,
            [[json!("1970-01-01T09:00:00.000+09:00")]]
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

    /// `ALTER TABLE … ADD [COLUMN] …` read whatever its quotes, case,
    /// whitespace and comments: the table, column and type, or the message.
    #[test]
    fn alter_statements_are_read_through_quotes_case_whitespace_and_comments() {
        let only =
            "Only `ALTER TABLE <table> ADD [COLUMN] <column> <type>` is supported by this server";
        let unsupported = |t: &str| format!("Column type '{t}' is not supported by this server");
        let added = |t: &str, c: &str, ty| Ok((t.to_owned(), Column::new(c, ty)));
        for (stmt, read) in [
            (
                "ALTER TABLE sensor_a ADD COLUMN humidity DOUBLE",
                added("sensor_a", "humidity", ColumnType::Double),
            ),
            // Quoted names: doubled quotes, keywords and spaces in them.
            (
                "alter table \"My\"\"T\" add \"select\" bigint;",
                added("My\"T", "select", ColumnType::Long),
            ),
            (
                "ALTER TABLE t ADD \"COLUMN\" INTEGER",
                added("t", "COLUMN", ColumnType::Integer),
            ),
            (
                "ALTER TABLE t ADD COLUMN \"a b\" timestamp(3)",
                added("t", "a b", ColumnType::Timestamp),
            ),
            ("\"ALTER\" TABLE t ADD x INTEGER", Err(only.to_owned())),
            ("ALTER TABLE \"t ADD x INTEGER", Err(only.to_owned())),
            // Any case, any whitespace, trailing semicolons.
            (
                "  Alter\tTable  t\n ADD   Column x   double \r\n precision ;; ",
                added("t", "x", ColumnType::Double),
            ),
            (
                "ALTER TABLE t ADD x TIMESTAMP (3)",
                Err(unsupported("TIMESTAMP (3)")),
            ),
            ("ALTER TABLE t ADD COLUMN x", Err(unsupported(""))),
            (
                "ALTER TABLE t ADD COLUMN x geometry",
                Err(unsupported("GEOMETRY")),
            ),
            (
                "ALTER TABLE t ADD x INTEGER NOT NULL",
                Err(unsupported("INTEGER NOT NULL")),
            ),
            ("ALTER TABLE t DROP COLUMN x", Err(only.to_owned())),
            ("ALTER TABLE \"t\" ADD", Err(only.to_owned())),
            // Comments: words to the old reader.
            (
                "ALTER TABLE t ADD x INTEGER -- why",
                Err(unsupported("INTEGER -- WHY")),
            ),
            ("ALTER /* c */ TABLE t ADD x INTEGER", Err(only.to_owned())),
        ] {
            assert_eq!(parse_add_column(stmt), read, "{stmt}");
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
    fn answers_are_sized_row_by_row() {
        // 8 (TIMESTAMP) + 8 (DOUBLE) + 4 ("abcd") = 20 a row; null counts 0.
        let row = vec![
            Value::Timestamp(0),
            Value::Double(1.0),
            Value::String("abcd".into()),
            Value::Null,
        ];
        let rows = vec![row.clone(), row.clone(), row];
        assert_eq!(response_size(&rows[..2], 40).unwrap(), 40);
        assert_eq!(response_size(&rows, 60).unwrap(), 60);
        let refused = response_size(&rows, 59).unwrap_err();
        assert_eq!(
            (
                refused.status,
                refused.body.error_code,
                refused.body.error_message.as_str()
            ),
            (StatusCode::BAD_REQUEST, 0, "Too many result")
        );
        assert_eq!(response_size(&[], 0).unwrap(), 0);
    }

    #[test]
    fn sql_lists_are_checked_like_the_webapi() {
        let statements = |stmts: &[&str]| -> Vec<SqlStatement> {
            stmts
                .iter()
                .map(|s| SqlStatement {
                    stmt: (*s).to_owned(),
                    kind: None,
                })
                .collect()
        };
        let message = |stmts: &[&str]| {
            check_statements(&statements(stmts))
                .unwrap_err()
                .body
                .error_message
        };
        assert_eq!(message(&[]), "List of SQL is empty");
        assert_eq!(
            message(&["select 1"; 11]),
            "Exceed maximum of SQLs that can be executed"
        );
        assert_eq!(message(&["select 1", "  "]), "Statement is invalid");
        assert!(check_statements(&statements(&["select 1"; 10])).is_ok());
        for ddl in [
            "CREATE TABLE t (a INTEGER)",
            "  alter table t add x int;",
            "DROP TABLE t",
            "dropx",
        ] {
            assert!(is_ddl(ddl), "{ddl}");
        }
        for other in ["select 1", "ALTER TABLE t\nADD x INTEGER", "", "-- alter"] {
            assert!(!is_ddl(other), "{other}");
        }
        assert!(is_alter(" ALTER TABLE t ADD x INTEGER") && !is_alter("DROP TABLE t"));
    }

    #[test]
    fn griddb_multi_puts_keep_the_last_entry_of_a_name() {
        let row = |v: i64| vec![Value::Long(v)];
        let writes = griddb_writes(vec![
            ("a".into(), "a".into(), vec![row(1)]),
            ("b".into(), "b".into(), vec![row(2)]),
            ("a".into(), "a".into(), vec![row(3), row(4)]),
            // Another spelling of a stored name is another entry, as in Java's map.
            ("A".into(), "a".into(), vec![row(5)]),
        ]);
        let mut writes: Vec<(String, Vec<Row>)> = writes;
        writes.sort_by_key(|(_, rows)| match rows[0][0] {
            Value::Long(v) => v,
            _ => 0,
        });
        assert_eq!(
            writes,
            [
                ("b".to_owned(), vec![row(2)]),
                ("a".to_owned(), vec![row(3), row(4)]),
                ("a".to_owned(), vec![row(5)]),
            ]
        );
    }
}
