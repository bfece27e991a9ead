//! The store interface over a GridDB cluster (or GridDB Cloud) through its
//! WebAPI: each store call as WebAPI calls, made through `client` (auth,
//! deadlines, retries) over any [`Transport`]. The host's `griddb` backend
//! runs it over hyper, the `griddb-store` component over
//! `wasi:http/outgoing-handler`: one implementation of what follows. It
//! keeps the schemas it has seen, so that a put needs no extra round trip to
//! learn its columns, and which WebAPI release answers (`features`).
//!
//! What GridDB offers, and so what this backend promises:
//! - Writes. GridDB's multi-put (`PUT containers/rows`, WebAPI 5.5+) writes
//!   its containers in no fixed order and not atomically, and keeps only the
//!   last entry of a container named twice. So every row is checked first
//!   (nothing is sent if one is refused); then every time-series
//!   container's rows are written, and only then the collections' (`devices`,
//!   `messages`, … hold what refers to rows): within each phase one request
//!   per `griddb_max_request_bytes` of rows, each naming a container once
//!   (its rows merged in order, so the later row of a key wins), sent one
//!   after the other, a phase only after the previous one succeeded. A
//!   WebAPI without multi-put (before 5.5) gets one `PUT containers/<c>/rows`
//!   per container, in the same order. A put returns once every request was
//!   answered 200. A failed one leaves some containers written and others
//!   not, but never a collection row without the time-series rows it refers
//!   to; every row put is an upsert on its key, so the client's retry of a
//!   failed insert (answered 503) stores it exactly once.
//! - Schema changes. Columns are added with `ALTER TABLE … ADD COLUMN` through
//!   `sql/ddl` (5.7+) or `sql/update` (5.5, 5.6, GridDB Cloud); a WebAPI
//!   with neither cannot add columns, and says so. The release is probed at
//!   start-up (or on first use, if GridDB was unreachable then) and logged.
//! - Reads. Row statements are paged so that no answer nears the WebAPI's
//!   `maxResponseSize` (`griddb_max_response_bytes`); a selection function
//!   or aggregation whose answer is over it is a query error that says so.
//!   Integer aggregations arrive as DOUBLE: MIN/MAX beyond 2^53 are read
//!   exactly from their row, a SUM beyond it is a query error.
//! - While the WebAPI is unreachable or failing, every call fails with
//!   `StoreError::Backend` after its retries: HTTP inserts answer 503 and MQTT
//!   messages stay unacked. Nothing is acknowledged that GridDB did not take.

use crate::client::{Answer, Endpoint, Missing, Transport, WebApiClient};
use crate::features::{self, Features, Presence, Sql};
use crate::paging::{PageSize, Pages, Position};
use crate::wire::{
    self, ContainerDto, ContainerList, ContainerRows, SqlOutcome, SqlStatement, TqlQuery, TqlResult,
};
use crate::{dialect, puts};
use cromflag_model::{
    added_columns, check_rows, is_valid_container_name, range_key, range_statement, Column,
    ContainerInfo, ContainerListing, ContainerPage, KeyRange, QueryResult, RangeAggregates, Row,
    StoreError, Value,
};
use http::{Method, StatusCode};
use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

/// The WebAPI's `maxResponseSize` default (20 MB).
const DEFAULT_MAX_RESPONSE_BYTES: u64 = 20 << 20;

/// Where the cluster is and who we are to it: the `griddb_*` variables.
#[derive(Clone)]
pub struct GriddbSettings {
    /// The WebAPI's base, ending in `/griddb` (e.g. `http://host:8081/griddb`).
    pub url: String,
    pub cluster: String,
    pub database: String,
    pub user: String,
    pub password: String,
    /// How long one call may take, retries included.
    pub timeout: Duration,
    /// The most one put request carries, by the WebAPI's size estimate.
    pub max_request_bytes: usize,
    /// The server's `maxResponseSize`: a `/tql` answer past it is refused.
    pub max_response_bytes: u64,
}

