//! The turn protocol every orchestration runner follows, whether it runs
//! orchestrator code in this process (the [`crate::Worker`]) or hands the
//! turn to a remote worker (the gRPC sidecar in `perdure-server`):
//!
//! 1. [`prepare`] turns a locked [`OrchestrationItem`] into a [`TurnPlan`]:
//!    which messages this turn consumes and applies, whether it starts a new
//!    execution, whether the instance is suspended. Items that need no
//!    orchestrator code (late messages for a finished instance, a rewind, a
//!    scheduled start that is not due) are dealt with here. Entities take
//!    their own path: [`run_entity_batch`].
//! 2. The runner applies the plan's events and gets a [`TurnResult`]: the
//!    events it accepted, the actions it took, and the outcome if the
//!    execution ended.
//! 3. [`build_commit`] turns plan and result into one atomic
//!    [`OrchestrationCommit`]: history, instance row, activities, timers,
//!    sub-orchestration starts, events to others, replies to the parent.

mod commit;
mod entities;
mod rewind;

pub use commit::{activity_result, build_commit};
pub use entities::{
    entity_commit, entity_lock_holder, entity_schedule_is_empty, plan_entity_batch,
    run_entity_batch, EntityBatch, EntityOperation, EntityPlan,
};

use chrono::Utc;
use perdure_core::{
    Action, EventKind, FailureDetails, HistoryEvent, ParentInstance, Payload, RuntimeStatus,
    Timestamp, TraceContext,
};
use perdure_store::{
    InboxMessage, InstanceMessage, InstanceRecord, InstanceUpdate, OrchestrationCommit,
    OrchestrationItem, Store, StoreError,
};
use std::time::Duration;

/// How an execution ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Completed(Payload),
    Failed(FailureDetails),
    Terminated(Payload),
    ContinuedAsNew {
        input: Payload,
        /// Events handed to the next execution (name, input), in order.
        carried: Vec<(String, Payload)>,
    },
}

/// Who an execution is: read from its ExecutionStarted event.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecutionInfo {
    pub name: String,
    pub version: Option<String>,
    pub execution_id: String,
    pub input: Payload,
    pub parent: Option<ParentInstance>,
    /// The span the execution continues.
    pub trace_context: Option<TraceContext>,
}

impl ExecutionInfo {
    /// From an ExecutionStarted event; `None` for any other event.
    pub fn from_start(e: &HistoryEvent) -> Option<Self> {
        match &e.kind {
            EventKind::ExecutionStarted {
                trace_context,
                name,
                version,
                input,
                execution_id,
                parent,
            } => Some(ExecutionInfo {
                trace_context: trace_context.clone(),
                name: name.clone(),
                version: version.clone(),
                execution_id: execution_id.clone(),
                input: input.clone(),
                parent: parent.clone(),
            }),
            _ => None,
        }
    }

    /// From the first ExecutionStarted event of a history.
    pub fn from_history(history: &[HistoryEvent]) -> Option<Self> {
        history.iter().find_map(Self::from_start)
    }
}

/// One turn to run.
#[derive(Clone, Debug)]
pub struct TurnPlan {
    pub instance: InstanceRecord,
    pub lock_token: String,
    /// Inbox messages the commit removes.
    pub consumed: Vec<i64>,
    /// The instance is suspended after this turn's suspend/resume messages.
    pub suspended: bool,
    /// The turn starts a new execution: `events` begins with its
    /// ExecutionStarted and the stored history (if any) is replaced.
    pub new_execution: bool,
    /// The events to apply, in order, without the turn's OrchestratorStarted.
    pub events: Vec<HistoryEvent>,
    /// Messages the commit sends whatever the turn does (refusals of starts
    /// for an instance that is already running).
    pub messages: Vec<InstanceMessage>,
    /// The turn's time (its OrchestratorStarted timestamp).
    pub now: Timestamp,
}

impl TurnPlan {
    /// The turn's events as a runner applies them: OrchestratorStarted
    /// (the orchestration's current time), then the plan's events.
    pub fn turn_events(&self) -> Vec<HistoryEvent> {
        let mut v = Vec::with_capacity(self.events.len() + 1);
        v.push(HistoryEvent::new(self.now, EventKind::OrchestratorStarted));
        v.extend(self.events.iter().cloned());
        v
    }
}

/// What a runner made of a turn.
#[derive(Clone, Debug, Default)]
pub struct TurnResult {
    /// The events applied (OrchestratorStarted first); duplicates left out.
    pub accepted: Vec<HistoryEvent>,
    /// New actions, in the order taken.
    pub actions: Vec<Action>,
    /// Set when the execution ended in this turn.
    pub outcome: Option<Outcome>,
    pub custom_status: Payload,
    /// Events not applied because the execution ended first.
    pub leftover: Vec<HistoryEvent>,
}

/// What [`prepare`] made of an item.
#[derive(Debug)]
pub enum Prepared {
    /// Nothing to run: the item was committed or given back.
    Handled,
    /// A turn to run.
    Turn(Box<TurnPlan>),
    /// Operations for an entity (see [`run_entity_batch`]).
    Entity(Box<EntityBatch>),
}

fn is_start(m: &InboxMessage) -> bool {
    matches!(m.event.kind, EventKind::ExecutionStarted { .. })
}

