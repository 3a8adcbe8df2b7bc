//! Typed activities and orchestrators: each declared once as a Rust item
//! that carries its name and its input and output types, so that a call
//! with the wrong input, a result read as the wrong type or a typo in a
//! name is a compile error, not a run-time failure. Declare one with
//! `#[perdure::activity]` / `#[perdure::orchestrator]` on an async fn (or
//! implement [`Activity`] / [`Orchestrator`] by hand, for one that holds
//! state), register it with [`Registry::register`], call it with
//! [`OrchestrationContext::call`], [`OrchestrationContext::call_with_retry`]
//! or [`OrchestrationContext::call_sub`], and start it with
//! [`Client::start`]. The string-named API stays, for names served by
//! workers in other languages.
//!
//! ```
//! use perdure::{ActivityContext, Failure, OrchestrationContext, Registry};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! pub struct Order { pub sku: String, pub cents: u64 }
//!
//! #[perdure::activity]
//! async fn charge_card(_ctx: ActivityContext, order: Order) -> Result<String, Failure> {
//!     Ok(format!("charged {} for {}", order.cents, order.sku))
//! }
//!
//! #[perdure::orchestrator]
//! async fn checkout(ctx: OrchestrationContext, order: Order) -> Result<String, Failure> {
//!     // `ChargeCard` was made by the attribute: its input must be an
//!     // `Order` and its output is a `String`, checked when this compiles.
//!     let receipt = ctx.call(ChargeCard, &order).await?;
//!     Ok(receipt)
//! }
//!
//! let mut registry = Registry::new();
//! registry.register(ChargeCard).register(Checkout);
//! assert!(registry.activity_names().contains(&"ChargeCard".to_string()));
//! assert!(registry.orchestrator_names().contains(&"Checkout".to_string()));
//! ```

use crate::activity::ActivityContext;
use crate::client::{Client, StartOptions};
use crate::context::OrchestrationContext;
use crate::error::{ClientError, Failure, TaskError};
use crate::registry::Registry;
use crate::retry::RetryPolicy;
use crate::tasks::DurableTask;
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;

mod entities;
pub use entities::{Entity, EntityOperation, TypedEntity};

/// An activity declared as a Rust item: its registered name and the types
/// of its input and output. `#[perdure::activity]` implements it for a unit
/// struct named after the function.
pub trait Activity: Send + Sync + 'static {
    /// The name it is registered and called under.
    const NAME: &'static str;
    type Input: Serialize + DeserializeOwned + Send + 'static;
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// Runs one call.
    fn run(
        &self,
        ctx: ActivityContext,
        input: Self::Input,
    ) -> impl Future<Output = Result<Self::Output, Failure>> + Send;
}

/// An orchestrator declared as a Rust item; see [`Activity`].
pub trait Orchestrator: Send + Sync + 'static {
    const NAME: &'static str;
    type Input: Serialize + DeserializeOwned + Send + 'static;
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// Runs the orchestration (replayed as any orchestrator is).
    fn run(
        &self,
        ctx: OrchestrationContext,
        input: Self::Input,
    ) -> impl Future<Output = Result<Self::Output, Failure>> + Send;
}

/// What [`Registry::register`] takes: the items the attribute macros make.
pub trait Register {
    fn register(self, registry: &mut Registry);
}

impl Registry {
    /// Registers a typed activity or orchestrator under its own name.
    pub fn register(&mut self, item: impl Register) -> &mut Self {
        item.register(self);
        self
    }

    /// Registers a typed activity (one that holds state, say) under
    /// [`Activity::NAME`].
    pub fn register_activity<A: Activity>(&mut self, activity: A) -> &mut Self {
        let activity = Arc::new(activity);
        self.add_activity(A::NAME, move |ctx, input: A::Input| {
            let activity = activity.clone();
            async move { activity.run(ctx, input).await }
        })
    }

    /// Registers a typed orchestrator under [`Orchestrator::NAME`]; its
    /// input is read as [`Orchestrator::Input`] (a failure names it when it
    /// is not).
    pub fn register_orchestrator<O: Orchestrator>(&mut self, orchestrator: O) -> &mut Self {
        let orchestrator = Arc::new(orchestrator);
        self.add_orchestrator(O::NAME, move |ctx: OrchestrationContext| {
            let orchestrator = orchestrator.clone();
            async move {
                let input: O::Input = ctx.get_input()?;
                orchestrator.run(ctx, input).await
            }
        })
    }
}

impl OrchestrationContext {
    /// Calls typed activity `A`: its input must be an `A::Input`, and
    /// awaiting gives an `A::Output`.
    pub fn call<A: Activity>(&self, _activity: A, input: &A::Input) -> DurableTask<A::Output> {
        self.call_activity(A::NAME, input)
    }

    /// Calls typed activity `A`, retrying failures as `policy` says.
    pub fn call_with_retry<A: Activity>(
        &self,
        _activity: A,
        policy: &RetryPolicy,
        input: &A::Input,
    ) -> BoxFuture<'static, Result<A::Output, TaskError>> {
        self.call_activity_with_retry(A::NAME, policy, input)
    }

    /// Starts typed orchestrator `O` as a sub-orchestration; awaiting
    /// gives its `O::Output`.
    pub fn call_sub<O: Orchestrator>(
        &self,
        _orchestrator: O,
        input: &O::Input,
    ) -> DurableTask<O::Output> {
        self.call_sub_orchestrator(O::NAME, input)
    }
}

impl Client {
    /// Starts typed orchestrator `O` with `input` (a generated instance
    /// id); returns the id. Read its output with
    /// [`crate::OrchestrationStatus::output_as`]`::<O::Output>()`.
    pub async fn start<O: Orchestrator>(
        &self,
        _orchestrator: O,
        input: &O::Input,
    ) -> Result<String, ClientError> {
        self.start_new_with(O::NAME, input, StartOptions::default())
            .await
    }
}