impl GriddbSettings {
    /// Reads the `griddb_*` variables through `variable` (the manifest's,
    /// by name; `None` for an undeclared one, which takes its default).
    pub fn from_variables(
        variable: impl Fn(&str) -> Option<String>,
    ) -> Result<GriddbSettings, String> {
        let get = |name: &str, default: &str| variable(name).unwrap_or_else(|| default.to_owned());
        let number = |name: &str, default: &str| -> Result<u64, String> {
            let text = get(name, default);
            text.parse()
                .map_err(|_| format!("variable {name} = `{text}` is not a whole number"))
        };
        Ok(GriddbSettings {
            url: get("griddb_url", "http://127.0.0.1:8081/griddb"),
            cluster: get("griddb_cluster", "defaultCluster"),
            database: get("griddb_database", "public"),
            user: get("griddb_user", "admin"),
            password: get("griddb_password", "admin"),
            timeout: Duration::from_secs(number("griddb_timeout_secs", "30")?.max(1)),
            max_request_bytes: usize::try_from(number(
                "griddb_max_request_bytes",
                &wire::MAX_REQUEST_BYTES.to_string(),
            )?)
            .unwrap_or(usize::MAX),
            max_response_bytes: number(
                "griddb_max_response_bytes",
                &DEFAULT_MAX_RESPONSE_BYTES.to_string(),
            )?
            .max(1),
        })
    }
}

/// Everything but the password.
impl std::fmt::Debug for GriddbSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GriddbSettings")
            .field("url", &self.url)
            .field("cluster", &self.cluster)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("timeout", &self.timeout)
            .field("max_request_bytes", &self.max_request_bytes)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish_non_exhaustive()
    }
}

impl GriddbSettings {
    fn endpoint(&self) -> Endpoint<'_> {
        Endpoint {
            url: &self.url,
            cluster: &self.cluster,
            database: &self.database,
            user: &self.user,
            password: &self.password,
            timeout: self.timeout,
        }
    }
}

pub struct WebApiStore<T> {
    client: WebApiClient<T>,
    /// Containers as last seen, by lower-cased name (names are case-insensitive).
    schemas: RwLock<HashMap<String, ContainerInfo>>,
    max_request_bytes: usize,
    max_response_bytes: u64,
    /// What the WebAPI offers, once probed (`None` until GridDB answered).
    features: Mutex<Option<Features>>,
}

/// How a `/tql` request failed.
enum TqlError {
    /// 400 "Too many result": a statement's answer is over `maxResponseSize`.
    TooManyResult,
    Store(StoreError),
}

impl From<StoreError> for TqlError {
    fn from(e: StoreError) -> TqlError {
        TqlError::Store(e)
    }
}

impl<T: Transport> WebApiStore<T> {
    /// A store that has sent nothing yet: it probes the WebAPI's release on
    /// first need. A component, whose instance lives for one request, makes
    /// this; a host that lives on makes [`WebApiStore::connect`].
    pub fn new(settings: &GriddbSettings, transport: T) -> Result<WebApiStore<T>, String> {
        Ok(WebApiStore {
            client: WebApiClient::new(&settings.endpoint(), transport)?,
            schemas: RwLock::new(HashMap::new()),
            max_request_bytes: settings.max_request_bytes,
            max_response_bytes: settings.max_response_bytes,
            features: Mutex::new(None),
        })
    }

    /// Checks the connection once and probes the WebAPI's release. Wrong
    /// credentials, an unknown cluster or a URL that is no WebAPI stop here;
    /// an unreachable WebAPI is only logged, so that the host comes up and
    /// answers 503 until GridDB does (and is probed then).
    pub async fn connect(
        settings: &GriddbSettings,
        transport: T,
    ) -> Result<WebApiStore<T>, String> {
        let store = WebApiStore::new(settings, transport)?;
        match store.call(Method::GET, "checkConnection", None).await {
            Ok(answer) if answer.status.is_success() => {
                tracing::info!(
                    webapi = store.client.base(),
                    user = store.client.user(),
                    "store: GridDB"
                );
                if let Err(e) = store.features().await {
                    tracing::warn!(error = %e, "store: the GridDB WebAPI's release is not known yet; asked again on first use");
                }
            }
            Ok(answer) => return Err(store.refused(&answer, "checkConnection").to_string()),
            Err(e) => {
                tracing::warn!(error = %e, "store: GridDB is unreachable for now; writes answer 503 until it is back");
            }
        }
        Ok(store)
    }

    /// One call, its failure a `Backend` error (see [`WebApiClient::call`]).
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, StoreError> {
        self.client
            .call(method, path, body)
            .await
            .map_err(StoreError::Backend)
    }

