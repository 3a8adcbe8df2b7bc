//! Rewind of a Failed instance: its history is cut at the first failure
//! (moved back to the lock request when the failure fell inside a critical
//! section, so the section runs again under its locks), the failed steps
//! are scheduled again, results recorded after the cut for steps scheduled
//! before it are delivered again (so completed steps are not re-run), steps
//! whose work is still queued or running are left to finish, unanswered
//! entity calls are sent again, failed sub-orchestrations are rewound (or
//! re-created from their SubOrchestrationInstanceCreated event when they
//! were purged or terminated; a child that completed since answers, one
//! still running is left to answer), and the instance runs on from there.

use super::control::Handled;
use perdure_core::{EventKind, HistoryEvent, ParentInstance, Payload, RuntimeStatus, Timestamp};
use perdure_store::{
    InboxMessage, InstanceMessage, InstanceRecord, InstanceUpdate, NewActivity,
    OrchestrationCommit, Store, StoreError,
};
use std::collections::{BTreeMap, HashSet};

fn is_failure(e: &HistoryEvent) -> bool {
    matches!(
        e.kind,
        EventKind::TaskFailed { .. } | EventKind::SubOrchestrationInstanceFailed { .. }
    )
}

/// Where the history is cut: at its first failure (or its completion, or
/// the start of the turn that found it nondeterministic), but never inside
/// a critical section: a cut there moves to the section's lock
/// request, whose locks the failed execution released.
fn cut_point(history: &[HistoryEvent]) -> usize {
    let end = history
        .iter()
        .position(|e| matches!(e.kind, EventKind::ExecutionCompleted { .. }));
    let cut = history
        .iter()
        .position(is_failure)
        .or_else(|| end.map(|end| nondeterministic_turn(history, end).unwrap_or(end)))
        .unwrap_or(history.len());
    let mut open: Option<(usize, &str)> = None;
    for (i, e) in history[..cut].iter().enumerate() {
        match &e.kind {
            EventKind::EntityLockRequested {
                critical_section_id,
                ..
            } => open = Some((i, critical_section_id)),
            EventKind::EntityUnlockSent {
                critical_section_id,
                ..
            } if open.is_some_and(|(_, id)| id == critical_section_id) => open = None,
            _ => {}
        }
    }
    open.map_or(cut, |(i, _)| i)
}

/// Where the turn that failed the execution for nondeterminism begins,
/// if that is how it ended (`end` is its ExecutionCompleted): that turn
/// holds no step of the code, only the unlocks the engine sent for the
/// critical sections the history held, and a rewind takes it out.
fn nondeterministic_turn(history: &[HistoryEvent], end: usize) -> Option<usize> {
    let EventKind::ExecutionCompleted {
        failure: Some(f), ..
    } = &history.get(end)?.kind
    else {
        return None;
    };
    if f.error_type != "NonDeterminism" {
        return None;
    }
    history[..end]
        .iter()
        .rposition(|e| matches!(e.kind, EventKind::OrchestratorStarted))
}

/// The answer an event carries to a step of the execution: a task, timer
/// or child by its id, or an entity call by its request id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Step {
    Task(i64),
    Entity(String),
}

fn answers(e: &HistoryEvent) -> Option<Step> {
    match &e.kind {
        EventKind::EntityOperationCompleted { request_id, .. }
        | EventKind::EntityOperationFailed { request_id, .. } => {
            Some(Step::Entity(request_id.clone()))
        }
        _ => e.completion_id().map(Step::Task),
    }
}

fn schedules(e: &HistoryEvent) -> Option<Step> {
    match &e.kind {
        EventKind::TaskScheduled { .. }
        | EventKind::TimerCreated { .. }
        | EventKind::SubOrchestrationInstanceCreated { .. } => Some(Step::Task(e.event_id)),
        EventKind::EntityOperationCalled { request_id, .. } => {
            Some(Step::Entity(request_id.clone()))
        }
        _ => None,
    }
}

