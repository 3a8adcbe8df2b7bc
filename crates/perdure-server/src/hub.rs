//! The task hub an HTTP request names with the `taskHub` query parameter
//! (none, or empty, is the default hub), as an extractor: the hub's client
//! from the server's [`perdure::TaskHubs`], shared with the gRPC door.

use crate::wire::{error, ApiError};
use crate::AppState;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::StatusCode;
use perdure::{Client, HubError};
use std::collections::HashMap;
use std::sync::Arc;

/// The query parameter that names a task hub (Durable Functions' name).
pub const TASK_HUB_PARAM: &str = "taskHub";

/// The hub a request is for: its name and its client.
pub(crate) struct Hub {
    pub name: String,
    pub client: Client,
}

impl Hub {
    /// The hub's name for management URLs: `None` for the default hub.
    pub fn param(&self) -> Option<&str> {
        (self.name != perdure::DEFAULT_HUB).then_some(self.name.as_str())
    }
}

/// The `taskHub` value of a request's query (percent-decoded), or empty.
fn named(uri: &axum::http::Uri) -> Result<String, ApiError> {
    let Query(q) = Query::<HashMap<String, String>>::try_from_uri(uri).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            format!("the query string cannot be read: {e}"),
        )
    })?;
    Ok(q.into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(TASK_HUB_PARAM))
        .map(|(_, v)| v)
        .unwrap_or_default())
}

pub(crate) fn hub_error(e: HubError) -> ApiError {
    let (status, kind) = match &e {
        HubError::BadName { .. } => (StatusCode::BAD_REQUEST, "InvalidTaskHub"),
        HubError::SingleHub(_) => (StatusCode::NOT_FOUND, "TaskHubNotFound"),
        HubError::DefaultHub => (StatusCode::BAD_REQUEST, "InvalidTaskHub"),
        HubError::Store { .. } => (StatusCode::SERVICE_UNAVAILABLE, "StoreUnavailable"),
    };
    error(status, kind, e.to_string())
}

impl FromRequestParts<Arc<AppState>> for Hub {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let raw = named(&parts.uri)?;
        let (name, client) = state.hubs.client(&raw).await.map_err(hub_error)?;
        Ok(Hub { name, client })
    }
}
