//! A simulated remote SDK worker: what an official Durable Task SDK does
//! with the work items the gRPC sidecar hands out, in protocol messages.
//! An orchestration work item's events are read back from the protocol's
//! form, the turn is decided from scratch (no cache, as an SDK worker
//! replays) by [`perdure::replay::decide_turn`], and the decision goes back
//! as `OrchestratorAction`s; an activity or entity work item runs the
//! registered function. So the simulator drives the sidecar's own decisions (its
//! prepare, dedupe, action mapping, commit and give-back) with the same
//! programs the in-process engines run.
//!
//! Like the SDKs, it answers a replay that finds the code changed with a
//! failed completion and nothing else, and carries the events it never
//! saw into the next execution on continue-as-new.

use perdure::dispatch::Outcome;
use perdure::replay::decide_turn;
use perdure::{ActivityContext, Registry};
use perdure_core::{
    Action, EntityId, EventKind, FailureDetails, HistoryEvent, ParentInstance, RuntimeStatus,
    TraceContext,
};
use perdure_server::grpc::convert::{failure, from_failure, from_ts, trace_to_pb, ts};
use perdure_server::grpc::proto as pb;

/// The SDK's answer to an orchestration work item.
pub fn orchestrate(
    registry: &Registry,
    token: &str,
    r: &pb::OrchestratorRequest,
) -> pb::OrchestratorResponse {
    let past: Vec<HistoryEvent> = r.past_events.iter().filter_map(from_pb).collect();
    let new: Vec<HistoryEvent> = r.new_events.iter().filter_map(from_pb).collect();
    let d = decide_turn(registry, &r.instance_id, &past, new);
    // An SDK whose replay finds the code changed sends the failure alone
    // (no unlocks of the critical sections the history holds): the
    // sidecar must release them.
    let nondeterministic =
        matches!(&d.outcome, Some(Outcome::Failed(f)) if f.error_type == "NonDeterminism");
    let mut actions: Vec<pb::OrchestratorAction> = if nondeterministic {
        Vec::new()
    } else {
        d.actions.iter().map(action).collect()
    };
    if let Some(outcome) = d.outcome {
        let id = actions.last().map_or(0, |a| a.id + 1);
        actions.push(pb::OrchestratorAction {
            rewind_orchestration: Vec::new(),
            id,
            orchestrator_action_type: Some(
                pb::orchestrator_action::OrchestratorActionType::CompleteOrchestration(complete(
                    outcome,
                    &d.leftover,
                )),
            ),
        });
    }
    pb::OrchestratorResponse {
        instance_id: r.instance_id.clone(),
        actions,
        custom_status: d.custom_status.map(String::from),
        completion_token: token.to_string(),
        ..Default::default()
    }
}

/// The SDK's answer to an activity work item.
pub async fn run_activity(
    registry: &Registry,
    token: &str,
    r: &pb::ActivityRequest,
) -> pb::ActivityResponse {
    let instance_id = r
        .orchestration_instance
        .as_ref()
        .map(|i| i.instance_id.clone())
        .unwrap_or_default();
    let ctx = ActivityContext::new(&instance_id, &r.name, i64::from(r.task_id), 1);
    let (result, failure_details) = match registry
        .invoke_activity(ctx, r.input.as_deref().map(perdure_core::PayloadText::from))
        .await
    {
        Ok(out) => (out, None),
        Err(f) => (None, Some(failure(&f))),
    };
    pb::ActivityResponse {
        instance_id,
        task_id: r.task_id,
        result: result.map(String::from),
        failure_details,
        completion_token: token.to_string(),
    }
}

