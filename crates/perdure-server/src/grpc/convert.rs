//! Conversions between Perdure's types and the protocol's, by hand.

use super::proto as pb;
use perdure::ParentInstance;
use perdure::TraceContext;
use perdure::{EventKind, FailureDetails, HistoryEvent, OrchestrationStatus, RuntimeStatus};
use perdure_core::trace::orchestration_span_id;

/// A payload as the protocol carries it (a `String` of its own).
fn wire(p: &perdure_core::Payload) -> Option<String> {
    p.as_deref().map(str::to_string)
}

pub fn ts(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

pub fn from_ts(t: &prost_types::Timestamp) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
}

pub fn status(s: RuntimeStatus) -> pb::OrchestrationStatus {
    use pb::OrchestrationStatus as P;
    match s {
        RuntimeStatus::Running => P::Running,
        RuntimeStatus::Completed => P::Completed,
        RuntimeStatus::ContinuedAsNew => P::ContinuedAsNew,
        RuntimeStatus::Failed => P::Failed,
        RuntimeStatus::Canceled => P::Canceled,
        RuntimeStatus::Terminated => P::Terminated,
        RuntimeStatus::Pending => P::Pending,
        RuntimeStatus::Suspended => P::Suspended,
    }
}

/// The protocol's numbering is Perdure's (Durable Task's) numbering.
pub fn from_status(code: i32) -> Option<RuntimeStatus> {
    RuntimeStatus::from_code(code)
}

pub fn failure(f: &FailureDetails) -> pb::TaskFailureDetails {
    pb::TaskFailureDetails {
        error_type: f.error_type.clone(),
        error_message: f.message.clone(),
        stack_trace: f.stack_trace.clone(),
        inner_failure: f.inner.as_deref().map(|i| Box::new(failure(i))),
        is_non_retriable: f.non_retriable,
        properties: Default::default(),
    }
}

pub fn from_failure(f: &pb::TaskFailureDetails) -> FailureDetails {
    FailureDetails {
        error_type: f.error_type.clone(),
        message: f.error_message.clone(),
        stack_trace: f.stack_trace.clone(),
        inner: f
            .inner_failure
            .as_deref()
            .map(|i| Box::new(from_failure(i))),
        non_retriable: f.is_non_retriable,
    }
}

/// An instance's state; inputs and outputs only when asked for.
pub fn state(st: &OrchestrationStatus, with_payloads: bool) -> pb::OrchestrationState {
    let terminal = st.runtime_status.is_terminal();
    pb::OrchestrationState {
        instance_id: st.instance_id.clone(),
        name: st.name.clone(),
        version: st.version.clone(),
        orchestration_status: status(st.runtime_status) as i32,
        scheduled_start_timestamp: None,
        created_timestamp: Some(ts(st.created_time)),
        last_updated_timestamp: Some(ts(st.last_updated_time)),
        input: if with_payloads { wire(&st.input) } else { None },
        output: if with_payloads {
            wire(&st.output)
        } else {
            None
        },
        custom_status: if with_payloads {
            wire(&st.custom_status)
        } else {
            None
        },
        failure_details: st.failure.as_ref().map(failure),
        execution_id: None,
        completed_timestamp: terminal.then(|| ts(st.last_updated_time)),
        parent_instance_id: None,
        tags: tags_to_pb(&st.tags),
    }
}

