//! The `griddb` backend: the store interface over a GridDB cluster (or GridDB
//! Cloud) through its WebAPI, so that no component changes with the store.
//!
//! `client` makes the calls (pooling, auth, deadlines, retries); `dialect`
//! turns our TQL into what GridDB runs and its answers back into ours. This
//! file maps each `Backend` method onto WebAPI calls and keeps the schemas it
//! has seen, so that a put needs no extra round trip to learn its columns.
//!
//! What GridDB offers, and so what this backend promises:
//! - A put is one WebAPI request per `griddb_max_request_bytes` of rows. One
//!   request is written whole or not at all; a batch split over several is
//!   not atomic, but every row put is an upsert on its key, so a failed insert
//!   (answered 503) that the client retries ends up stored exactly once.
//! - `multi-put` writes its containers in order, so an insert's rows are in
//!   before its `devices` and `messages` entries.
//! - While the WebAPI is unreachable or failing, every call fails with
//!   `StoreError::Backend` after its retries: HTTP inserts answer 503 and MQTT
//!   messages stay unacked. Nothing is acknowledged that GridDB did not take.

mod client;
mod dialect;

use super::{
    added_columns, check_rows, Backend, Committed, ContainerInfo, ContainerKind, QueryResult, Row,
    StoreError,
};
use crate::manifest::Variables;
use crate::webapi::wire::{self, ContainerDto, ContainerList, ContainerRows, TqlQuery, TqlResult};
use anyhow::Context;
use async_trait::async_trait;
use client::{Answer, WebApiClient};
use cromflag_logic::model::is_valid_container_name;
use http::{Method, StatusCode};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::broadcast;

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
}

impl GriddbSettings {
    pub fn from_variables(variables: &Variables) -> anyhow::Result<GriddbSettings> {
        let get = |name: &str, default: &str| variables.get(name).unwrap_or(default).to_owned();
        let number = |name: &str, default: &str| -> anyhow::Result<u64> {
            let text = get(name, default);
            text.parse()
                .with_context(|| format!("variable {name} = `{text}` is not a whole number"))
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
            )?)?,
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
            .finish_non_exhaustive()
    }
}

pub struct GriddbStore {
    client: WebApiClient,
    /// Containers as last seen, by lower-cased name (names are case-insensitive).
    schemas: RwLock<HashMap<String, ContainerInfo>>,
    max_request_bytes: usize,
    /// Time-series rows this host wrote, once GridDB took them (live streams
    /// see this host's writes; other writers to the cluster are not seen).
    commits: broadcast::Sender<Arc<Committed>>,
}

/// Batches kept for live streams before a slow listener is dropped.
const COMMITS_BUFFER: usize = 1024;

