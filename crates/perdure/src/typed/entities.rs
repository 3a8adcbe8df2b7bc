//! Typed entities: an entity declared as a Rust item with its state type
//! ([`Entity`]), and each of its operations as an item with its input and
//! output types ([`EntityOperation`], or `#[perdure::entity_operation]` on a
//! plain fn of the state). [`TypedEntity`] gathers them for registration;
//! [`OrchestrationContext::call_operation`], `signal_operation` and
//! [`Client::signal_operation`] / [`Client::read_entity`] are the checked
//! calls. An operation runs on the state read (its `Default` when the
//! entity has none yet); the state is written back only when it changed,
//! and not at all when the operation deleted it (`ctx.delete_state()`).
//!
//! ```
//! use perdure::{Entity, EntityContext, Failure, OrchestrationContext, Registry, TypedEntity};
//!
//! pub struct Counter;
//! impl Entity for Counter {
//!     const NAME: &'static str = "Counter";
//!     type State = i64;
//! }
//!
//! #[perdure::entity_operation(Counter)]
//! fn add(count: &mut i64, by: i64) -> Result<i64, Failure> {
//!     *count += by;
//!     Ok(*count)
//! }
//!
//! #[perdure::entity_operation(Counter)]
//! fn get(count: &mut i64) -> Result<i64, Failure> {
//!     Ok(*count)
//! }
//!
//! #[perdure::orchestrator]
//! async fn count_twice(ctx: OrchestrationContext, key: String) -> Result<i64, Failure> {
//!     ctx.signal_operation(Add, &key, &1)?;
//!     ctx.signal_operation(Add, &key, &1)?;
//!     Ok(ctx.call_operation(Get, &key, &()).await?) // an i64, checked
//! }
//!
//! let mut registry = Registry::new();
//! registry
//!     .register(TypedEntity::new(Counter).operation(Add).operation(Get))
//!     .register(CountTwice);
//! ```

use super::Register;
use crate::client::Client;
use crate::context::OrchestrationContext;
use crate::entity::EntityContext;
use crate::error::{ClientError, Failure, TaskError};
use crate::registry::Registry;
use crate::tasks::{DurableTask, Target};
use futures::FutureExt;
use perdure_core::{EntityId, Payload};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// An entity declared as a Rust item: its name and its state.
pub trait Entity: Send + Sync + 'static {
    const NAME: &'static str;
    /// The state; `Default` is the state of an entity that has none yet.
    type State: Serialize + DeserializeOwned + Default + Send + 'static;
}

/// One operation of entity [`EntityOperation::Entity`].
pub trait EntityOperation: Send + Sync + 'static {
    type Entity: Entity;
    /// The operation's name (matched case-insensitively, as callers in
    /// other languages spell it).
    const NAME: &'static str;
    type Input: Serialize + DeserializeOwned + Send + 'static;
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// Runs the operation on the entity's state. An error (or a panic)
    /// rolls the state and what the operation sent back.
    fn run(
        &self,
        ctx: &EntityContext,
        state: &mut <Self::Entity as Entity>::State,
        input: Self::Input,
    ) -> Result<Self::Output, Failure>;
}

type OpFn<S> = Arc<dyn Fn(&EntityContext, &mut S) -> Result<Payload, Failure> + Send + Sync>;

/// An entity and its operations, registered together with
/// [`Registry::register`].
pub struct TypedEntity<E: Entity> {
    _entity: E,
    /// Lowercase name -> (name, operation).
    operations: BTreeMap<String, (&'static str, OpFn<E::State>)>,
}

impl<E: Entity> TypedEntity<E> {
    pub fn new(entity: E) -> Self {
        TypedEntity {
            _entity: entity,
            operations: BTreeMap::new(),
        }
    }

