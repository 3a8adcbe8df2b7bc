//! The registry: orchestrator and activity functions by name (names are
//! case-insensitive, as in Durable Functions), type-erased to JSON in and out.

use crate::activity::ActivityContext;
use crate::context::OrchestrationContext;
use crate::entity::EntityContext;
use crate::error::Failure;
use futures::future::{BoxFuture, FutureExt};
use perdure_core::Payload;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

pub(crate) type OrchestratorFn =
    Arc<dyn Fn(OrchestrationContext) -> BoxFuture<'static, Result<Payload, Failure>> + Send + Sync>;
pub(crate) type ActivityFn = Arc<
    dyn Fn(ActivityContext, Payload) -> BoxFuture<'static, Result<Payload, Failure>> + Send + Sync,
>;
pub(crate) type EntityFn =
    Arc<dyn Fn(EntityContext) -> BoxFuture<'static, Result<Payload, Failure>> + Send + Sync>;

fn to_payload<O: Serialize>(out: O, what: &str) -> Result<Payload, Failure> {
    serde_json::to_string(&out)
        .map(|t| Some(t.into()))
        .map_err(|e| {
            Failure::new(
                "Serialization",
                format!("cannot serialize the output of {what}: {e}"),
            )
        })
}

/// Orchestrators, activities and entities by name.
#[derive(Clone, Default)]
pub struct Registry {
    orchestrators: HashMap<String, (String, OrchestratorFn)>,
    activities: HashMap<String, (String, ActivityFn)>,
    entities: HashMap<String, EntityFn>,
}

impl Registry {
    /// A registry with the built-in activities (durable HTTP).
    pub fn new() -> Self {
        let mut r = Self::default();
        r.add_activity(crate::http::HTTP_ACTIVITY, |_ctx, request| {
            crate::http::http_activity(request)
        });
        r
    }

