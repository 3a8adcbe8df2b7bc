//! History events: the append-only record an orchestration instance is made
//! of, following Durable Task's event list; their versioned stored encoding
//! is `codec`'s.

use crate::{FailureDetails, RuntimeStatus, Timestamp, TraceContext};
use serde::{Deserialize, Serialize};

mod codec;
pub use codec::{
    decode_event, decode_events, encode_event, encode_events, CodecError, HISTORY_FORMAT,
};

pub use crate::payload::{Payload, PayloadText};

/// Tags: string pairs a client or an orchestrator attaches to an
/// orchestration or a task (Durable Task's `tags`), kept as given.
pub type Tags = std::collections::BTreeMap<String, String>;

/// The parent of a sub-orchestration, as recorded in its ExecutionStarted event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentInstance {
    pub name: String,
    pub instance_id: String,
    pub execution_id: String,
    /// The parent's action id for this sub-orchestration.
    pub task_scheduled_id: i64,
}

/// The kind of step a repair settles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RepairedStep {
    Activity,
    SubOrchestration,
    Timer,
}

impl RepairedStep {
    pub fn as_str(self) -> &'static str {
        match self {
            RepairedStep::Activity => "activity",
            RepairedStep::SubOrchestration => "subOrchestration",
            RepairedStep::Timer => "timer",
        }
    }
}

/// How a repair settles a step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum Repair {
    /// The step succeeds with `result` (JSON text).
    Complete {
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "codec::payload"
        )]
        result: Payload,
    },
    /// The step fails with `failure`.
    Fail { failure: FailureDetails },
    /// The timer fires now.
    SkipTimer,
}

impl Repair {
    pub fn as_str(&self) -> &'static str {
        match self {
            Repair::Complete { .. } => "complete",
            Repair::Fail { .. } => "fail",
            Repair::SkipTimer => "skipTimer",
        }
    }
}