    /// What the WebAPI offers: probed on first need, until a probe succeeds.
    /// Calls that need it at the same time may each probe; the first to
    /// finish is kept (the probes change nothing).
    async fn features(&self) -> Result<Features, StoreError> {
        if let Some(features) = *self.features.lock().expect("features lock") {
            return Ok(features);
        }
        let detected = self.detect().await?;
        let mut slot = self.features.lock().expect("features lock");
        let features = *slot.get_or_insert_with(|| {
            tracing::info!(
                webapi = self.client.base(),
                "store: GridDB WebAPI {}: {}",
                detected.release,
                detected.summary()
            );
            detected
        });
        Ok(features)
    }

    /// Probes with requests that change nothing (see `features`).
    async fn detect(&self) -> Result<Features, StoreError> {
        let multi_put = self.probe(Method::PUT, "containers/rows").await?;
        let sql_ddl = self.probe(Method::POST, "sql/ddl").await?;
        let sql_update = if sql_ddl {
            None
        } else {
            Some(self.probe(Method::POST, "sql/update").await?)
        };
        Ok(Features::from_probes(multi_put, sql_ddl, sql_update))
    }

    async fn probe(&self, method: Method, path: &str) -> Result<bool, StoreError> {
        let answer = self.call(method, path, Some(b"[]".to_vec())).await?;
        match features::presence(&answer) {
            Presence::Present => Ok(true),
            Presence::Absent => Ok(false),
            Presence::Refused => Err(self.refused(&answer, path)),
        }
    }

    /// An endpoint the probes found is missing after all (404 without the
    /// WebAPI's body): from now on, do without it.
    fn lost(&self, endpoint: &str, change: impl FnOnce(&mut Features)) {
        let mut slot = self.features.lock().expect("features lock");
        if let Some(features) = slot.as_mut() {
            change(features);
            tracing::warn!(
                webapi = self.client.base(),
                "store: the GridDB WebAPI has no {endpoint} after all (404); now {}",
                features.summary()
            );
        }
    }