/// The SDK's answer to an entity work item: each operation run in order
/// on the state the one before left (a failed one leaves it as it was).
pub async fn run_entity(
    registry: &Registry,
    token: &str,
    r: &pb::EntityRequest,
) -> pb::EntityBatchResult {
    use pb::operation_result::ResultType as R;
    let id = match EntityId::parse(&r.instance_id) {
        Ok(id) => id,
        Err(e) => {
            return pb::EntityBatchResult {
                failure_details: Some(failure(&FailureDetails::new(
                    "InvalidEntityId",
                    e.to_string(),
                ))),
                completion_token: token.to_string(),
                ..Default::default()
            }
        }
    };
    let mut state = r.entity_state.clone();
    let mut results = Vec::with_capacity(r.operation_requests.len());
    let (mut actions, mut actions_id) = (Vec::new(), 0);
    for op in &r.operation_requests {
        let (operation, input) = match from_pb(op).map(|e| e.kind) {
            Some(EventKind::EntityOperationCalled {
                operation, input, ..
            })
            | Some(EventKind::EntityOperationSignaled {
                operation, input, ..
            }) => (operation, input),
            _ => (String::new(), None),
        };
        let (next, result) = registry
            .invoke_entity(
                &id,
                &operation,
                input,
                state.as_deref().map(perdure_core::PayloadText::from),
            )
            .await;
        results.push(pb::OperationResult {
            result_type: Some(match result {
                Ok((out, sent)) => {
                    state = next.map(String::from);
                    actions.extend(
                        sent.into_iter()
                            .map(|a| operation_action(&mut actions_id, a)),
                    );
                    R::Success(pb::OperationResultSuccess {
                        result: out.map(String::from),
                        ..Default::default()
                    })
                }
                Err(f) => R::Failure(pb::OperationResultFailure {
                    failure_details: Some(failure(&f)),
                    ..Default::default()
                }),
            }),
        });
    }
    pb::EntityBatchResult {
        results,
        actions,
        entity_state: state,
        completion_token: token.to_string(),
        ..Default::default()
    }
}

/// What an entity operation sent, as an SDK entity worker reports it.
fn operation_action(next_id: &mut i32, a: perdure::EntityAction) -> pb::OperationAction {
    use pb::operation_action::OperationActionType as T;
    let id = *next_id;
    *next_id += 1;
    let kind = match a {
        perdure::EntityAction::Signal {
            target,
            operation,
            input,
            at,
        } => T::SendSignal(pb::SendSignalAction {
            instance_id: target.to_string(),
            name: operation,
            input: input.map(String::from),
            scheduled_time: at.map(ts),
            ..Default::default()
        }),
        perdure::EntityAction::StartOrchestration {
            name,
            instance_id,
            input,
        } => T::StartNewOrchestration(pb::StartNewOrchestrationAction {
            instance_id,
            name,
            input: input.map(String::from),
            ..Default::default()
        }),
    };
    pb::OperationAction {
        id,
        operation_action_type: Some(kind),
    }
}

fn complete(outcome: Outcome, leftover: &[HistoryEvent]) -> pb::CompleteOrchestrationAction {
    use pb::OrchestrationStatus as S;
    let mut c = pb::CompleteOrchestrationAction::default();
    match outcome {
        Outcome::Completed(result) => {
            c.orchestration_status = S::Completed as i32;
            c.result = result.map(String::from);
        }
        Outcome::Failed(f) => {
            c.orchestration_status = S::Failed as i32;
            c.failure_details = Some(failure(&f));
        }
        Outcome::Terminated(reason) => {
            c.orchestration_status = S::Terminated as i32;
            c.result = reason.map(String::from);
        }
        Outcome::ContinuedAsNew { input, carried } => {
            c.orchestration_status = S::ContinuedAsNew as i32;
            c.result = input.map(String::from);
            let unseen = leftover.iter().filter_map(|e| match &e.kind {
                EventKind::EventRaised { name, input, .. } => Some((name.clone(), input.clone())),
                _ => None,
            });
            c.carryover_events = carried
                .into_iter()
                .chain(unseen)
                .map(|(name, input)| pb::HistoryEvent {
                    event_id: -1,
                    timestamp: None,
                    event_type: Some(pb::history_event::EventType::EventRaised(
                        pb::EventRaisedEvent {
                            name,
                            input: input.map(String::from),
                        },
                    )),
                })
                .collect();
        }
    }
    c
}

