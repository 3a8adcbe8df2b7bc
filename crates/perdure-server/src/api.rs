//! The handlers of Durable Functions' webhook API.

use crate::hub::Hub;
use crate::wire::{self, error, ApiError};
use crate::{AppState, BASE_PATH};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use perdure::{ClientError, InstanceQuery, PurgeFilter, RuntimeStatus};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

type Params = Query<HashMap<String, String>>;
type Shared = State<Arc<AppState>>;

pub fn routes() -> Router<Arc<AppState>> {
    let p = |s: &str| format!("{BASE_PATH}{s}");
    Router::new()
        .route(&p("/orchestrators/{name}"), post(start))
        .route(
            &p("/orchestrators/{name}/{instance_id}"),
            post(start_with_id),
        )
        .route(&p("/instances"), get(list).delete(purge_many))
        .route(&p("/instances/{id}"), get(status).delete(purge_one))
        .route(&p("/instances/{id}/raiseEvent/{event}"), post(raise_event))
        .route(&p("/instances/{id}/terminate"), post(terminate))
        .route(&p("/instances/{id}/suspend"), post(suspend))
        .route(&p("/instances/{id}/resume"), post(resume))
        .route(&p("/instances/{id}/rewind"), post(rewind))
        .route(&p("/instances/{id}/restart"), post(restart))
}

pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("no route for {}", uri.path()),
    )
}

pub(crate) fn client_error(e: ClientError) -> ApiError {
    let status = match &e {
        ClientError::InvalidInstanceId(_)
        | ClientError::InvalidName(_)
        | ClientError::InvalidArgument(_)
        | ClientError::Serialization(_) => StatusCode::BAD_REQUEST,
        ClientError::NotFound(_) => StatusCode::NOT_FOUND,
        ClientError::AlreadyRunning { .. } | ClientError::StillRunning { .. } => {
            StatusCode::CONFLICT
        }
        ClientError::AlreadyFinished { .. } => StatusCode::GONE,
        ClientError::NotFailed { status, .. } if status.is_terminal() => StatusCode::GONE,
        ClientError::NotFailed { .. } => StatusCode::BAD_REQUEST,
        ClientError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        ClientError::Timeout(..) => StatusCode::GATEWAY_TIMEOUT,
        ClientError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let kind = format!("{e:?}");
    let kind = kind
        .split(['(', ' ', '{'])
        .next()
        .unwrap_or("Error")
        .to_string();
    error(status, &kind, e.to_string())
}

/// A request body as JSON text, checked and kept as sent (none when the
/// body is empty or only whitespace). The buffer the door read becomes the
/// payload's text without a copy.
pub(crate) fn json_body(body: Bytes) -> Result<perdure::RawJson, ApiError> {
    let text = String::from_utf8(Vec::from(body)).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "BadJson",
            format!("the request body is not UTF-8: {}", e.utf8_error()),
        )
    })?;
    if text.trim().is_empty() {
        return Ok(perdure::RawJson::none());
    }
    perdure::RawJson::parse(text).map_err(|e| match e {
        perdure::ClientError::PayloadTooLarge { .. } => client_error(e),
        e => error(
            StatusCode::BAD_REQUEST,
            "BadJson",
            format!("the request body is not valid JSON: {e}"),
        ),
    })
}

pub(crate) fn flag(
    q: &HashMap<String, String>,
    name: &str,
    default: bool,
) -> Result<bool, ApiError> {
    match q.get(name).map(|v| v.to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if v == "true" || v == "1" => Ok(true),
        Some(v) if v == "false" || v == "0" => Ok(false),
        Some(v) => Err(error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            format!("`{name}` must be true or false, not `{v}`"),
        )),
    }
}

pub(crate) fn seconds(
    q: &HashMap<String, String>,
    name: &str,
) -> Result<Option<Duration>, ApiError> {
    q.get(name)
        .map(|v| {
            v.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                // Checked after rounding to nanoseconds: 86399.9999999999
                // rounds to a whole day.
                .filter(|d| *d < Duration::from_secs(86_400))
                .ok_or_else(|| {
                    error(
                        StatusCode::BAD_REQUEST,
                        "BadParameter",
                        format!("`{name}` must be a number of seconds, not `{v}`"),
                    )
                })
        })
        .transpose()
}

pub(crate) fn timestamp(
    q: &HashMap<String, String>,
    name: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    q.get(name)
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|e| {
                    error(
                        StatusCode::BAD_REQUEST,
                        "BadParameter",
                        format!("`{name}` must be an ISO 8601 time like 2024-01-31T12:00:00Z: {e}"),
                    )
                })
        })
        .transpose()
}

pub(crate) fn statuses(q: &HashMap<String, String>) -> Result<Vec<RuntimeStatus>, ApiError> {
    let Some(list) = q.get("runtimeStatus") else {
        return Ok(Vec::new());
    };
    list.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse::<RuntimeStatus>()
                .map_err(|e| error(StatusCode::BAD_REQUEST, "BadParameter", e.to_string()))
        })
        .collect()
}