    /// A 4xx answer as a store error; `what` names the call.
    fn refused(&self, answer: &Answer, what: &str) -> StoreError {
        let message = answer.message();
        match answer.status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => StoreError::Backend(format!(
                "GridDB WebAPI at {} refused user `{}` ({}): {message}; check griddb_user and griddb_password",
                self.client.base(),
                self.client.user(),
                answer.status
            )),
            // Not the WebAPI's body: no controller has the path (an older
            // release, or griddb_url is not the WebAPI's base).
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
                if answer.webapi_error().is_none() =>
            {
                StoreError::Backend(format!(
                    "GridDB WebAPI at {}: {what}: the server has no such endpoint ({}); is griddb_url the WebAPI's base, ending in /griddb?",
                    self.client.base(),
                    answer.status
                ))
            }
            StatusCode::NOT_FOUND => StoreError::NotFound(format!("{what}: {message}")),
            StatusCode::CONFLICT => StoreError::SchemaConflict(format!("{what}: {message}")),
            StatusCode::BAD_REQUEST => StoreError::Invalid(format!("{what}: {message}")),
            status => StoreError::Backend(format!(
                "GridDB WebAPI at {}: {what} answered {status}: {message}",
                self.client.base()
            )),
        }
    }

    fn cached(&self, name: &str) -> Option<ContainerInfo> {
        let schemas = self.schemas.read().expect("schema cache lock");
        schemas.get(&name.to_ascii_lowercase()).cloned()
    }

    fn forget(&self, name: &str) {
        let mut schemas = self.schemas.write().expect("schema cache lock");
        schemas.remove(&name.to_ascii_lowercase());
    }

    /// The container as GridDB has it now (and remembered), or `None`.
    async fn fetch_schema(&self, name: &str) -> Result<Option<ContainerInfo>, StoreError> {
        if !is_valid_container_name(name) {
            return Ok(None);
        }
        let what = format!("container `{name}`");
        let answer = self
            .call(Method::GET, &format!("containers/{name}/info"), None)
            .await?;
        if answer.missing() == Some(Missing::Container) {
            self.forget(name);
            return Ok(None);
        }
        if !answer.status.is_success() {
            return Err(self.refused(&answer, &what));
        }
        let info = serde_json::from_slice::<ContainerDto>(&answer.body)
            .map_err(|e| e.to_string())
            .and_then(|dto| dto.info())
            .map_err(|e| StoreError::Backend(format!("{what}: {e}")))?;
        let mut schemas = self.schemas.write().expect("schema cache lock");
        schemas.insert(name.to_ascii_lowercase(), info.clone());
        Ok(Some(info))
    }

    /// The container as last seen, asking GridDB only the first time.
    async fn schema(&self, name: &str) -> Result<ContainerInfo, StoreError> {
        if let Some(info) = self.cached(name) {
            return Ok(info);
        }
        self.fetch_schema(name)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("container `{name}` does not exist")))
    }

    /// Creates a container; `timePrecision` only where the release knows it.
    async fn create(&self, info: &ContainerInfo) -> Result<Answer, StoreError> {
        let mut dto = ContainerDto::describe(info);
        if !self.features().await?.time_precision() {
            dto.columns.iter_mut().for_each(|c| c.time_precision = None);
        }
        let body = serde_json::to_vec(&dto).expect("JSON");
        self.call(Method::POST, "containers", Some(body)).await
    }

    /// Appends columns with GridDB's SQL (`ALTER TABLE … ADD COLUMN`), the one
    /// way the WebAPI can change a schema: through `sql/ddl`, or `sql/update`
    /// where there is no `sql/ddl`.
    async fn add_columns(
        &self,
        info: &ContainerInfo,
        columns: &[Column],
    ) -> Result<(), StoreError> {
        let statements: Vec<SqlStatement> = columns
            .iter()
            .map(|c| SqlStatement {
                stmt: format!(
                    "ALTER TABLE {} ADD COLUMN {} {}",
                    cromflag_model::tql_name(&info.name),
                    cromflag_model::tql_name(&c.name),
                    c.column_type.name()
                ),
                kind: None,
            })
            .collect();
        let what = format!("adding columns to `{}`", info.name);
        let body = serde_json::to_vec(&statements).expect("JSON");
        let features = self.features().await?;
        let mut sql = features.sql;
        let answer = loop {
            let Some(path) = sql.path() else {
                return Err(StoreError::SchemaConflict(format!(
                    "{what}: the GridDB WebAPI at {} (detected release: {}) has neither sql/ddl nor sql/update, the only way it can add a column; use WebAPI 5.5 or later, or create the container with every column up front (see docs/griddb.md)",
                    self.client.base(),
                    features.release
                )));
            };
            let answer = self.call(Method::POST, path, Some(body.clone())).await?;
            if answer.missing() == Some(Missing::Endpoint) {
                sql = match sql {
                    Sql::Ddl => Sql::Update,
                    _ => Sql::Absent,
                };
                self.lost(path, |f| f.sql = sql);
                continue;
            }
            break answer;
        };
        if answer.status == StatusCode::BAD_REQUEST
            && answer.message().contains("SQL is not active")
        {
            return Err(StoreError::SchemaConflict(format!(
                "{what}: the GridDB WebAPI at {} answered \"SQL is not active\": a self-hosted WebAPI needs SQL configured, the cluster's JDBC address (jdbcAddress and jdbcPort, sqlMember, or providerUrl) in its conf/repository.json; docs/griddb.md explains it",
                self.client.base()
            )));
        }
        if !answer.status.is_success() {
            return Err(self.refused(&answer, &what));
        }
        let outcomes: Vec<SqlOutcome> = documented(&answer, &what)?;
        if let Some(failed) = outcomes.iter().find(|o| o.status != 1) {
            return Err(StoreError::SchemaConflict(format!(
                "{what}: {}",
                failed.message.as_deref().unwrap_or("refused")
            )));
        }
        Ok(())
    }

    /// One `/tql` request (at most `MAX_QUERIES` statements), answers in order.
    async fn tql_call(&self, queries: &[TqlQuery]) -> Result<Vec<TqlResult>, TqlError> {
        let body = serde_json::to_vec(queries).expect("JSON");
        let answer = self.call(Method::POST, "tql", Some(body)).await?;
        let answers: Vec<TqlResult> = match answer.status {
            status if status.is_success() => documented(&answer, "tql")?,
            StatusCode::BAD_REQUEST => {
                let message = answer.message();
                if message.starts_with("Too many result") {
                    return Err(TqlError::TooManyResult);
                }
                return Err(TqlError::Store(StoreError::Query(
                    if message.starts_with("TQL") {
                        message
                    } else {
                        format!("TQL: {message}")
                    },
                )));
            }
            _ if answer.missing() == Some(Missing::Container) => {
                queries.iter().for_each(|q| self.forget(&q.name));
                let what = format!("container `{}`", queries[0].name);
                return Err(TqlError::Store(self.refused(&answer, &what)));
            }
            _ => return Err(TqlError::Store(self.refused(&answer, "tql"))),
        };
        if answers.len() != queries.len() {
            return Err(TqlError::Store(StoreError::Backend(format!(
                "tql: {} statements asked, {} answered",
                queries.len(),
                answers.len()
            ))));
        }
        Ok(answers)
    }

    /// Runs unpaged statements (selection functions, aggregations) in
    /// requests of at most `MAX_QUERIES`, answers in order.
    async fn tql(&self, queries: Vec<TqlQuery>) -> Result<Vec<TqlResult>, StoreError> {
        let mut answers = Vec::with_capacity(queries.len());
        for chunk in queries.chunks(wire::MAX_QUERIES) {
            match self.tql_call(chunk).await {
                Ok(part) => answers.extend(part),
                Err(TqlError::Store(e)) => return Err(e),
                Err(TqlError::TooManyResult) => {
                    return Err(StoreError::Query(format!(
                        "the answer from `{}` is over the GridDB WebAPI's maxResponseSize (griddb_max_response_bytes = {}; it answered \"Too many result\"): ask a narrower time range or add a LIMIT",
                        chunk[0].name, self.max_response_bytes
                    )))
                }
            }
        }
        Ok(answers)
    }

    /// A row statement's rows, a page at a time (see `paging`), read into
    /// `projection` (the columns asked, without a key added for paging).
    async fn paged_rows(
        &self,
        info: &ContainerInfo,
        pages: &Pages,
        projection: Option<&[Column]>,
    ) -> Result<QueryResult, StoreError> {
        let mut size = PageSize::new(self.max_response_bytes, pages.estimated_row_bytes());
        let mut position = Position::Start;
        let mut returned = 0;
        let mut result: Option<QueryResult> = None;
        loop {
            let asked = size.rows().min(pages.limit().saturating_sub(returned));
            let query = TqlQuery {
                name: info.name.clone(),
                stmt: pages.statement(&position, asked),
                columns: pages.columns.clone(),
                has_partial_execution: None,
            };
            let answer = match self.tql_call(std::slice::from_ref(&query)).await {
                Ok(mut answers) => answers.pop().expect("one answer per statement"),
                Err(TqlError::TooManyResult) if size.shrink(asked) => continue,
                Err(TqlError::TooManyResult) => {
                    return Err(StoreError::Query(format!(
                        "one row of `{}` alone is over the GridDB WebAPI's maxResponseSize (it answered \"Too many result\"): select fewer columns, or raise maxResponseSize in the WebAPI's griddb_webapi.properties",
                        info.name
                    )))
                }
                Err(TqlError::Store(e)) => return Err(e),
            };
            let got = answer.results.len();
            size.observe(got, answer.response_size_byte);
            returned += got as u64;
            let next = if returned < pages.limit() {
                pages
                    .next(&position, asked, &answer)
                    .map_err(|e| StoreError::Backend(format!("paging `{}`: {e}", info.name)))?
            } else {
                None
            };
            let page = dialect::rows(answer, projection)?;
            match &mut result {
                None => result = Some(page),
                Some(result) => result.rows.extend(page.rows),
            }
            match next {
                Some(next) => position = next,
                None => return Ok(result.expect("a page was read")),
            }
        }
    }

    /// A statement's aggregations as one row; integer results the DOUBLE
    /// answer cannot hold are asked exactly (MIN/MAX) or refused (SUM).
    async fn aggregates(
        &self,
        aggregates: Vec<dialect::AggregateQuery>,
        single: bool,
    ) -> Result<QueryResult, StoreError> {
        let queries = aggregates.iter().map(|a| a.query.clone()).collect();
        let answers = self.tql(queries).await?;
        self.aggregate_row(aggregates, &answers, single).await
    }

    /// The row of a statement's aggregations from GridDB's `answers` to
    /// them, in order.
    async fn aggregate_row(
        &self,
        aggregates: Vec<dialect::AggregateQuery>,
        answers: &[TqlResult],
        single: bool,
    ) -> Result<QueryResult, StoreError> {
        let mut values = Vec::with_capacity(aggregates.len());
        for (aggregate, answer) in aggregates.iter().zip(answers) {
            values.push(
                match dialect::aggregate(answer, aggregate.column.column_type)? {
                    dialect::Reading::Absent => None,
                    dialect::Reading::Value(value) => Some(value),
                    dialect::Reading::Inexact(value) => match &aggregate.exact {
                        Some(exact) => {
                            let answer = self.tql(vec![exact.clone()]).await?;
                            dialect::extreme(answer.into_iter().next().expect("one answer"))?
                        }
                        None => return Err(dialect::inexact(aggregate, value)),
                    },
                },
            );
        }
        let columns = aggregates.into_iter().map(|a| a.column).collect();
        Ok(dialect::aggregate_row(values, columns, single))
    }

    /// Sends one request of a phase: one multi-put, or (without it) one put
    /// per container in the request's order.
    async fn put_request(&self, request: &[ContainerRows]) -> Result<(), StoreError> {
        if self.features().await?.multi_put {
            let body = serde_json::to_vec(request).expect("JSON");
            let answer = self
                .call(Method::PUT, "containers/rows", Some(body))
                .await?;
            if answer.status.is_success() {
                return Ok(());
            }
            match answer.missing() {
                // Not there after all: one put per container from now on.
                Some(Missing::Endpoint) => self.lost("multi-put", |f| f.multi_put = false),
                missing => {
                    if missing == Some(Missing::Container) {
                        request.iter().for_each(|c| self.forget(&c.container_name));
                    }
                    return Err(self.refused(&answer, "put rows"));
                }
            }
        }
        for entry in request {
            let body = serde_json::to_vec(&entry.rows).expect("JSON");
            let path = format!("containers/{}/rows", entry.container_name);
            let answer = self.call(Method::PUT, &path, Some(body)).await?;
            if !answer.status.is_success() {
                if answer.missing() == Some(Missing::Container) {
                    self.forget(&entry.container_name);
                }
                return Err(self.refused(
                    &answer,
                    &format!("put rows into `{}`", entry.container_name),
                ));
            }
        }
        Ok(())
    }
}

