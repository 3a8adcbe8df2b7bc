//! From a turn's plan and result to one atomic commit: each action becomes
//! its history event plus its side effect (an activity task, a timer
//! message, a child's start message, an event for another instance), and an
//! ended execution records its completion and tells its parent.

use super::{to_parent, ExecutionInfo, Outcome, TurnPlan, TurnResult};
use chrono::Utc;
use perdure_core::{
    Action, EventKind, FailureDetails, HistoryEvent, ParentInstance, Payload, RuntimeStatus,
    Timestamp,
};
use perdure_store::{InstanceMessage, InstanceUpdate, NewActivity, OrchestrationCommit};

/// The commit for a turn. `exec` is the execution the turn ran.
pub fn build_commit(
    plan: TurnPlan,
    exec: &ExecutionInfo,
    result: TurnResult,
) -> OrchestrationCommit {
    let TurnPlan {
        instance,
        lock_token,
        consumed,
        suspended,
        new_execution,
        messages,
        now,
        completed_tasks,
        ..
    } = plan;
    let id = instance.instance_id.clone();
    let mut commit = OrchestrationCommit {
        instance_id: id.clone(),
        lock_token,
        replace_history: new_execution && instance.history_len > 0,
        expected_history_len: if new_execution {
            0
        } else {
            instance.history_len
        },
        history: Vec::new(),
        update: InstanceUpdate {
            name: exec.name.clone(),
            version: exec.version.clone(),
            status: if suspended {
                RuntimeStatus::Suspended
            } else {
                RuntimeStatus::Running
            },
            execution_id: exec.execution_id.clone(),
            input: exec.input.clone(),
            output: None,
            failure: None,
            custom_status: result.custom_status.clone(),
            parent_instance_id: exec.parent.as_ref().map(|p| p.instance_id.clone()),
            tags: exec.tags.clone(),
        },
        consumed,
        activities: Vec::new(),
        messages,
        now,
        claims: Default::default(),
        completed_tasks,
    };
    let nothing_new =
        result.accepted.len() <= 1 && result.actions.is_empty() && result.outcome.is_none();
    if nothing_new {
        // Only duplicates or stale messages: consume them, record nothing.
        commit.update = super::unchanged(&instance);
        return commit;
    }
    commit.history = result.accepted;
    let mut actions = result.actions;
    crate::telemetry::assign_task_contexts(&id, exec, &mut actions);
    for action in actions {
        commit.history.push(action.to_event(now));
        side_effects(exec, action, now, &mut commit);
    }
    commit
        .history
        .push(HistoryEvent::new(now, EventKind::OrchestratorCompleted));
    if let Some(outcome) = result.outcome {
        let continued = matches!(outcome, Outcome::ContinuedAsNew { .. });
        finish(exec, outcome, now, &mut commit);
        if continued {
            // Events this execution never saw belong to the next one.
            let next = commit.update.execution_id.clone();
            for e in result.leftover {
                if matches!(e.kind, EventKind::EventRaised { .. }) {
                    commit.messages.push(InstanceMessage {
                        instance_id: id.clone(),
                        execution_id: Some(next.clone()),
                        event: e,
                        visible_at: now,
                    });
                }
            }
        }
    }
    commit
}

/// What a parent is told when its sub-orchestration is terminated.
pub(super) fn terminated_failure(reason: &Payload) -> FailureDetails {
    FailureDetails::new(
        "Terminated",
        format!(
            "sub-orchestration was terminated: {}",
            reason.as_deref().unwrap_or("no reason given")
        ),
    )
}

/// The inbox message that reports an activity's result to its instance.
pub fn activity_result(
    activity: &NewActivity,
    result: Result<Payload, FailureDetails>,
) -> InstanceMessage {
    let kind = match result {
        Ok(result) => EventKind::TaskCompleted {
            task_scheduled_id: activity.task_id,
            result,
        },
        Err(failure) => EventKind::TaskFailed {
            task_scheduled_id: activity.task_id,
            failure,
        },
    };
    let now = Utc::now();
    InstanceMessage {
        instance_id: activity.instance_id.clone(),
        execution_id: Some(activity.execution_id.clone()),
        event: HistoryEvent::new(now, kind),
        visible_at: now,
    }
}

