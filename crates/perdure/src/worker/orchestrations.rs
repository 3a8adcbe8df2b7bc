//! Orchestration dispatch: take an instance with visible messages, get its
//! replayed run (from the cache when its history length matches, else by
//! replaying the stored history), apply the messages as one turn, and commit
//! history, status, new activities, timers and messages in one transaction.

use super::activities::Slot;
use super::Shared;
use crate::dispatch::{self, ExecutionInfo, Prepared, TurnResult};
use crate::executor::{OrchestrationRun, Turn};
use perdure_core::{EventKind, Payload};
use perdure_store::{ActivityItem, FirstTurn, InstanceRecord, OrchestrationItem, StoreError};
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

/// Runs a taken instance's turn in its own task, holding its slot.
pub(super) fn spawn(shared: Arc<Shared>, item: OrchestrationItem, permit: OwnedSemaphorePermit) {
    // Boxed: a turn's future is kilobytes, and a task moves its future
    // (into the task, and out as it finishes); a box moves as a pointer.
    tokio::spawn(Box::pin(async move {
        run(&shared, item).await;
        drop(permit);
    }));
}

/// Runs one taken instance's turn and commits it; errors are logged (the
/// lease then runs out and the work is taken again).
async fn run(shared: &Arc<Shared>, item: OrchestrationItem) {
    let id = item.instance.instance_id.clone();
    let span = turn_span(&item);
    // A long turn (a large replay after a restart) keeps its lease.
    let renewer = {
        let (store, token, rid) = (shared.store.clone(), item.lock_token.clone(), id.clone());
        let lease = shared.options.lease;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                if store
                    .renew_orchestration_lock(&rid, &token, lease)
                    .await
                    .is_err()
                {
                    return;
                }
            }
        })
    };
    let result = turn(shared, item).instrument(span.clone()).await;
    renewer.abort();
    for (item, slot) in result.unwrap_or_default() {
        super::activities::spawn(shared.clone(), item, slot);
    }
}

/// Runs one taken instance's turn and commits it. Returns the activities
/// the commit claimed for this worker (to run now). On an error the turn is
/// discarded and logged; the lease then runs out and the work is taken again.
pub(super) async fn turn(
    shared: &Arc<Shared>,
    item: OrchestrationItem,
) -> Result<Claimed, StoreError> {
    let id = item.instance.instance_id.clone();
    let result = process(shared, item, Commit::Leased).await;
    match &result {
        Ok(_) => {}
        Err(StoreError::LockLost(what)) | Err(StoreError::HistoryConflict { id: what, .. }) => {
            drop_cached(shared, &id);
            tracing::warn!(%what, "turn discarded: lease lost or history moved; it will be redone");
        }
        Err(e) => {
            drop_cached(shared, &id);
            tracing::warn!(error = %e, "store error in an orchestration turn; it will be redone when its lease ends");
        }
    }
    result
}

/// Runs the first turn of a start that was never stored and creates the
/// instance with it (see [`super::local`]); errors are logged and returned
/// to the starter, whose start then failed as a create that fails does
/// (nothing written, or, when only the store's answer was lost, the
/// instance created).
pub(super) async fn first_turn(
    shared: &Arc<Shared>,
    item: OrchestrationItem,
) -> Result<Committed, StoreError> {
    let id = item.instance.instance_id.clone();
    let span = turn_span(&item);
    let result = process_as(shared, item, Commit::Created)
        .instrument(span)
        .await;
    if let Err(e) = &result {
        drop_cached(shared, &id);
        tracing::warn!(error = %e, instance_id = %id, "first turn of a start not stored");
    }
    result
}

/// The span a turn of `item`'s instance runs in.
fn turn_span(item: &OrchestrationItem) -> tracing::Span {
    tracing::info_span!(
        "orchestration",
        otel.name = %format!("orchestration:{}", item.instance.name),
        instance_id = %item.instance.instance_id,
        name = %item.instance.name,
    )
}

fn drop_cached(shared: &Shared, id: &str) {
    if let Ok(mut c) = shared.cache.lock() {
        c.pop(id);
    }
}

/// Activities a commit claimed for this worker, each with its slot (or its
/// place in the backlog, waiting for one).
pub(super) type Claimed = Vec<(ActivityItem, Slot)>;

