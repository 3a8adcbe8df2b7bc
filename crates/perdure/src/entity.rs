//! Durable entities: what entity code gets ([`EntityContext`]: the
//! operation, its input and the entity's state, and the signals and
//! orchestration starts it sends) and how a batch of operation requests
//! runs against an entity, one at a time in inbox order, each failed
//! operation rolling back its state change and what it sent.

use crate::error::Failure;
use crate::executor::panic_failure;
use crate::registry::EntityFn;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use perdure_core::{validate_instance_id, EntityId, FailureDetails, Payload, Timestamp};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

/// Context handed to an entity operation.
#[derive(Clone, Debug)]
pub struct EntityContext {
    id: EntityId,
    operation: String,
    input: Payload,
    state: Arc<Mutex<Payload>>,
    actions: Arc<Mutex<Vec<EntityAction>>>,
    /// Set by `delete_state`, cleared by `set_state`: whether the
    /// operation's last word on the state was to delete it.
    deleted: Arc<std::sync::atomic::AtomicBool>,
}

/// What an entity operation sent. It is delivered when the operation's
/// batch commits, with the entity's new state, and dropped with the
/// operation's state change when the operation fails.
#[derive(Clone, Debug, PartialEq)]
pub enum EntityAction {
    /// A one-way operation on an entity, delivered no earlier than `at`.
    Signal {
        target: EntityId,
        operation: String,
        input: Payload,
        at: Option<Timestamp>,
    },
    /// A new orchestration instance.
    StartOrchestration {
        name: String,
        instance_id: String,
        input: Payload,
    },
}

impl EntityContext {
    /// The entity's id.
    pub fn entity_id(&self) -> &EntityId {
        &self.id
    }

    /// The operation's name, as the caller spelled it.
    pub fn operation(&self) -> &str {
        &self.operation
    }

    /// The operation's input as `T`.
    pub fn get_input<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        serde_json::from_str(self.input.as_deref().unwrap_or("null")).map_err(|e| {
            Failure::new(
                "InputDeserialization",
                format!(
                    "cannot read the input of operation `{}` of entity `{}`: {e}",
                    self.operation, self.id
                ),
            )
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Payload> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True once the entity has state (from its first write until deleted).
    pub fn has_state(&self) -> bool {
        self.state().is_some()
    }

    /// The entity's state as `T`, or `None` if it has none.
    pub fn get_state<T: DeserializeOwned>(&self) -> Result<Option<T>, Failure> {
        match self.state().as_deref() {
            None => Ok(None),
            Some(text) => serde_json::from_str(text).map(Some).map_err(|e| {
                Failure::new(
                    "StateDeserialization",
                    format!("cannot read the state of entity `{}`: {e}", self.id),
                )
            }),
        }
    }

    /// The entity's state, or `T::default()` when it has none.
    pub fn get_state_or_default<T: DeserializeOwned + Default>(&self) -> Result<T, Failure> {
        Ok(self.get_state()?.unwrap_or_default())
    }

    /// Replaces the entity's state.
    pub fn set_state(&self, state: impl Serialize) -> Result<(), Failure> {
        let text = serde_json::to_string(&state).map_err(|e| {
            Failure::new(
                "StateSerialization",
                format!("cannot write the state of entity `{}`: {e}", self.id),
            )
        })?;
        self.set_raw_state(text);
        Ok(())
    }

    /// Deletes the entity's state.
    pub fn delete_state(&self) {
        *self.state() = None;
        self.deleted
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The state as stored (JSON text), for typed entities.
    pub(crate) fn raw_state(&self) -> Payload {
        self.state().clone()
    }

    pub(crate) fn set_raw_state(&self, text: String) {
        *self.state() = Some(text.into());
        self.deleted
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn clear_deleted(&self) {
        self.deleted
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn was_deleted(&self) -> bool {
        self.deleted.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Signals `operation` on `entity` (one-way), once this operation
    /// succeeds. Durable Functions' `SignalEntity` from an entity.
    pub fn signal_entity(
        &self,
        entity: &EntityId,
        operation: &str,
        input: impl Serialize,
    ) -> Result<(), Failure> {
        self.send_signal(entity, operation, input, None)
    }

    /// Signals `operation` on `entity`, delivered no earlier than `at`.
    pub fn signal_entity_at(
        &self,
        entity: &EntityId,
        operation: &str,
        input: impl Serialize,
        at: DateTime<Utc>,
    ) -> Result<(), Failure> {
        self.send_signal(entity, operation, input, Some(at))
    }

    fn send_signal(
        &self,
        entity: &EntityId,
        operation: &str,
        input: impl Serialize,
        at: Option<Timestamp>,
    ) -> Result<(), Failure> {
        let input = self.encode(
            &input,
            &format!("the input of operation `{operation}` of entity `{entity}`"),
        )?;
        self.push(EntityAction::Signal {
            target: entity.clone(),
            operation: operation.to_string(),
            input,
            at,
        });
        Ok(())
    }

    /// Starts orchestrator `name` with `input` once this operation
    /// succeeds, as `instance_id` (a new 32-hex-character id without one),
    /// and returns its id. The new instance continues the trace of the
    /// request this operation serves. Durable Functions'
    /// `StartNewOrchestration` from an entity.
    pub fn start_new_orchestration(
        &self,
        name: &str,
        instance_id: Option<&str>,
        input: impl Serialize,
    ) -> Result<String, Failure> {
        let instance_id = match instance_id {
            Some(id) => {
                validate_instance_id(id).map_err(|e| {
                    Failure::new("InvalidInstanceId", e.to_string()).non_retriable()
                })?;
                id.to_string()
            }
            None => uuid::Uuid::new_v4().simple().to_string(),
        };
        let input = self.encode(&input, &format!("the input of orchestration `{name}`"))?;
        self.push(EntityAction::StartOrchestration {
            name: name.to_string(),
            instance_id: instance_id.clone(),
            input,
        });
        Ok(instance_id)
    }

    fn encode(&self, value: &impl Serialize, what: &str) -> Result<Payload, Failure> {
        let text = serde_json::to_string(value).map_err(|e| {
            Failure::new(
                "InputSerialization",
                format!("entity `{}` cannot write {what}: {e}", self.id),
            )
        })?;
        Ok(Some(text.into()))
    }

    fn push(&self, action: EntityAction) {
        self.actions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(action);
    }
}

/// What one operation did: its result, and what it sent (nothing when it
/// failed).
pub type OperationOutcome = Result<(Payload, Vec<EntityAction>), FailureDetails>;

/// Runs one operation on `state`: on success the state becomes what the
/// operation left and its actions are returned; on failure (an error or a
/// panic) the state stays as it was and its actions are dropped.
pub(crate) async fn run_operation(
    f: &EntityFn,
    id: &EntityId,
    operation: &str,
    input: Payload,
    state: &mut Payload,
) -> OperationOutcome {
    let shared = Arc::new(Mutex::new(state.clone()));
    let actions = Arc::new(Mutex::new(Vec::new()));
    let ctx = EntityContext {
        id: id.clone(),
        operation: operation.to_string(),
        input,
        state: shared.clone(),
        actions: actions.clone(),
        deleted: Arc::default(),
    };
    let outcome = AssertUnwindSafe(f(ctx)).catch_unwind().await;
    match outcome {
        Ok(Ok(output)) => {
            *state = shared.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let sent = std::mem::take(&mut *actions.lock().unwrap_or_else(|p| p.into_inner()));
            Ok((output, sent))
        }
        Ok(Err(failure)) => Err(failure.into_details()),
        Err(panic) => Err(panic_failure(panic.as_ref())),
    }
}