fn side_effects(
    exec: &ExecutionInfo,
    action: Action,
    now: Timestamp,
    commit: &mut OrchestrationCommit,
) {
    let id = &commit.instance_id;
    let exec_id = &exec.execution_id;
    match action {
        Action::ScheduleTask {
            trace_context,
            id: task_id,
            name,
            version,
            input,
            tags: _,
        } => commit.activities.push(NewActivity {
            trace_context,
            instance_id: id.clone(),
            execution_id: exec_id.clone(),
            task_id,
            name,
            version,
            input,
        }),
        Action::CreateTimer {
            id: timer_id,
            fire_at,
        } => {
            tracing::info_span!("timer", otel.name = "timer", instance_id = %id, timer_id, %fire_at)
                .in_scope(|| tracing::debug!("timer created"));
            commit.messages.push(InstanceMessage {
                instance_id: id.clone(),
                execution_id: Some(exec_id.clone()),
                event: HistoryEvent::new(fire_at, EventKind::TimerFired { timer_id, fire_at }),
                visible_at: fire_at,
            })
        }
        Action::CreateSubOrchestration {
            trace_context,
            id: task_id,
            name,
            version,
            instance_id,
            input,
            tags,
        } => {
            let child_exec = uuid::Uuid::new_v4().simple().to_string();
            commit.messages.push(InstanceMessage {
                instance_id,
                execution_id: Some(child_exec.clone()),
                event: HistoryEvent::new(
                    now,
                    EventKind::ExecutionStarted {
                        trace_context,
                        name,
                        version,
                        input,
                        execution_id: child_exec,
                        tags,
                        parent: Some(ParentInstance {
                            name: exec.name.clone(),
                            instance_id: id.clone(),
                            execution_id: exec_id.clone(),
                            task_scheduled_id: task_id,
                        }),
                    },
                ),
                visible_at: now,
            })
        }
        Action::SendEvent {
            instance_id,
            name,
            input,
            ..
        } => commit.messages.push(InstanceMessage {
            instance_id,
            execution_id: None,
            event: HistoryEvent::new(
                now,
                EventKind::EventRaised {
                    name,
                    input,
                    trace_context: sender_context(id, exec),
                },
            ),
            visible_at: now,
        }),
        // The first entity of the set gets the lock request; each passes it
        // on once it has locked itself.
        Action::LockEntities { ref lock_set, .. } => {
            if let Some(first) = lock_set.first() {
                commit.messages.push(InstanceMessage {
                    instance_id: first.clone(),
                    execution_id: None,
                    event: HistoryEvent::new(now, action.to_event(now).kind),
                    visible_at: now,
                })
            }
        }
        // The entity's inbox gets the request the history records.
        Action::CallEntity { ref target, .. }
        | Action::SignalEntity { ref target, .. }
        | Action::UnlockEntity { ref target, .. } => {
            let visible_at = match &action {
                Action::SignalEntity {
                    scheduled_time: Some(at),
                    ..
                } => (*at).max(now),
                _ => now,
            };
            let mut request = action.to_event(now).kind;
            if let EventKind::EntityOperationCalled { trace_context, .. }
            | EventKind::EntityOperationSignaled { trace_context, .. } = &mut request
            {
                *trace_context = sender_context(id, exec);
            }
            commit.messages.push(InstanceMessage {
                instance_id: target.clone(),
                execution_id: None,
                event: HistoryEvent::new(now, request),
                visible_at,
            })
        }
    }
}

/// The context an orchestration's requests to others carry (events,
/// entity operations): its own span's, when traced.
fn sender_context(instance_id: &str, exec: &ExecutionInfo) -> Option<perdure_core::TraceContext> {
    crate::telemetry::orchestration_context(
        instance_id,
        &exec.execution_id,
        exec.trace_context.as_ref(),
    )
}