/// One event in an orchestration's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// For events recording an action (TaskScheduled, TimerCreated,
    /// SubOrchestrationInstanceCreated, EventSent) the action's sequence id;
    /// -1 for all others.
    pub event_id: i64,
    pub timestamp: Timestamp,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// The kinds of history event and their fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EventKind {
    ExecutionStarted {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
        #[serde(default, with = "codec::payload")]
        input: Payload,
        execution_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent: Option<ParentInstance>,
        /// The span this execution continues: the client's start span, or
        /// the parent's client span for a sub-orchestration.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trace_context: Option<TraceContext>,
        /// The orchestration's tags, carried to each new execution.
        #[serde(default, skip_serializing_if = "Tags::is_empty")]
        tags: Tags,
    },
    ExecutionCompleted {
        status: RuntimeStatus,
        #[serde(default, with = "codec::payload")]
        result: Payload,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<FailureDetails>,
    },
    ExecutionTerminated {
        #[serde(default, with = "codec::payload")]
        reason: Payload,
    },
    ExecutionSuspended {
        #[serde(default, with = "codec::payload")]
        reason: Payload,
    },
    ExecutionResumed {
        #[serde(default, with = "codec::payload")]
        reason: Payload,
    },
    ExecutionRewound {
        #[serde(default, with = "codec::payload")]
        reason: Payload,
    },
    TaskScheduled {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
        #[serde(default, with = "codec::payload")]
        input: Payload,
        /// The activity's client span, which its execution continues.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trace_context: Option<TraceContext>,
        #[serde(default, skip_serializing_if = "Tags::is_empty")]
        tags: Tags,
    },
    TaskCompleted {
        task_scheduled_id: i64,
        #[serde(default, with = "codec::payload")]
        result: Payload,
    },
    TaskFailed {
        task_scheduled_id: i64,
        failure: FailureDetails,
    },
    SubOrchestrationInstanceCreated {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
        instance_id: String,
        #[serde(default, with = "codec::payload")]
        input: Payload,
        /// The sub-orchestration's client span, which the child continues.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trace_context: Option<TraceContext>,
        /// The tags the child is started with.
        #[serde(default, skip_serializing_if = "Tags::is_empty")]
        tags: Tags,
    },
    SubOrchestrationInstanceCompleted {
        task_scheduled_id: i64,
        #[serde(default, with = "codec::payload")]
        result: Payload,
    },
    SubOrchestrationInstanceFailed {
        task_scheduled_id: i64,
        failure: FailureDetails,
    },
    TimerCreated {
        fire_at: Timestamp,
    },
    TimerFired {
        timer_id: i64,
        fire_at: Timestamp,
    },
    OrchestratorStarted,
    OrchestratorCompleted,
    EventSent {
        instance_id: String,
        name: String,
        #[serde(default, with = "codec::payload")]
        input: Payload,
    },
    EventRaised {
        name: String,
        #[serde(default, with = "codec::payload")]
        input: Payload,
        /// The span that raised it (a client's `orchestration_event`
        /// producer span, the request it served, or the sending
        /// orchestration), when traced.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trace_context: Option<TraceContext>,
    },
    ContinueAsNew {
        #[serde(default, with = "codec::payload")]
        input: Payload,
    },
    /// A one-way operation request to an entity. In the sender's history it
    /// records the signal (event id = action id); in the entity's inbox it is
    /// the request itself.
    EntityOperationSignaled {
        request_id: String,
        /// The entity's instance id, `@name@key`.
        target: String,
        operation: String,
        #[serde(default, with = "codec::payload")]
        input: Payload,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scheduled_time: Option<Timestamp>,
        /// The span of the sender (client request, orchestration or entity
        /// operation), which the operation and what it starts continue.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trace_context: Option<TraceContext>,
    },
    /// A two-way operation request from an orchestration to an entity.
    EntityOperationCalled {
        request_id: String,
        target: String,
        operation: String,
        #[serde(default, with = "codec::payload")]
        input: Payload,
        parent_instance_id: String,
        parent_execution_id: String,
        /// As for `EntityOperationSignaled`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trace_context: Option<TraceContext>,
    },
    /// An entity's answer to a call.
    EntityOperationCompleted {
        request_id: String,
        #[serde(default, with = "codec::payload")]
        output: Payload,
    },
    /// An entity operation failed; its state change was rolled back.
    EntityOperationFailed {
        request_id: String,
        failure: FailureDetails,
    },
    /// A request to lock a set of entities (sorted instance ids), passed
    /// from entity to entity: `position` is the one that should lock next.
    EntityLockRequested {
        critical_section_id: String,
        lock_set: Vec<String>,
        position: usize,
        parent_instance_id: String,
    },
    /// Code versioning: the orchestration took the new branch of change
    /// `change_id` (`ctx.is_patched`, `ctx.deprecate_patch`). Recorded once
    /// per execution, the first time the code asks while running live; a
    /// replay that finds it takes the new branch again, one that does not
    /// (an instance started before the change) takes the old one.
    PatchMarker {
        change_id: String,
    },
    /// A stuck step settled by hand (`perdure repair`), recorded in place
    /// of the result the step never got: who (`by`), when (the event's
    /// timestamp) and why. The code sees it as the step's result, on every
    /// replay too. A repair of a step that has its result by the time the
    /// repair arrives is not recorded.
    StepRepaired {
        /// The step's action id: its scheduling event's `event_id`.
        step_id: i64,
        step: RepairedStep,
        repair: Repair,
        by: String,
        reason: String,
    },
    /// An inbox message only, never recorded: an exported history to
    /// install as a new instance's own (`perdure import`), with the status
    /// and fields it was exported with. The instance's first turn records
    /// `events` as its history and queues its open steps again.
    HistoryImported {
        status: RuntimeStatus,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "codec::payload"
        )]
        output: Payload,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<FailureDetails>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "codec::payload"
        )]
        custom_status: Payload,
        events: Vec<HistoryEvent>,
    },
    /// Every entity of the set is locked for the critical section.
    EntityLockGranted {
        critical_section_id: String,
    },
    /// The critical section releases an entity.
    EntityUnlockSent {
        critical_section_id: String,
        target: String,
        parent_instance_id: String,
    },
}

impl HistoryEvent {
    /// An event that records no action (event id -1).
    pub fn new(timestamp: Timestamp, kind: EventKind) -> Self {
        HistoryEvent {
            event_id: -1,
            timestamp,
            kind,
        }
    }

