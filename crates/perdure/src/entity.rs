//! Durable entities: what entity code gets ([`EntityContext`]: the
//! operation, its input and the entity's state) and how a batch of
//! operation requests runs against an entity, one at a time in inbox order,
//! each failed operation rolling its state change back.

use crate::error::Failure;
use crate::executor::panic_failure;
use crate::registry::EntityFn;
use futures::FutureExt;
use perdure_core::{EntityId, FailureDetails, Payload};
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
        *self.state() = Some(text);
        Ok(())
    }

    /// Deletes the entity's state.
    pub fn delete_state(&self) {
        *self.state() = None;
    }
}

/// Runs one operation on `state`: on success the state becomes what the
/// operation left; on failure (an error or a panic) it stays as it was.
pub(crate) async fn run_operation(
    f: &EntityFn,
    id: &EntityId,
    operation: &str,
    input: Payload,
    state: &mut Payload,
) -> Result<Payload, FailureDetails> {
    let shared = Arc::new(Mutex::new(state.clone()));
    let ctx = EntityContext {
        id: id.clone(),
        operation: operation.to_string(),
        input,
        state: shared.clone(),
    };
    let outcome = AssertUnwindSafe(f(ctx)).catch_unwind().await;
    match outcome {
        Ok(Ok(output)) => {
            *state = shared.lock().unwrap_or_else(|p| p.into_inner()).clone();
            Ok(output)
        }
        Ok(Err(failure)) => Err(failure.into_details()),
        Err(panic) => Err(panic_failure(panic.as_ref())),
    }
}
