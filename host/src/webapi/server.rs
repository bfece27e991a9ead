//! `cromflag up --webapi ADDR`: the WebAPI served from a `Backend`.

use crate::store::Backend;
use super::wire;
use crate::manifest::Variables;
use anyhow::{Context, Result};
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
    let _ = (listener, backend, settings);
    todo!("the WebAPI server")
}