    /// Durable Task's name for this event's type (`TaskScheduled`, ...).
    pub fn type_name(&self) -> &'static str {
        self.kind.type_name()
    }

    /// The name column of the history table: the activity, orchestration or
    /// event name, where the event has one.
    pub fn name(&self) -> Option<&str> {
        match &self.kind {
            EventKind::ExecutionStarted { name, .. }
            | EventKind::TaskScheduled { name, .. }
            | EventKind::SubOrchestrationInstanceCreated { name, .. }
            | EventKind::EventSent { name, .. }
            | EventKind::EventRaised { name, .. } => Some(name),
            EventKind::PatchMarker { change_id } => Some(change_id),
            EventKind::EntityOperationSignaled { operation, .. }
            | EventKind::EntityOperationCalled { operation, .. } => Some(operation),
            _ => None,
        }
    }

    /// For a result event (TaskCompleted/Failed, SubOrchestrationInstance
    /// Completed/Failed, TimerFired), the id of the action it answers.
    pub fn completion_id(&self) -> Option<i64> {
        match &self.kind {
            EventKind::TaskCompleted {
                task_scheduled_id, ..
            }
            | EventKind::TaskFailed {
                task_scheduled_id, ..
            }
            | EventKind::SubOrchestrationInstanceCompleted {
                task_scheduled_id, ..
            }
            | EventKind::SubOrchestrationInstanceFailed {
                task_scheduled_id, ..
            } => Some(*task_scheduled_id),
            EventKind::TimerFired { timer_id, .. } => Some(*timer_id),
            EventKind::StepRepaired { step_id, .. } => Some(*step_id),
            _ => None,
        }
    }

    /// The input column of the history table.
    pub fn input(&self) -> Option<&str> {
        match &self.kind {
            EventKind::ExecutionStarted { input, .. }
            | EventKind::TaskScheduled { input, .. }
            | EventKind::SubOrchestrationInstanceCreated { input, .. }
            | EventKind::EventSent { input, .. }
            | EventKind::EventRaised { input, .. }
            | EventKind::EntityOperationSignaled { input, .. }
            | EventKind::EntityOperationCalled { input, .. }
            | EventKind::ContinueAsNew { input } => input.as_deref(),
            _ => None,
        }
    }

    /// The result column of the history table.
    pub fn result(&self) -> Option<String> {
        match &self.kind {
            EventKind::ExecutionCompleted {
                result, failure, ..
            } => match failure {
                Some(f) => Some(f.to_string()),
                None => result.as_deref().map(str::to_string),
            },
            EventKind::TaskCompleted { result, .. }
            | EventKind::SubOrchestrationInstanceCompleted { result, .. }
            | EventKind::EntityOperationCompleted { output: result, .. } => {
                result.as_deref().map(str::to_string)
            }
            EventKind::TaskFailed { failure, .. }
            | EventKind::SubOrchestrationInstanceFailed { failure, .. }
            | EventKind::EntityOperationFailed { failure, .. } => Some(failure.to_string()),
            EventKind::ExecutionTerminated { reason } => reason.as_deref().map(str::to_string),
            _ => None,
        }
    }
}

