//! Entity batches: the operation requests waiting in an entity's inbox run
//! one at a time, in order, against its state; callers get their answers
//! and the new state is committed with the consumed requests in one
//! transaction (a crash before the commit runs the batch again).
//!
//! Locks: an entity locked by a critical section runs only calls from the
//! orchestration that holds the lock; everything else (signals, others'
//! calls, other lock requests) waits in the entity's queue, in order, until
//! the unlock. A lock request travels the sorted lock set entity by entity;
//! the last one grants it. An unlock can overtake its lock request (the
//! orchestration dropped the request before the grant, and sent unlocks to
//! the whole set): an entity that gets the unlock first remembers it, and
//! passes the request on without locking when it arrives; a request still
//! queued is taken out and passed on. So a dropped request never leaves an
//! entity locked. The lock, the queue and those releases are kept, with the
//! state, in the entity's instance row (`custom_status`, as JSON).

use crate::entity::{EntityAction, OperationOutcome};
use perdure_core::{
    EntityId, EventKind, FailureDetails, HistoryEvent, Payload, RuntimeStatus, Timestamp,
    TraceContext,
};
use perdure_store::{
    InboxMessage, InstanceMessage, InstanceRecord, InstanceUpdate, OrchestrationCommit, Store,
    StoreError,
};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::future::Future;

/// Who holds an entity's lock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Held {
    critical_section_id: String,
    owner: String,
}

/// An entity's lock and the requests waiting for it to be released.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Schedule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lock: Option<Held>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    queue: Vec<HistoryEvent>,
    /// Critical sections released before their lock request reached this
    /// entity (the orchestration dropped the request before it was
    /// granted): when the request arrives it is passed on without locking.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    released: Vec<Held>,
}

impl Schedule {
    fn load(p: &Payload) -> Result<Self, StoreError> {
        match p.as_deref() {
            None => Ok(Schedule::default()),
            Some(text) => serde_json::from_str(text)
                .map_err(|e| StoreError::Corrupt(format!("entity schedule: {e}"))),
        }
    }

    fn save(&self) -> Payload {
        if *self == Schedule::default() {
            None
        } else {
            serde_json::to_string(self).ok().map(Into::into)
        }
    }
}

/// Who holds an entity's lock, from its instance row's `custom_status`:
/// (critical section id, owning orchestration instance).
pub fn entity_lock_holder(custom_status: &Payload) -> Option<(String, String)> {
    let schedule = Schedule::load(custom_status).ok()?;
    schedule.lock.map(|h| (h.critical_section_id, h.owner))
}

/// True if the entity's row records neither a lock nor waiting requests.
pub fn entity_schedule_is_empty(custom_status: &Payload) -> bool {
    Schedule::load(custom_status).is_ok_and(|s| s == Schedule::default())
}

/// A locked entity and its waiting requests.
#[derive(Clone, Debug)]
pub struct EntityBatch {
    pub instance: InstanceRecord,
    pub lock_token: String,
    pub messages: Vec<InboxMessage>,
    pub now: Timestamp,
}

/// One operation to run, in order.
#[derive(Clone, Debug)]
pub struct EntityOperation {
    pub operation: String,
    pub input: Payload,
    pub request_id: String,
    /// The request as it arrived (signal or call).
    pub event: HistoryEvent,
    /// Where a call's answer goes: (instance, execution).
    reply_to: Option<(String, String)>,
}

/// A batch sorted out: the operations that run now (the lock and queue
/// decided which) and the lock messages to send.
#[derive(Debug)]
pub struct EntityPlan {
    pub id: EntityId,
    pub instance: InstanceRecord,
    pub lock_token: String,
    pub now: Timestamp,
    pub operations: Vec<EntityOperation>,
    consumed: Vec<i64>,
    schedule: Schedule,
    messages: Vec<InstanceMessage>,
}

