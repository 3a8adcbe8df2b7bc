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
    /// The connection to the store's server was refused before anything
    /// (a password, a query) was sent: its TLS could not be trusted.
    #[error("the store's server cannot be trusted: {0}")]
    Tls(TlsFailure),
    #[error("the store is shut down")]
    Closed,
}

/// Why a TLS connection to a store's server was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsFailure {
    /// The server's certificate does not lead to a trusted root (it is
    /// self-signed, signed by an unknown authority, expired, revoked...).
    #[error("its certificate is not trusted: {0}")]
    NotTrusted(String),
    /// The certificate is trusted but names other hosts than the one
    /// connected to.
    #[error("its certificate does not name the host connected to: {0}")]
    WrongName(String),
    /// The store URL requires TLS and the server does not offer it.
    #[error("the store URL requires TLS and the server does not offer it")]
    NotOffered,
    /// The TLS handshake failed otherwise.
    #[error("the TLS handshake failed: {0}")]
    Handshake(String),
}

impl From<perdure_core::history::CodecError> for StoreError {
    fn from(e: perdure_core::history::CodecError) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}
