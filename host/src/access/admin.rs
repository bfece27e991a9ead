//! The admin API of credentials, under `/admin/devices`, `/admin/readers` and
//! `/admin/mosquitto`. The HTTP trigger serves it (after the admin or control
//! token is checked); `cromflag devices` calls the very same `handle`, in
//! process when it can open the store, or over HTTP through the running host.
//! No route reads a body: everything is in the path and query.
//!
//! | method and path                        | answer                              |
//! |----------------------------------------|-------------------------------------|
//! | GET    /admin/devices                  | `{"devices": [subject]}`            |
//! | POST   /admin/devices/<id>             | 201 `{kind,id,key,token}` (add)     |
//! | GET    /admin/devices/<id>             | subject: keys, states (show)        |
//! | POST   /admin/devices/<id>/rotate      | 201 a new token; at most two live   |
//! | POST   /admin/devices/<id>/revoke[?key=K] | `{"revoked": [key]}`             |
//! | DELETE /admin/devices/<id>             | `{"removed": id}`                   |
//! | the same under /admin/readers/<name>, whose POST takes `?device=D` (repeated; none: every device) and has no rotate |
//! | GET    /admin/mosquitto                | `{passwd, acl, skipped}`            |

use super::credentials::{Credentials, Refused};
use super::mosquitto;
use super::token::TokenKind;
use crate::http_io::QueryParams;
use crate::manifest::App;
use cromflag_logic::device::from_path_segment;
use http::{Method, StatusCode};
use serde_json::{json, Value};

/// Answers one admin call: its status and JSON body.
pub async fn handle(
    credentials: &Credentials,
    app: &App,
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> (StatusCode, Value) {
    match route(credentials, app, method, path, query).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::error!(error = %e, "admin call failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store unavailable",
                json!(e.to_string()),
            )
        }
    }
}

async fn route(
    credentials: &Credentials,
    app: &App,
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> anyhow::Result<(StatusCode, Value)> {
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(|s| from_path_segment(s).unwrap_or_else(|_| s.to_owned()))
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let params = QueryParams::parse(query);
    let param = |name: &str| params.get(name);
    let kind_of = |collection: &str| match collection {
        "devices" => Some(TokenKind::Device),
        "readers" => Some(TokenKind::Reader),
        _ => None,
    };
    let answer = match (method, &segments[..]) {
        (&Method::GET, ["admin", "mosquitto"]) => {
            let hashes = credentials.mosquitto_hashes().await?;
            (
                StatusCode::OK,
                serde_json::to_value(mosquitto::export(&hashes, app))?,
            )
        }
        (&Method::GET, ["admin", collection]) if kind_of(collection).is_some() => {
            let kind = kind_of(collection).expect("checked");
            let subjects = credentials.list(kind).await?;
            (StatusCode::OK, json!({ *collection: subjects }))
        }
        (method, ["admin", collection, id, action @ ..]) if kind_of(collection).is_some() => {
            let kind = kind_of(collection).expect("checked");
            match (method, kind, action) {
                (&Method::GET, _, []) => match credentials.show(kind, id).await? {
                    Some(subject) => (StatusCode::OK, serde_json::to_value(subject)?),
                    None => refused(Refused::NotFound(format!("no {} `{id}`", kind.name()))),
                },
                (&Method::POST, TokenKind::Device, []) => {
                    issued(credentials.add_device(id).await?)?
                }
                (&Method::POST, TokenKind::Reader, []) => {
                    let devices: Vec<String> = params.all("device").map(str::to_owned).collect();
                    issued(credentials.add_reader(id, &devices).await?)?
                }
                (&Method::POST, TokenKind::Device, ["rotate"]) => {
                    issued(credentials.rotate(id).await?)?
                }
                (&Method::POST, _, ["revoke"]) => {
                    match credentials.revoke(kind, id, param("key")).await? {
                        Ok(keys) => (StatusCode::OK, json!({ "revoked": keys })),
                        Err(why) => refused(why),
                    }
                }
                (&Method::DELETE, _, []) => match credentials.remove(kind, id).await? {
                    Ok(()) => (StatusCode::OK, json!({ "removed": id })),
                    Err(why) => refused(why),
                },
                _ => not_found(path),
            }
        }
        _ => not_found(path),
    };
    Ok(answer)
}

fn issued(
    result: Result<super::credentials::Issued, Refused>,
) -> anyhow::Result<(StatusCode, Value)> {
    Ok(match result {
        Ok(issued) => (StatusCode::CREATED, serde_json::to_value(issued)?),
        Err(why) => refused(why),
    })
}

fn refused(why: Refused) -> (StatusCode, Value) {
    let (status, message) = match &why {
        Refused::NotFound(_) => (StatusCode::NOT_FOUND, "not found"),
        Refused::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        Refused::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid id"),
    };
    error(status, message, json!(why.to_string()))
}

fn not_found(path: &str) -> (StatusCode, Value) {
    error(
        StatusCode::NOT_FOUND,
        "no such admin route",
        json!({ "path": path }),
    )
}

fn error(status: StatusCode, message: &str, detail: Value) -> (StatusCode, Value) {
    (status, json!({ "error": message, "detail": detail }))
}