/// Decides which of `batch`'s requests run now and in what order. Which
/// ones run depends on the lock alone, never on an operation's result, so
/// the whole batch can be planned before any of it runs.
pub fn plan_entity_batch(batch: EntityBatch) -> Result<EntityPlan, StoreError> {
    let EntityBatch {
        instance,
        lock_token,
        messages,
        now,
    } = batch;
    let id =
        EntityId::parse(&instance.instance_id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut schedule = Schedule::load(&instance.custom_status)?;
    let mut out = Vec::new();
    let mut operations = Vec::new();
    let consumed = messages.iter().map(|m| m.seq).collect();
    let mut pending: VecDeque<HistoryEvent> = messages.into_iter().map(|m| m.event).collect();
    while let Some(event) = pending.pop_front() {
        let (operation, input, reply) = match &event.kind {
            EventKind::EntityLockRequested {
                critical_section_id,
                parent_instance_id,
                ..
            } => {
                let released = schedule
                    .released
                    .iter()
                    .position(|h| h.critical_section_id == *critical_section_id);
                match (&schedule.lock, released) {
                    (_, Some(i)) => {
                        // Its unlock came first: pass it on, unlocked.
                        schedule.released.remove(i);
                        out.extend(pass_on(&event, now));
                    }
                    (Some(h), None) if h.critical_section_id == *critical_section_id => {}
                    (Some(_), None) => schedule.queue.push(event.clone()),
                    (None, None) => {
                        schedule.lock = Some(Held {
                            critical_section_id: critical_section_id.clone(),
                            owner: parent_instance_id.clone(),
                        });
                        out.extend(pass_on(&event, now));
                    }
                }
                continue;
            }
            EventKind::EntityUnlockSent {
                critical_section_id,
                parent_instance_id,
                ..
            } => {
                let queued = schedule.queue.iter().position(|e| {
                    matches!(&e.kind, EventKind::EntityLockRequested { critical_section_id: c, .. } if c == critical_section_id)
                });
                if schedule
                    .lock
                    .as_ref()
                    .is_some_and(|h| h.critical_section_id == *critical_section_id)
                {
                    schedule.lock = None;
                    // What waited runs now, in its order, before what came after.
                    for e in std::mem::take(&mut schedule.queue).into_iter().rev() {
                        pending.push_front(e);
                    }
                } else if let Some(i) = queued {
                    // Released while waiting here: it never locks this one.
                    let request = schedule.queue.remove(i);
                    out.extend(pass_on(&request, now));
                } else {
                    schedule.released.push(Held {
                        critical_section_id: critical_section_id.clone(),
                        owner: parent_instance_id.clone(),
                    });
                }
                continue;
            }
            EventKind::EntityOperationSignaled { .. } if schedule.lock.is_some() => {
                schedule.queue.push(event.clone());
                continue;
            }
            EventKind::EntityOperationCalled {
                parent_instance_id, ..
            } if schedule
                .lock
                .as_ref()
                .is_some_and(|h| h.owner != *parent_instance_id) =>
            {
                schedule.queue.push(event.clone());
                continue;
            }
            EventKind::EntityOperationSignaled {
                operation, input, ..
            } => (operation.clone(), input.clone(), None),
            EventKind::EntityOperationCalled {
                request_id,
                operation,
                input,
                parent_instance_id,
                parent_execution_id,
                ..
            } => (
                operation.clone(),
                input.clone(),
                Some((
                    request_id.clone(),
                    parent_instance_id.clone(),
                    parent_execution_id.clone(),
                )),
            ),
            other => {
                tracing::debug!(kind = other.type_name(), entity = %id, "not an operation; dropped");
                continue;
            }
        };
        let request_id = match &event.kind {
            EventKind::EntityOperationSignaled { request_id, .. }
            | EventKind::EntityOperationCalled { request_id, .. } => request_id.clone(),
            _ => String::new(),
        };
        operations.push(EntityOperation {
            operation,
            input,
            request_id,
            event,
            reply_to: reply.map(|(_, parent, execution)| (parent, execution)),
        });
    }
    Ok(EntityPlan {
        id,
        instance,
        lock_token,
        now,
        operations,
        consumed,
        schedule,
        messages: out,
    })
}

/// A lock request passed to the next entity of its set, or, from the last,
/// the grant to the orchestration.
fn pass_on(request: &HistoryEvent, now: Timestamp) -> Option<InstanceMessage> {
    let EventKind::EntityLockRequested {
        critical_section_id,
        lock_set,
        position,
        parent_instance_id,
    } = &request.kind
    else {
        return None;
    };
    let next = position + 1;
    let (to, kind) = match lock_set.get(next) {
        Some(entity) => (
            entity.clone(),
            EventKind::EntityLockRequested {
                critical_section_id: critical_section_id.clone(),
                lock_set: lock_set.clone(),
                position: next,
                parent_instance_id: parent_instance_id.clone(),
            },
        ),
        None => (
            parent_instance_id.clone(),
            EventKind::EntityLockGranted {
                critical_section_id: critical_section_id.clone(),
            },
        ),
    };
    Some(InstanceMessage {
        instance_id: to,
        execution_id: None,
        event: HistoryEvent::new(now, kind),
        visible_at: now,
    })
}

/// The commit for a planned batch: `results` answer `plan.operations` in
/// order, `state` is the state after them all, and `messages` are sent too
/// (what the operations themselves sent).
pub fn entity_commit(
    plan: EntityPlan,
    state: Payload,
    results: Vec<Result<Payload, FailureDetails>>,
    messages: Vec<InstanceMessage>,
) -> OrchestrationCommit {
    let EntityPlan {
        instance,
        lock_token,
        now,
        operations,
        consumed,
        schedule,
        messages: mut out,
        ..
    } = plan;
    for (op, result) in operations.into_iter().zip(results) {
        let Some((parent, execution)) = op.reply_to else {
            continue;
        };
        let request_id = op.request_id;
        let kind = match result {
            Ok(output) => EventKind::EntityOperationCompleted { request_id, output },
            Err(failure) => EventKind::EntityOperationFailed {
                request_id,
                failure,
            },
        };
        out.push(InstanceMessage {
            instance_id: parent,
            execution_id: Some(execution),
            event: HistoryEvent::new(now, kind),
            visible_at: now,
        });
    }
    out.extend(messages);
    let status = if state.is_some() {
        RuntimeStatus::Running
    } else {
        RuntimeStatus::Completed
    };
    OrchestrationCommit {
        instance_id: instance.instance_id.clone(),
        lock_token,
        replace_history: false,
        expected_history_len: instance.history_len,
        history: Vec::new(),
        update: InstanceUpdate {
            name: instance.name.clone(),
            version: None,
            status,
            execution_id: instance.execution_id.clone(),
            input: None,
            output: state,
            failure: None,
            custom_status: schedule.save(),
            parent_instance_id: None,
            tags: Default::default(),
        },
        consumed,
        activities: Vec::new(),
        messages: out,
        now,
        claims: Default::default(),
        completed_tasks: Vec::new(),
    }
}

impl EntityOperation {
    /// The trace context the request carries (its sender's span), which
    /// what the operation starts or signals continues.
    pub fn trace_context(&self) -> Option<&TraceContext> {
        match &self.event.kind {
            EventKind::EntityOperationSignaled { trace_context, .. }
            | EventKind::EntityOperationCalled { trace_context, .. } => trace_context.as_ref(),
            _ => None,
        }
    }
}

/// The message that delivers a signal of `operation` to the entity
/// `target` (`@name@key`), no earlier than `at`.
pub fn signal_message(
    target: String,
    operation: String,
    input: Payload,
    at: Option<Timestamp>,
    trace_context: Option<TraceContext>,
    now: Timestamp,
) -> InstanceMessage {
    InstanceMessage {
        instance_id: target.clone(),
        execution_id: None,
        event: HistoryEvent::new(
            now,
            EventKind::EntityOperationSignaled {
                request_id: uuid::Uuid::new_v4().to_string(),
                target,
                operation,
                input,
                scheduled_time: at,
                trace_context,
            },
        ),
        visible_at: at.unwrap_or(now).max(now),
    }
}

/// What an entity's start of orchestration `name` as `instance_id` needs:
/// the message that starts it, due at `at`.
pub struct StartRequest {
    pub instance_id: String,
    pub name: String,
    pub version: Option<String>,
    pub input: Payload,
    pub at: Option<Timestamp>,
    pub trace_context: Option<TraceContext>,
}

impl StartRequest {
    /// The message that starts the instance (a new execution, no parent).
    pub fn message(self, now: Timestamp) -> InstanceMessage {
        let execution_id = uuid::Uuid::new_v4().simple().to_string();
        InstanceMessage {
            instance_id: self.instance_id,
            execution_id: Some(execution_id.clone()),
            event: HistoryEvent::new(
                now,
                EventKind::ExecutionStarted {
                    trace_context: self.trace_context,
                    name: self.name,
                    version: self.version,
                    input: self.input,
                    execution_id,
                    parent: None,
                    tags: Default::default(),
                },
            ),
            visible_at: self.at.unwrap_or(now).max(now),
        }
    }
}

/// An in-process entity operation's action as the message that carries it
/// out, continuing `trace` (the operation's request).
fn action_message(
    action: EntityAction,
    trace: Option<&TraceContext>,
    now: Timestamp,
) -> InstanceMessage {
    match action {
        EntityAction::Signal {
            target,
            operation,
            input,
            at,
        } => signal_message(
            target.to_string(),
            operation,
            input,
            at,
            trace.cloned(),
            now,
        ),
        EntityAction::StartOrchestration {
            name,
            instance_id,
            input,
        } => StartRequest {
            instance_id,
            name,
            version: None,
            input,
            at: None,
            trace_context: trace.cloned(),
        }
        .message(now),
    }
}

/// Runs every request of `batch` with `run(operation, input, state)`, which
/// gives the state after the operation and its outcome (on failure the
/// state it was given), then commits the results, the state and what the
/// successful operations sent, together.
pub async fn run_entity_batch<F, Fut>(
    store: &dyn Store,
    batch: EntityBatch,
    mut run: F,
) -> Result<(), StoreError>
where
    F: FnMut(&EntityId, String, Payload, Payload) -> Fut,
    Fut: Future<Output = (Payload, OperationOutcome)>,
{
    let plan = plan_entity_batch(batch)?;
    let id = plan.id.clone();
    let mut state = plan.instance.output.clone();
    let mut results = Vec::with_capacity(plan.operations.len());
    let mut sent = Vec::new();
    for op in &plan.operations {
        let operation = op.operation.clone();
        let span = tracing::info_span!("entity", otel.name = %format!("entity:{}", id.name), entity = %id, %operation);
        let (next, outcome) = {
            let _e = span.enter();
            run(&id, operation, op.input.clone(), state.clone())
        }
        .await;
        match outcome {
            Ok((output, actions)) => {
                state = next;
                sent.extend(
                    actions
                        .into_iter()
                        .map(|a| action_message(a, op.trace_context(), plan.now)),
                );
                results.push(Ok(output));
            }
            Err(failure) => {
                span.in_scope(
                    || tracing::info!(%failure, "entity operation failed; state rolled back"),
                );
                results.push(Err(failure));
            }
        }
    }
    store
        .commit_orchestration(entity_commit(plan, state, results, sent))
        .await
}