fn finish(
    exec: &ExecutionInfo,
    outcome: Outcome,
    now: Timestamp,
    commit: &mut OrchestrationCommit,
) {
    let parent = exec.parent.clone();
    let completed = |status, result: Payload, failure: Option<FailureDetails>| {
        HistoryEvent::new(
            now,
            EventKind::ExecutionCompleted {
                status,
                result,
                failure,
            },
        )
    };
    let tell_parent = |commit: &mut OrchestrationCommit, kind: EventKind| {
        if let Some(p) = &parent {
            commit.messages.push(to_parent(p, kind, now));
        }
    };
    let task_scheduled_id = parent.as_ref().map_or(-1, |p| p.task_scheduled_id);
    match outcome {
        Outcome::Completed(result) => {
            tracing::info!("orchestration completed");
            commit.update.status = RuntimeStatus::Completed;
            commit.update.output = result.clone();
            commit
                .history
                .push(completed(RuntimeStatus::Completed, result.clone(), None));
            tell_parent(
                commit,
                EventKind::SubOrchestrationInstanceCompleted {
                    task_scheduled_id,
                    result,
                },
            );
        }
        Outcome::Failed(failure) => {
            tracing::warn!(%failure, "orchestration failed");
            commit.update.status = RuntimeStatus::Failed;
            commit.update.failure = Some(failure.clone());
            commit.history.push(completed(
                RuntimeStatus::Failed,
                None,
                Some(failure.clone()),
            ));
            tell_parent(
                commit,
                EventKind::SubOrchestrationInstanceFailed {
                    task_scheduled_id,
                    failure,
                },
            );
        }
        Outcome::Terminated(reason) => {
            tracing::info!("orchestration terminated");
            commit.update.status = RuntimeStatus::Terminated;
            commit.update.output = reason.clone();
            commit
                .history
                .push(completed(RuntimeStatus::Terminated, reason.clone(), None));
            tell_parent(
                commit,
                EventKind::SubOrchestrationInstanceFailed {
                    task_scheduled_id,
                    failure: terminated_failure(&reason),
                },
            );
        }
        Outcome::ContinuedAsNew { input, carried } => {
            tracing::info!("orchestration continued as new");
            let new_exec = uuid::Uuid::new_v4().simple().to_string();
            commit.replace_history = true;
            commit.expected_history_len = 0;
            commit.history.clear();
            commit.update.status = RuntimeStatus::ContinuedAsNew;
            commit.update.execution_id = new_exec.clone();
            commit.update.input = input.clone();
            let start = EventKind::ExecutionStarted {
                trace_context: exec.trace_context.clone(),
                name: exec.name.clone(),
                version: exec.version.clone(),
                input,
                execution_id: new_exec.clone(),
                parent,
                tags: exec.tags.clone(),
            };
            let id = commit.instance_id.clone();
            commit.messages.push(InstanceMessage {
                instance_id: id.clone(),
                execution_id: Some(new_exec.clone()),
                event: HistoryEvent::new(now, start),
                visible_at: now,
            });
            for (name, input) in carried {
                commit.messages.push(InstanceMessage {
                    instance_id: id.clone(),
                    execution_id: Some(new_exec.clone()),
                    event: HistoryEvent::new(
                        now,
                        EventKind::EventRaised {
                            name,
                            input,
                            trace_context: None,
                        },
                    ),
                    visible_at: now,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use perdure_core::{PayloadText, RuntimeStatus};

    fn exec() -> ExecutionInfo {
        ExecutionInfo {
            name: "Orch".into(),
            version: None,
            execution_id: "e1".into(),
            input: None,
            parent: None,
            trace_context: None,
            tags: Default::default(),
        }
    }

    fn empty_commit() -> OrchestrationCommit {
        OrchestrationCommit {
            instance_id: "i1".into(),
            lock_token: "t".into(),
            replace_history: false,
            expected_history_len: 0,
            history: Vec::new(),
            update: InstanceUpdate {
                name: "Orch".into(),
                version: None,
                status: RuntimeStatus::Running,
                execution_id: "e1".into(),
                input: None,
                output: None,
                failure: None,
                custom_status: None,
                parent_instance_id: None,
                tags: Default::default(),
            },
            consumed: Vec::new(),
            activities: Vec::new(),
            messages: Vec::new(),
            now: Utc::now(),
            claims: Default::default(),
            completed_tasks: Vec::new(),
        }
    }

    #[test]
    fn an_activity_input_is_recorded_and_sent_from_one_buffer() {
        let input = PayloadText::from(format!("\"{}\"", "x".repeat(64 * 1024)));
        let action = Action::ScheduleTask {
            id: 0,
            name: "A".into(),
            version: None,
            input: Some(input.clone()),
            trace_context: None,
            tags: Default::default(),
        };
        let now = Utc::now();
        let mut commit = empty_commit();
        let event = action.to_event(now);
        side_effects(&exec(), action, now, &mut commit);
        let EventKind::TaskScheduled {
            input: Some(recorded),
            ..
        } = &event.kind
        else {
            panic!("not a TaskScheduled event with input: {event:?}");
        };
        let sent = commit.activities[0]
            .input
            .as_ref()
            .expect("the task's input");
        assert!(
            recorded.shares_buffer_with(&input),
            "the event copied the input"
        );
        assert!(sent.shares_buffer_with(&input), "the task copied the input");
    }
}