/// Sorts a locked item's messages into a turn, or deals with it.
pub async fn prepare(store: &dyn Store, item: OrchestrationItem) -> Result<Prepared, StoreError> {
    let OrchestrationItem {
        instance,
        messages,
        lock_token,
    } = item;
    let now = Utc::now();
    if perdure_core::is_entity_instance(&instance.instance_id) {
        return Ok(Prepared::Entity(Box::new(EntityBatch {
            instance,
            lock_token,
            messages,
            now,
        })));
    }
    let id = instance.instance_id.clone();
    let mut suspended = instance.status == RuntimeStatus::Suspended;
    let has_execution = instance.history_len > 0 && !instance.status.is_terminal();

    if has_execution {
        let mut refusals = Vec::new();
        // A start for an instance that is running is refused; tell the parent.
        for m in messages.iter().filter(|m| is_start(m)) {
            if let EventKind::ExecutionStarted {
                parent: Some(p), ..
            } = &m.event.kind
            {
                refusals.push(to_parent(
                    p,
                    EventKind::SubOrchestrationInstanceFailed {
                        task_scheduled_id: p.task_scheduled_id,
                        failure: FailureDetails::new(
                            "InstanceAlreadyRunning",
                            format!("instance `{id}` is already {}", instance.status),
                        )
                        .non_retriable(),
                    },
                    now,
                ));
            }
        }
        let exec = instance.execution_id.clone();
        // While suspended only resume and terminate apply; the rest stays in
        // the inbox for after the resume.
        let mut consumed = Vec::new();
        let mut events = Vec::new();
        for m in messages {
            let stale = is_start(&m) || m.execution_id.as_ref().is_some_and(|e| *e != exec);
            match &m.event.kind {
                _ if stale => {}
                EventKind::ExecutionSuspended { .. } => suspended = true,
                EventKind::ExecutionResumed { .. } => suspended = false,
                _ if suspended && !perdure_store::is_control(&m.event) => continue,
                _ => {}
            }
            consumed.push(m.seq);
            if !stale {
                events.push(m.event);
            }
        }
        return Ok(Prepared::Turn(Box::new(TurnPlan {
            instance,
            lock_token,
            consumed,
            suspended,
            new_execution: false,
            events,
            messages: refusals,
            now,
        })));
    }

    let consumed: Vec<i64> = messages.iter().map(|m| m.seq).collect();
    let Some(start_pos) = messages.iter().position(is_start) else {
        if instance.status == RuntimeStatus::Failed {
            if let Some(reason) = messages.iter().find_map(|m| match &m.event.kind {
                EventKind::ExecutionRewound { reason } => Some(reason.clone()),
                _ => None,
            }) {
                rewind::rewind(store, &instance, lock_token, consumed, reason, now).await?;
                return Ok(Prepared::Handled);
            }
        }
        if instance.status.is_terminal() {
            // Late messages for a finished instance: drop them.
            commit_discard(store, &instance, lock_token, consumed, now).await?;
            return Ok(Prepared::Handled);
        }
        // A scheduled start is not due yet: try again later.
        store
            .abandon_orchestration(&id, &lock_token, Duration::from_secs(1))
            .await?;
        return Ok(Prepared::Handled);
    };
    let mut messages = messages;
    let start = messages.remove(start_pos);
    let EventKind::ExecutionStarted { execution_id, .. } = &start.event.kind else {
        return Err(StoreError::Corrupt("start message changed kind".into()));
    };
    let exec = execution_id.clone();
    // The start, then messages carried for this execution, then events.
    let mut events = vec![start.event];
    let (own, rest): (Vec<_>, Vec<_>) = messages
        .into_iter()
        .filter(|m| !is_start(m))
        .partition(|m| m.execution_id.as_deref() == Some(exec.as_str()));
    events.extend(own.into_iter().map(|m| m.event));
    events.extend(
        rest.into_iter()
            .filter(|m| m.execution_id.is_none())
            .map(|m| m.event),
    );
    Ok(Prepared::Turn(Box::new(TurnPlan {
        instance,
        lock_token,
        consumed,
        suspended,
        new_execution: true,
        events,
        messages: Vec::new(),
        now,
    })))
}

pub(crate) fn to_parent(p: &ParentInstance, kind: EventKind, now: Timestamp) -> InstanceMessage {
    InstanceMessage {
        instance_id: p.instance_id.clone(),
        execution_id: Some(p.execution_id.clone()),
        event: HistoryEvent::new(now, kind),
        visible_at: now,
    }
}

/// Consumes messages without changing the instance.
async fn commit_discard(
    store: &dyn Store,
    instance: &InstanceRecord,
    lock_token: String,
    consumed: Vec<i64>,
    now: Timestamp,
) -> Result<(), StoreError> {
    store
        .commit_orchestration(OrchestrationCommit {
            instance_id: instance.instance_id.clone(),
            lock_token,
            replace_history: false,
            expected_history_len: instance.history_len,
            history: Vec::new(),
            update: unchanged(instance),
            consumed,
            activities: Vec::new(),
            messages: Vec::new(),
            now,
            claims: Default::default(),
        })
        .await
}

/// The instance row as it is.
pub(crate) fn unchanged(instance: &InstanceRecord) -> InstanceUpdate {
    InstanceUpdate {
        name: instance.name.clone(),
        version: instance.version.clone(),
        status: instance.status,
        execution_id: instance.execution_id.clone(),
        input: instance.input.clone(),
        output: instance.output.clone(),
        failure: instance.failure.clone(),
        custom_status: instance.custom_status.clone(),
        parent_instance_id: instance.parent_instance_id.clone(),
    }
}
