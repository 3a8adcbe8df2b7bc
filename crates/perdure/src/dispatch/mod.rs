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
mod control;
mod entities;
mod import;
mod rewind;

pub use commit::{activity_result, build_commit};
pub use entities::{
    entity_commit, entity_lock_holder, entity_schedule_is_empty, plan_entity_batch,
    run_entity_batch, signal_message, EntityBatch, EntityOperation, EntityPlan, StartRequest,
};

use perdure_core::{
    Action, EventKind, FailureDetails, HistoryEvent, ParentInstance, Payload, RuntimeStatus, Tags,
    Timestamp, TraceContext,
};
use perdure_store::{
    InboxMessage, InstanceMessage, InstanceRecord, InstanceUpdate, OrchestrationItem, Store,
    StoreError,
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
    /// The orchestration's tags.
    pub tags: Tags,
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
                tags,
            } => Some(ExecutionInfo {
                tags: tags.clone(),
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
    /// Tasks whose results the item carried in (applied in `events`, or
    /// re-queued in `messages` while the instance is suspended): the commit
    /// completes them.
    pub completed_tasks: Vec<String>,
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

    /// [`TurnPlan::turn_events`], moved out of the plan rather than copied
    /// (payloads are not copied on the hot path); `events` is left empty.
    pub fn take_turn_events(&mut self) -> Vec<HistoryEvent> {
        let mut v = Vec::with_capacity(self.events.len() + 1);
        v.push(HistoryEvent::new(self.now, EventKind::OrchestratorStarted));
        v.append(&mut self.events);
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

/// Whether a worker may carry an activity result into the turn of `item`
/// (taken by [`perdure_store::ActivityQueue::take_for_result`]) rather than
/// record it first: not when the batch holds a terminate, suspend or
/// resume, whose turns are decided without orchestrator code.
pub fn carries_results(item: &OrchestrationItem) -> bool {
    !item.messages.iter().any(|m| is_control(&m.event))
}

fn is_start(m: &InboxMessage) -> bool {
    matches!(m.event.kind, EventKind::ExecutionStarted { .. })
}

/// What a batch's control messages (terminate, suspend, resume) decide,
/// applied before any orchestrator code runs.
struct Control {
    /// The first terminate for this execution, if any: it ends the
    /// execution without running code.
    terminate: Option<HistoryEvent>,
    /// Suspended after the batch's suspends and resumes, in order.
    suspended: bool,
}

fn control(messages: &[InboxMessage], exec: Option<&str>, suspended: bool) -> Control {
    let mut c = Control {
        terminate: None,
        suspended,
    };
    for m in messages {
        if m.execution_id.as_deref().is_some_and(|e| Some(e) != exec) {
            continue;
        }
        match &m.event.kind {
            EventKind::ExecutionTerminated { .. } if c.terminate.is_none() => {
                c.terminate = Some(m.event.clone())
            }
            EventKind::ExecutionSuspended { .. } => c.suspended = true,
            EventKind::ExecutionResumed { .. } => c.suspended = false,
            _ => {}
        }
    }
    c
}

/// Sorts a locked item's messages into a turn, or deals with it. Control
/// messages apply first: a terminate in the batch ends the execution
/// without running orchestrator code (its other messages are moot), and a
/// batch that leaves the instance suspended applies only its suspends and
/// resumes (the other messages wait in the inbox for the resume).
pub async fn prepare(store: &dyn Store, item: OrchestrationItem) -> Result<Prepared, StoreError> {
    let OrchestrationItem {
        instance,
        messages,
        lock_token,
        now,
        carried,
    } = item;
    if perdure_core::is_entity_instance(&instance.instance_id) {
        return Ok(Prepared::Entity(Box::new(EntityBatch {
            instance,
            lock_token,
            messages,
            now,
        })));
    }
    let id = instance.instance_id.clone();
    let was_suspended = instance.status == RuntimeStatus::Suspended;
    let has_execution = instance.history_len > 0 && !instance.status.is_terminal();

    if has_execution {
        // A start for an instance that is running is refused; tell the parent.
        let refusals = refuse_starts(&messages, &id, instance.status, now);
        let exec = instance.execution_id.clone();
        let ctl = control(&messages, Some(&exec), was_suspended);
        if let Some(terminate) = ctl.terminate {
            let consumed = messages.iter().map(|m| m.seq).collect();
            Box::pin(control::terminate_running(
                store,
                &instance,
                control::Handled {
                    lock_token,
                    consumed,
                    messages: refusals,
                    now,
                },
                terminate,
            ))
            .await?;
            return Ok(Prepared::Handled);
        }
        let mut consumed = Vec::new();
        let mut events = Vec::new();
        for m in messages {
            let stale = is_start(&m) || m.execution_id.as_ref().is_some_and(|e| *e != exec);
            if !stale && ctl.suspended && !is_control(&m.event) {
                // Waits in the inbox until the instance is resumed.
                continue;
            }
            consumed.push(m.seq);
            if !stale {
                events.push(m.event);
            }
        }
        let mut messages = refusals;
        let mut completed_tasks = Vec::with_capacity(carried.len());
        for c in carried {
            completed_tasks.push(c.task_token);
            if c.execution_id.as_ref().is_some_and(|e| *e != exec) {
                continue; // for an execution that has ended: moot
            }
            if ctl.suspended {
                // Waits in the inbox, as a stored result would.
                messages.push(InstanceMessage {
                    instance_id: id.clone(),
                    execution_id: c.execution_id,
                    event: c.event,
                    visible_at: now,
                });
            } else {
                events.push(c.event);
            }
        }
        return Ok(Prepared::Turn(Box::new(TurnPlan {
            instance,
            lock_token,
            consumed,
            suspended: ctl.suspended,
            new_execution: false,
            events,
            messages,
            now,
            completed_tasks,
        })));
    }

    if instance.history_len == 0 && instance.status == RuntimeStatus::Pending {
        // An imported history: installed as the instance's own. Other
        // messages (an event raised meanwhile) wait for the next turn.
        let found = messages
            .iter()
            .find_map(|m| import::Imported::from_event(&m.event).map(|i| (m.seq, i)));
        if let Some((seq, imported)) = found {
            let handled = control::Handled {
                lock_token,
                consumed: vec![seq],
                messages: Vec::new(),
                now,
            };
            Box::pin(import::install(store, &instance, handled, imported)).await?;
            return Ok(Prepared::Handled);
        }
    }
    let consumed: Vec<i64> = messages.iter().map(|m| m.seq).collect();
    let start_pos = messages.iter().position(|m| {
        is_start(m)
            // A start the instance was terminated before it ran is void.
            && !(instance.status.is_terminal()
                && instance.history_len == 0
                && m.execution_id.as_deref() == Some(instance.execution_id.as_str()))
    });
    let Some(start_pos) = start_pos else {
        let handled = control::Handled {
            lock_token,
            consumed,
            messages: Vec::new(),
            now,
        };
        if instance.status == RuntimeStatus::Failed {
            // A rewind asked for by a client or a parent (untagged); the
            // marker a rewind queues for its own next turn (tagged with
            // the execution) asks for nothing, even if it arrives after
            // the instance has failed again.
            if let Some(reason) = messages.iter().find_map(|m| match &m.event.kind {
                EventKind::ExecutionRewound { reason } if m.execution_id.is_none() => {
                    Some(reason.clone())
                }
                _ => None,
            }) {
                Box::pin(rewind::rewind(store, &instance, handled, &messages, reason)).await?;
                return Ok(Prepared::Handled);
            }
        }
        if instance.status.is_terminal() {
            // Late messages for a finished instance: drop them.
            Box::pin(control::commit_status(
                store,
                &instance,
                handled,
                instance.status,
                None,
            ))
            .await?;
            return Ok(Prepared::Handled);
        }
        // No execution yet (a scheduled start not due, or one held back by
        // a suspend): control messages still apply.
        let ctl = control(&messages, Some(&instance.execution_id), was_suspended);
        if let Some(terminate) = ctl.terminate {
            let reason = match terminate.kind {
                EventKind::ExecutionTerminated { reason } => reason,
                _ => None,
            };
            let mut handled = handled;
            // A sub-orchestration's parent waits for it: tell it.
            handled.messages.extend(
                Box::pin(control::tell_parent_of_unstarted(
                    store,
                    &instance,
                    &reason,
                    handled.now,
                ))
                .await?,
            );
            Box::pin(control::commit_status(
                store,
                &instance,
                handled,
                RuntimeStatus::Terminated,
                Some(reason),
            ))
            .await?;
            return Ok(Prepared::Handled);
        }
        if ctl.suspended != was_suspended {
            let status = if ctl.suspended {
                RuntimeStatus::Suspended
            } else {
                RuntimeStatus::Pending
            };
            let handled = control::Handled {
                consumed: control_seqs(&messages),
                ..handled
            };
            Box::pin(control::commit_status(
                store, &instance, handled, status, None,
            ))
            .await?;
            return Ok(Prepared::Handled);
        }
        // A scheduled start is not due yet: try again later.
        store
            .abandon_orchestration(&id, &handled.lock_token, Duration::from_secs(1))
            .await?;
        return Ok(Prepared::Handled);
    };
    let mut messages = messages;
    let start = messages.remove(start_pos);
    let EventKind::ExecutionStarted { execution_id, .. } = &start.event.kind else {
        return Err(StoreError::Corrupt("start message changed kind".into()));
    };
    // Other starts in the batch (another parent's child of the same id)
    // find it running: refused, their parents told.
    let refusals = refuse_starts(&messages, &id, RuntimeStatus::Running, now);
    let exec = execution_id.clone();
    let ctl = control(&messages, Some(&exec), was_suspended);
    if let Some(terminate) = ctl.terminate {
        // Terminated before its first turn: nothing of its code runs.
        Box::pin(control::terminate_unstarted(
            store,
            &instance,
            control::Handled {
                lock_token,
                consumed,
                messages: refusals,
                now,
            },
            start.event,
            terminate,
        ))
        .await?;
        return Ok(Prepared::Handled);
    }
    if ctl.suspended {
        // Suspended before its first turn: the start waits for the resume.
        messages.push(start);
        let handled = control::Handled {
            lock_token,
            consumed: control_seqs(&messages),
            messages: Vec::new(),
            now,
        };
        Box::pin(control::commit_status(
            store,
            &instance,
            handled,
            RuntimeStatus::Suspended,
            None,
        ))
        .await?;
        return Ok(Prepared::Handled);
    }
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
        suspended: false,
        new_execution: true,
        events,
        messages: refusals,
        now,
        completed_tasks: Vec::new(),
    })))
}

