//! The webhook API's entity routes: signal an entity
//! (`POST /entities/{name}/{key}?op=NAME`), read its state
//! (`GET /entities/{name}/{key}`), list entities (`GET /entities[/{name}]`).

use crate::api::{client_error, continuation, flag, json_body, page_response, page_size};
use crate::body::Body;
use crate::hub::Hub;
use crate::wire::{error, ApiError};
use crate::{AppState, BASE_PATH};
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use perdure::{EntityId, EntityQuery};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

type Params = Query<HashMap<String, String>>;

pub fn routes() -> Router<Arc<AppState>> {
    let p = |s: &str| format!("{BASE_PATH}{s}");
    Router::new()
        .route(&p("/entities"), get(list_all))
        .route(&p("/entities/{name}"), get(list_named))
        .route(&p("/entities/{name}/{key}"), get(read).post(signal))
}

fn entity_id(name: &str, key: &str) -> Result<EntityId, ApiError> {
    EntityId::new(name, key)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "InvalidEntityId", e.to_string()))
}

async fn signal(
    hub: Hub,
    Path((name, key)): Path<(String, String)>,
    Query(q): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = entity_id(&name, &key)?;
    let Some(op) = q.get("op").filter(|o| !o.is_empty()) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "MissingOperation",
            "name the operation with ?op=NAME",
        ));
    };
    let input = json_body(body)?;
    crate::api::traced(&hub.client, &headers)
        .signal_entity(&id, op, input)
        .await
        .map_err(client_error)?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn read(hub: Hub, Path((name, key)): Path<(String, String)>) -> Result<Response, ApiError> {
    let id = entity_id(&name, &key)?;
    match hub
        .client
        .read_entity_state::<Box<serde_json::value::RawValue>>(&id)
        .await
        .map_err(client_error)?
    {
        Some(v) => Ok((StatusCode::OK, Json(v)).into_response()),
        None => Err(error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("entity `{id}` has no state"),
        )),
    }
}

async fn list_all(hub: Hub, q: Params, headers: HeaderMap) -> Result<Response, ApiError> {
    list(hub, None, q, headers).await
}

async fn list_named(
    hub: Hub,
    Path(name): Path<String>,
    q: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    list(hub, Some(name), q, headers).await
}

async fn list(
    hub: Hub,
    name: Option<String>,
    Query(q): Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let top = page_size(&q)?;
    let fetch_state = flag(&q, "fetchState", false)?;
    let query = EntityQuery {
        name,
        key_prefix: None,
        page_size: top,
        continuation: continuation(&headers),
        ..EntityQuery::default()
    };
    let page = hub
        .client
        .list_entities(&query)
        .await
        .map_err(client_error)?;
    let body: Vec<Body> = page
        .entities
        .iter()
        .map(|e| {
            let mut v = Body::object();
            v.insert("entityId", json!({"name": e.id.name, "key": e.id.key}));
            v.insert(
                "lastOperationTime",
                json!(e
                    .last_modified
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            );
            if fetch_state {
                v.insert("state", Body::payload(e.state.as_deref()));
            }
            v
        })
        .collect();
    Ok(page_response(body, page.continuation_token))
}
