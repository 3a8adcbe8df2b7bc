//! Rewind of a Failed instance: its history is cut at the first failure, the
//! failed steps are scheduled again, results recorded after the cut for
//! steps scheduled before it are delivered again (so completed steps are not
//! re-run), failed sub-orchestrations are rewound too, and the instance runs
//! on from there.

use perdure_core::{EventKind, HistoryEvent, Payload, RuntimeStatus, Timestamp};
use perdure_store::{
    InstanceMessage, InstanceRecord, InstanceUpdate, NewActivity, OrchestrationCommit, Store,
    StoreError,
};
use std::collections::{BTreeMap, HashSet};

fn is_failure(e: &HistoryEvent) -> bool {
    matches!(
        e.kind,
        EventKind::TaskFailed { .. } | EventKind::SubOrchestrationInstanceFailed { .. }
    )
}

pub(super) async fn rewind(
    store: &dyn Store,
    instance: &InstanceRecord,
    lock_token: String,
    consumed: Vec<i64>,
    reason: Payload,
    now: Timestamp,
) -> Result<(), StoreError> {
    let id = &instance.instance_id;
    let exec = instance.execution_id.clone();
    let history = store.read_history(id).await?;
    let cut = history
        .iter()
        .position(is_failure)
        .or_else(|| {
            history
                .iter()
                .position(|e| matches!(e.kind, EventKind::ExecutionCompleted { .. }))
        })
        .unwrap_or(history.len());
    let (prefix, rest) = history.split_at(cut);
    let mut scheduled: BTreeMap<i64, &HistoryEvent> = BTreeMap::new();
    let mut answered: HashSet<i64> = HashSet::new();
    for e in prefix {
        match e.kind {
            EventKind::TaskScheduled { .. }
            | EventKind::TimerCreated { .. }
            | EventKind::SubOrchestrationInstanceCreated { .. } => {
                scheduled.insert(e.event_id, e);
            }
            _ => {
                if let Some(done) = e.completion_id() {
                    answered.insert(done);
                }
            }
        }
    }
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
    let mut rewind_children = Vec::new();
    for e in rest {
        if let EventKind::EventRaised { .. } = e.kind {
            messages.push(to_self(e.clone(), now, None));
            continue;
        }
        let Some(task) = e.completion_id() else {
            continue;
        };
        let Some(origin) = scheduled.get(&task) else {
            continue;
        };
        if !answered.insert(task) {
            continue;
        }
        match (&e.kind, &origin.kind) {
            (
                EventKind::TaskFailed { .. },
                EventKind::TaskScheduled {
                    trace_context,
                    name,
                    version,
                    input,
                },
            ) => activities.push(NewActivity {
                trace_context: trace_context.clone(),
                instance_id: id.clone(),
                execution_id: exec.clone(),
                task_id: task,
                name: name.clone(),
                version: version.clone(),
                input: input.clone(),
            }),
            (
                EventKind::SubOrchestrationInstanceFailed { .. },
                EventKind::SubOrchestrationInstanceCreated { instance_id, .. },
            ) => rewind_children.push(instance_id.clone()),
            _ => messages.push(to_self(e.clone(), now, Some(exec.clone()))),
        }
    }
    // Steps scheduled before the cut whose results never arrived (or were
    // dropped while the instance was Failed) are picked up again.
    for (task, origin) in &scheduled {
        if answered.contains(task) {
            continue;
        }
        match &origin.kind {
            EventKind::TaskScheduled {
                trace_context,
                name,
                version,
                input,
            } => activities.push(NewActivity {
                trace_context: trace_context.clone(),
                instance_id: id.clone(),
                execution_id: exec.clone(),
                task_id: *task,
                name: name.clone(),
                version: version.clone(),
                input: input.clone(),
            }),
            EventKind::TimerCreated { fire_at } => messages.push(to_self(
                HistoryEvent::new(
                    *fire_at,
                    EventKind::TimerFired {
                        timer_id: *task,
                        fire_at: *fire_at,
                    },
                ),
                *fire_at,
                Some(exec.clone()),
            )),
            EventKind::SubOrchestrationInstanceCreated { instance_id, .. } => {
                match store.get_instance(instance_id).await? {
                    Some(child) if child.status == RuntimeStatus::Completed => {
                        messages.push(to_self(
                            HistoryEvent::new(
                                now,
                                EventKind::SubOrchestrationInstanceCompleted {
                                    task_scheduled_id: *task,
                                    result: child.output,
                                },
                            ),
                            now,
                            Some(exec.clone()),
                        ))
                    }
                    Some(child) if child.status == RuntimeStatus::Failed => {
                        rewind_children.push(instance_id.clone())
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    for child in rewind_children {
        messages.push(InstanceMessage {
            instance_id: child,
            execution_id: None,
            event: HistoryEvent::new(
                now,
                EventKind::ExecutionRewound {
                    reason: reason.clone(),
                },
            ),
            visible_at: now,
        });
    }
    tracing::info!(instance_id = %id, cut, redo = activities.len(), "rewinding failed orchestration");
    store
        .commit_orchestration(OrchestrationCommit {
            instance_id: id.clone(),
            lock_token,
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
            },
            consumed,
            activities,
            messages,
            now,
            claims: Default::default(),
        })
        .await
}
