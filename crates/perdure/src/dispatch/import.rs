//! An imported history installed as an instance's own, in the instance's
//! first turn (`perdure import`: [`crate::Client::import_history`] creates
//! the instance with a `HistoryImported` message as its start). The
//! history is recorded as it was exported, the instance row takes the
//! exported status and fields, and when the instance is still open its
//! steps without a result are queued again: activities to run, timers to
//! fire at their time. Children (sub-orchestrations) and entities are not
//! part of an export: a child imported on its own answers its parent when
//! it ends; an entity call waits for an answer that only a repair gives.

use super::control::Handled;
use super::ExecutionInfo;
use perdure_core::{EventKind, FailureDetails, HistoryEvent, Payload, RuntimeStatus};
use perdure_store::{
    InstanceMessage, InstanceRecord, InstanceUpdate, NewActivity, OrchestrationCommit, Store,
    StoreError,
};
use std::collections::BTreeMap;

/// What a `HistoryImported` message carries.
pub(super) struct Imported {
    pub status: RuntimeStatus,
    pub output: Payload,
    pub failure: Option<FailureDetails>,
    pub custom_status: Payload,
    pub events: Vec<HistoryEvent>,
}

impl Imported {
    pub fn from_event(e: &HistoryEvent) -> Option<Imported> {
        match &e.kind {
            EventKind::HistoryImported {
                status,
                output,
                failure,
                custom_status,
                events,
            } => Some(Imported {
                status: *status,
                output: output.clone(),
                failure: failure.clone(),
                custom_status: custom_status.clone(),
                events: events.clone(),
            }),
            _ => None,
        }
    }
}

/// The activities and timers of `events` still waiting for a result.
fn open_steps(
    instance_id: &str,
    exec: &ExecutionInfo,
    events: &[HistoryEvent],
) -> (Vec<NewActivity>, Vec<InstanceMessage>) {
    let mut open: BTreeMap<i64, &HistoryEvent> = BTreeMap::new();
    for e in events {
        match &e.kind {
            EventKind::TaskScheduled { .. } | EventKind::TimerCreated { .. } => {
                open.insert(e.event_id, e);
            }
            _ => {
                if let Some(id) = e.completion_id() {
                    open.remove(&id);
                }
            }
        }
    }
    let mut activities = Vec::new();
    let mut timers = Vec::new();
    for (id, e) in open {
        match &e.kind {
            EventKind::TaskScheduled {
                name,
                version,
                input,
                trace_context,
                ..
            } => activities.push(NewActivity {
                instance_id: instance_id.to_string(),
                execution_id: exec.execution_id.clone(),
                task_id: id,
                name: name.clone(),
                version: version.clone(),
                input: input.clone(),
                trace_context: trace_context.clone(),
            }),
            EventKind::TimerCreated { fire_at } => timers.push(InstanceMessage {
                instance_id: instance_id.to_string(),
                execution_id: Some(exec.execution_id.clone()),
                event: HistoryEvent::new(
                    *fire_at,
                    EventKind::TimerFired {
                        timer_id: id,
                        fire_at: *fire_at,
                    },
                ),
                visible_at: *fire_at,
            }),
            _ => {}
        }
    }
    (activities, timers)
}

/// Installs `import` as the history of `instance` (created by the import,
/// with no history yet) in one commit.
pub(super) async fn install(
    store: &dyn Store,
    instance: &InstanceRecord,
    h: Handled,
    import: Imported,
) -> Result<(), StoreError> {
    let exec = ExecutionInfo::from_history(&import.events).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "the history imported as `{}` has no ExecutionStarted event",
            instance.instance_id
        ))
    })?;
    let (activities, mut messages) = if import.status.is_terminal() {
        (Vec::new(), Vec::new())
    } else {
        open_steps(&instance.instance_id, &exec, &import.events)
    };
    messages.extend(h.messages);
    let commit = OrchestrationCommit {
        instance_id: instance.instance_id.clone(),
        lock_token: h.lock_token,
        replace_history: false,
        expected_history_len: 0,
        history: import.events,
        update: InstanceUpdate {
            name: exec.name.clone(),
            version: exec.version.clone(),
            status: import.status,
            execution_id: exec.execution_id.clone(),
            input: exec.input.clone(),
            output: import.output,
            failure: import.failure,
            custom_status: import.custom_status,
            parent_instance_id: exec.parent.as_ref().map(|p| p.instance_id.clone()),
            tags: exec.tags.clone(),
        },
        consumed: h.consumed,
        activities,
        messages,
        now: h.now,
        claims: Default::default(),
        completed_tasks: Vec::new(),
    };
    store.commit_orchestration(commit).await
}
