//! Actions: what an orchestrator asks for during a turn (activities, timers,
//! sub-orchestrations, events to others, entity calls, signals and locks),
//! the history event that records each, and how replay matches them.

use crate::{EventKind, HistoryEvent, Payload, Tags, Timestamp, TraceContext};

/// Something an orchestrator asked for during a turn.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    ScheduleTask {
        id: i64,
        name: String,
        version: Option<String>,
        input: Payload,
        /// The activity's client span, when the runner chose it (an SDK
        /// worker does); otherwise the commit derives it.
        trace_context: Option<TraceContext>,
        tags: Tags,
    },
    CreateTimer {
        id: i64,
        fire_at: Timestamp,
    },
    CreateSubOrchestration {
        id: i64,
        name: String,
        version: Option<String>,
        instance_id: String,
        input: Payload,
        /// As for [`Action::ScheduleTask`].
        trace_context: Option<TraceContext>,
        /// The child's tags.
        tags: Tags,
    },
    SendEvent {
        id: i64,
        instance_id: String,
        name: String,
        input: Payload,
    },
    /// A two-way entity operation; its answer resolves the task.
    CallEntity {
        id: i64,
        request_id: String,
        target: String,
        operation: String,
        input: Payload,
        parent_instance_id: String,
        parent_execution_id: String,
    },
    /// Locks entities (sorted, distinct instance ids) for a critical section.
    LockEntities {
        id: i64,
        critical_section_id: String,
        lock_set: Vec<String>,
        parent_instance_id: String,
    },
    /// Releases one entity of a critical section.
    UnlockEntity {
        id: i64,
        critical_section_id: String,
        target: String,
        parent_instance_id: String,
    },
    /// A one-way entity operation, delivered at `scheduled_time` if given.
    SignalEntity {
        id: i64,
        request_id: String,
        target: String,
        operation: String,
        input: Payload,
        scheduled_time: Option<Timestamp>,
    },
}

impl Action {
    pub fn id(&self) -> i64 {
        match self {
            Action::ScheduleTask { id, .. }
            | Action::CreateTimer { id, .. }
            | Action::CreateSubOrchestration { id, .. }
            | Action::SendEvent { id, .. }
            | Action::CallEntity { id, .. }
            | Action::LockEntities { id, .. }
            | Action::UnlockEntity { id, .. }
            | Action::SignalEntity { id, .. } => *id,
        }
    }

    /// The type of the history event that records this action.
    pub fn event_type(&self) -> &'static str {
        match self {
            Action::ScheduleTask { .. } => "TaskScheduled",
            Action::CreateTimer { .. } => "TimerCreated",
            Action::CreateSubOrchestration { .. } => "SubOrchestrationInstanceCreated",
            Action::SendEvent { .. } => "EventSent",
            Action::CallEntity { .. } => "EntityOperationCalled",
            Action::SignalEntity { .. } => "EntityOperationSignaled",
            Action::LockEntities { .. } => "EntityLockRequested",
            Action::UnlockEntity { .. } => "EntityUnlockSent",
        }
    }

    /// A short description used in non-determinism errors.
    pub fn describe(&self) -> String {
        match self {
            Action::ScheduleTask { id, name, .. } => format!("ScheduleTask `{name}` (id {id})"),
            Action::CreateTimer { id, .. } => format!("CreateTimer (id {id})"),
            Action::CreateSubOrchestration {
                id,
                name,
                instance_id,
                ..
            } => format!("CreateSubOrchestration `{name}` as `{instance_id}` (id {id})"),
            Action::SendEvent {
                id,
                instance_id,
                name,
                ..
            } => format!("SendEvent `{name}` to `{instance_id}` (id {id})"),
            Action::CallEntity {
                id,
                target,
                operation,
                ..
            } => format!("CallEntity `{operation}` on `{target}` (id {id})"),
            Action::SignalEntity {
                id,
                target,
                operation,
                ..
            } => format!("SignalEntity `{operation}` to `{target}` (id {id})"),
            Action::LockEntities { id, lock_set, .. } => {
                format!("LockEntities {lock_set:?} (id {id})")
            }
            Action::UnlockEntity { id, target, .. } => format!("UnlockEntity `{target}` (id {id})"),
        }
    }

    /// The history event that records this action.
    pub fn to_event(&self, timestamp: Timestamp) -> HistoryEvent {
        let kind = match self.clone() {
            Action::ScheduleTask {
                name,
                version,
                input,
                trace_context,
                tags,
                ..
            } => EventKind::TaskScheduled {
                name,
                version,
                input,
                trace_context,
                tags,
            },
            Action::CreateTimer { fire_at, .. } => EventKind::TimerCreated { fire_at },
            Action::CreateSubOrchestration {
                name,
                version,
                instance_id,
                input,
                trace_context,
                tags,
                ..
            } => EventKind::SubOrchestrationInstanceCreated {
                name,
                version,
                instance_id,
                input,
                trace_context,
                tags,
            },
            Action::SendEvent {
                instance_id,
                name,
                input,
                ..
            } => EventKind::EventSent {
                instance_id,
                name,
                input,
            },
            Action::CallEntity {
                request_id,
                target,
                operation,
                input,
                parent_instance_id,
                parent_execution_id,
                ..
            } => EventKind::EntityOperationCalled {
                request_id,
                target,
                operation,
                input,
                parent_instance_id,
                parent_execution_id,
                trace_context: None,
            },
            Action::LockEntities {
                critical_section_id,
                lock_set,
                parent_instance_id,
                ..
            } => EventKind::EntityLockRequested {
                critical_section_id,
                lock_set,
                position: 0,
                parent_instance_id,
            },
            Action::UnlockEntity {
                critical_section_id,
                target,
                parent_instance_id,
                ..
            } => EventKind::EntityUnlockSent {
                critical_section_id,
                target,
                parent_instance_id,
            },
            Action::SignalEntity {
                request_id,
                target,
                operation,
                input,
                scheduled_time,
                ..
            } => EventKind::EntityOperationSignaled {
                request_id,
                target,
                operation,
                input,
                scheduled_time,
                trace_context: None,
            },
        };
        HistoryEvent {
            event_id: self.id(),
            timestamp,
            kind,
        }
    }

    pub(super) fn matches(&self, event: &HistoryEvent) -> bool {
        if event.event_id != self.id() {
            return false;
        }
        match (self, &event.kind) {
            (Action::ScheduleTask { name, .. }, EventKind::TaskScheduled { name: n, .. }) => {
                name == n
            }
            (Action::CreateTimer { .. }, EventKind::TimerCreated { .. }) => true,
            (
                Action::CreateSubOrchestration {
                    name, instance_id, ..
                },
                EventKind::SubOrchestrationInstanceCreated {
                    name: n,
                    instance_id: i,
                    ..
                },
            ) => name == n && instance_id == i,
            (
                Action::SendEvent {
                    name, instance_id, ..
                },
                EventKind::EventSent {
                    name: n,
                    instance_id: i,
                    ..
                },
            ) => name == n && instance_id == i,
            (
                Action::CallEntity {
                    target, operation, ..
                },
                EventKind::EntityOperationCalled {
                    target: t,
                    operation: o,
                    ..
                },
            )
            | (
                Action::SignalEntity {
                    target, operation, ..
                },
                EventKind::EntityOperationSignaled {
                    target: t,
                    operation: o,
                    ..
                },
            ) => target == t && operation == o,
            (
                Action::LockEntities { lock_set, .. },
                EventKind::EntityLockRequested { lock_set: l, .. },
            ) => lock_set == l,
            (
                Action::UnlockEntity { target, .. },
                EventKind::EntityUnlockSent { target: t, .. },
            ) => target == t,
            _ => false,
        }
    }
}