/// `GET containers` for `limit` names of `listing` from `offset`. The WebAPI
/// reads `offset` and `limit` as Java `int`s (a larger number is a 400):
/// `limit` is at most `wire::MAX_LIMIT` here, and an `offset` past `int` is
/// past any list (which a Java `List` cannot outgrow), so it is sent as the
/// largest `int`, where the names end and `total` is still counted.
fn list_path(listing: &ContainerListing, offset: u64, limit: u64) -> String {
    let mut path = format!(
        "containers?limit={limit}&offset={}&sort={}",
        offset.min(i32::MAX as u64),
        if listing.descending { "DESC" } else { "ASC" }
    );
    if let Some(kind) = listing.kind {
        path.push_str("&type=");
        path.push_str(kind.name());
    }
    path
}

/// A 2xx answer's body as the WebAPI documents it.
fn documented<T: serde::de::DeserializeOwned>(
    answer: &Answer,
    what: &str,
) -> Result<T, StoreError> {
    serde_json::from_slice(&answer.body).map_err(|e| {
        StoreError::Backend(format!(
            "{what}: the WebAPI's answer is not what it documents: {e}"
        ))
    })
}

/// The store's calls: `wit/store.wit`'s, and the host's `drop_container`.
impl<T: Transport> WebApiStore<T> {
    pub async fn put_container(&self, info: ContainerInfo) -> Result<ContainerInfo, StoreError> {
        if let Some(cached) = self.cached(&info.name) {
            if added_columns(&cached, &info)?.is_empty() {
                return Ok(cached);
            }
        }
        match self.fetch_schema(&info.name).await? {
            None => {
                if !is_valid_container_name(&info.name) {
                    return Err(StoreError::Invalid(format!(
                        "invalid container name `{}`: use 1 to 256 ASCII letters, digits or `_`, not starting with a digit",
                        info.name
                    )));
                }
                let answer = self.create(&info).await?;
                // 409: created meanwhile (by another host, or by our own retried request).
                if !answer.status.is_success() && answer.status != StatusCode::CONFLICT {
                    return Err(self.refused(&answer, &format!("creating `{}`", info.name)));
                }
                if answer.status == StatusCode::CONFLICT {
                    let stored = self.schema(&info.name).await?;
                    let added = added_columns(&stored, &info)?;
                    if !added.is_empty() {
                        self.add_columns(&stored, &added).await?;
                    }
                }
            }
            Some(stored) => {
                let added = added_columns(&stored, &info)?;
                if added.is_empty() {
                    return Ok(stored);
                }
                self.add_columns(&stored, &added).await?;
            }
        }
        self.fetch_schema(&info.name).await?.ok_or_else(|| {
            StoreError::Backend(format!(
                "container `{}` vanished right after its put",
                info.name
            ))
        })
    }

