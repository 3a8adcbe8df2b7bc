//! Entity batches: the operation requests waiting in an entity's inbox run
//! one at a time, in order, against its state; callers get their answers
//! and the new state is committed with the consumed requests in one
//! transaction (a crash before the commit runs the batch again).
//!
//! Locks: an entity locked by a critical section runs only calls from the
//! orchestration that holds the lock; everything else (signals, others'
//! calls, other lock requests) waits in the entity's queue, in order, until
//! the unlock. A lock request travels the sorted lock set entity by entity;
//! the last one grants it. The lock and the queue are kept, with the state,
//! in the entity's instance row (`custom_status`, as JSON).

use perdure_core::{
    EntityId, EventKind, FailureDetails, HistoryEvent, Payload, RuntimeStatus, Timestamp,
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
            serde_json::to_string(self).ok()
        }
    }
}

/// A locked entity and its waiting requests.
#[derive(Clone, Debug)]
pub struct EntityBatch {
    pub instance: InstanceRecord,
    pub lock_token: String,
    pub messages: Vec<InboxMessage>,
    pub now: Timestamp,
}

/// Runs every request of `batch` with `run(operation, input, state)`, which
/// gives the state after the operation and its result (on failure the state
/// it was given), then commits.
pub async fn run_entity_batch<F, Fut>(
    store: &dyn Store,
    batch: EntityBatch,
    mut run: F,
) -> Result<(), StoreError>
where
    F: FnMut(&EntityId, String, Payload, Payload) -> Fut,
    Fut: Future<Output = (Payload, Result<Payload, FailureDetails>)>,
{
    let EntityBatch {
        instance,
        lock_token,
        messages,
        now,
    } = batch;
    let id =
        EntityId::parse(&instance.instance_id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut state = instance.output.clone();
    let mut schedule = Schedule::load(&instance.custom_status)?;
    let mut out = Vec::new();
    let consumed = messages.iter().map(|m| m.seq).collect();
    let mut pending: VecDeque<HistoryEvent> = messages.into_iter().map(|m| m.event).collect();
    while let Some(event) = pending.pop_front() {
        let (operation, input, reply) = match &event.kind {
            EventKind::EntityLockRequested {
                critical_section_id,
                lock_set,
                position,
                parent_instance_id,
            } => {
                match &schedule.lock {
                    Some(h) if h.critical_section_id == *critical_section_id => {}
                    Some(_) => schedule.queue.push(event.clone()),
                    None => {
                        schedule.lock = Some(Held {
                            critical_section_id: critical_section_id.clone(),
                            owner: parent_instance_id.clone(),
                        });
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
                        out.push(InstanceMessage {
                            instance_id: to,
                            execution_id: None,
                            event: HistoryEvent::new(now, kind),
                            visible_at: now,
                        });
                    }
                }
                continue;
            }
            EventKind::EntityUnlockSent {
                critical_section_id,
                ..
            } => {
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
        let span = tracing::info_span!("entity", otel.name = %format!("entity:{}", id.name), entity = %id, %operation);
        let (next, result) = {
            let _e = span.enter();
            run(&id, operation, input, state.clone())
        }
        .await;
        match &result {
            Ok(_) => state = next,
            Err(failure) => span.in_scope(
                || tracing::info!(%failure, "entity operation failed; state rolled back"),
            ),
        }
        if let Some((request_id, parent, execution)) = reply {
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
    }
    let status = if state.is_some() {
        RuntimeStatus::Running
    } else {
        RuntimeStatus::Completed
    };
    store
        .commit_orchestration(OrchestrationCommit {
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
            },
            consumed,
            activities: Vec::new(),
            messages: out,
            now,
        })
        .await
}