/// True if `child` (whose row is `record`) was started by execution `exec`
/// of its parent `parent`: its history's start names that execution, or it
/// has not run yet and its start came from the parent (a client's restart
/// of the child is a start of its own, which answers nobody).
async fn child_of(
    store: &dyn Store,
    record: &InstanceRecord,
    parent: &str,
    exec: &str,
) -> Result<bool, StoreError> {
    let history = store.read_history(&record.instance_id).await?;
    if history.is_empty() {
        return Ok(record.parent_instance_id.as_deref() == Some(parent));
    }
    Ok(history.iter().any(|e| {
        matches!(&e.kind, EventKind::ExecutionStarted { parent: Some(p), .. } if p.execution_id == exec)
    }))
}

pub(super) async fn rewind(
    store: &dyn Store,
    instance: &InstanceRecord,
    h: Handled,
    batch: &[InboxMessage],
    reason: Payload,
) -> Result<(), StoreError> {
    let now = h.now;
    let id = &instance.instance_id;
    let exec = instance.execution_id.clone();
    let history = store.read_history(id).await?;
    let cut = cut_point(&history);
    let (prefix, rest) = history.split_at(cut);
    let mut scheduled: BTreeMap<Step, &HistoryEvent> = BTreeMap::new();
    let mut answered: HashSet<Step> = HashSet::new();
    for e in prefix {
        if let Some(step) = schedules(e) {
            scheduled.insert(step, e);
        } else if let Some(done) = answers(e) {
            answered.insert(done);
        }
    }
    let running: HashSet<i64> = store.pending_tasks(id, &exec).await?.into_iter().collect();
    let to_self =
        |event: HistoryEvent, visible_at: Timestamp, execution: Option<String>| InstanceMessage {
            instance_id: id.clone(),
            execution_id: execution,
            event,
            visible_at,
        };
    // The rewind itself is the first message of the next turn.
    let mut messages = vec![to_self(
        HistoryEvent::new(
            now,
            EventKind::ExecutionRewound {
                reason: reason.clone(),
            },
        ),
        now,
        Some(exec.clone()),
    )];
    let mut activities = Vec::new();
    let mut rewind_children: Vec<(String, &HistoryEvent, i64)> = Vec::new();
    let activity = |task: i64, origin: &HistoryEvent| match &origin.kind {
        EventKind::TaskScheduled {
            trace_context,
            name,
            version,
            input,
            tags: _,
        } => Some(NewActivity {
            trace_context: trace_context.clone(),
            instance_id: id.clone(),
            execution_id: exec.clone(),
            task_id: task,
            name: name.clone(),
            version: version.clone(),
            input: input.clone(),
        }),
        _ => None,
    };
    // Results recorded after the cut, then those that arrived with the
    // rewind (while Failed, nothing else would have applied them).
    let arrived = batch
        .iter()
        .filter(|m| m.execution_id.as_ref().is_none_or(|e| *e == exec))
        .map(|m| &m.event)
        .filter(|e| answers(e).is_some());
    for e in rest.iter().chain(arrived) {
        if let EventKind::EventRaised { .. } = e.kind {
            messages.push(to_self(e.clone(), now, None));
            continue;
        }
        let Some(step) = answers(e) else {
            continue;
        };
        let Some(origin) = scheduled.get(&step) else {
            continue;
        };
        if !answered.insert(step.clone()) {
            continue;
        }
        match (&e.kind, &origin.kind, &step) {
            (EventKind::TaskFailed { .. }, EventKind::TaskScheduled { .. }, Step::Task(task)) => {
                if running.contains(task) {
                    // Tried again already and still running: its result comes.
                    continue;
                }
                activities.extend(activity(*task, origin));
            }
            (
                EventKind::SubOrchestrationInstanceFailed { .. },
                EventKind::SubOrchestrationInstanceCreated { instance_id, .. },
                Step::Task(task),
            ) => rewind_children.push((instance_id.clone(), origin, *task)),
            _ => messages.push(to_self(e.clone(), now, Some(exec.clone()))),
        }
    }
    // Steps scheduled before the cut whose results never arrived (or were
    // dropped while the instance was Failed) are picked up again, unless
    // their work is still queued or running.
    for (step, origin) in &scheduled {
        if answered.contains(step) {
            continue;
        }
        let task = match step {
            Step::Task(task) => *task,
            Step::Entity(_) => {
                // The entity's answer was lost while Failed: ask again.
                if let EventKind::EntityOperationCalled { target, .. } = &origin.kind {
                    messages.push(InstanceMessage {
                        instance_id: target.clone(),
                        execution_id: None,
                        event: HistoryEvent::new(now, origin.kind.clone()),
                        visible_at: now,
                    });
                }
                continue;
            }
        };
        match &origin.kind {
            EventKind::TaskScheduled { .. } if !running.contains(&task) => {
                activities.extend(activity(task, origin))
            }
            EventKind::TimerCreated { fire_at } => messages.push(to_self(
                HistoryEvent::new(
                    *fire_at,
                    EventKind::TimerFired {
                        timer_id: task,
                        fire_at: *fire_at,
                    },
                ),
                *fire_at,
                Some(exec.clone()),
            )),
            EventKind::SubOrchestrationInstanceCreated { instance_id, .. } => {
                rewind_children.push((instance_id.clone(), origin, task))
            }
            _ => {}
        }
    }
    // A child whose answer is missing or was a failure: by what it is now.
    for (child, origin, task) in rewind_children {
        let record = store.get_instance(&child).await?;
        // A child started by an earlier execution of this parent (it was
        // terminated and restarted since) answers that execution, not this
        // one: it is started again for this one (refused while it runs,
        // and this parent told).
        let ours = match &record {
            Some(r) => child_of(store, r, id, &exec).await?,
            None => false,
        };
        let now_is = record.map(|c| (c.status, c.output));
        let event = match now_is {
            Some((RuntimeStatus::Failed, _)) if ours => EventKind::ExecutionRewound {
                reason: reason.clone(),
            },
            Some((RuntimeStatus::Completed, result)) if ours => {
                // Rewound on its own and completed since: its answer.
                messages.push(to_self(
                    HistoryEvent::new(
                        now,
                        EventKind::SubOrchestrationInstanceCompleted {
                            task_scheduled_id: task,
                            result,
                        },
                    ),
                    now,
                    Some(exec.clone()),
                ));
                continue;
            }
            // Still running for this execution: its answer comes.
            Some((status, _)) if !status.is_terminal() && ours => continue,
            // Purged, terminated, or another execution's: started again as
            // it was first created.
            _ => {
                let EventKind::SubOrchestrationInstanceCreated {
                    name,
                    version,
                    input,
                    trace_context,
                    tags,
                    ..
                } = &origin.kind
                else {
                    continue;
                };
                EventKind::ExecutionStarted {
                    trace_context: trace_context.clone(),
                    tags: tags.clone(),
                    name: name.clone(),
                    version: version.clone(),
                    input: input.clone(),
                    execution_id: uuid::Uuid::new_v4().simple().to_string(),
                    parent: Some(ParentInstance {
                        name: instance.name.clone(),
                        instance_id: id.clone(),
                        execution_id: exec.clone(),
                        task_scheduled_id: task,
                    }),
                }
            }
        };
        let execution_id = match &event {
            EventKind::ExecutionStarted { execution_id, .. } => Some(execution_id.clone()),
            _ => None,
        };
        messages.push(InstanceMessage {
            instance_id: child,
            execution_id,
            event: HistoryEvent::new(now, event),
            visible_at: now,
        });
    }
    tracing::info!(instance_id = %id, cut, redo = activities.len(), "rewinding failed orchestration");
    store
        .commit_orchestration(OrchestrationCommit {
            instance_id: id.clone(),
            lock_token: h.lock_token,
            replace_history: true,
            expected_history_len: 0,
            history: prefix.to_vec(),
            update: InstanceUpdate {
                name: instance.name.clone(),
                version: instance.version.clone(),
                status: RuntimeStatus::Running,
                execution_id: exec,
                input: instance.input.clone(),
                output: None,
                failure: None,
                custom_status: instance.custom_status.clone(),
                parent_instance_id: instance.parent_instance_id.clone(),
                tags: instance.tags.clone(),
            },
            consumed: h.consumed,
            activities,
            messages,
            now,
            claims: Default::default(),
            completed_tasks: Vec::new(),
        })
        .await
}