    /// Registers an orchestrator: an async function of the context returning
    /// any serializable output.
    pub fn add_orchestrator<F, Fut, O>(&mut self, name: &str, f: F) -> &mut Self
    where
        F: Fn(OrchestrationContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, Failure>> + Send + 'static,
        O: Serialize + 'static,
    {
        let label = format!("orchestration `{name}`");
        let erased: OrchestratorFn = Arc::new(move |ctx| {
            let fut = f(ctx);
            let label = label.clone();
            async move { to_payload(fut.await?, &label) }.boxed()
        });
        self.orchestrators
            .insert(name.to_lowercase(), (name.to_string(), erased));
        self
    }

    /// Registers an activity: an async function of its context and its
    /// input (any deserializable type; several values as a tuple or struct).
    pub fn add_activity<F, Fut, I, O>(&mut self, name: &str, f: F) -> &mut Self
    where
        F: Fn(ActivityContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, Failure>> + Send + 'static,
        I: DeserializeOwned + Send + 'static,
        O: Serialize + 'static,
    {
        let label = format!("activity `{name}`");
        let f = Arc::new(f);
        let erased: ActivityFn = Arc::new(move |ctx, input| {
            let label = label.clone();
            let f = f.clone();
            async move {
                let input: I =
                    serde_json::from_str(input.as_deref().unwrap_or("null")).map_err(|e| {
                        Failure::new(
                            "InputDeserialization",
                            format!("cannot read the input of {label}: {e}"),
                        )
                        .non_retriable()
                    })?;
                to_payload(f(ctx, input).await?, &label)
            }
            .boxed()
        });
        self.activities
            .insert(name.to_lowercase(), (name.to_string(), erased));
        self
    }

    /// Registers an activity already erased to JSON text in and out (the
    /// test kit's fakes).
    pub(crate) fn add_raw_activity(&mut self, name: &str, f: ActivityFn) -> &mut Self {
        self.activities
            .insert(name.to_lowercase(), (name.to_string(), f));
        self
    }

    /// Registers an entity already erased to JSON text out (typed entities).
    pub(crate) fn add_raw_entity(&mut self, name: &str, f: EntityFn) -> &mut Self {
        self.entities.insert(name.to_lowercase(), f);
        self
    }

    /// Registers an entity: an async function of an [`EntityContext`] that
    /// runs one operation (dispatching on `ctx.operation()`), reads and
    /// writes the entity's state through the context, and returns the
    /// operation's result. An error or a panic rolls the state back.
    pub fn add_entity<F, Fut, O>(&mut self, name: &str, f: F) -> &mut Self
    where
        F: Fn(EntityContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, Failure>> + Send + 'static,
        O: Serialize + 'static,
    {
        let label = format!("entity `{name}`");
        let erased: EntityFn = Arc::new(move |ctx| {
            let fut = f(ctx);
            let label = label.clone();
            async move { to_payload(fut.await?, &label) }.boxed()
        });
        self.entities.insert(name.to_lowercase(), erased);
        self
    }

    pub(crate) fn entity(&self, name: &str) -> Option<EntityFn> {
        self.entities.get(&name.to_lowercase()).cloned()
    }

    /// Registered entity names (lowercase), as stores name their instances:
    /// `@name`.
    pub fn entity_instance_names(&self) -> Vec<String> {
        let mut v: Vec<_> = self.entities.keys().map(|n| format!("@{n}")).collect();
        v.sort();
        v
    }

    pub(crate) fn orchestrator(&self, name: &str) -> Option<OrchestratorFn> {
        self.orchestrators
            .get(&name.to_lowercase())
            .map(|(_, f)| f.clone())
    }

    pub(crate) fn activity(&self, name: &str) -> Option<ActivityFn> {
        self.activities
            .get(&name.to_lowercase())
            .map(|(_, f)| f.clone())
    }

    /// Runs operation `operation` of entity `id` on `state`, as a worker
    /// does: returns the state after it and its result with what it sent.
    /// On a failure (an error, a panic, or no entity of that name
    /// registered: a non-retriable `EntityNotFound`) the state is the one
    /// given and nothing is sent.
    pub fn invoke_entity(
        &self,
        id: &perdure_core::EntityId,
        operation: &str,
        input: Payload,
        state: Payload,
    ) -> impl Future<Output = (Payload, crate::OperationOutcome)> + Send + 'static {
        let f = self.entity(&id.name);
        let (id, operation) = (id.clone(), operation.to_string());
        async move {
            let Some(f) = f else {
                let failure = perdure_core::FailureDetails::new(
                    "EntityNotFound",
                    format!(
                        "no entity named `{}` is registered with this worker",
                        id.name
                    ),
                )
                .non_retriable();
                return (state, Err(failure));
            };
            let mut state = state;
            let result = crate::entity::run_operation(&f, &id, &operation, input, &mut state).await;
            (state, result)
        }
    }

    /// Runs the activity `ctx` names with `input`, as a worker does: in a
    /// task of its own, a panic caught as a `panic` failure, an unknown
    /// name a non-retriable `ActivityNotFound` failure. It renews no lease;
    /// whoever holds one renews it while this runs.
    pub fn invoke_activity(
        &self,
        ctx: ActivityContext,
        input: Payload,
    ) -> impl Future<Output = Result<Payload, perdure_core::FailureDetails>> + Send + 'static {
        let f = self.activity(ctx.name());
        async move {
            let Some(f) = f else {
                return Err(perdure_core::FailureDetails::new(
                    "ActivityNotFound",
                    format!(
                        "no activity named `{}` is registered with this worker",
                        ctx.name()
                    ),
                )
                .non_retriable());
            };
            match tokio::spawn(f(ctx, input)).await {
                Ok(Ok(payload)) => Ok(payload),
                Ok(Err(failure)) => Err(failure.into_details()),
                Err(e) if e.is_panic() => {
                    Err(crate::executor::panic_failure(e.into_panic().as_ref()))
                }
                Err(e) => Err(perdure_core::FailureDetails::new(
                    "Cancelled",
                    e.to_string(),
                )),
            }
        }
    }

    /// Registered orchestrator names.
    pub fn orchestrator_names(&self) -> Vec<String> {
        let mut v: Vec<_> = self
            .orchestrators
            .values()
            .map(|(n, _)| n.clone())
            .collect();
        v.sort();
        v
    }

    /// Registered activity names.
    pub fn activity_names(&self) -> Vec<String> {
        let mut v: Vec<_> = self.activities.values().map(|(n, _)| n.clone()).collect();
        v.sort();
        v
    }
}