impl GriddbStore {
    /// Checks the connection once. Wrong credentials, an unknown cluster or a
    /// URL that is no WebAPI stop here; an unreachable WebAPI is only logged, so
    /// that the host comes up and answers 503 until GridDB does.
    pub async fn connect(settings: &GriddbSettings) -> anyhow::Result<GriddbStore> {
        let store = GriddbStore {
            client: WebApiClient::new(settings)?,
            schemas: RwLock::new(HashMap::new()),
            max_request_bytes: settings.max_request_bytes,
            commits: broadcast::channel(COMMITS_BUFFER).0,
        };
        match store
            .client
            .call(Method::GET, "checkConnection", None)
            .await
        {
            Ok(answer) if answer.status.is_success() => {
                tracing::info!(
                    webapi = store.client.base(),
                    user = store.client.user(),
                    "store: GridDB"
                );
            }
            Ok(answer) => anyhow::bail!("{}", store.refused(&answer, "checkConnection")),
            Err(e) => {
                tracing::warn!(error = %e, "store: GridDB is unreachable for now; writes answer 503 until it is back");
            }
        }
        Ok(store)
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
            StatusCode::NOT_FOUND => StoreError::NotFound(format!("{what}: {message}")),
            StatusCode::CONFLICT => StoreError::SchemaConflict(format!("{what}: {message}")),
            StatusCode::BAD_REQUEST => StoreError::Invalid(format!("{what}: {message}")),
            status => StoreError::Backend(format!(
                "GridDB WebAPI at {}: {what} answered {status}: {message}",
                self.client.base()
            )),
        }
    }

    async fn call_json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        what: &str,
    ) -> Result<T, StoreError> {
        let answer = self.client.call(method, path, body).await?;
        if !answer.status.is_success() {
            return Err(self.refused(&answer, what));
        }
        serde_json::from_slice(&answer.body).map_err(|e| {
            StoreError::Backend(format!(
                "{what}: the WebAPI's answer is not what it documents: {e}"
            ))
        })
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
            .client
            .call(Method::GET, &format!("containers/{name}/info"), None)
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
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

    /// Appends columns with GridDB's SQL (`ALTER TABLE … ADD COLUMN`), the one
    /// way the WebAPI can change a schema.
    async fn add_columns(
        &self,
        info: &ContainerInfo,
        columns: &[super::Column],
    ) -> Result<(), StoreError> {
        let statements: Vec<serde_json::Value> = columns
            .iter()
            .map(|c| {
                serde_json::json!({"stmt": format!(
                    "ALTER TABLE {} ADD COLUMN {} {}",
                    cromflag_logic::tql_name(&info.name),
                    cromflag_logic::tql_name(&c.name),
                    c.column_type.name()
                )})
            })
            .collect();
        let what = format!("adding columns to `{}`", info.name);
        let body = serde_json::to_vec(&statements).expect("JSON");
        let answers: Vec<serde_json::Value> = self
            .call_json(Method::POST, "sql/ddl", Some(body), &what)
            .await?;
        for answer in answers {
            if answer["status"] != 1 {
                return Err(StoreError::SchemaConflict(format!(
                    "{what}: {}",
                    answer["message"].as_str().unwrap_or("refused")
                )));
            }
        }
        Ok(())
    }

    /// Runs statements in `/tql` requests of at most `MAX_QUERIES`, answers in order.
    async fn tql(&self, queries: Vec<TqlQuery>) -> Result<Vec<TqlResult>, StoreError> {
        let mut answers = Vec::with_capacity(queries.len());
        for chunk in queries.chunks(wire::MAX_QUERIES) {
            let body = serde_json::to_vec(chunk).expect("JSON");
            let answer = self.client.call(Method::POST, "tql", Some(body)).await?;
            match answer.status {
                status if status.is_success() => {
                    let part: Vec<TqlResult> =
                        serde_json::from_slice(&answer.body).map_err(|e| {
                            StoreError::Backend(format!(
                                "tql: the WebAPI's answer is not what it documents: {e}"
                            ))
                        })?;
                    answers.extend(part);
                }
                StatusCode::BAD_REQUEST => {
                    let message = answer.message();
                    return Err(StoreError::Query(if message.starts_with("TQL") {
                        message
                    } else {
                        format!("TQL: {message}")
                    }));
                }
                StatusCode::NOT_FOUND => {
                    chunk.iter().for_each(|q| self.forget(&q.name));
                    return Err(self.refused(&answer, &format!("container `{}`", chunk[0].name)));
                }
                _ => return Err(self.refused(&answer, "tql")),
            }
        }
        if answers.len() != queries.len() {
            return Err(StoreError::Backend(format!(
                "tql: {} statements asked, {} answered",
                queries.len(),
                answers.len()
            )));
        }
        Ok(answers)
    }

    /// Sends one multi-container put.
    async fn put_request(&self, request: &[ContainerRows]) -> Result<(), StoreError> {
        let body = serde_json::to_vec(request).expect("JSON");
        let answer = self
            .client
            .call(Method::PUT, "containers/rows", Some(body))
            .await?;
        if !answer.status.is_success() {
            if answer.status == StatusCode::NOT_FOUND {
                request.iter().for_each(|c| self.forget(&c.container_name));
            }
            return Err(self.refused(&answer, "put rows"));
        }
        Ok(())
    }
}

