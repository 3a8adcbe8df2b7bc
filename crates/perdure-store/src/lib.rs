//! `perdure-store` owns the storage boundary: the narrow Store traits the
//! engine talks to (one module per concern: instances, history, the
//! orchestration queue, the activity queue, wake-ups), the records they
//! exchange, the typed [`StoreError`], an in-memory store, and the
//! conformance kit every store must pass.
//!
//! Architecture invariant: stores know nothing about orchestrator code or
//! replay. They keep rows consistent: every commit is all or nothing, and a
//! commit carrying a stale lock token changes nothing.

pub mod activities;
pub mod clock;
pub mod conformance;
pub mod error;
pub mod faulty;
pub mod history;
pub mod instances;
pub mod memory;
pub mod orchestrations;
pub mod records;
pub mod redact;
pub mod stats;
pub mod wake;

pub use activities::ActivityQueue;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{StoreError, TlsFailure};
pub use history::HistoryStore;
pub use instances::InstanceStore;
pub use memory::MemoryStore;
pub use orchestrations::OrchestrationQueue;
pub use records::*;
pub use redact::redact_url;
pub use stats::{CommitStats, QueueDepths, StoreStats};
pub use wake::{InstanceWatch, WakeSignal, WorkKind};

/// Everything the engine needs from a store.
pub trait Store:
    InstanceStore
    + HistoryStore
    + OrchestrationQueue
    + ActivityQueue
    + WakeSignal
    + StoreStats
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: InstanceStore
        + HistoryStore
        + OrchestrationQueue
        + ActivityQueue
        + WakeSignal
        + StoreStats
        + Send
        + Sync
        + 'static
{
}

/// A fresh opaque lock token.
pub fn new_lock_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// When work stamped `t` becomes visible, in whole milliseconds: a time
/// already past is visible now; a future one is rounded up, so that work is
/// never visible before its exact time (a timer never fires early).
pub fn ceil_millis(t: perdure_core::Timestamp) -> i64 {
    let ms = t.timestamp_millis();
    if t <= chrono::Utc::now() || t.timestamp_subsec_nanos().is_multiple_of(1_000_000) {
        ms
    } else {
        ms + 1
    }
}