/// Runs the turn that consumes activity `task`'s result (`msg`) without
/// taking the instance, when this worker holds the instance's run in its
/// cache, its last commit was that run's own, and the run waits on that
/// activity alone: no other result can reach it here, and the store
/// applies the commit only if nothing reached it elsewhere either
/// ([`perdure_store::OrchestrationQueue::commit_unleased`]). One write per
/// step, with no lease taken. `None` when the turn was not run or its
/// commit was refused: the caller then takes the instance the usual way.
pub(super) async fn unleased_turn(
    shared: &Arc<Shared>,
    task: &ActivityItem,
    msg: &perdure_store::InstanceMessage,
) -> Option<Claimed> {
    let now = shared.store.unleased_now()?;
    let a = &task.activity;
    let (record, last_update) = {
        let cache = shared.cache.lock().ok()?;
        let run = cache.peek(&a.instance_id)?;
        let last = run.committed_at?;
        if !run.waits_only_on(&a.execution_id, a.task_id) {
            return None;
        }
        (run.as_record(last), last)
    };
    let item = OrchestrationItem {
        instance: record,
        messages: Vec::new(),
        lock_token: String::new(),
        now: now.max(last_update),
        carried: vec![perdure_store::CarriedResult {
            task_token: task.lock_token.clone(),
            execution_id: msg.execution_id.clone(),
            event: msg.event.clone(),
        }],
    };
    match process(shared, item, Commit::Unleased(last_update)).await {
        Ok(claimed) => Some(claimed),
        Err(e) => {
            // The run moved on in memory: replay it when next needed.
            drop_cached(shared, &a.instance_id);
            tracing::debug!(error = %e, instance_id = %a.instance_id, "unleased turn not applied; taking the instance");
            None
        }
    }
}

/// How a turn's commit is applied.
pub(super) enum Commit {
    /// Under the item's lease.
    Leased,
    /// Without one, on the instance as last updated at this time (the
    /// item's run's own commit).
    Unleased(perdure_core::Timestamp),
    /// With the instance it creates: the first turn of a start that was
    /// never stored ([`perdure_store::OrchestrationQueue::create_with_first_turn`]).
    Created,
}

/// What became of a turn.
pub(super) enum Committed {
    /// Committed: the activities this worker claimed, to run now.
    Applied(Claimed),
    /// A first turn whose id was taken: nothing written; the commit back.
    Declined(Box<perdure_store::OrchestrationCommit>),
}

/// Runs a turn and commits it as `how` says.
async fn process(
    shared: &Arc<Shared>,
    item: OrchestrationItem,
    how: Commit,
) -> Result<Claimed, StoreError> {
    match process_as(shared, item, how).await? {
        Committed::Applied(claimed) => Ok(claimed),
        Committed::Declined(_) => Err(StoreError::Backend(
            "a first turn was declined outside a start".into(),
        )),
    }
}

/// Runs a turn and commits it as `how` says; see [`Committed`].
pub(super) async fn process_as(
    shared: &Arc<Shared>,
    item: OrchestrationItem,
    how: Commit,
) -> Result<Committed, StoreError> {
    let mut plan = match dispatch::prepare(shared.store.as_ref(), item).await? {
        Prepared::Handled => return Ok(Committed::Applied(Vec::new())),
        Prepared::Entity(batch) => {
            return Box::pin(run_entity(shared, *batch))
                .await
                .map(|_| Committed::Applied(Vec::new()))
        }
        Prepared::Turn(plan) => *plan,
    };
    let id = plan.instance.instance_id.clone();
    let started = plan.events.first().and_then(ExecutionInfo::from_start);
    let mut run = match &started {
        Some(start) if plan.new_execution => {
            let orchestrator = shared.registry.orchestrator(&start.name);
            OrchestrationRun::new(&id, orchestrator, plan.now)
        }
        _ => load_run(shared, &plan.instance, plan.now).await?,
    };
    for e in &plan.events {
        if let EventKind::TimerFired { timer_id, fire_at } = &e.kind {
            let late_ms = (plan.now - *fire_at).num_milliseconds();
            tracing::info_span!("timer", otel.name = "timer", instance_id = %id, timer_id, %fire_at)
                .in_scope(|| tracing::debug!(late_ms, "timer fired"));
        }
    }
    let Turn {
        accepted,
        actions,
        leftover,
    } = run.run_turn(plan.take_turn_events());
    let exec = match started {
        Some(start) if plan.new_execution => start,
        _ => ExecutionInfo {
            name: run.ctx.name(),
            version: plan.instance.version.clone(),
            execution_id: run.execution_id(),
            input: current_input(&run),
            parent: run.ctx.parent(),
            trace_context: run.ctx.trace_context(),
            tags: plan.instance.tags.clone(),
        },
    };
    let new_execution = plan.new_execution;
    let turn_time = plan.now;
    let spans = if crate::telemetry::enabled() {
        run.steps.turn(crate::telemetry::TurnSpans {
            instance_id: &id,
            exec: &exec,
            now: plan.now,
            accepted: &accepted,
            actions: &actions,
            outcome: run.outcome.as_ref(),
        })
    } else {
        Vec::new()
    };
    let mut commit = dispatch::build_commit(
        plan,
        &exec,
        TurnResult {
            accepted,
            actions,
            outcome: run.outcome.clone(),
            custom_status: custom_status(&run),
            leftover,
        },
    );
    let appended = commit.history.len() as u64;
    let finished = run.outcome.is_some();
    let claimed = claim_activities(shared, &mut commit);
    let summary = crate::metrics::TurnSummary::of(&commit);
    match how {
        Commit::Leased => shared.store.commit_orchestration(commit).await?,
        Commit::Unleased(last) => {
            if !shared.store.commit_unleased(commit, last).await? {
                return Err(StoreError::LockLost(format!(
                    "instance `{id}` changed before an unleased turn's commit"
                )));
            }
        }
        Commit::Created => {
            if let FirstTurn::Declined(commit) = shared.store.create_with_first_turn(commit).await?
            {
                return Ok(Committed::Declined(commit));
            }
        }
    }
    crate::metrics::global().turn_committed(&summary);
    crate::telemetry::export_turn(spans);
    if finished || shared.options.cache_capacity == 0 {
        drop_cached(shared, &id);
    } else {
        run.history_len = if new_execution { 0 } else { run.history_len } + appended;
        run.committed_at = Some(turn_time);
        if let Ok(mut c) = shared.cache.lock() {
            c.put(id, run);
        }
    }
    Ok(Committed::Applied(claimed))
}

