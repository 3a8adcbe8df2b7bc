//! The orchestration context: everything orchestrator code may do. Every
//! method is deterministic on replay: calls are matched against history,
//! time is the turn's recorded time, GUIDs derive from the instance id.

use crate::critical::LockedCall;
use crate::error::{Failure, TaskError};
use crate::retry::RetryPolicy;
use crate::tasks::{DurableTask, EventTask, RawTask, Target, TimerTask};
use chrono::{DateTime, Utc};
use futures::future::{BoxFuture, Either, FutureExt};
use perdure_core::{
    validate_instance_id, validate_name, EntityId, ExecutionState, NameKind, ParentInstance,
    Payload, TaskKey,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Duration;

pub(crate) struct Shared {
    pub exec: ExecutionState,
    pub wakers: HashMap<TaskKey, Waker>,
}

pub(crate) fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // User code never runs while this lock is held, so a poisoned lock only
    // means a panic elsewhere in this turn; the state is still consistent.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// The handle orchestrator code gets. Cheap to clone.
#[derive(Clone)]
pub struct OrchestrationContext {
    pub(crate) shared: Arc<Mutex<Shared>>,
}

fn to_payload(v: &impl Serialize, what: &str) -> Result<Payload, TaskError> {
    serde_json::to_string(v)
        .map(|t| Some(t.into()))
        .map_err(|e| TaskError::Serialization {
            what: format!("cannot serialize {what}"),
            message: e.to_string(),
        })
}

impl OrchestrationContext {
    pub(crate) fn new(exec: ExecutionState) -> Self {
        OrchestrationContext {
            shared: Arc::new(Mutex::new(Shared {
                exec,
                wakers: HashMap::new(),
            })),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut ExecutionState) -> R) -> R {
        f(&mut lock(&self.shared).exec)
    }

    /// This instance's id.
    pub fn instance_id(&self) -> String {
        self.with(|e| e.instance_id.clone())
    }

    /// The version this execution was started with (`StartOptions::version`,
    /// or the version an SDK client sent), if any: code that changes can
    /// keep the old path for instances started under an older version.
    pub fn version(&self) -> Option<String> {
        self.with(|e| e.version.clone())
    }

    /// Code versioning in the manner of Temporal's `patched`: true when
    /// this execution takes the new branch of change `change_id`. New
    /// executions (and those that reach this point after the change was
    /// deployed) take it, and a `PatchMarker` event records that in their
    /// history; an instance that ran this point before the change replays
    /// without the marker and gets false, so it takes the old branch it
    /// recorded. Once no instance that ran the old branch is left, replace
    /// the `if` with [`Self::deprecate_patch`], then remove that too.
    ///
    /// ```
    /// # use perdure::{OrchestrationContext, Registry};
    /// let mut registry = Registry::new();
    /// registry.add_orchestrator("Checkout", |ctx: OrchestrationContext| async move {
    ///     let receipt: String = if ctx.is_patched("fraud-check") {
    ///         ctx.call_activity::<bool>("CheckFraud", ()).await?;
    ///         ctx.call_activity("Charge", ()).await?
    ///     } else {
    ///         ctx.call_activity("Charge", ()).await?
    ///     };
    ///     Ok(receipt)
    /// });
    /// ```
    pub fn is_patched(&self, change_id: &str) -> bool {
        self.with(|e| e.is_patched(change_id))
    }

    /// The second step of retiring a change: the code keeps only the new
    /// branch, and this records the change's marker as
    /// [`Self::is_patched`] would (so workers still running the `if` take
    /// the new branch for this instance) without asking for it in
    /// histories that lack it.
    ///
    /// ```
    /// # use perdure::{OrchestrationContext, Registry};
    /// let mut registry = Registry::new();
    /// registry.add_orchestrator("Checkout", |ctx: OrchestrationContext| async move {
    ///     // Every instance that took the old branch has finished.
    ///     ctx.deprecate_patch("fraud-check");
    ///     ctx.call_activity::<bool>("CheckFraud", ()).await?;
    ///     Ok(ctx.call_activity::<String>("Charge", ()).await?)
    /// });
    /// ```
    pub fn deprecate_patch(&self, change_id: &str) {
        self.with(|e| e.deprecate_patch(change_id))
    }

    /// The orchestration's registered name.
    pub fn name(&self) -> String {
        self.with(|e| e.name.clone())
    }

    /// The id of the current execution (changes on continue-as-new).
    pub fn execution_id(&self) -> String {
        self.with(|e| e.execution_id.clone())
    }

    /// The span this execution continues (its trace context).
    pub(crate) fn trace_context(&self) -> Option<perdure_core::TraceContext> {
        self.with(|e| e.trace_context.clone())
    }

    /// The parent orchestration, when this is a sub-orchestration.
    pub fn parent(&self) -> Option<ParentInstance> {
        self.with(|e| e.parent.clone())
    }

    /// The orchestration's input, deserialized as `T`. Several parameters
    /// travel as a tuple or a struct.
    pub fn get_input<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        let input = self.with(|e| e.input.clone());
        serde_json::from_str(input.as_deref().unwrap_or("null")).map_err(|err| {
            Failure::new(
                "InputDeserialization",
                format!("cannot read the orchestration input: {err}"),
            )
            .non_retriable()
        })
    }

    /// The time of the current turn: the same value on every replay.
    pub fn current_utc_date_time(&self) -> DateTime<Utc> {
        self.with(|e| e.current_time())
    }

    /// True while the code is catching up with history already recorded.
    pub fn is_replaying(&self) -> bool {
        self.with(|e| e.is_replaying())
    }

    /// A GUID that is the same on every replay.
    pub fn new_guid(&self) -> String {
        self.with(|e| e.new_guid())
    }

    /// Sets the custom status shown by `get_status`.
    pub fn set_custom_status(&self, status: impl Serialize) {
        let payload = serde_json::to_string(&status).ok().map(Into::into);
        self.with(|e| e.set_custom_status(payload));
    }

    /// Calls an activity; awaiting gives its result as `T`.
    pub fn call_activity<T: DeserializeOwned>(
        &self,
        name: &str,
        input: impl Serialize,
    ) -> DurableTask<T> {
        let target = Target::Activity(name.to_string());
        if let Err(e) = validate_name(NameKind::Activity, name) {
            return DurableTask::failed(TaskError::InvalidCall(e.to_string()), target);
        }
        let payload = match to_payload(&input, &format!("the input of activity `{name}`")) {
            Ok(p) => p,
            Err(e) => return DurableTask::failed(e, target),
        };
        let id = self.with(|e| e.schedule_task(name, None, payload));
        DurableTask::new(
            RawTask::new(self.shared.clone(), TaskKey::Action(id)),
            target,
        )
    }

    /// Calls an activity, retrying failures as `policy` says. The waits are
    /// durable timers.
    pub fn call_activity_with_retry<T: DeserializeOwned + Send + 'static>(
        &self,
        name: &str,
        policy: &RetryPolicy,
        input: impl Serialize,
    ) -> BoxFuture<'static, Result<T, TaskError>> {
        let ctx = self.clone();
        let policy = policy.clone();
        let name = name.to_string();
        let payload = to_payload(&input, &format!("the input of activity `{name}`"));
        async move {
            let payload = payload?;
            ctx.retry_loop(&policy, move |ctx| {
                let id = ctx.with(|e| e.schedule_task(&name, None, payload.clone()));
                DurableTask::<T>::new(
                    RawTask::new(ctx.shared.clone(), TaskKey::Action(id)),
                    Target::Activity(name.clone()),
                )
            })
            .await
        }
        .boxed()
    }

    /// Starts a sub-orchestration with a derived instance id; awaiting gives
    /// its output as `T`.
    pub fn call_sub_orchestrator<T: DeserializeOwned>(
        &self,
        name: &str,
        input: impl Serialize,
    ) -> DurableTask<T> {
        self.call_sub_orchestrator_with_id(name, None, input)
    }

    /// Starts a sub-orchestration, with an explicit child instance id when
    /// `instance_id` is given.
    pub fn call_sub_orchestrator_with_id<T: DeserializeOwned>(
        &self,
        name: &str,
        instance_id: Option<&str>,
        input: impl Serialize,
    ) -> DurableTask<T> {
        let target = |id: &str| Target::SubOrchestration {
            name: name.to_string(),
            instance_id: id.to_string(),
        };
        if let Err(e) = validate_name(NameKind::Orchestration, name) {
            return DurableTask::failed(
                TaskError::InvalidCall(e.to_string()),
                target(instance_id.unwrap_or_default()),
            );
        }
        if let Some(id) = instance_id {
            if let Err(e) = validate_instance_id(id) {
                return DurableTask::failed(TaskError::InvalidCall(e.to_string()), target(id));
            }
        }
        if let Some(e) = self.lock_rules(LockedCall::SubOrchestration, None) {
            return DurableTask::failed(e, target(instance_id.unwrap_or("")));
        }
        let payload = match to_payload(&input, &format!("the input of sub-orchestration `{name}`"))
        {
            Ok(p) => p,
            Err(e) => return DurableTask::failed(e, target(instance_id.unwrap_or(""))),
        };
        let (id, child) = self.with(|e| {
            e.create_sub_orchestration(name, None, instance_id.map(str::to_string), payload)
        });
        DurableTask::new(
            RawTask::new(self.shared.clone(), TaskKey::Action(id)),
            target(&child),
        )
    }

    /// Starts a sub-orchestration and retries it as `policy` says. Each
    /// attempt is a new child instance; with an explicit `instance_id` the
    /// attempts reuse it.
    pub fn call_sub_orchestrator_with_retry<T: DeserializeOwned + Send + 'static>(
        &self,
        name: &str,
        instance_id: Option<&str>,
        policy: &RetryPolicy,
        input: impl Serialize,
    ) -> BoxFuture<'static, Result<T, TaskError>> {
        let ctx = self.clone();
        let policy = policy.clone();
        let name = name.to_string();
        let instance_id = instance_id.map(str::to_string);
        let payload = serde_json::to_value(&input).map_err(|e| TaskError::Serialization {
            what: format!("cannot serialize the input of sub-orchestration `{name}`"),
            message: e.to_string(),
        });
        async move {
            let payload = payload?;
            ctx.retry_loop(&policy, move |ctx| {
                ctx.call_sub_orchestrator_with_id::<T>(&name, instance_id.as_deref(), &payload)
            })
            .await
        }
        .boxed()
    }

    async fn retry_loop<T, F>(
        &self,
        policy: &RetryPolicy,
        mut attempt_fn: F,
    ) -> Result<T, TaskError>
    where
        F: FnMut(&OrchestrationContext) -> DurableTask<T>,
        T: DeserializeOwned,
    {
        let started = self.current_utc_date_time();
        let mut attempt: u32 = 1;
        loop {
            match attempt_fn(self).await {
                Ok(v) => return Ok(v),
                Err(err) => {
                    let Some(failure) = err.failure() else {
                        return Err(err);
                    };
                    if !policy.should_retry(failure) {
                        return Err(err);
                    }
                    let elapsed = (self.current_utc_date_time() - started)
                        .to_std()
                        .unwrap_or_default();
                    let Some(delay) = policy.options.next_delay(attempt, elapsed) else {
                        return Err(err);
                    };
                    self.log_info(&format!(
                        "attempt {attempt} failed ({failure}); retrying in {delay:?}"
                    ));
                    self.create_timer_after(delay).await;
                    attempt += 1;
                }
            }
        }
    }

    /// A durable timer that fires at `fire_at`.
    pub fn create_timer(&self, fire_at: DateTime<Utc>) -> TimerTask {
        let id = self.with(|e| e.create_timer(fire_at));
        TimerTask::new(RawTask::new(self.shared.clone(), TaskKey::Action(id)))
    }

    /// A durable timer that fires `delay` after the current turn's time
    /// (a delay past 9999-12-31 is clamped there: such a timer never fires).
    pub fn create_timer_after(&self, delay: Duration) -> TimerTask {
        self.create_timer(perdure_core::time::after(
            self.current_utc_date_time(),
            delay,
        ))
    }

    /// Waits for an external event named `name` (case-insensitive). Events
    /// that arrived before the wait are buffered and taken in order.
    pub fn wait_for_external_event<T: DeserializeOwned>(&self, name: &str) -> EventTask<T> {
        let key = self.with(|e| e.wait_for_event(name));
        EventTask::new(RawTask::new(self.shared.clone(), key), name.to_string())
    }

    /// Waits for an external event, giving [`TaskError::Timeout`] if none
    /// arrives within `timeout` (a durable timer, cancelled when the event
    /// comes first).
    pub fn wait_for_external_event_with_timeout<T: DeserializeOwned + Send + 'static>(
        &self,
        name: &str,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<T, TaskError>> {
        let event = self.wait_for_external_event::<T>(name);
        let timer = self.create_timer_after(timeout);
        let name = name.to_string();
        async move {
            match futures::future::select(event, timer).await {
                Either::Left((value, timer)) => {
                    timer.cancel();
                    value
                }
                Either::Right(((), _event)) => Err(TaskError::Timeout(name)),
            }
        }
        .boxed()
    }

    /// Sends an event to another instance (fire and forget).
    pub fn send_event(&self, instance_id: &str, name: &str, data: impl Serialize) {
        let payload = serde_json::to_string(&data).ok().map(Into::into);
        self.with(|e| e.send_event(instance_id, name, payload));
    }

    /// Calls an operation on an entity and waits for its answer, given as
    /// `T`. Operations on one entity run one at a time, in the order each
    /// sender sent them.
    pub fn call_entity<T: DeserializeOwned>(
        &self,
        entity: &EntityId,
        operation: &str,
        input: impl Serialize,
    ) -> DurableTask<T> {
        let target = Target::Entity {
            entity: entity.to_string(),
            operation: operation.to_string(),
        };
        let what = format!("the input of operation `{operation}` of entity `{entity}`");
        let payload = match to_payload(&input, &what) {
            Ok(p) => p,
            Err(e) => return DurableTask::failed(e, target),
        };
        if let Some(e) = self.lock_rules(LockedCall::Call, Some(&entity.to_string())) {
            return DurableTask::failed(e, target);
        }
        let id = self.with(|e| e.call_entity(&entity.to_string(), operation, payload));
        DurableTask::new(
            RawTask::new(self.shared.clone(), TaskKey::Action(id)),
            target,
        )
    }

    /// Signals an operation on an entity (one-way: nothing waits for it).
    /// Refused for an entity this orchestration holds locked.
    pub fn signal_entity(
        &self,
        entity: &EntityId,
        operation: &str,
        input: impl Serialize,
    ) -> Result<(), TaskError> {
        self.signal_entity_at(entity, operation, input, None)
    }

    /// Signals an operation on an entity, delivered no earlier than `at`
    /// when given.
    pub fn signal_entity_at(
        &self,
        entity: &EntityId,
        operation: &str,
        input: impl Serialize,
        at: Option<DateTime<Utc>>,
    ) -> Result<(), TaskError> {
        if let Some(e) = self.lock_rules(LockedCall::Signal, Some(&entity.to_string())) {
            return Err(e);
        }
        let what = format!("the input of operation `{operation}` of entity `{entity}`");
        let payload = to_payload(&input, &what)?;
        self.with(|e| e.signal_entity(&entity.to_string(), operation, payload, at));
        Ok(())
    }

    /// Waits for every task; the results come back in the order given.
    pub async fn when_all<F: Future>(&self, tasks: impl IntoIterator<Item = F>) -> Vec<F::Output> {
        futures::future::join_all(tasks).await
    }

    /// Waits for the first task to finish; gives its index and output. The
    /// other tasks are dropped (cancelled). To keep them, use
    /// [`crate::future::select`], which hands back the unfinished one.
    pub async fn when_any<F: Future + Unpin>(
        &self,
        tasks: impl IntoIterator<Item = F>,
    ) -> (usize, F::Output) {
        let (out, idx, _rest) = futures::future::select_all(tasks).await;
        (idx, out)
    }

    /// Restarts this orchestration with a new input and an empty history once
    /// the orchestrator function returns. Unprocessed events are dropped.
    pub fn continue_as_new(&self, input: impl Serialize) {
        self.continue_as_new_with_options(input, false)
    }

    /// Like [`Self::continue_as_new`]; with `preserve_unprocessed_events`,
    /// external events received but not yet waited for are carried into the
    /// new execution.
    pub fn continue_as_new_with_options(
        &self,
        input: impl Serialize,
        preserve_unprocessed_events: bool,
    ) {
        let payload = serde_json::to_string(&input).ok().map(Into::into);
        self.with(|e| e.request_continue_as_new(payload, preserve_unprocessed_events));
    }

    fn log(&self, level: tracing::Level, msg: &str) {
        let (replaying, id, name) =
            self.with(|e| (e.is_replaying(), e.instance_id.clone(), e.name.clone()));
        if replaying {
            return;
        }
        match level {
            tracing::Level::ERROR => {
                tracing::error!(instance_id = %id, orchestration = %name, "{msg}")
            }
            tracing::Level::WARN => {
                tracing::warn!(instance_id = %id, orchestration = %name, "{msg}")
            }
            tracing::Level::DEBUG => {
                tracing::debug!(instance_id = %id, orchestration = %name, "{msg}")
            }
            _ => tracing::info!(instance_id = %id, orchestration = %name, "{msg}"),
        }
    }

    /// Logs at info level, except while replaying (so nothing is logged twice).
    pub fn log_info(&self, msg: &str) {
        self.log(tracing::Level::INFO, msg)
    }

    /// Logs at warn level, except while replaying.
    pub fn log_warn(&self, msg: &str) {
        self.log(tracing::Level::WARN, msg)
    }

    /// Logs at error level, except while replaying.
    pub fn log_error(&self, msg: &str) {
        self.log(tracing::Level::ERROR, msg)
    }
}
