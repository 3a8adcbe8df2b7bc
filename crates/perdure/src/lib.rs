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
mod http;
pub mod metrics;
mod payload;
mod registry;
pub mod replay;
mod retry;
mod tasks;
pub mod telemetry;
mod worker;

pub use activity::ActivityContext;
pub use client::{
    CleanEntityStorageResult, Client, EntityMetadata, EntityPage, EntityQuery, InstancePage,
    OrchestrationStatus, PurgeFilter, StartOptions, MAX_PAYLOAD_BYTES,
};
pub use context::OrchestrationContext;
pub use critical::{EntityLock, LockTask};
pub use entity::EntityContext;
pub use error::{ClientError, Failure, Result, TaskError};
pub use http::{DurableHttpRequest, DurableHttpResponse, HTTP_ACTIVITY};
pub use payload::{IntoPayload, PlainText, RawJson};
pub use registry::Registry;
pub use retry::RetryPolicy;
pub use tasks::{DurableTask, EventTask, TimerTask};
pub use worker::{Engine, Worker, WorkerOptions};

pub use perdure_core::{
    EntityId, EventKind, FailureDetails, HistoryEvent, ParentInstance, RetryOptions, RuntimeStatus,
    TraceContext,
};
pub use perdure_store::{InstanceQuery, Store, StoreError};

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
/// for tests).
pub async fn open_store(url: &str) -> std::result::Result<Arc<dyn Store>, StoreError> {
    if url == "memory" || url == "memory://" {
        return Ok(Arc::new(perdure_store::MemoryStore::new()));
    }
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(StoreError::BadUrl(
                url.into(),
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
        url.into(),
        "expected sqlite://PATH, postgres://USER@HOST/DB or memory".into(),
    ))
}

/// The default store URL.
pub const DEFAULT_STORE_URL: &str = "sqlite://perdure.db";

/// The name of the task hub a client names when it names none.
pub const DEFAULT_HUB: &str = "default";

/// A task hub's name as stores key it: lowercase, `-` read as `_`, 1 to 40
/// characters of a-z, 0-9 and `_`; empty is the default hub.
pub fn hub_name(name: &str) -> std::result::Result<String, StoreError> {
    let n = name.trim().to_lowercase().replace('-', "_");
    if n.is_empty() {
        return Ok(DEFAULT_HUB.to_string());
    }
    if n.len() > 40
        || !n
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(StoreError::BadUrl(
            name.to_string(),
            "a task hub name is 1 to 40 characters of a-z, 0-9, - and _".into(),
        ));
    }
    Ok(n)
}

/// The store URL of task hub `hub` beside the store `base` opens (which
/// holds the default hub): another SQLite file beside it
/// (`perdure.db` -> `perdure.HUB.db`), another PostgreSQL schema in the same
/// database (`?hub=HUB`, or `BASEHUB_HUB` when the base names a hub of its
/// own), or another memory store.
pub fn hub_store_url(base: &str, hub: &str) -> std::result::Result<String, StoreError> {
    let hub = hub_name(hub)?;
    if hub == DEFAULT_HUB {
        return Ok(base.to_string());
    }
    if base == "memory" || base == "memory://" {
        return Ok(base.to_string());
    }
    if let Some(path) = base.strip_prefix("sqlite://") {
        let file = match path.strip_suffix(".db") {
            Some(stem) => format!("{stem}.{hub}.db"),
            None => format!("{path}.{hub}"),
        };
        return Ok(format!("sqlite://{file}"));
    }
    if base.starts_with("postgres://") || base.starts_with("postgresql://") {
        let (head, query) = base.split_once('?').unwrap_or((base, ""));
        let mut parts: Vec<String> = Vec::new();
        let mut named = None;
        for kv in query.split('&').filter(|s| !s.is_empty()) {
            match kv.split_once('=') {
                Some(("hub", v)) => named = Some(v.to_string()),
                _ => parts.push(kv.to_string()),
            }
        }
        let full = match named.filter(|n| n != DEFAULT_HUB) {
            Some(base_hub) => format!("{base_hub}_{hub}"),
            None => hub,
        };
        parts.push(format!("hub={full}"));
        return Ok(format!("{head}?{}", parts.join("&")));
    }
    Err(StoreError::BadUrl(
        base.into(),
        "expected sqlite://PATH, postgres://USER@HOST/DB or memory".into(),
    ))
}

/// Deletes everything the store at `url` holds (a task hub): its SQLite
/// file, its PostgreSQL schema; a memory store is gone once dropped. Stores
/// still open on it fail from then on, or (SQLite) go on with a file that
/// no longer has a name.
pub async fn delete_store(url: &str) -> std::result::Result<(), StoreError> {
    if url == "memory" || url == "memory://" {
        return Ok(());
    }
    if let Some(path) = url.strip_prefix("sqlite://") {
        for suffix in ["", "-wal", "-shm"] {
            match std::fs::remove_file(format!("{path}{suffix}")) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::Backend(format!("deleting {path}{suffix}: {e}"))),
            }
        }
        return Ok(());
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return perdure_postgres::PostgresStore::delete_hub(url).await;
    }
    Err(StoreError::BadUrl(
        url.into(),
        "expected sqlite://PATH, postgres://USER@HOST/DB or memory".into(),
    ))
}