/// Claims the commit's activities that this worker runs and has a free
/// slot for, or, all slots busy, room for in its backlog (as many as it has
/// slots: a task there waits for the next free slot, briefly, see
/// [`super::activities::spawn`]): they are stored already leased to it and
/// run as soon as the commit is durable and a slot is theirs, without a
/// fetch, and their results find the run in this worker's cache. The rest
/// wait in the store for any worker.
fn claim_activities(shared: &Shared, commit: &mut perdure_store::OrchestrationCommit) -> Claimed {
    let mut mine = Vec::new();
    let mut others = Vec::new();
    for a in std::mem::take(&mut commit.activities) {
        let slot = match shared.registry.activity(&a.name) {
            Some(_) => match shared.activity_slots.clone().try_acquire_owned() {
                Ok(permit) => Some(Slot::Running(permit)),
                Err(_) => shared.backlog.enter().map(Slot::Waiting),
            },
            None => None,
        };
        match slot {
            Some(slot) => mine.push((a, slot)),
            None => others.push(a),
        }
    }
    let mut claimed = Vec::with_capacity(mine.len());
    for (a, slot) in mine {
        let token = perdure_store::new_lock_token();
        commit.claims.tokens.push(token.clone());
        commit.activities.push(a.clone());
        claimed.push((
            ActivityItem {
                activity: a,
                lock_token: token,
                dequeue_count: 1,
            },
            slot,
        ));
    }
    commit.claims.lease = shared.options.lease;
    commit.activities.extend(others);
    claimed
}

/// Runs an entity's waiting operations with the registered entity function
/// (or fails them, naming the entity, when none is registered).
async fn run_entity(shared: &Shared, batch: dispatch::EntityBatch) -> Result<(), StoreError> {
    let registry = &shared.registry;
    dispatch::run_entity_batch(
        shared.store.as_ref(),
        batch,
        |id, operation, input, state| registry.invoke_entity(id, &operation, input, state),
    )
    .await
}

/// The cached run when its history length matches, else a fresh replay.
async fn load_run(
    shared: &Shared,
    instance: &InstanceRecord,
    now: perdure_core::Timestamp,
) -> Result<OrchestrationRun, StoreError> {
    let id = &instance.instance_id;
    let cached = shared.cache.lock().ok().and_then(|mut c| c.pop(id));
    if let Some(run) = cached {
        // The same length is not enough: a rewind elsewhere replaces the
        // history under the same execution id, and it may grow back to
        // this length. The row's last commit must be this run's own.
        let own_commit = run
            .committed_at
            .is_some_and(|t| t.timestamp_millis() == instance.updated_at.timestamp_millis());
        if own_commit
            && run.history_len == instance.history_len
            && run.execution_id() == instance.execution_id
        {
            crate::metrics::global().replay_cache(true);
            return Ok(run);
        }
    }
    crate::metrics::global().replay_cache(false);
    // An execution with no events yet (a start another process stored, a
    // continue-as-new) has nothing to read: `history_len` counts the
    // current execution's events.
    let history = if instance.history_len == 0 {
        Vec::new()
    } else {
        shared.store.read_history(id).await?
    };
    let orchestrator = shared.registry.orchestrator(&instance.name);
    let mut run = OrchestrationRun::new(id, orchestrator, now);
    if let Err(nd) = run.replay(&history) {
        tracing::error!(error = %nd, "non-deterministic orchestration");
        run.fail_nondeterministic(nd, &history);
    }
    run.history_len = history.len() as u64;
    if crate::telemetry::enabled() {
        run.steps.replay(&history);
    }
    Ok(run)
}

fn current_input(run: &OrchestrationRun) -> Payload {
    crate::context::lock(&run.ctx.shared).exec.input.clone()
}

fn custom_status(run: &OrchestrationRun) -> Payload {
    crate::context::lock(&run.ctx.shared)
        .exec
        .custom_status()
        .clone()
}
