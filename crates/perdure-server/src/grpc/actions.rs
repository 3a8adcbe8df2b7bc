//! From a remote worker's `OrchestratorResponse` to the engine's turn
//! result: each `OrchestratorAction` becomes an engine [`Action`] (recorded
//! in history with the action's id) or the turn's [`Outcome`]. Actions the
//! engine cannot carry out fail the orchestration with a named error rather
//! than being dropped.

use super::convert::{self, from_failure, from_ts};
use super::flavour;
use super::proto as pb;
use perdure::dispatch::{ExecutionInfo, Outcome};
use perdure_core::{
    validate_instance_id, validate_name, Action, EntityId, EventKind, FailureDetails, HistoryEvent,
    NameKind, Payload, PayloadText,
};
use perdure_store::InstanceMessage;

/// A response's actions, sorted.
#[derive(Debug, Default)]
pub struct Mapped {
    pub actions: Vec<Action>,
    pub outcome: Option<Outcome>,
    /// Messages the actions send that history does not record
    /// (termination of other instances).
    pub messages: Vec<InstanceMessage>,
    /// The next execution's version (continue-as-new with a new version).
    pub new_version: Option<String>,
}

fn sv(v: &Option<String>) -> Option<String> {
    v.clone()
}

/// A protocol's payload text as a payload, moved out of the message (the
/// text decoded from the wire is the one recorded, not a copy of it).
fn pv(v: &mut Option<String>) -> Payload {
    v.take().map(PayloadText::from)
}

fn fail(error_type: &str, message: String) -> Outcome {
    Outcome::Failed(FailureDetails::new(error_type, message).non_retriable())
}

/// Maps `response`'s actions for the instance `instance_id` running `exec`.
pub fn map_actions(
    instance_id: &str,
    exec: &ExecutionInfo,
    actions: Vec<pb::OrchestratorAction>,
    now: perdure_core::Timestamp,
) -> Mapped {
    use pb::orchestrator_action::OrchestratorActionType as A;
    let mut m = Mapped::default();
    for mut action in actions {
        let id = i64::from(action.id);
        let Some(kind) = &mut action.orchestrator_action_type else {
            m.outcome = Some(if action.rewind_orchestration.is_empty() {
                fail(
                    "InvalidAction",
                    format!("action {id} carries no action type"),
                )
            } else {
                fail(
                    "NotSupported",
                    "worker-side rewind is not used by Perdure: the server rewinds history".into(),
                )
            });
            break;
        };
        match kind {
            // An activity without a version of its own belongs to the
            // orchestration's version, so version filters route it to the
            // workers that run that version.
            A::ScheduleTask(t) => {
                if let Err(e) = validate_name(NameKind::Activity, &t.name) {
                    m.outcome = Some(fail("InvalidName", e.to_string()));
                    break;
                }
                let extra = flavour::schedule_task(t);
                m.actions.push(Action::ScheduleTask {
                    trace_context: extra.trace_context,
                    id,
                    name: t.name.clone(),
                    version: sv(&t.version).or_else(|| exec.version.clone()),
                    input: pv(&mut t.input),
                    tags: extra.tags,
                })
            }
            A::CreateTimer(t) => {
                let Some(fire_at) = t.fire_at.as_ref().and_then(from_ts) else {
                    m.outcome = Some(fail(
                        "InvalidAction",
                        format!("timer action {id} has no valid fireAt time"),
                    ));
                    break;
                };
                m.actions.push(Action::CreateTimer {
                    id,
                    fire_at: perdure_core::time::clamp(fire_at),
                });
            }
            A::CreateSubOrchestration(s) => {
                let child = if s.instance_id.is_empty() {
                    format!("{instance_id}:{id:04}")
                } else {
                    s.instance_id.clone()
                };
                if let Err(e) = validate_instance_id(&child) {
                    m.outcome = Some(fail("InvalidInstanceId", e.to_string()));
                    break;
                }
                if let Err(e) = validate_name(NameKind::Orchestration, &s.name) {
                    m.outcome = Some(fail("InvalidName", e.to_string()));
                    break;
                }
                m.actions.push(Action::CreateSubOrchestration {
                    trace_context: convert::trace_from_pb(s.parent_trace_context.as_ref()),
                    id,
                    name: s.name.clone(),
                    version: sv(&s.version),
                    instance_id: child,
                    input: pv(&mut s.input),
                    tags: convert::tags_from_pb(&s.tags),
                });
            }
            A::SendEvent(e) => {
                let target = e
                    .instance
                    .as_ref()
                    .map(|i| i.instance_id.clone())
                    .unwrap_or_default();
                if let Err(err) = validate_instance_id(&target) {
                    m.outcome = Some(fail("InvalidInstanceId", err.to_string()));
                    break;
                }
                if let Err(err) = validate_name(NameKind::Event, &e.name) {
                    m.outcome = Some(fail("InvalidName", err.to_string()));
                    break;
                }
                m.actions.push(Action::SendEvent {
                    id,
                    instance_id: target,
                    name: e.name.clone(),
                    input: pv(&mut e.data),
                });
            }
            A::TerminateOrchestration(t) => {
                if let Err(err) = validate_instance_id(&t.instance_id) {
                    m.outcome = Some(fail("InvalidInstanceId", err.to_string()));
                    break;
                }
                m.messages.push(InstanceMessage {
                    instance_id: t.instance_id.clone(),
                    execution_id: None,
                    event: HistoryEvent::new(
                        now,
                        EventKind::ExecutionTerminated {
                            reason: pv(&mut t.reason),
                        },
                    ),
                    visible_at: now,
                });
            }
            A::CompleteOrchestration(c) => {
                m.outcome = Some(completion(exec, c));
                m.new_version = c.new_version.clone();
                break;
            }
            A::SendEntityMessage(msg) => match entity_action(instance_id, exec, id, msg) {
                Ok(action) => m.actions.push(action),
                Err(outcome) => {
                    m.outcome = Some(outcome);
                    break;
                }
            },
        }
    }
    m
}

