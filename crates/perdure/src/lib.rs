//! `perdure` is the library users depend on: orchestrations are ordinary
//! async functions over an [`OrchestrationContext`], activities are async
//! functions over an [`ActivityContext`], both registered in a [`Registry`]
//! and run by a [`Worker`] against a store; a [`Client`] starts, queries,
//! signals and terminates instances.
//!
//! ```no_run
//! use perdure::{Client, OrchestrationContext, Registry, Worker, WorkerOptions};
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut registry = Registry::new();
//! registry.add_activity("SayHello", |_ctx, name: String| async move {
//!     Ok(format!("Hello {name}!"))
//! });
//! registry.add_orchestrator("HelloCities", |ctx: OrchestrationContext| async move {
//!     let mut out = Vec::new();
//!     for city in ["Tokyo", "Seattle", "London"] {
//!         out.push(ctx.call_activity::<String>("SayHello", city).await?);
//!     }
//!     Ok(out)
//! });
//! let store = perdure::open_store("sqlite://perdure.db").await?;
//! let worker = Worker::start(store.clone(), registry, WorkerOptions::default());
//! let client = Client::new(store);
//! let id = client.start_new("HelloCities", None, ()).await?;
//! let status = client.wait_for_completion(&id, std::time::Duration::from_secs(30)).await?;
//! println!("{:?}", status.output);
//! worker.shutdown().await;
//! # Ok(()) }
//! ```

// TaskError carries the failure details inline so users can match on them
// without unboxing; it is returned once per awaited task, never in a loop.
#![allow(clippy::result_large_err)]

mod activity;
mod client;
mod context;
mod critical;
pub mod dispatch;
mod entity;
mod error;
mod executor;
pub mod export;
mod http;
mod hubs;
pub mod metrics;
mod payload;
mod registry;
pub mod replay;
mod retry;
mod tasks;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
mod typed;
mod worker;

pub use activity::ActivityContext;
pub use client::{
    CleanEntityStorageResult, Client, EntityMetadata, EntityPage, EntityQuery, InstancePage,
    OrchestrationStatus, PendingStep, PurgeFilter, RepairRequest, StartOptions, MAX_PAYLOAD_BYTES,
};
pub use context::OrchestrationContext;
pub use critical::{EntityLock, LockTask};
pub use entity::{EntityAction, EntityContext, OperationOutcome};
pub use error::{ClientError, Failure, Result, TaskError};
pub use http::{DurableHttpRequest, DurableHttpResponse, HTTP_ACTIVITY};
pub use hubs::{delete_store, hub_name, hub_store_url, HubError, TaskHubs, DEFAULT_HUB};
pub use payload::{IntoPayload, PlainText, RawJson};
/// `#[perdure::activity]` and `#[perdure::orchestrator]`: an async fn
/// declared once as a typed [`Activity`] or [`Orchestrator`] (see the
/// `typed` docs on [`Registry::register`]).
pub use perdure_macros::{activity, entity_operation, orchestrator};
pub use registry::Registry;
pub use retry::RetryPolicy;
pub use tasks::{DurableTask, EventTask, TimerTask};
pub use typed::{Activity, Entity, EntityOperation, Orchestrator, Register, TypedEntity};
pub use worker::{AfterActivity, Engine, Worker, WorkerOptions};

pub use perdure_core::{
    EntityId, EventKind, FailureDetails, HistoryEvent, ParentInstance, Repair, RepairedStep,
    RetryOptions, RuntimeStatus, Tags, TraceContext,
};
pub use perdure_store::{redact_url, InstanceQuery, Store, StoreError, TlsFailure};

/// Composition helpers, re-exported from `futures` so that orchestrations
/// need no other import: `join!`, `select`, `Either`, `FutureExt`.
pub mod future {
    pub use futures::future::{join, join3, join_all, select, select_all, Either, FutureExt};
    pub use futures::join;
}

use std::sync::Arc;

/// Opens a store by URL: `sqlite://path/to/file.db` (the default is
/// `sqlite://perdure.db`), `postgres://user@host[:port]/db[?hub=NAME]` (many
/// processes on many machines share one task hub), or `memory` (not durable;
/// for tests). Errors show the URL only through [`redact_url`] (no
/// password).
pub async fn open_store(url: &str) -> std::result::Result<Arc<dyn Store>, StoreError> {
    if url == "memory" || url == "memory://" {
        return Ok(Arc::new(perdure_store::MemoryStore::new()));
    }
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(StoreError::BadUrl(
                redact_url(url),
                "no file path after sqlite://".into(),
            ));
        }
        let path = path.to_string();
        let store = tokio::task::spawn_blocking(move || perdure_sqlite::SqliteStore::open(path))
            .await
            .map_err(|e| StoreError::Backend(format!("opening the SQLite store: {e}")))??;
        return Ok(Arc::new(store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(perdure_postgres::PostgresStore::open(url).await?));
    }
    Err(StoreError::BadUrl(
        redact_url(url),
        "expected sqlite://PATH, postgres://USER@HOST/DB or memory".into(),
    ))
}

/// The default store URL.
pub const DEFAULT_STORE_URL: &str = "sqlite://perdure.db";
