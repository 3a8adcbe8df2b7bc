//! Control messages decided before any orchestrator code runs: a terminate
//! ends the execution at once (its held entity locks released, its parent
//! told), and status changes of an instance that has no execution yet
//! (suspended, resumed or terminated before its first turn) are committed
//! without a turn.

use super::{build_commit, ExecutionInfo, Outcome, TurnPlan, TurnResult};
use perdure_core::{EventKind, HistoryEvent, ParentInstance, Payload, RuntimeStatus, Timestamp};
use perdure_store::{InstanceMessage, InstanceRecord, OrchestrationCommit, Store, StoreError};

/// What a commit made here takes over from the locked item.
pub(super) struct Handled {
    pub lock_token: String,
    /// Inbox messages the commit removes.
    pub consumed: Vec<i64>,
    /// Messages it sends (refusals of starts).
    pub messages: Vec<InstanceMessage>,
    pub now: Timestamp,
}

fn reason(terminate: &HistoryEvent) -> Payload {
    match &terminate.kind {
        EventKind::ExecutionTerminated { reason } => reason.clone(),
        _ => None,
    }
}

async fn commit_counted(store: &dyn Store, commit: OrchestrationCommit) -> Result<(), StoreError> {
    let summary = crate::metrics::TurnSummary::of(&commit);
    store.commit_orchestration(commit).await?;
    crate::metrics::global().turn_committed(&summary);
    Ok(())
}

/// Commits a turn that runs no code and ends the execution Terminated:
/// OrchestratorStarted, `events` (the terminate last), `actions` (unlocks
/// the engine sends) and the completion.
#[allow(clippy::too_many_arguments)]
async fn commit_terminated(
    store: &dyn Store,
    instance: &InstanceRecord,
    h: Handled,
    exec: &ExecutionInfo,
    new_execution: bool,
    events: Vec<HistoryEvent>,
    actions: Vec<perdure_core::Action>,
    custom_status: Payload,
) -> Result<(), StoreError> {
    let outcome = events.last().map(|t| Outcome::Terminated(reason(t)));
    let plan = TurnPlan {
        instance: instance.clone(),
        lock_token: h.lock_token,
        consumed: h.consumed,
        suspended: false,
        new_execution,
        events: Vec::new(),
        messages: h.messages,
        now: h.now,
        completed_tasks: Vec::new(),
    };
    let mut accepted = vec![HistoryEvent::new(h.now, EventKind::OrchestratorStarted)];
    accepted.extend(events);
    let result = TurnResult {
        accepted,
        actions,
        outcome,
        custom_status,
        leftover: Vec::new(),
    };
    commit_counted(store, build_commit(plan, exec, result)).await
}

/// Ends a running execution: OrchestratorStarted, the terminate, an unlock
/// for every entity of a critical section it still holds, and its
/// completion; nothing else of the batch is applied.
pub(super) async fn terminate_running(
    store: &dyn Store,
    instance: &InstanceRecord,
    h: Handled,
    terminate: HistoryEvent,
) -> Result<(), StoreError> {
    let history = store.read_history(&instance.instance_id).await?;
    let exec = ExecutionInfo::from_history(&history).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "instance `{}` has no ExecutionStarted event",
            instance.instance_id
        ))
    })?;
    let unlocks = perdure_core::release_held_locks(&history);
    let custom_status = instance.custom_status.clone();
    commit_terminated(
        store,
        instance,
        h,
        &exec,
        false,
        vec![terminate],
        unlocks,
        custom_status,
    )
    .await
}

/// Ends an execution whose start and terminate arrived together: it is
/// recorded as started and terminated, and its code never runs.
pub(super) async fn terminate_unstarted(
    store: &dyn Store,
    instance: &InstanceRecord,
    h: Handled,
    start: HistoryEvent,
    terminate: HistoryEvent,
) -> Result<(), StoreError> {
    let exec = ExecutionInfo::from_start(&start)
        .ok_or_else(|| StoreError::Corrupt("start message changed kind".into()))?;
    let events = vec![start, terminate];
    commit_terminated(store, instance, h, &exec, true, events, Vec::new(), None).await
}

/// The message that tells the parent of a sub-orchestration terminated
/// before its first turn (its start held back by a suspend, or not yet
/// due) that it ended: the parent's history names the child's step.
pub(super) async fn tell_parent_of_unstarted(
    store: &dyn Store,
    instance: &InstanceRecord,
    reason: &Payload,
    now: Timestamp,
) -> Result<Option<InstanceMessage>, StoreError> {
    let Some(parent_id) = &instance.parent_instance_id else {
        return Ok(None);
    };
    let Some(parent) = store.get_instance(parent_id).await? else {
        return Ok(None);
    };
    let history = store.read_history(parent_id).await?;
    let step = history.iter().find_map(|e| match &e.kind {
        EventKind::SubOrchestrationInstanceCreated { instance_id, .. }
            if *instance_id == instance.instance_id =>
        {
            Some(e.event_id)
        }
        _ => None,
    });
    let Some(task_scheduled_id) = step else {
        return Ok(None);
    };
    let p = ParentInstance {
        name: parent.name,
        instance_id: parent.instance_id,
        execution_id: parent.execution_id,
        task_scheduled_id,
    };
    let failed = EventKind::SubOrchestrationInstanceFailed {
        task_scheduled_id,
        failure: super::commit::terminated_failure(reason),
    };
    Ok(Some(super::to_parent(&p, failed, now)))
}

/// Consumes messages and sets the instance's status (and, given, its
/// output) without touching its history.
pub(super) async fn commit_status(
    store: &dyn Store,
    instance: &InstanceRecord,
    h: Handled,
    status: RuntimeStatus,
    output: Option<Payload>,
) -> Result<(), StoreError> {
    let mut update = super::unchanged(instance);
    update.status = status;
    if let Some(output) = output {
        update.output = output;
    }
    store
        .commit_orchestration(OrchestrationCommit {
            instance_id: instance.instance_id.clone(),
            lock_token: h.lock_token,
            replace_history: false,
            expected_history_len: instance.history_len,
            history: Vec::new(),
            update,
            consumed: h.consumed,
            activities: Vec::new(),
            messages: h.messages,
            now: h.now,
            claims: Default::default(),
            completed_tasks: Vec::new(),
        })
        .await
}