pub(super) fn describe_action_event(event: &HistoryEvent) -> String {
    let id = event.event_id;
    match &event.kind {
        EventKind::TaskScheduled { name, .. } => format!("ScheduleTask `{name}` (id {id})"),
        EventKind::TimerCreated { .. } => format!("CreateTimer (id {id})"),
        EventKind::SubOrchestrationInstanceCreated {
            name, instance_id, ..
        } => format!("CreateSubOrchestration `{name}` as `{instance_id}` (id {id})"),
        EventKind::EventSent {
            name, instance_id, ..
        } => format!("SendEvent `{name}` to `{instance_id}` (id {id})"),
        EventKind::EntityOperationCalled {
            target, operation, ..
        } => format!("CallEntity `{operation}` on `{target}` (id {id})"),
        EventKind::EntityOperationSignaled {
            target, operation, ..
        } => format!("SignalEntity `{operation}` to `{target}` (id {id})"),
        EventKind::EntityLockRequested { lock_set, .. } => {
            format!("LockEntities {lock_set:?} (id {id})")
        }
        EventKind::EntityUnlockSent { target, .. } => format!("UnlockEntity `{target}` (id {id})"),
        other => other.type_name().to_string(),
    }
}

/// The unlocks that release every critical section `history` still holds
/// (a lock requested and not yet released, granted or not), numbered from
/// the first action id the history has not used. An execution that ends
/// without running its code (terminated, or failed on non-determinism)
/// sends these so that no entity stays locked by it.
pub fn release_held_locks(history: &[HistoryEvent]) -> Vec<Action> {
    let mut next_id = history.iter().map(|e| e.event_id).max().unwrap_or(-1) + 1;
    let mut held: Vec<(String, Vec<String>, String)> = Vec::new();
    for e in history {
        match &e.kind {
            EventKind::EntityLockRequested {
                critical_section_id,
                lock_set,
                parent_instance_id,
                ..
            } => held.push((
                critical_section_id.clone(),
                lock_set.clone(),
                parent_instance_id.clone(),
            )),
            EventKind::EntityUnlockSent {
                critical_section_id,
                ..
            } => held.retain(|(id, _, _)| id != critical_section_id),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (critical_section_id, lock_set, parent_instance_id) in held {
        for target in lock_set {
            out.push(Action::UnlockEntity {
                id: next_id,
                critical_section_id: critical_section_id.clone(),
                target,
                parent_instance_id: parent_instance_id.clone(),
            });
            next_id += 1;
        }
    }
    out
}