#[async_trait]
impl Backend for GriddbStore {
    async fn put_container(&self, info: ContainerInfo) -> Result<ContainerInfo, StoreError> {
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
                let body = serde_json::to_vec(&ContainerDto::describe(&info)).expect("JSON");
                let answer = self
                    .client
                    .call(Method::POST, "containers", Some(body))
                    .await?;
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

    async fn get_container(&self, name: &str) -> Result<Option<ContainerInfo>, StoreError> {
        self.fetch_schema(name).await
    }

    async fn list_containers(&self) -> Result<Vec<String>, StoreError> {
        let mut names = Vec::new();
        loop {
            let path = format!(
                "containers?limit={}&offset={}&sort=ASC",
                wire::MAX_LIMIT,
                names.len()
            );
            let page: ContainerList = self
                .call_json(Method::GET, &path, None, "listing containers")
                .await?;
            let done =
                page.names.is_empty() || names.len() + page.names.len() >= page.total as usize;
            names.extend(page.names);
            if done {
                return Ok(names);
            }
        }
    }

    async fn drop_container(&self, name: &str) -> Result<bool, StoreError> {
        let existed = self.fetch_schema(name).await?.is_some();
        let body = serde_json::to_vec(&[name]).expect("JSON");
        let answer = self
            .client
            .call(Method::DELETE, "containers", Some(body))
            .await?;
        self.forget(name);
        if !answer.status.is_success() {
            return Err(self.refused(&answer, &format!("dropping `{name}`")));
        }
        Ok(existed)
    }

    async fn put_rows(&self, container: &str, rows: Vec<Row>) -> Result<u64, StoreError> {
        self.multi_put(vec![(container.to_owned(), rows)]).await
    }

    /// Checks and encodes every row first, then sends them in order, in as
    /// few requests under `max_request_bytes` as they fit.
    async fn multi_put(&self, batches: Vec<(String, Vec<Row>)>) -> Result<u64, StoreError> {
        let mut requests: Vec<Vec<ContainerRows>> = vec![Vec::new()];
        let mut size = 0;
        let mut written = 0;
        let mut committed = Vec::new();
        for (container, rows) in batches {
            if rows.is_empty() {
                continue;
            }
            let info = self.schema(&container).await?;
            check_rows(&info, &rows)?;
            written += rows.len() as u64;
            if info.kind == ContainerKind::TimeSeries && self.commits.receiver_count() > 0 {
                committed.push(Committed {
                    container: info.name.clone(),
                    columns: info.columns.clone(),
                    rows: rows.clone(),
                });
            }
            for (r, mut row) in rows.into_iter().enumerate() {
                let row_size = wire::estimated_size(&row);
                if row_size > self.max_request_bytes {
                    return Err(StoreError::Invalid(format!(
                        "row {r} of `{}` is {row_size} bytes, over griddb_max_request_bytes ({})",
                        info.name, self.max_request_bytes
                    )));
                }
                if size + row_size > self.max_request_bytes {
                    requests.push(Vec::new());
                    size = 0;
                }
                size += row_size;
                // The WebAPI wants every column, nulls included.
                row.resize(info.columns.len(), super::Value::Null);
                let request = requests.last_mut().expect("never empty");
                match request.last_mut() {
                    Some(last) if last.container_name == info.name => {
                        last.rows.push(wire::encode_row(&row));
                    }
                    _ => request.push(ContainerRows {
                        container_name: info.name.clone(),
                        columns: None,
                        rows: vec![wire::encode_row(&row)],
                    }),
                }
            }
        }
        for request in requests.iter().filter(|r| !r.is_empty()) {
            self.put_request(request).await?;
        }
        for batch in committed {
            // No listener left is not an error.
            let _ = self.commits.send(Arc::new(batch));
        }
        Ok(written)
    }

    fn commits(&self) -> Option<broadcast::Receiver<Arc<Committed>>> {
        Some(self.commits.subscribe())
    }

    async fn query(&self, container: &str, text: &str) -> Result<QueryResult, StoreError> {
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
            dialect::Plan::Rows { query, columns } => {
                let answer = self.tql(vec![query]).await?.pop().expect("one answer");
                dialect::rows(answer, columns.as_deref())
            }
            dialect::Plan::Aggregates {
                queries,
                columns,
                single,
            } => {
                let answers = self.tql(queries).await?;
                dialect::aggregates(&answers, columns, single)
            }
        }
    }
}