/// The refusals of the starts among `messages` for instance `id`, which is
/// `status`: each parent is told its child could not start.
fn refuse_starts(
    messages: &[InboxMessage],
    id: &str,
    status: RuntimeStatus,
    now: Timestamp,
) -> Vec<InstanceMessage> {
    messages
        .iter()
        .filter(|m| is_start(m))
        .filter_map(|m| match &m.event.kind {
            EventKind::ExecutionStarted {
                parent: Some(p), ..
            } => Some(to_parent(
                p,
                EventKind::SubOrchestrationInstanceFailed {
                    task_scheduled_id: p.task_scheduled_id,
                    failure: FailureDetails::new(
                        "InstanceAlreadyRunning",
                        format!("instance `{id}` is already {status}"),
                    )
                    .non_retriable(),
                },
                now,
            )),
            _ => None,
        })
        .collect()
}

/// Terminate, suspend and resume: what applies while suspended.
fn is_control(e: &HistoryEvent) -> bool {
    perdure_store::is_control(e) || matches!(e.kind, EventKind::ExecutionSuspended { .. })
}

fn control_seqs(messages: &[InboxMessage]) -> Vec<i64> {
    messages
        .iter()
        .filter(|m| {
            perdure_store::is_control(&m.event)
                || matches!(m.event.kind, EventKind::ExecutionSuspended { .. })
        })
        .map(|m| m.seq)
        .collect()
}

pub(crate) fn to_parent(p: &ParentInstance, kind: EventKind, now: Timestamp) -> InstanceMessage {
    InstanceMessage {
        instance_id: p.instance_id.clone(),
        execution_id: Some(p.execution_id.clone()),
        event: HistoryEvent::new(now, kind),
        visible_at: now,
    }
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
        tags: instance.tags.clone(),
    }
}