    /// Adds an operation of this entity.
    pub fn operation<O: EntityOperation<Entity = E>>(mut self, op: O) -> Self {
        let f: OpFn<E::State> = Arc::new(move |ctx, state| {
            let input: O::Input = ctx.get_input()?;
            let output = op.run(ctx, state, input)?;
            serde_json::to_string(&output)
                .map(|t| Some(t.into()))
                .map_err(|e| {
                    Failure::new(
                        "Serialization",
                        format!(
                            "cannot serialize the output of operation `{}` of entity `{}`: {e}",
                            O::NAME,
                            E::NAME
                        ),
                    )
                })
        });
        self.operations.insert(O::NAME.to_lowercase(), (O::NAME, f));
        self
    }
}

impl<E: Entity> Register for TypedEntity<E> {
    fn register(self, registry: &mut Registry) {
        let operations = Arc::new(self.operations);
        registry.add_raw_entity(
            E::NAME,
            Arc::new(move |ctx: EntityContext| {
                let operations = operations.clone();
                async move { run_operation::<E>(&operations, &ctx) }.boxed()
            }),
        );
    }
}

fn run_operation<E: Entity>(
    operations: &BTreeMap<String, (&'static str, OpFn<E::State>)>,
    ctx: &EntityContext,
) -> Result<Payload, Failure> {
    let Some((_, op)) = operations.get(&ctx.operation().to_lowercase()) else {
        let known: Vec<&str> = operations.values().map(|(n, _)| *n).collect();
        return Err(Failure::new(
            "UnknownOperation",
            format!(
                "entity `{}` has no operation `{}` (it has {})",
                E::NAME,
                ctx.operation(),
                known.join(", ")
            ),
        )
        .non_retriable());
    };
    let before = ctx.raw_state();
    let mut state: E::State = ctx.get_state_or_default()?;
    ctx.clear_deleted();
    let output = op(ctx, &mut state)?;
    if ctx.was_deleted() {
        return Ok(output);
    }
    let after = serde_json::to_string(&state).map_err(|e| {
        Failure::new(
            "StateSerialization",
            format!("cannot serialize the state of entity `{}`: {e}", E::NAME),
        )
    })?;
    let unchanged = match &before {
        Some(text) => *text == after,
        // No state yet, and still the default: none is created.
        None => serde_json::to_string(&E::State::default()).is_ok_and(|d| d == after),
    };
    if !unchanged {
        ctx.set_raw_state(after);
    }
    Ok(output)
}

fn entity_id<O: EntityOperation>(key: &str) -> Result<EntityId, String> {
    EntityId::new(<O::Entity as Entity>::NAME, key).map_err(|e| e.to_string())
}

impl OrchestrationContext {
    /// Calls operation `O` on the entity of `O::Entity` with `key`;
    /// awaiting gives an `O::Output`.
    pub fn call_operation<O: EntityOperation>(
        &self,
        _operation: O,
        key: &str,
        input: &O::Input,
    ) -> DurableTask<O::Output> {
        match entity_id::<O>(key) {
            Ok(id) => self.call_entity(&id, O::NAME, input),
            Err(e) => DurableTask::failed(
                TaskError::InvalidCall(e),
                Target::Entity {
                    entity: format!("@{}@{key}", <O::Entity as Entity>::NAME),
                    operation: O::NAME.to_string(),
                },
            ),
        }
    }

    /// Signals operation `O` on the entity of `O::Entity` with `key`.
    pub fn signal_operation<O: EntityOperation>(
        &self,
        _operation: O,
        key: &str,
        input: &O::Input,
    ) -> Result<(), TaskError> {
        let id = entity_id::<O>(key).map_err(TaskError::InvalidCall)?;
        self.signal_entity(&id, O::NAME, input)
    }
}

impl Client {
    /// Signals operation `O` on the entity of `O::Entity` with `key`.
    pub async fn signal_operation<O: EntityOperation>(
        &self,
        _operation: O,
        key: &str,
        input: &O::Input,
    ) -> Result<(), ClientError> {
        let id = entity_id::<O>(key).map_err(ClientError::InvalidArgument)?;
        self.signal_entity(&id, O::NAME, input).await
    }

    /// The state of entity `E` with `key`, if it has one.
    pub async fn read_entity<E: Entity>(
        &self,
        _entity: E,
        key: &str,
    ) -> Result<Option<E::State>, ClientError> {
        let id =
            EntityId::new(E::NAME, key).map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
        self.read_entity_state(&id).await
    }
}
