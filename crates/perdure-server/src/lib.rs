//! `perdure-server` owns Perdure's network faces: Durable Functions' HTTP
//! management API under `/runtime/webhooks/durabletask/` (its paths, query
//! parameters, JSON fields, status codes and headers), its OpenAPI document,
//! Prometheus metrics at `/metrics`, the web dashboard at `/`, and what the
//! door refuses (`guard`: forged origins, non-JSON bodies, missing keys;
//! `refusal`: every refusal as JSON), and what one client may hold of it
//! (`limits`, `conn`: timeouts and connection caps for both doors,
//! `intake`: request bodies read once, within a memory budget). It
//! converts between wire shapes and the Rust client by hand.
//!
//! Architecture invariant: only this crate knows HTTP; everything it does
//! goes through [`perdure::Client`], so instances started here are the same
//! instances the Rust client and workers see.

mod api;
pub mod body;
pub mod conn;
mod dashboard;
mod entities;
#[doc(hidden)]
pub mod fuzzing;
pub mod grpc;
mod guard;
mod hub;
pub(crate) mod intake;
pub mod limits;
mod openapi;
mod refusal;
mod steps;
pub mod telemetry;
pub mod wire;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use perdure::{Client, TaskHubs};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

/// The API's base path.
pub const BASE_PATH: &str = "/runtime/webhooks/durabletask";

/// How the HTTP API behaves.
#[derive(Clone, Debug, Default)]
pub struct ServerConfig {
    /// Required on every management request when set (the `code` query
    /// parameter or `Authorization: Bearer KEY`).
    pub api_key: Option<String>,
    /// A second key that may only read (GET and HEAD: the dashboard's
    /// views, status, lists, metrics scrapes), beside `api_key`. Not
    /// accepted by the gRPC door.
    pub read_key: Option<String>,
    /// Orchestrator names this process can run; starting another name is
    /// refused with 400. `None` when workers live elsewhere.
    pub known_orchestrators: Option<HashSet<String>>,
    /// Timeouts, connection caps and memory bounds (both doors).
    pub limits: Limits,
    /// The long-poll waits in progress; give both doors the same one.
    pub waits: Waits,
}

pub use intake::MAX_BODY_BYTES;
pub use limits::{Limits, Waits};

pub(crate) struct AppState {
    /// The hubs served: requests name theirs with `taskHub`.
    pub hubs: Arc<TaskHubs>,
    pub config: ServerConfig,
    /// Request bodies held in memory, over all requests.
    pub body_budget: intake::BodyBudget,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("refusing to listen on {0} without an API key: set --api-key or PERDURE_API_KEY (loopback addresses need none)")]
    KeyRequired(SocketAddr),
    #[error("a read-only key needs an API key beside it (--api-key)")]
    ReadKeyWithoutKey,
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("HTTP server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The HTTP API as an axum router, serving `client`'s store as the only
/// (default) task hub.
pub fn router(client: Client, config: ServerConfig) -> Router {
    router_with_hubs(Arc::new(TaskHubs::single(client)), config)
}

/// The HTTP API serving `hubs`: a request names its hub with the
/// `taskHub` query parameter (none is the default hub).
pub fn router_with_hubs(hubs: Arc<TaskHubs>, config: ServerConfig) -> Router {
    let state = Arc::new(AppState {
        body_budget: intake::BodyBudget::new(config.limits.max_body_bytes_in_flight),
        hubs,
        config,
    });
    api::routes()
        .merge(entities::routes())
        .merge(steps::routes())
        .merge(dashboard::page())
        .route("/openapi.json", axum::routing::get(openapi::document))
        .route("/metrics", axum::routing::get(metrics))
        .merge(dashboard::assets())
        .fallback(api::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            intake::read_body,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::check,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            refusal::as_json,
        ))
        .with_state(state)
}

/// `GET /metrics`: the process's metrics and the store's queues, in the text
/// format Prometheus scrapes.
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    match perdure::metrics::render(state.hubs.default_client().store().as_ref()).await {
        Ok(text) => (
            [(header::CONTENT_TYPE, perdure::metrics::CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Err(e) => wire::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "StoreUnavailable",
            format!("cannot read the store's queues: {e}"),
        )
        .into_response(),
    }
}

/// Serves the API on `addr` until `shutdown` resolves. Addresses other than
/// loopback need an API key.
pub async fn serve(
    addr: SocketAddr,
    client: Client,
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    if !addr.ip().is_loopback() && config.api_key.is_none() {
        return Err(ServeError::KeyRequired(addr));
    }
    if config.read_key.is_some() && config.api_key.is_none() {
        return Err(ServeError::ReadKeyWithoutKey);
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::Bind(addr, e))?;
    serve_on(listener, client, config, shutdown).await
}

/// Serves the API on a listener that is already bound.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    client: Client,
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_hubs_on(
        listener,
        Arc::new(TaskHubs::single(client)),
        config,
        shutdown,
    )
    .await
}

/// Serves the API for `hubs` on a listener that is already bound.
pub async fn serve_hubs_on(
    listener: tokio::net::TcpListener,
    hubs: Arc<TaskHubs>,
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let limits = config.limits.clone();
    let app = router_with_hubs(hubs, config);
    conn::serve_http(listener, app, limits, shutdown).await?;
    Ok(())
}