/// An entity id as stores key it (`@name@key`, name lowercase).
fn entity_target(raw: Option<&String>) -> Result<String, Outcome> {
    let raw = raw.map(String::as_str).unwrap_or_default();
    EntityId::parse(raw)
        .map(|e| e.to_string())
        .map_err(|e| fail("InvalidEntityId", e.to_string()))
}

fn entity_action(
    instance_id: &str,
    exec: &ExecutionInfo,
    id: i64,
    msg: &mut pb::SendEntityMessageAction,
) -> Result<Action, Outcome> {
    use pb::send_entity_message_action::EntityMessageType as M;
    let Some(kind) = &mut msg.entity_message_type else {
        return Err(fail(
            "InvalidAction",
            format!("entity action {id} carries no message"),
        ));
    };
    Ok(match kind {
        M::EntityOperationSignaled(e) => Action::SignalEntity {
            id,
            request_id: e.request_id.clone(),
            target: entity_target(e.target_instance_id.as_ref())?,
            operation: e.operation.clone(),
            input: pv(&mut e.input),
            scheduled_time: e.scheduled_time.as_ref().and_then(from_ts),
        },
        M::EntityOperationCalled(e) => Action::CallEntity {
            id,
            request_id: e.request_id.clone(),
            target: entity_target(e.target_instance_id.as_ref())?,
            operation: e.operation.clone(),
            input: pv(&mut e.input),
            parent_instance_id: instance_id.to_string(),
            parent_execution_id: exec.execution_id.clone(),
        },
        M::EntityLockRequested(e) => {
            let mut lock_set = Vec::with_capacity(e.lock_set.len());
            for t in &e.lock_set {
                lock_set.push(entity_target(Some(t))?);
            }
            lock_set.sort();
            lock_set.dedup();
            Action::LockEntities {
                id,
                critical_section_id: e.critical_section_id.clone(),
                lock_set,
                parent_instance_id: instance_id.to_string(),
            }
        }
        M::EntityUnlockSent(e) => Action::UnlockEntity {
            id,
            critical_section_id: e.critical_section_id.clone(),
            target: entity_target(e.target_instance_id.as_ref())?,
            parent_instance_id: instance_id.to_string(),
        },
    })
}

fn completion(exec: &ExecutionInfo, c: &mut pb::CompleteOrchestrationAction) -> Outcome {
    use pb::OrchestrationStatus as S;
    match S::try_from(c.orchestration_status) {
        Ok(S::Completed) => Outcome::Completed(pv(&mut c.result)),
        Ok(S::Failed) => Outcome::Failed(match &c.failure_details {
            Some(f) => from_failure(f),
            None => FailureDetails::new(
                "OrchestrationFailed",
                c.details
                    .clone()
                    .or_else(|| c.result.clone())
                    .unwrap_or_else(|| format!("orchestration `{}` failed", exec.name)),
            ),
        }),
        Ok(S::Terminated) => Outcome::Terminated(pv(&mut c.result)),
        Ok(S::ContinuedAsNew) => Outcome::ContinuedAsNew {
            input: pv(&mut c.result),
            carried: c
                .carryover_events
                .iter_mut()
                .filter_map(|e| match &mut e.event_type {
                    Some(pb::history_event::EventType::EventRaised(r)) => {
                        Some((r.name.clone(), pv(&mut r.input)))
                    }
                    _ => None,
                })
                .collect(),
        },
        _ => fail(
            "InvalidCompletion",
            format!(
                "an orchestration cannot complete with status {}",
                c.orchestration_status
            ),
        ),
    }
}