    pub async fn get_container(&self, name: &str) -> Result<Option<ContainerInfo>, StoreError> {
        self.fetch_schema(name).await
    }

    /// One `GET containers` with the listing's type, sort, offset and limit
    /// (see `list_path`); more only if the WebAPI answers fewer names than
    /// asked before the end (a server that caps a page), or refuses the page
    /// as over its `maxResponseSize` (then half as many names are asked).
    pub async fn list_container_page(
        &self,
        listing: &ContainerListing,
    ) -> Result<ContainerPage, StoreError> {
        const WHAT: &str = "listing containers";
        let mut names: Vec<String> = Vec::new();
        let mut most = wire::MAX_LIMIT;
        loop {
            let offset = listing.offset.saturating_add(names.len() as u64);
            let asked = (listing.limit - names.len() as u64).min(most);
            let answer = self
                .call(Method::GET, &list_path(listing, offset, asked), None)
                .await?;
            // The WebAPI's own check of the names' bytes against maxResponseSize.
            if answer.status == StatusCode::BAD_REQUEST
                && answer.message().starts_with("Response size is too large")
                && asked > 1
            {
                most = asked / 2;
                continue;
            }
            if !answer.status.is_success() {
                return Err(self.refused(&answer, WHAT));
            }
            let page: ContainerList = documented(&answer, WHAT)?;
            let got = page.names.len() as u64;
            if got > asked {
                return Err(StoreError::Backend(format!(
                    "{WHAT}: {asked} names asked, the WebAPI answered {got}"
                )));
            }
            names.extend(page.names);
            if got == 0 || names.len() as u64 >= listing.limit || offset + got >= page.total {
                return Ok(ContainerPage {
                    names,
                    total: page.total,
                });
            }
        }
    }