fn action(a: &Action) -> pb::OrchestratorAction {
    use pb::orchestrator_action::OrchestratorActionType as A;
    use pb::send_entity_message_action::EntityMessageType as M;
    let entity = |m: M| {
        A::SendEntityMessage(pb::SendEntityMessageAction {
            entity_message_type: Some(m),
        })
    };
    let kind = match a.clone() {
        Action::ScheduleTask {
            name,
            version,
            input,
            trace_context,
            ..
        } => A::ScheduleTask(pb::ScheduleTaskAction {
            name,
            version,
            input: input.map(String::from),
            parent_trace_context: perdure_server::grpc::flavour::trace_field(
                trace_context.as_ref(),
            ),
            ..Default::default()
        }),
        Action::CreateTimer { fire_at, .. } => A::CreateTimer(pb::CreateTimerAction {
            fire_at: Some(ts(fire_at)),
        }),
        Action::CreateSubOrchestration {
            name,
            version,
            instance_id,
            input,
            trace_context,
            ..
        } => A::CreateSubOrchestration(pb::CreateSubOrchestrationAction {
            instance_id,
            name,
            version,
            input: input.map(String::from),
            parent_trace_context: trace_context.as_ref().map(trace_to_pb),
            ..Default::default()
        }),
        Action::SendEvent {
            instance_id,
            name,
            input,
            ..
        } => A::SendEvent(pb::SendEventAction {
            instance: Some(pb::OrchestrationInstance {
                instance_id,
                execution_id: None,
            }),
            name,
            data: input.map(String::from),
        }),
        Action::CallEntity {
            request_id,
            target,
            operation,
            input,
            parent_instance_id,
            parent_execution_id,
            ..
        } => entity(M::EntityOperationCalled(pb::EntityOperationCalledEvent {
            request_id,
            operation,
            scheduled_time: None,
            input: input.map(String::from),
            parent_instance_id: Some(parent_instance_id),
            parent_execution_id: Some(parent_execution_id),
            target_instance_id: Some(target),
        })),
        Action::SignalEntity {
            request_id,
            target,
            operation,
            input,
            scheduled_time,
            ..
        } => entity(M::EntityOperationSignaled(
            pb::EntityOperationSignaledEvent {
                request_id,
                operation,
                scheduled_time: scheduled_time.map(ts),
                input: input.map(String::from),
                target_instance_id: Some(target),
            },
        )),
        Action::LockEntities {
            critical_section_id,
            lock_set,
            parent_instance_id,
            ..
        } => entity(M::EntityLockRequested(pb::EntityLockRequestedEvent {
            critical_section_id,
            lock_set,
            position: 0,
            parent_instance_id: Some(parent_instance_id),
        })),
        Action::UnlockEntity {
            critical_section_id,
            target,
            parent_instance_id,
            ..
        } => entity(M::EntityUnlockSent(pb::EntityUnlockSentEvent {
            critical_section_id,
            parent_instance_id: Some(parent_instance_id),
            target_instance_id: Some(target),
        })),
    };
    pb::OrchestratorAction {
        rewind_orchestration: Vec::new(),
        id: i32::try_from(a.id()).unwrap_or(i32::MAX),
        orchestrator_action_type: Some(kind),
    }
}

fn trace(t: Option<&pb::TraceContext>) -> Option<TraceContext> {
    perdure_server::grpc::convert::trace_from_pb(t)
}

fn fail(f: Option<&pb::TaskFailureDetails>) -> FailureDetails {
    f.map_or_else(
        || FailureDetails::new("Unknown", "no details"),
        from_failure,
    )
}

