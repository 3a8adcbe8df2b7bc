//! Errors seen by users: [`Failure`] (what user code returns and what is
//! recorded), [`TaskError`] (what awaiting a durable task can give) and
//! [`ClientError`].

use perdure_core::{FailureDetails, InstanceIdError, RuntimeStatus};
use perdure_store::StoreError;
use std::fmt;

/// A failure raised by an orchestrator or an activity. Any
/// `std::error::Error` converts into it with `?` (its type name becomes the
/// error type); [`Failure::new`] names the type yourself so callers can match
/// on it. A [`TaskError`] converts keeping the failure it carries as the cause.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure(pub FailureDetails);

/// The result type of orchestrators and activities.
pub type Result<T, E = Failure> = std::result::Result<T, E>;

impl Failure {
    /// A failure of type `error_type` with `message`.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Failure(FailureDetails::new(error_type, message))
    }

    /// Marks the failure as one retry policies must not retry.
    pub fn non_retriable(self) -> Self {
        Failure(self.0.non_retriable())
    }

    pub fn details(&self) -> &FailureDetails {
        &self.0
    }

    pub fn into_details(self) -> FailureDetails {
        self.0
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Failure {
    fn from(e: E) -> Self {
        let any: &dyn std::any::Any = &e;
        if let Some(task) = any.downcast_ref::<TaskError>() {
            return Failure(task.to_failure());
        }
        let type_name = std::any::type_name::<E>();
        let short = type_name.rsplit("::").next().unwrap_or(type_name);
        let mut details = FailureDetails::new(short, e.to_string());
        if let Some(source) = e.source() {
            details = details.caused_by(FailureDetails::new("source", source.to_string()));
        }
        Failure(details)
    }
}

/// Why awaiting a durable task did not give a value.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TaskError {
    /// The activity returned an error or panicked.
    #[error("activity `{name}` failed: {failure}")]
    ActivityFailed {
        name: String,
        failure: FailureDetails,
    },
    /// The sub-orchestration ended Failed (or Terminated).
    #[error("sub-orchestration `{name}` (instance `{instance_id}`) failed: {failure}")]
    SubOrchestrationFailed {
        name: String,
        instance_id: String,
        failure: FailureDetails,
    },
    /// The entity operation failed (its state change was rolled back).
    #[error("operation `{operation}` of entity `{entity}` failed: {failure}")]
    EntityOperationFailed {
        entity: String,
        operation: String,
        failure: FailureDetails,
    },
    /// A critical-section rule was broken (nested locks, a sub-orchestration,
    /// a call to an unlocked entity or a signal to a locked one).
    #[error("LockingRulesViolation: {0}")]
    LockingRulesViolation(String),
    /// `wait_for_external_event_with_timeout` timed out.
    #[error("timed out waiting for external event `{0}`")]
    Timeout(String),
    /// A payload could not be converted to or from JSON.
    #[error("{what}: {message}")]
    Serialization { what: String, message: String },
    /// The call was refused before it was scheduled (e.g. a bad instance id).
    #[error("invalid call: {0}")]
    InvalidCall(String),
}

impl TaskError {
    /// The failure reported by the activity or sub-orchestration, if any.
    pub fn failure(&self) -> Option<&FailureDetails> {
        match self {
            TaskError::ActivityFailed { failure, .. }
            | TaskError::SubOrchestrationFailed { failure, .. }
            | TaskError::EntityOperationFailed { failure, .. } => Some(failure),
            _ => None,
        }
    }

    /// True if the reported failure (or a cause of it) has this error type.
    pub fn is_type(&self, error_type: &str) -> bool {
        self.failure().is_some_and(|f| f.is_caused_by(error_type))
    }

    /// The failure recorded when an orchestration does not handle this error.
    pub fn to_failure(&self) -> FailureDetails {
        let kind = match self {
            TaskError::ActivityFailed { .. } => "ActivityFailed",
            TaskError::SubOrchestrationFailed { .. } => "SubOrchestrationFailed",
            TaskError::EntityOperationFailed { .. } => "EntityOperationFailed",
            TaskError::LockingRulesViolation(_) => "LockingRulesViolation",
            TaskError::Timeout(_) => "Timeout",
            TaskError::Serialization { .. } => "Serialization",
            TaskError::InvalidCall(_) => "InvalidCall",
        };
        let d = FailureDetails::new(kind, self.to_string());
        match self.failure() {
            Some(inner) => d.caused_by(inner.clone()),
            None => d,
        }
    }
}

/// What a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    InvalidInstanceId(#[from] InstanceIdError),
    #[error(transparent)]
    InvalidName(#[from] perdure_core::NameError),
    #[error("instance `{0}` was not found")]
    NotFound(String),
    #[error("instance `{id}` is still {status}; it cannot be started again until it finishes")]
    AlreadyRunning { id: String, status: RuntimeStatus },
    #[error("instance `{id}` has already finished ({status})")]
    AlreadyFinished { id: String, status: RuntimeStatus },
    #[error("instance `{id}` is still {status}; it must finish first")]
    StillRunning { id: String, status: RuntimeStatus },
    #[error("instance `{id}` is {status}; only Failed instances can be rewound")]
    NotFailed { id: String, status: RuntimeStatus },
    #[error("timed out after {0:?} waiting for instance `{1}`")]
    Timeout(std::time::Duration, String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("payload is {size} bytes of JSON; the limit is {limit}")]
    PayloadTooLarge { size: usize, limit: usize },
    #[error("payload is not valid JSON: {0}")]
    Serialization(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ClientError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => ClientError::NotFound(id),
            StoreError::AlreadyExists { id, status } => ClientError::AlreadyRunning { id, status },
            StoreError::NotFinished { id, status } => ClientError::StillRunning { id, status },
            StoreError::BadContinuation(t) => {
                ClientError::InvalidArgument(format!("continuation token `{t}` is not valid"))
            }
            other => ClientError::Store(other),
        }
    }
}
