//! The store's typed error.

use perdure_core::RuntimeStatus;

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("instance `{0}` was not found")]
    NotFound(String),
    #[error("instance `{id}` already exists and is {status}")]
    AlreadyExists { id: String, status: RuntimeStatus },
    /// The lock token is stale: the lease expired and someone else may hold
    /// the work now. Nothing was changed.
    #[error("lock lost: the lease on {0} expired or was taken by another worker")]
    LockLost(String),
    /// History length did not match what the committer replayed.
    #[error("history of `{id}` has {actual} events, the commit expected {expected}")]
    HistoryConflict {
        id: String,
        expected: u64,
        actual: u64,
    },
    #[error("instance `{id}` is still {status}; only finished instances can be purged")]
    NotFinished { id: String, status: RuntimeStatus },
    #[error("continuation token `{0}` is not one this store issued")]
    BadContinuation(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("invalid store URL `{0}`: {1}")]
    BadUrl(String, String),
    #[error("store backend error: {0}")]
    Backend(String),
    #[error("the store is shut down")]
    Closed,
}

impl From<perdure_core::history::CodecError> for StoreError {
    fn from(e: perdure_core::history::CodecError) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}