fn reason(q: &HashMap<String, String>) -> Value {
    q.get("reason")
        .map_or(Value::Null, |r| Value::String(r.clone()))
}

fn accepted_with_urls(state: &AppState, hub: &Hub, headers: &HeaderMap, id: &str) -> Response {
    let base = wire::base_url(headers);
    let body = wire::management_urls(&base, id, hub.param(), state.config.api_key.as_deref());
    let mut resp = (StatusCode::ACCEPTED, Json(body.clone())).into_response();
    if let Some(loc) = body["statusQueryGetUri"]
        .as_str()
        .and_then(|s| HeaderValue::from_str(s).ok())
    {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
    resp
}

async fn start(
    state: Shared,
    hub: Hub,
    Path(name): Path<String>,
    q: Params,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    start_instance(state, hub, name, None, q, headers, body).await
}

async fn start_with_id(
    state: Shared,
    hub: Hub,
    Path((name, id)): Path<(String, String)>,
    q: Params,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    start_instance(state, hub, name, Some(id), q, headers, body).await
}

async fn start_instance(
    State(state): Shared,
    hub: Hub,
    name: String,
    id: Option<String>,
    Query(q): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let input = json_body(body)?;
    perdure_core::validate_name(perdure_core::NameKind::Orchestration, &name)
        .map_err(|e| client_error(e.into()))?;
    if let Some(known) = &state.config.known_orchestrators {
        if !known.contains(&name.to_lowercase()) {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "UnknownOrchestrator",
                format!("no orchestrator named `{name}` is registered"),
            ));
        }
    }
    let timeout = seconds(&q, "timeout")?;
    // Durable Functions polls every `pollingInterval`; the store's watch
    // wakes this wait instead, so the parameter is checked and not needed.
    seconds(&q, "pollingInterval")?;
    let id = traced(&hub.client, &headers)
        .start_new(&name, id.as_deref(), input)
        .await
        .map_err(client_error)?;
    // With every wait slot taken, answer at once, as when the wait ends:
    // the client polls the status URL it gets.
    if let Some(_slot) = timeout.and_then(|_| state.config.waits.try_start()) {
        match hub
            .client
            .wait_until(&id, timeout, RuntimeStatus::is_terminal)
            .await
        {
            Ok(Some(st)) => {
                return Ok((StatusCode::OK, Json(wire::output(&st))).into_response());
            }
            Ok(None) | Err(ClientError::Timeout(..)) => {}
            Err(e) => return Err(client_error(e)),
        }
    }
    Ok(accepted_with_urls(&state, &hub, &headers, &id))
}

async fn status(
    State(state): Shared,
    hub: Hub,
    Path(id): Path<String>,
    Query(q): Params,
    headers: HeaderMap,
    access: Option<axum::Extension<crate::guard::Access>>,
) -> Result<Response, ApiError> {
    let show_history = flag(&q, "showHistory", false)?;
    let show_output = flag(&q, "showHistoryOutput", false)?;
    let show_input = flag(&q, "showInput", true)?;
    let fail_500 = flag(&q, "returnInternalServerErrorOnFailure", false)?;
    let Some(st) = hub
        .client
        .get_status(&id, show_history)
        .await
        .map_err(client_error)?
    else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("instance `{id}` was not found"),
        ));
    };
    let body = wire::status(&st, show_input, show_history, show_output);
    let code = match st.runtime_status {
        RuntimeStatus::Failed if fail_500 => StatusCode::INTERNAL_SERVER_ERROR,
        s if s.is_terminal() => StatusCode::OK,
        _ => StatusCode::ACCEPTED,
    };
    let mut resp = (code, Json(body)).into_response();
    if code == StatusCode::ACCEPTED {
        let key = crate::guard::Access::key(access.as_deref(), &state.config);
        let url = wire::management_urls(&wire::base_url(&headers), &id, hub.param(), key);
        if let Some(loc) = url["statusQueryGetUri"]
            .as_str()
            .and_then(|s| HeaderValue::from_str(s).ok())
        {
            resp.headers_mut().insert(header::LOCATION, loc);
        }
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    Ok(resp)
}

pub(crate) const CONTINUATION: &str = "x-ms-continuation-token";

/// The `top` parameter of a list: 1 to 10000, 100 when absent.
pub(crate) fn page_size(q: &HashMap<String, String>) -> Result<usize, ApiError> {
    match q.get("top") {
        None => Ok(100),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| {
                error(
                    StatusCode::BAD_REQUEST,
                    "BadParameter",
                    format!("`top` must be a number from 1 to 10000, not `{v}`"),
                )
            }),
    }
}