    /// Every name, ascending (the WIT's `list-containers`): pages of
    /// `ALL_NAMES_PAGE` names (see [`cromflag_model::all_names`]).
    pub async fn list_containers(&self) -> Result<Vec<String>, StoreError> {
        cromflag_model::all_names(cromflag_model::ALL_NAMES_PAGE, |listing| async move {
            self.list_container_page(&listing).await
        })
        .await
    }

    pub async fn drop_container(&self, name: &str) -> Result<bool, StoreError> {
        let existed = self.fetch_schema(name).await?.is_some();
        let body = serde_json::to_vec(&[name]).expect("JSON");
        let answer = self.call(Method::DELETE, "containers", Some(body)).await?;
        self.forget(name);
        if !answer.status.is_success() {
            return Err(self.refused(&answer, &format!("dropping `{name}`")));
        }
        Ok(existed)
    }

    /// `DELETE containers/{c}/rows` (§2.8) with the keys, encoded as puts
    /// encode them. The WebAPI answers 204 whether or not a key had a row,
    /// so the count is that of the keys sent. A container without a row key
    /// is refused here, as the WebAPI would.
    pub async fn delete_rows(&self, container: &str, keys: Vec<Value>) -> Result<u64, StoreError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let info = self.schema(container).await?;
        let key_type = info.columns[0].column_type;
        if !info.row_key {
            return Err(StoreError::Invalid(format!(
                "container `{container}` has no row key"
            )));
        }
        if let Some(key) = keys.iter().find(|k| k.column_type() != Some(key_type)) {
            return Err(StoreError::Invalid(format!(
                "`{key:?}` is not a {key_type:?} row key of `{container}`"
            )));
        }
        let count = keys.len() as u64;
        let keys: Vec<_> = keys.iter().map(wire::encode_value).collect();
        let body = serde_json::to_vec(&keys).expect("JSON");
        let path = format!("containers/{}/rows", info.name);
        let answer = self.call(Method::DELETE, &path, Some(body)).await?;
        if !answer.status.is_success() {
            return Err(self.refused(&answer, &format!("deleting rows of `{container}`")));
        }
        Ok(count)
    }

    /// Checks and encodes every row first, showing each checked batch to
    /// `checked` (the host keeps what its live streams will be sent); then
    /// writes the time series and then the collections, request after
    /// request (see the module's header).
    pub async fn multi_put(
        &self,
        batches: Vec<(String, Vec<Row>)>,
        mut checked: impl FnMut(&ContainerInfo, &[Row]) + Send,
    ) -> Result<u64, StoreError> {
        let mut encoded = Vec::with_capacity(batches.len());
        let mut written = 0;
        for (container, rows) in batches {
            if rows.is_empty() {
                continue;
            }
            let info = self.schema(&container).await?;
            check_rows(&info, &rows)?;
            written += rows.len() as u64;
            checked(&info, &rows);
            let rows = rows
                .into_iter()
                .enumerate()
                .map(|(r, mut row)| {
                    let size = wire::estimated_size(&row);
                    if size > self.max_request_bytes {
                        return Err(StoreError::Invalid(format!(
                            "row {r} of `{}` is {size} bytes, over griddb_max_request_bytes ({})",
                            info.name, self.max_request_bytes
                        )));
                    }
                    // The WebAPI wants every column, nulls included.
                    row.resize(info.columns.len(), Value::Null);
                    Ok(puts::EncodedRow {
                        json: wire::encode_row(&row),
                        size,
                    })
                })
                .collect::<Result<_, _>>()?;
            encoded.push(puts::Batch {
                container: info.name,
                kind: info.kind,
                rows,
            });
        }
        for phase in puts::phases(encoded, self.max_request_bytes) {
            for request in &phase.requests {
                self.put_request(request).await?;
            }
        }
        Ok(written)
    }

    /// `aggregates` over each of `ranges` of the row key: GridDB's TQL has
    /// no GROUP BY, so each range is its statement with the range as its
    /// WHERE, and every range's aggregations go in the same batches of
    /// `/tql` requests (`MAX_QUERIES` statements each).
    pub async fn aggregate_ranges(
        &self,
        container: &str,
        aggregates: &str,
        ranges: &[KeyRange],
    ) -> Result<RangeAggregates, StoreError> {
        let info = self.schema(container).await?;
        let key = range_key(&info)?;
        let mut plans = Vec::with_capacity(ranges.len());
        for &range in ranges {
            match dialect::plan(&range_statement(aggregates, key, range), &info)? {
                dialect::Plan::Aggregates { aggregates, single } => {
                    plans.push((aggregates, single))
                }
                _ => {
                    return Err(StoreError::Query(
                        "aggregate-ranges takes a SELECT of aggregates only".to_owned(),
                    ))
                }
            }
        }
        let queries = plans
            .iter()
            .flat_map(|(aggregates, _)| aggregates.iter().map(|a| a.query.clone()))
            .collect();
        let mut answers = self.tql(queries).await?.into_iter();
        let mut result = RangeAggregates::default();
        for (aggregates, single) in plans {
            let own: Vec<TqlResult> = answers.by_ref().take(aggregates.len()).collect();
            let row = self.aggregate_row(aggregates, &own, single).await?;
            result.columns = row.columns;
            result.rows.push(row.rows.into_iter().next());
        }
        Ok(result)
    }

    pub async fn query(&self, container: &str, text: &str) -> Result<QueryResult, StoreError> {
        let info = self.schema(container).await?;
        // A column another host added since we looked: look again, once.
        let plan = match dialect::plan(text, &info) {
            Err(StoreError::Query(_)) => match self.fetch_schema(container).await? {
                Some(fresh) if fresh != info => dialect::plan(text, &fresh)?,
                _ => dialect::plan(text, &info)?,
            },
            plan => plan?,
        };
        match plan {
            dialect::Plan::Rows { pages, columns } => {
                self.paged_rows(&info, &pages, columns.as_deref()).await
            }
            dialect::Plan::Function { query } => {
                let answer = self.tql(vec![query]).await?.pop().expect("one answer");
                dialect::rows(answer, None)
            }
            dialect::Plan::Aggregates { aggregates, single } => {
                self.aggregates(aggregates, single).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cromflag_model::ContainerKind;

    #[test]
    fn a_listing_is_one_get_with_its_parameters() {
        let listing = ContainerListing {
            kind: None,
            descending: false,
            offset: 0,
            limit: 10,
        };
        assert_eq!(
            list_path(&listing, 0, 10),
            "containers?limit=10&offset=0&sort=ASC"
        );
        let listing = ContainerListing {
            kind: Some(ContainerKind::TimeSeries),
            descending: true,
            ..listing
        };
        assert_eq!(
            list_path(&listing, 20, 0),
            "containers?limit=0&offset=20&sort=DESC&type=TIME_SERIES"
        );
        let listing = ContainerListing {
            kind: Some(ContainerKind::Collection),
            ..listing
        };
        assert_eq!(
            list_path(&listing, u64::MAX, 5),
            "containers?limit=5&offset=2147483647&sort=DESC&type=COLLECTION"
        );
    }
}
