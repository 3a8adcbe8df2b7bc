//! The parsing surface the fuzz targets (`crates/perdure-fuzz`) drive: the
//! HTTP door's parsers and the gRPC worker conversions that are private to
//! their handlers, exposed unchanged with their refusals reduced to the
//! status code. Not an API: hidden from the docs and free to change with
//! the fuzz targets.

use crate::wire::ApiError;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use std::collections::HashMap;
use std::time::Duration;

/// A request's query parameters as the handlers receive them.
pub type Params = HashMap<String, String>;

fn code<T>(r: Result<T, ApiError>) -> Result<T, StatusCode> {
    r.map_err(|(status, _)| status)
}

/// A query string read as axum's `Query<HashMap<String, String>>` reads it
/// (percent-decoded; of repeated names, the last wins).
pub fn query(raw: &[u8]) -> Params {
    form_urlencoded::parse(raw).into_owned().collect()
}

/// A true/false query parameter (`showHistory`, `recursive`, ...).
pub fn flag(q: &Params, name: &str, default: bool) -> Result<bool, StatusCode> {
    code(crate::api::flag(q, name, default))
}

/// A number of seconds (`timeout`, `pollingInterval`).
pub fn seconds(q: &Params, name: &str) -> Result<Option<Duration>, StatusCode> {
    code(crate::api::seconds(q, name))
}

/// An ISO 8601 time (`createdTimeFrom`, `createdTimeTo`).
pub fn timestamp(
    q: &Params,
    name: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, StatusCode> {
    code(crate::api::timestamp(q, name))
}

/// The `runtimeStatus` list.
pub fn statuses(q: &Params) -> Result<Vec<perdure::RuntimeStatus>, StatusCode> {
    code(crate::api::statuses(q))
}

/// The `top` page size.
pub fn page_size(q: &Params) -> Result<usize, StatusCode> {
    code(crate::api::page_size(q))
}

/// The continuation token of a list request whose
/// `x-ms-continuation-token` header holds `value`.
pub fn continuation(value: &[u8]) -> Option<String> {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(value) {
        headers.insert(crate::api::CONTINUATION, v);
    }
    crate::api::continuation(&headers)
}

/// A request body as the handlers take it: JSON text kept as sent, or none.
pub fn json_body(body: &[u8]) -> Result<Option<String>, StatusCode> {
    let bytes = axum::body::Bytes::copy_from_slice(body);
    code(crate::api::json_body(bytes)).map(|raw| raw.as_str().map(str::to_string))
}

/// Whether a keyless server answers a request for the `Host` `authority`.
pub fn is_loopback_authority(authority: &str) -> bool {
    crate::guard::is_loopback_authority(authority)
}

/// The messages an entity batch's actions send (signals and orchestration
/// starts), as a remote worker's `EntityBatchResult` carries them.
pub fn entity_actions(
    actions: &[crate::grpc::proto::OperationAction],
    now: perdure_core::Timestamp,
) -> Result<Vec<perdure_store::InstanceMessage>, tonic::Status> {
    crate::grpc::workers::entity_actions(actions, now)
}