/// Tags from the protocol's map (kept in a sorted map, as stored).
pub fn tags_from_pb(t: &std::collections::HashMap<String, String>) -> perdure_core::Tags {
    t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Tags in the protocol's map.
pub fn tags_to_pb(t: &perdure_core::Tags) -> std::collections::HashMap<String, String> {
    t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn instance(id: &str, execution_id: Option<&str>) -> pb::OrchestrationInstance {
    pb::OrchestrationInstance {
        instance_id: id.to_string(),
        execution_id: execution_id.map(str::to_string),
    }
}

fn parent(p: &ParentInstance) -> pb::ParentInstanceInfo {
    pb::ParentInstanceInfo {
        task_scheduled_id: p.task_scheduled_id as i32,
        name: Some(p.name.clone()),
        version: None,
        orchestration_instance: Some(instance(&p.instance_id, Some(&p.execution_id))),
    }
}

/// A trace context in the protocol's form.
pub fn trace_to_pb(t: &TraceContext) -> pb::TraceContext {
    pb::TraceContext {
        trace_parent: t.traceparent.clone(),
        trace_state: t.tracestate.clone(),
        ..Default::default()
    }
}

/// A trace context from the protocol; one whose `traceParent` is not a
/// valid W3C header is ignored, as W3C asks (it never decides what runs).
pub fn trace_from_pb(t: Option<&pb::TraceContext>) -> Option<TraceContext> {
    let t = t?;
    TraceContext::from_w3c(&t.trace_parent, t.trace_state.as_deref())
}

/// A history event in the protocol's form; `instance_id` names the
/// instance whose history it is.
pub fn event(instance_id: &str, e: &HistoryEvent) -> pb::HistoryEvent {
    use pb::history_event::EventType as T;
    let kind = match &e.kind {
        EventKind::ExecutionStarted {
            trace_context,
            name,
            version,
            input,
            execution_id,
            parent: p,
            tags,
        } => T::ExecutionStarted(pb::ExecutionStartedEvent {
            tags: tags_to_pb(tags),
            name: name.clone(),
            version: version.clone(),
            input: wire(input),
            orchestration_instance: Some(instance(instance_id, Some(execution_id))),
            parent_instance: p.as_ref().map(parent),
            parent_trace_context: trace_context.as_ref().map(trace_to_pb),
            orchestration_span_id: trace_context
                .as_ref()
                .map(|_| format!("{:016x}", orchestration_span_id(instance_id, execution_id))),
            ..Default::default()
        }),
        EventKind::ExecutionCompleted {
            status: s,
            result,
            failure: f,
        } => T::ExecutionCompleted(pb::ExecutionCompletedEvent {
            orchestration_status: status(*s) as i32,
            result: wire(result),
            failure_details: f.as_ref().map(failure),
        }),
        EventKind::ExecutionTerminated { reason } => {
            T::ExecutionTerminated(pb::ExecutionTerminatedEvent {
                input: wire(reason),
                recurse: false,
            })
        }
        EventKind::ExecutionSuspended { reason } => {
            T::ExecutionSuspended(pb::ExecutionSuspendedEvent {
                input: wire(reason),
            })
        }
        EventKind::ExecutionResumed { reason } => T::ExecutionResumed(pb::ExecutionResumedEvent {
            input: wire(reason),
        }),
        EventKind::ExecutionRewound { reason } => T::ExecutionRewound(pb::ExecutionRewoundEvent {
            reason: wire(reason),
            ..Default::default()
        }),
        EventKind::TaskScheduled {
            trace_context,
            name,
            version,
            input,
            tags,
        } => T::TaskScheduled(pb::TaskScheduledEvent {
            tags: tags_to_pb(tags),
            name: name.clone(),
            version: version.clone(),
            input: wire(input),
            parent_trace_context: trace_context.as_ref().map(trace_to_pb),
        }),
        EventKind::TaskCompleted {
            task_scheduled_id,
            result,
        } => T::TaskCompleted(pb::TaskCompletedEvent {
            task_scheduled_id: *task_scheduled_id as i32,
            result: wire(result),
        }),
        EventKind::TaskFailed {
            task_scheduled_id,
            failure: f,
        } => T::TaskFailed(pb::TaskFailedEvent {
            task_scheduled_id: *task_scheduled_id as i32,
            failure_details: Some(failure(f)),
        }),
        EventKind::SubOrchestrationInstanceCreated {
            trace_context,
            name,
            version,
            instance_id: child,
            input,
            tags,
        } => T::SubOrchestrationInstanceCreated(pb::SubOrchestrationInstanceCreatedEvent {
            tags: tags_to_pb(tags),
            instance_id: child.clone(),
            name: name.clone(),
            version: version.clone(),
            input: wire(input),
            parent_trace_context: trace_context.as_ref().map(trace_to_pb),
        }),
        EventKind::SubOrchestrationInstanceCompleted {
            task_scheduled_id,
            result,
        } => T::SubOrchestrationInstanceCompleted(pb::SubOrchestrationInstanceCompletedEvent {
            task_scheduled_id: *task_scheduled_id as i32,
            result: wire(result),
        }),
        EventKind::SubOrchestrationInstanceFailed {
            task_scheduled_id,
            failure: f,
        } => T::SubOrchestrationInstanceFailed(pb::SubOrchestrationInstanceFailedEvent {
            task_scheduled_id: *task_scheduled_id as i32,
            failure_details: Some(failure(f)),
        }),
        EventKind::TimerCreated { fire_at } => T::TimerCreated(pb::TimerCreatedEvent {
            fire_at: Some(ts(*fire_at)),
        }),
        EventKind::TimerFired { timer_id, fire_at } => T::TimerFired(pb::TimerFiredEvent {
            fire_at: Some(ts(*fire_at)),
            timer_id: *timer_id as i32,
        }),
        EventKind::OrchestratorStarted => T::OrchestratorStarted(pb::OrchestratorStartedEvent {}),
        EventKind::OrchestratorCompleted => {
            T::OrchestratorCompleted(pb::OrchestratorCompletedEvent {})
        }
        EventKind::EventSent {
            instance_id: to,
            name,
            input,
        } => T::EventSent(pb::EventSentEvent {
            instance_id: to.clone(),
            name: name.clone(),
            input: wire(input),
        }),
        EventKind::EventRaised { name, input, .. } => T::EventRaised(pb::EventRaisedEvent {
            name: name.clone(),
            input: wire(input),
        }),
        EventKind::ContinueAsNew { input } => {
            T::ContinueAsNew(pb::ContinueAsNewEvent { input: wire(input) })
        }
        EventKind::EntityOperationSignaled {
            request_id,
            target,
            operation,
            input,
            scheduled_time,
            trace_context: _,
        } => T::EntityOperationSignaled(pb::EntityOperationSignaledEvent {
            request_id: request_id.clone(),
            operation: operation.clone(),
            scheduled_time: scheduled_time.map(ts),
            input: wire(input),
            target_instance_id: Some(target.clone()),
        }),
        EventKind::EntityOperationCalled {
            request_id,
            target,
            operation,
            input,
            parent_instance_id,
            parent_execution_id,
            trace_context: _,
        } => T::EntityOperationCalled(pb::EntityOperationCalledEvent {
            request_id: request_id.clone(),
            operation: operation.clone(),
            scheduled_time: None,
            input: wire(input),
            parent_instance_id: Some(parent_instance_id.clone()),
            parent_execution_id: Some(parent_execution_id.clone()),
            target_instance_id: Some(target.clone()),
        }),
        EventKind::EntityOperationCompleted { request_id, output } => {
            T::EntityOperationCompleted(pb::EntityOperationCompletedEvent {
                request_id: request_id.clone(),
                output: wire(output),
            })
        }
        EventKind::EntityOperationFailed {
            request_id,
            failure: f,
        } => T::EntityOperationFailed(pb::EntityOperationFailedEvent {
            request_id: request_id.clone(),
            failure_details: Some(failure(f)),
        }),
        EventKind::EntityLockRequested {
            critical_section_id,
            lock_set,
            position,
            parent_instance_id,
        } => T::EntityLockRequested(pb::EntityLockRequestedEvent {
            critical_section_id: critical_section_id.clone(),
            lock_set: lock_set.clone(),
            position: i32::try_from(*position).unwrap_or(i32::MAX),
            parent_instance_id: Some(parent_instance_id.clone()),
        }),
        EventKind::EntityLockGranted {
            critical_section_id,
        } => T::EntityLockGranted(pb::EntityLockGrantedEvent {
            critical_section_id: critical_section_id.clone(),
        }),
        EventKind::EntityUnlockSent {
            critical_section_id,
            target,
            parent_instance_id,
        } => T::EntityUnlockSent(pb::EntityUnlockSentEvent {
            critical_section_id: critical_section_id.clone(),
            parent_instance_id: Some(parent_instance_id.clone()),
            target_instance_id: Some(target.clone()),
        }),
        // The protocol has no patch marker: a generic event carries it
        // (only Rust orchestrations record one).
        EventKind::PatchMarker { change_id } => T::GenericEvent(pb::GenericEvent {
            data: Some(serde_json::json!({ "patchMarker": change_id }).to_string()),
        }),
        // An SDK worker knows no repairs: it is shown the result the repair
        // stands for (the audit stays in Perdure's history).
        EventKind::StepRepaired { .. } => match e.kind.repair_as_result(e.timestamp) {
            Some(kind) => {
                let stand_in = HistoryEvent {
                    event_id: e.event_id,
                    timestamp: e.timestamp,
                    kind,
                };
                return event(instance_id, &stand_in);
            }
            None => T::GenericEvent(pb::GenericEvent {
                data: Some(serde_json::json!({ "stepRepaired": null }).to_string()),
            }),
        },
        EventKind::HistoryImported { events, .. } => T::GenericEvent(pb::GenericEvent {
            data: Some(serde_json::json!({ "historyImported": events.len() }).to_string()),
        }),
    };
    pb::HistoryEvent {
        event_id: e.event_id as i32,
        timestamp: Some(ts(e.timestamp)),
        event_type: Some(kind),
    }
}
