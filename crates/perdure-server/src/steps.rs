//! Perdure's own instance routes beside Durable Functions' API: an
//! instance's history exported as one document, such a document imported,
//! the steps an instance still waits on, and the repair of one of them
//! (who and why recorded; the dashboard's instance page uses the last two).

use crate::api::client_error;
use crate::hub::Hub;
use crate::wire::{error, ApiError};
use crate::{AppState, BASE_PATH};
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use perdure::export::HistoryExport;
use perdure::{FailureDetails, Repair, RepairRequest};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

pub fn routes() -> Router<Arc<AppState>> {
    let p = |s: &str| format!("{BASE_PATH}{s}");
    Router::new()
        .route(&p("/instances/{id}/export"), get(export))
        .route(&p("/instances/{id}/steps"), get(steps))
        .route(&p("/instances/{id}/repair"), post(repair))
        .route(&p("/import"), post(import))
}

fn bad(code: &str, message: impl Into<String>) -> ApiError {
    error(StatusCode::BAD_REQUEST, code, message.into())
}

/// `GET .../instances/{id}/export`: the instance's export document.
async fn export(hub: Hub, Path(id): Path<String>) -> Result<Response, ApiError> {
    let export = hub.client.export_history(&id).await.map_err(client_error)?;
    Ok(Json(export).into_response())
}

/// `POST .../import[?instanceId=ID]`: imports an export document; 201 with
/// the instance id.
async fn import(
    hub: Hub,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| bad("InvalidExport", "the body is not UTF-8 text"))?;
    let export = HistoryExport::from_json(text).map_err(|e| bad("InvalidExport", e.to_string()))?;
    let id = hub
        .client
        .import_history(&export, q.get("instanceId").map(String::as_str))
        .await
        .map_err(client_error)?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

/// `GET .../instances/{id}/steps`: the steps still waiting for a result.
async fn steps(hub: Hub, Path(id): Path<String>) -> Result<Response, ApiError> {
    let steps = hub.client.pending_steps(&id).await.map_err(client_error)?;
    let list: Vec<_> = steps
        .iter()
        .map(|s| {
            json!({
                "stepId": s.step_id,
                "kind": s.step.as_str(),
                "name": s.name,
                "fireAt": s.fire_at,
                "scheduledAt": s.scheduled_at,
            })
        })
        .collect();
    Ok(Json(json!({ "steps": list })).into_response())
}

/// The body of a repair: which step, what to do, who and why.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RepairBody {
    step_id: i64,
    /// `complete`, `fail` or `skipTimer`.
    action: String,
    /// For `complete`: the step's result (any JSON value).
    #[serde(default)]
    result: Option<serde_json::Value>,
    /// For `fail`: the error's type (default `Repaired`) and message.
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    error_message: Option<String>,
    by: String,
    reason: String,
}

/// `POST .../instances/{id}/repair`: 202 once the repair is queued for the
/// instance's next turn; 400 with the reason when it does not fit.
async fn repair(hub: Hub, Path(id): Path<String>, body: Bytes) -> Result<Response, ApiError> {
    let body: RepairBody = serde_json::from_slice(&body)
        .map_err(|e| bad("InvalidRepair", format!("the repair is not valid: {e}")))?;
    let repair = match body.action.as_str() {
        "complete" => Repair::Complete {
            result: body.result.map(|v| v.to_string().into()),
        },
        "fail" => Repair::Fail {
            failure: FailureDetails::new(
                body.error_type.unwrap_or_else(|| "Repaired".into()),
                body.error_message
                    .ok_or_else(|| bad("InvalidRepair", "a `fail` repair needs `errorMessage`"))?,
            )
            .non_retriable(),
        },
        "skipTimer" => Repair::SkipTimer,
        other => {
            return Err(bad(
                "InvalidRepair",
                format!("`action` is `{other}`; expected complete, fail or skipTimer"),
            ))
        }
    };
    hub.client
        .repair(
            &id,
            RepairRequest {
                step_id: body.step_id,
                repair,
                by: body.by,
                reason: body.reason,
            },
        )
        .await
        .map_err(client_error)?;
    Ok(StatusCode::ACCEPTED.into_response())
}
