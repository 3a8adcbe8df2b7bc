//! `perdure-core` owns Perdure's vocabulary and its pure rules: the history
//! events an orchestration is made of and their stored encoding, runtime
//! statuses, failure details, instance-id rules, retry arithmetic, and the
//! replay state machine that matches an orchestrator's actions against its
//! history.
//!
//! Architecture invariant: this crate does no I/O, never reads the clock and
//! never draws random numbers. Time, ids and randomness are passed in.

pub mod entity;
pub mod failure;
pub mod history;
pub mod instance_id;
pub mod names;
pub mod payload;
pub mod replay;
pub mod retry;
pub mod status;
pub mod time;
pub mod trace;

pub use entity::{is_entity_instance, EntityId, EntityIdError};
pub use failure::FailureDetails;
pub use history::{
    decode_event, decode_events, encode_event, encode_events, EventKind, HistoryEvent,
    ParentInstance, Payload, PayloadText, Repair, RepairedStep, Tags,
};
pub use instance_id::{generated_instance_id, validate_instance_id, InstanceIdError};
pub use names::{validate_name, NameError, NameKind, MAX_NAME_CHARS};
pub use replay::{
    release_held_locks, Action, Applied, Completion, CriticalSection, ExecutionState,
    NonDeterminism, NonDeterminismKind, TaskKey,
};
pub use retry::{RetryOptions, RetryOptionsError};
pub use status::RuntimeStatus;
pub use trace::{TraceContext, TraceParent};

/// Timestamps everywhere in Perdure are UTC.
pub type Timestamp = chrono::DateTime<chrono::Utc>;