/// The continuation token a list request carries, if any.
pub(crate) fn continuation(headers: &HeaderMap) -> Option<String> {
    headers
        .get(CONTINUATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// A page of a list: 200 with the items, the next token as a header.
pub(crate) fn page_response<T: serde::Serialize>(items: Vec<T>, next: Option<String>) -> Response {
    let mut resp = (StatusCode::OK, Json(items)).into_response();
    if let Some(token) = next.and_then(|t| HeaderValue::from_str(&t).ok()) {
        resp.headers_mut().insert(CONTINUATION, token);
    }
    resp
}

async fn list(hub: Hub, Query(q): Params, headers: HeaderMap) -> Result<Response, ApiError> {
    let top = page_size(&q)?;
    let query = InstanceQuery {
        statuses: statuses(&q)?,
        created_from: timestamp(&q, "createdTimeFrom")?,
        created_to: timestamp(&q, "createdTimeTo")?,
        instance_id_prefix: q.get("instanceIdPrefix").cloned(),
        // A Perdure extension (Durable Functions' API has no name filter).
        name: q.get("name").filter(|n| !n.is_empty()).cloned(),
        parent_instance_id: None,
        page_size: top,
        continuation: continuation(&headers),
    };
    let show_input = flag(&q, "showInput", false)?;
    let page = hub
        .client
        .list_instances(&query, show_input)
        .await
        .map_err(client_error)?;
    let body: Vec<crate::body::Body> = page
        .instances
        .iter()
        .map(|s| wire::status(s, show_input, false, false))
        .collect();
    Ok(page_response(body, page.continuation_token))
}

async fn purge_one(hub: Hub, Path(id): Path<String>) -> Result<Response, ApiError> {
    match hub
        .client
        .purge_instance_history(&id)
        .await
        .map_err(client_error)?
    {
        0 => Err(error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("instance `{id}` was not found"),
        )),
        n => Ok((StatusCode::OK, Json(json!({ "instancesDeleted": n }))).into_response()),
    }
}

async fn purge_many(hub: Hub, Query(q): Params) -> Result<Response, ApiError> {
    let Some(from) = timestamp(&q, "createdTimeFrom")? else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "`createdTimeFrom` is required to purge by filter",
        ));
    };
    let filter = PurgeFilter {
        created_from: Some(from),
        created_to: timestamp(&q, "createdTimeTo")?,
        statuses: statuses(&q)?,
    };
    match hub
        .client
        .purge_instances(&filter)
        .await
        .map_err(client_error)?
    {
        0 => Err(error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "no finished instance matched the filter",
        )),
        n => Ok((StatusCode::OK, Json(json!({ "instancesDeleted": n }))).into_response()),
    }
}

/// The client, continuing the request's W3C trace context (`traceparent`,
/// `tracestate`) when it carries a valid one.
pub(crate) fn traced(client: &perdure::Client, headers: &HeaderMap) -> perdure::Client {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let parent =
        text("traceparent").and_then(|tp| perdure::TraceContext::from_w3c(tp, text("tracestate")));
    match parent {
        Some(p) => client.with_trace_parent(p),
        None => client.clone(),
    }
}

fn accepted() -> Response {
    StatusCode::ACCEPTED.into_response()
}

async fn raise_event(
    hub: Hub,
    Path((id, event)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let data = json_body(body)?;
    traced(&hub.client, &headers)
        .raise_event(&id, &event, data)
        .await
        .map_err(client_error)?;
    Ok(accepted())
}

async fn terminate(
    hub: Hub,
    Path(id): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let recursive = flag(&q, "recursive", false)?;
    hub.client
        .terminate_with_options(&id, reason(&q), recursive)
        .await
        .map_err(client_error)?;
    Ok(accepted())
}

async fn suspend(hub: Hub, Path(id): Path<String>, Query(q): Params) -> Result<Response, ApiError> {
    hub.client
        .suspend(&id, reason(&q))
        .await
        .map_err(client_error)?;
    Ok(accepted())
}

async fn resume(hub: Hub, Path(id): Path<String>, Query(q): Params) -> Result<Response, ApiError> {
    hub.client
        .resume(&id, reason(&q))
        .await
        .map_err(client_error)?;
    Ok(accepted())
}

async fn rewind(hub: Hub, Path(id): Path<String>, Query(q): Params) -> Result<Response, ApiError> {
    hub.client
        .rewind(&id, perdure::PlainText(q.get("reason").cloned()))
        .await
        .map_err(client_error)?;
    Ok(accepted())
}

async fn restart(
    State(state): Shared,
    hub: Hub,
    Path(id): Path<String>,
    Query(q): Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let new_id = flag(&q, "restartWithNewInstanceId", false)?;
    let id = traced(&hub.client, &headers)
        .restart(&id, new_id)
        .await
        .map_err(|e| match e {
            ClientError::StillRunning { .. } => {
                let (_, body) = client_error(e);
                (StatusCode::BAD_REQUEST, body)
            }
            other => client_error(other),
        })?;
    Ok(accepted_with_urls(&state, &hub, &headers, &id))
}