impl EventKind {
    /// For a `StepRepaired` event, the result event it stands for (what
    /// a runner that knows no repairs, an SDK worker, is shown); `None`
    /// for any other event, and for a repair that does not fit its step.
    pub fn repair_as_result(&self, at: Timestamp) -> Option<EventKind> {
        let EventKind::StepRepaired {
            step_id,
            step,
            repair,
            ..
        } = self
        else {
            return None;
        };
        let id = *step_id;
        Some(match (step, repair) {
            (RepairedStep::Timer, Repair::SkipTimer) => EventKind::TimerFired {
                timer_id: id,
                fire_at: at,
            },
            (RepairedStep::Timer, _) | (_, Repair::SkipTimer) => return None,
            (RepairedStep::Activity, Repair::Complete { result }) => EventKind::TaskCompleted {
                task_scheduled_id: id,
                result: result.clone(),
            },
            (RepairedStep::Activity, Repair::Fail { failure }) => EventKind::TaskFailed {
                task_scheduled_id: id,
                failure: failure.clone(),
            },
            (RepairedStep::SubOrchestration, Repair::Complete { result }) => {
                EventKind::SubOrchestrationInstanceCompleted {
                    task_scheduled_id: id,
                    result: result.clone(),
                }
            }
            (RepairedStep::SubOrchestration, Repair::Fail { failure }) => {
                EventKind::SubOrchestrationInstanceFailed {
                    task_scheduled_id: id,
                    failure: failure.clone(),
                }
            }
        })
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::ExecutionStarted { .. } => "ExecutionStarted",
            EventKind::ExecutionCompleted { .. } => "ExecutionCompleted",
            EventKind::ExecutionTerminated { .. } => "ExecutionTerminated",
            EventKind::ExecutionSuspended { .. } => "ExecutionSuspended",
            EventKind::ExecutionResumed { .. } => "ExecutionResumed",
            EventKind::ExecutionRewound { .. } => "ExecutionRewound",
            EventKind::PatchMarker { .. } => "PatchMarker",
            EventKind::StepRepaired { .. } => "StepRepaired",
            EventKind::HistoryImported { .. } => "HistoryImported",
            EventKind::TaskScheduled { .. } => "TaskScheduled",
            EventKind::TaskCompleted { .. } => "TaskCompleted",
            EventKind::TaskFailed { .. } => "TaskFailed",
            EventKind::SubOrchestrationInstanceCreated { .. } => "SubOrchestrationInstanceCreated",
            EventKind::SubOrchestrationInstanceCompleted { .. } => {
                "SubOrchestrationInstanceCompleted"
            }
            EventKind::SubOrchestrationInstanceFailed { .. } => "SubOrchestrationInstanceFailed",
            EventKind::TimerCreated { .. } => "TimerCreated",
            EventKind::TimerFired { .. } => "TimerFired",
            EventKind::OrchestratorStarted => "OrchestratorStarted",
            EventKind::OrchestratorCompleted => "OrchestratorCompleted",
            EventKind::EventSent { .. } => "EventSent",
            EventKind::EventRaised { .. } => "EventRaised",
            EventKind::ContinueAsNew { .. } => "ContinueAsNew",
            EventKind::EntityOperationSignaled { .. } => "EntityOperationSignaled",
            EventKind::EntityOperationCalled { .. } => "EntityOperationCalled",
            EventKind::EntityOperationCompleted { .. } => "EntityOperationCompleted",
            EventKind::EntityOperationFailed { .. } => "EntityOperationFailed",
            EventKind::EntityLockRequested { .. } => "EntityLockRequested",
            EventKind::EntityLockGranted { .. } => "EntityLockGranted",
            EventKind::EntityUnlockSent { .. } => "EntityUnlockSent",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn runs_of_events_round_trip() {
        let t = chrono::Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let events = vec![
            HistoryEvent::new(t, EventKind::OrchestratorStarted),
            HistoryEvent::new(t, EventKind::OrchestratorCompleted),
        ];
        let text = encode_events(&events);
        assert_eq!(decode_events(&text).unwrap(), events);
        let one = encode_event(&events[0]);
        assert_eq!(decode_events(&one).unwrap(), events[..1].to_vec());
        assert!(decode_events("[{\"v\": 999}]").is_err());
    }

    #[test]
    fn encoding_round_trips() {
        let ts = chrono::Utc
            .with_ymd_and_hms(2021, 5, 5, 18, 45, 28)
            .unwrap();
        let events = vec![
            HistoryEvent::new(
                ts,
                EventKind::ExecutionStarted {
                    trace_context: None,
                    name: "HelloCities".into(),
                    version: None,
                    input: None,
                    execution_id: "e1".into(),
                    parent: None,
                    tags: [("env".to_string(), "prod".to_string())].into(),
                },
            ),
            HistoryEvent {
                event_id: 0,
                timestamp: ts,
                kind: EventKind::TaskScheduled {
                    trace_context: None,
                    name: "SayHello".into(),
                    version: None,
                    input: Some("\"Tokyo\"".into()),
                    tags: Tags::new(),
                },
            },
            HistoryEvent::new(
                ts,
                EventKind::TaskFailed {
                    task_scheduled_id: 0,
                    failure: FailureDetails::new("Boom", "it broke"),
                },
            ),
            HistoryEvent::new(ts, EventKind::OrchestratorStarted),
        ];
        for e in events {
            let text = encode_event(&e);
            assert_eq!(decode_event(&text).unwrap(), e, "{text}");
        }
        assert!(matches!(
            decode_event(
                r#"{"v":99,"event_id":-1,"timestamp":"2021-05-05T18:45:28Z","type":"OrchestratorStarted"}"#
            ),
            Err(CodecError::UnknownFormat(99))
        ));
        assert!(decode_event("not json").is_err());
    }

    #[test]
    fn events_stored_before_tags_read_back_untagged() {
        let old = r#"{"v":1,"event_id":-1,"timestamp":"2021-05-05T18:45:28Z","type":"ExecutionStarted","name":"O","input":null,"execution_id":"e"}"#;
        match decode_event(old).unwrap().kind {
            EventKind::ExecutionStarted { tags, .. } => assert!(tags.is_empty()),
            other => panic!("decoded as {other:?}"),
        }
        let untagged = encode_event(&HistoryEvent::new(
            chrono::Utc::now(),
            EventKind::TaskScheduled {
                trace_context: None,
                name: "A".into(),
                version: None,
                input: None,
                tags: Tags::new(),
            },
        ));
        assert!(
            !untagged.contains("tags"),
            "no tags are not written: {untagged}"
        );
    }
}