/// A history event read back from the protocol, as an SDK reads it; `None`
/// for an event type the engine never sends.
fn from_pb(e: &pb::HistoryEvent) -> Option<HistoryEvent> {
    use pb::history_event::EventType as T;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let kind = match e.event_type.as_ref()? {
        T::ExecutionStarted(s) => EventKind::ExecutionStarted {
            name: s.name.clone(),
            version: s.version.clone(),
            input: s.input.as_deref().map(perdure_core::PayloadText::from),
            execution_id: s
                .orchestration_instance
                .as_ref()
                .and_then(|i| i.execution_id.clone())
                .unwrap_or_default(),
            parent: s.parent_instance.as_ref().map(|p| {
                let inst = p.orchestration_instance.clone().unwrap_or_default();
                ParentInstance {
                    name: text(&p.name),
                    instance_id: inst.instance_id,
                    execution_id: inst.execution_id.unwrap_or_default(),
                    task_scheduled_id: i64::from(p.task_scheduled_id),
                }
            }),
            trace_context: trace(s.parent_trace_context.as_ref()),
            tags: s.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        },
        T::ExecutionCompleted(c) => EventKind::ExecutionCompleted {
            status: RuntimeStatus::from_code(c.orchestration_status)?,
            result: c.result.as_deref().map(perdure_core::PayloadText::from),
            failure: c.failure_details.as_ref().map(from_failure),
        },
        T::ExecutionTerminated(t) => EventKind::ExecutionTerminated {
            reason: t.input.as_deref().map(perdure_core::PayloadText::from),
        },
        T::ExecutionSuspended(s) => EventKind::ExecutionSuspended {
            reason: s.input.as_deref().map(perdure_core::PayloadText::from),
        },
        T::ExecutionResumed(s) => EventKind::ExecutionResumed {
            reason: s.input.as_deref().map(perdure_core::PayloadText::from),
        },
        T::ExecutionRewound(r) => EventKind::ExecutionRewound {
            reason: r.reason.as_deref().map(perdure_core::PayloadText::from),
        },
        T::TaskScheduled(t) => EventKind::TaskScheduled {
            name: t.name.clone(),
            version: t.version.clone(),
            input: t.input.as_deref().map(perdure_core::PayloadText::from),
            trace_context: trace(t.parent_trace_context.as_ref()),
            tags: t.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        },
        T::TaskCompleted(t) => EventKind::TaskCompleted {
            task_scheduled_id: i64::from(t.task_scheduled_id),
            result: t.result.as_deref().map(perdure_core::PayloadText::from),
        },
        T::TaskFailed(t) => EventKind::TaskFailed {
            task_scheduled_id: i64::from(t.task_scheduled_id),
            failure: fail(t.failure_details.as_ref()),
        },
        T::SubOrchestrationInstanceCreated(s) => EventKind::SubOrchestrationInstanceCreated {
            name: s.name.clone(),
            version: s.version.clone(),
            instance_id: s.instance_id.clone(),
            input: s.input.as_deref().map(perdure_core::PayloadText::from),
            trace_context: trace(s.parent_trace_context.as_ref()),
            tags: s.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        },
        T::SubOrchestrationInstanceCompleted(s) => EventKind::SubOrchestrationInstanceCompleted {
            task_scheduled_id: i64::from(s.task_scheduled_id),
            result: s.result.as_deref().map(perdure_core::PayloadText::from),
        },
        T::SubOrchestrationInstanceFailed(s) => EventKind::SubOrchestrationInstanceFailed {
            task_scheduled_id: i64::from(s.task_scheduled_id),
            failure: fail(s.failure_details.as_ref()),
        },
        T::TimerCreated(t) => EventKind::TimerCreated {
            fire_at: t.fire_at.as_ref().and_then(from_ts)?,
        },
        T::TimerFired(t) => EventKind::TimerFired {
            timer_id: i64::from(t.timer_id),
            fire_at: t.fire_at.as_ref().and_then(from_ts)?,
        },
        T::OrchestratorStarted(_) => EventKind::OrchestratorStarted,
        T::OrchestratorCompleted(_) => EventKind::OrchestratorCompleted,
        T::EventSent(s) => EventKind::EventSent {
            instance_id: s.instance_id.clone(),
            name: s.name.clone(),
            input: s.input.as_deref().map(perdure_core::PayloadText::from),
        },
        T::EventRaised(r) => EventKind::EventRaised {
            name: r.name.clone(),
            input: r.input.as_deref().map(perdure_core::PayloadText::from),
            trace_context: None,
        },
        T::ContinueAsNew(c) => EventKind::ContinueAsNew {
            input: c.input.as_deref().map(perdure_core::PayloadText::from),
        },
        T::EntityOperationSignaled(s) => EventKind::EntityOperationSignaled {
            request_id: s.request_id.clone(),
            target: text(&s.target_instance_id),
            operation: s.operation.clone(),
            input: s.input.as_deref().map(perdure_core::PayloadText::from),
            scheduled_time: s.scheduled_time.as_ref().and_then(from_ts),
            trace_context: None,
        },
        T::EntityOperationCalled(c) => EventKind::EntityOperationCalled {
            request_id: c.request_id.clone(),
            target: text(&c.target_instance_id),
            operation: c.operation.clone(),
            input: c.input.as_deref().map(perdure_core::PayloadText::from),
            parent_instance_id: text(&c.parent_instance_id),
            parent_execution_id: text(&c.parent_execution_id),
            trace_context: None,
        },
        T::EntityOperationCompleted(c) => EventKind::EntityOperationCompleted {
            request_id: c.request_id.clone(),
            output: c.output.as_deref().map(perdure_core::PayloadText::from),
        },
        T::EntityOperationFailed(f) => EventKind::EntityOperationFailed {
            request_id: f.request_id.clone(),
            failure: fail(f.failure_details.as_ref()),
        },
        T::EntityLockRequested(l) => EventKind::EntityLockRequested {
            critical_section_id: l.critical_section_id.clone(),
            lock_set: l.lock_set.clone(),
            position: usize::try_from(l.position).unwrap_or(0),
            parent_instance_id: text(&l.parent_instance_id),
        },
        T::EntityLockGranted(g) => EventKind::EntityLockGranted {
            critical_section_id: g.critical_section_id.clone(),
        },
        T::EntityUnlockSent(u) => EventKind::EntityUnlockSent {
            critical_section_id: u.critical_section_id.clone(),
            target: text(&u.target_instance_id),
            parent_instance_id: text(&u.parent_instance_id),
        },
        _ => return None,
    };
    Some(HistoryEvent {
        event_id: i64::from(e.event_id),
        timestamp: e.timestamp.as_ref().and_then(from_ts)?,
        kind,
    })
}
