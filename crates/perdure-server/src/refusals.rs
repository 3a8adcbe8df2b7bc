//! Refusals the framework writes itself become JSON errors like every
//! other refusal: axum's extractor rejections (a path segment that is not
//! UTF-8 once percent-decoded, a body over the payload limit) and 405 for
//! a method a route does not take, which axum answers in plain text or
//! with no body. Their status and headers (`Allow`) are kept; the error
//! kind is the status's reason phrase (`BadRequest`, `MethodNotAllowed`,
//! `PayloadTooLarge`) and the message is axum's text.

use crate::wire;
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The longest framework refusal text carried into the JSON message.
const MAX_TEXT: usize = 4096;

/// Rewrites a non-JSON 4xx or 5xx answer as a JSON error.
pub(crate) async fn as_json(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let reason = status.canonical_reason().unwrap_or("Error");
    let text = axum::body::to_bytes(body, MAX_TEXT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let kind: String = reason.split_whitespace().collect();
    let message = if text.is_empty() {
        reason.to_string()
    } else {
        text
    };
    let mut out = wire::error(status, &kind, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    out
}
