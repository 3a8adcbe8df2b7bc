//! Orchestration dispatch: take an instance with visible messages, get its
//! replayed run (from the cache when its history length matches, else by
//! replaying the stored history), apply the messages as one turn, and commit
//! history, status, new activities, timers and messages in one transaction.

use super::Shared;
use crate::executor::{OrchestrationRun, Outcome, Turn};
use chrono::Utc;
use perdure_core::{
    Action, EventKind, FailureDetails, HistoryEvent, ParentInstance, Payload, RuntimeStatus,
    Timestamp,
};
use perdure_store::{
    InboxMessage, InstanceMessage, InstanceRecord, InstanceUpdate, NewActivity,
    OrchestrationCommit, OrchestrationItem, StoreError,
};
use std::time::Duration;
use tracing::Instrument;

pub(super) async fn step(shared: &Shared) -> Result<bool, StoreError> {
    let Some(item) = shared
        .store
        .fetch_orchestration(shared.options.lease, shared.options.max_batch)
        .await?
    else {
        return Ok(false);
    };
    let id = item.instance.instance_id.clone();
    let span = tracing::info_span!(
        "orchestration",
        otel.name = %format!("orchestration:{}", item.instance.name),
        instance_id = %id,
        name = %item.instance.name,
    );
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
    let result = process(shared, item).instrument(span.clone()).await;
    renewer.abort();
    let _enter = span.enter();
    match result {
        Ok(()) => Ok(true),
        Err(StoreError::LockLost(what)) | Err(StoreError::HistoryConflict { id: what, .. }) => {
            drop_cached(shared, &id);
            tracing::warn!(%what, "turn discarded: lease lost or history moved; it will be redone");
            Ok(true)
        }
        Err(e) => {
            drop_cached(shared, &id);
            Err(e)
        }
    }
}

fn drop_cached(shared: &Shared, id: &str) {
    if let Ok(mut c) = shared.cache.lock() {
        c.pop(id);
    }
}

fn is_start(m: &InboxMessage) -> bool {
    matches!(m.event.kind, EventKind::ExecutionStarted { .. })
}

async fn process(shared: &Shared, item: OrchestrationItem) -> Result<(), StoreError> {
    let OrchestrationItem {
        instance,
        messages,
        lock_token,
    } = item;
    let now = Utc::now();
    let mut consumed: Vec<i64> = messages.iter().map(|m| m.seq).collect();
    let id = instance.instance_id.clone();
    let mut suspended = instance.status == RuntimeStatus::Suspended;
    let has_execution = instance.history_len > 0 && !instance.status.is_terminal();
    let mut extra_messages = Vec::new();

    let (mut run, replace_history, events) = if has_execution {
        // A start for an instance that is running is refused; tell the parent.
        for m in messages.iter().filter(|m| is_start(m)) {
            if let EventKind::ExecutionStarted {
                parent: Some(p), ..
            } = &m.event.kind
            {
                extra_messages.push(to_parent(
                    p,
                    EventKind::SubOrchestrationInstanceFailed {
                        task_scheduled_id: p.task_scheduled_id,
                        failure: FailureDetails::new(
                            "InstanceAlreadyRunning",
                            format!("instance `{id}` is already {}", instance.status),
                        )
                        .non_retriable(),
                    },
                    now,
                ));
            }
        }
        let exec = instance.execution_id.clone();
        // While suspended only resume and terminate apply; the rest stays in
        // the inbox for after the resume.
        consumed.clear();
        let mut events = Vec::new();
        for m in messages {
            let stale = is_start(&m) || m.execution_id.as_ref().is_some_and(|e| *e != exec);
            match &m.event.kind {
                _ if stale => {}
                EventKind::ExecutionSuspended { .. } => suspended = true,
                EventKind::ExecutionResumed { .. } => suspended = false,
                _ if suspended && !perdure_store::is_control(&m.event) => continue,
                _ => {}
            }
            consumed.push(m.seq);
            if !stale {
                events.push(m.event);
            }
        }
        (load_run(shared, &instance).await?, false, events)
    } else {
        let Some(start_pos) = messages.iter().position(is_start) else {
            if instance.status == RuntimeStatus::Failed {
                if let Some(reason) = messages.iter().find_map(|m| match &m.event.kind {
                    EventKind::ExecutionRewound { reason } => Some(reason.clone()),
                    _ => None,
                }) {
                    return super::rewind::rewind(
                        shared, &instance, lock_token, consumed, reason, now,
                    )
                    .await;
                }
            }
            if instance.status.is_terminal() {
                // Late messages for a finished instance: drop them.
                return commit_discard(shared, &instance, lock_token, consumed, now).await;
            }
            // A scheduled start is not due yet: try again later.
            return shared
                .store
                .abandon_orchestration(&id, &lock_token, Duration::from_secs(1))
                .await;
        };
        let mut messages = messages;
        let start = messages.remove(start_pos);
        let EventKind::ExecutionStarted {
            name, execution_id, ..
        } = &start.event.kind
        else {
            return Err(StoreError::Corrupt("start message changed kind".into()));
        };
        let exec = execution_id.clone();
        let orchestrator = shared.registry.orchestrator(name);
        let run = OrchestrationRun::new(&id, orchestrator, now);
        // The start, then messages carried for this execution, then events.
        let mut events = vec![start.event];
        let (own, rest): (Vec<_>, Vec<_>) = messages
            .into_iter()
            .filter(|m| !is_start(m))
            .partition(|m| m.execution_id.as_deref() == Some(exec.as_str()));
        events.extend(own.into_iter().map(|m| m.event));
        events.extend(
            rest.into_iter()
                .filter(|m| m.execution_id.is_none())
                .map(|m| m.event),
        );
        (run, instance.history_len > 0, events)
    };

    let mut turn_events = Vec::with_capacity(events.len() + 1);
    turn_events.push(HistoryEvent::new(now, EventKind::OrchestratorStarted));
    for e in &events {
        if let EventKind::TimerFired { timer_id, fire_at } = &e.kind {
            let late_ms = (now - *fire_at).num_milliseconds();
            tracing::info_span!("timer", otel.name = "timer", instance_id = %id, timer_id, %fire_at)
                .in_scope(|| tracing::debug!(late_ms, "timer fired"));
        }
    }
    turn_events.extend(events);
    let Turn {
        accepted,
        actions,
        leftover,
    } = run.run_turn(turn_events);

    let exec_id = run.execution_id();
    let mut commit = OrchestrationCommit {
        instance_id: id.clone(),
        lock_token,
        replace_history,
        expected_history_len: if replace_history { 0 } else { run.history_len },
        history: Vec::new(),
        update: InstanceUpdate {
            name: run.ctx.name(),
            version: None,
            status: if suspended {
                RuntimeStatus::Suspended
            } else {
                RuntimeStatus::Running
            },
            execution_id: exec_id.clone(),
            input: current_input(&run),
            output: None,
            failure: None,
            custom_status: custom_status(&run),
            parent_instance_id: run.ctx.parent().map(|p| p.instance_id),
        },
        consumed,
        activities: Vec::new(),
        messages: extra_messages,
        now,
    };
    let nothing_new = accepted.len() <= 1 && actions.is_empty() && run.outcome.is_none();
    if nothing_new {
        // Only duplicates or stale messages: consume them, record nothing.
        commit.update.status = instance.status;
        commit.update.output = instance.output.clone();
        commit.update.failure = instance.failure.clone();
        shared.store.commit_orchestration(commit).await?;
        return Ok(());
    }
    commit.history = accepted;
    for action in &actions {
        commit.history.push(action.to_event(now));
        side_effects(&run, action, &exec_id, now, &mut commit);
    }
    commit
        .history
        .push(HistoryEvent::new(now, EventKind::OrchestratorCompleted));
    if let Some(outcome) = run.outcome.clone() {
        finish(&run, outcome, now, &mut commit);
        if commit.update.status == RuntimeStatus::ContinuedAsNew {
            // Events this execution never saw belong to the next one.
            let exec = commit.update.execution_id.clone();
            for e in leftover {
                if matches!(e.kind, EventKind::EventRaised { .. }) {
                    commit.messages.push(InstanceMessage {
                        instance_id: id.clone(),
                        execution_id: Some(exec.clone()),
                        event: e,
                        visible_at: now,
                    });
                }
            }
        }
    }
    let appended = commit.history.len() as u64;
    let finished = run.outcome.is_some();
    shared.store.commit_orchestration(commit).await?;
    if finished || shared.options.cache_capacity == 0 {
        drop_cached(shared, &id);
    } else {
        run.history_len = if replace_history { 0 } else { run.history_len } + appended;
        if let Ok(mut c) = shared.cache.lock() {
            c.put(id, run);
        }
    }
    Ok(())
}

/// The cached run when its history length matches, else a fresh replay.
async fn load_run(
    shared: &Shared,
    instance: &InstanceRecord,
) -> Result<OrchestrationRun, StoreError> {
    let id = &instance.instance_id;
    let cached = shared.cache.lock().ok().and_then(|mut c| c.pop(id));
    if let Some(run) = cached {
        if run.history_len == instance.history_len && run.execution_id() == instance.execution_id {
            return Ok(run);
        }
    }
    let history = shared.store.read_history(id).await?;
    let orchestrator = shared.registry.orchestrator(&instance.name);
    let mut run = OrchestrationRun::new(id, orchestrator, Utc::now());
    if let Err(nd) = run.replay(&history) {
        tracing::error!(error = %nd, "non-deterministic orchestration");
        run.outcome = Some(Outcome::Failed(nd.to_failure()));
    }
    run.history_len = history.len() as u64;
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

pub(super) fn to_parent(p: &ParentInstance, kind: EventKind, now: Timestamp) -> InstanceMessage {
    InstanceMessage {
        instance_id: p.instance_id.clone(),
        execution_id: Some(p.execution_id.clone()),
        event: HistoryEvent::new(now, kind),
        visible_at: now,
    }
}

fn side_effects(
    run: &OrchestrationRun,
    action: &Action,
    exec_id: &str,
    now: Timestamp,
    commit: &mut OrchestrationCommit,
) {
    let id = &commit.instance_id;
    match action.clone() {
        Action::ScheduleTask {
            id: task_id,
            name,
            version,
            input,
        } => commit.activities.push(NewActivity {
            instance_id: id.clone(),
            execution_id: exec_id.to_string(),
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
                execution_id: Some(exec_id.to_string()),
                event: HistoryEvent::new(fire_at, EventKind::TimerFired { timer_id, fire_at }),
                visible_at: fire_at,
            })
        }
        Action::CreateSubOrchestration {
            id: task_id,
            name,
            version,
            instance_id,
            input,
        } => {
            let child_exec = uuid::Uuid::new_v4().simple().to_string();
            commit.messages.push(InstanceMessage {
                instance_id,
                execution_id: Some(child_exec.clone()),
                event: HistoryEvent::new(
                    now,
                    EventKind::ExecutionStarted {
                        name,
                        version,
                        input,
                        execution_id: child_exec,
                        parent: Some(ParentInstance {
                            name: run.ctx.name(),
                            instance_id: id.clone(),
                            execution_id: exec_id.to_string(),
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
            event: HistoryEvent::new(now, EventKind::EventRaised { name, input }),
            visible_at: now,
        }),
    }
}

fn finish(
    run: &OrchestrationRun,
    outcome: Outcome,
    now: Timestamp,
    commit: &mut OrchestrationCommit,
) {
    let parent = run.ctx.parent();
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
    match outcome {
        Outcome::Completed(result) => {
            tracing::info!("orchestration completed");
            commit.update.status = RuntimeStatus::Completed;
            commit.update.output = result.clone();
            commit
                .history
                .push(completed(RuntimeStatus::Completed, result.clone(), None));
            if let Some(p) = &parent {
                commit.messages.push(to_parent(
                    p,
                    EventKind::SubOrchestrationInstanceCompleted {
                        task_scheduled_id: p.task_scheduled_id,
                        result,
                    },
                    now,
                ));
            }
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
            if let Some(p) = &parent {
                commit.messages.push(to_parent(
                    p,
                    EventKind::SubOrchestrationInstanceFailed {
                        task_scheduled_id: p.task_scheduled_id,
                        failure,
                    },
                    now,
                ));
            }
        }
        Outcome::Terminated(reason) => {
            tracing::info!("orchestration terminated");
            commit.update.status = RuntimeStatus::Terminated;
            commit.update.output = reason.clone();
            commit
                .history
                .push(completed(RuntimeStatus::Terminated, reason.clone(), None));
            if let Some(p) = &parent {
                commit.messages.push(to_parent(
                    p,
                    EventKind::SubOrchestrationInstanceFailed {
                        task_scheduled_id: p.task_scheduled_id,
                        failure: FailureDetails::new(
                            "Terminated",
                            format!(
                                "sub-orchestration was terminated: {}",
                                reason.as_deref().unwrap_or("no reason given")
                            ),
                        ),
                    },
                    now,
                ));
            }
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
                name: run.ctx.name(),
                version: None,
                input,
                execution_id: new_exec.clone(),
                parent,
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
                    event: HistoryEvent::new(now, EventKind::EventRaised { name, input }),
                    visible_at: now,
                });
            }
        }
    }
}

pub(super) async fn commit_discard(
    shared: &Shared,
    instance: &InstanceRecord,
    lock_token: String,
    consumed: Vec<i64>,
    now: Timestamp,
) -> Result<(), StoreError> {
    shared
        .store
        .commit_orchestration(OrchestrationCommit {
            instance_id: instance.instance_id.clone(),
            lock_token,
            replace_history: false,
            expected_history_len: instance.history_len,
            history: Vec::new(),
            update: InstanceUpdate {
                name: instance.name.clone(),
                version: instance.version.clone(),
                status: instance.status,
                execution_id: instance.execution_id.clone(),
                input: instance.input.clone(),
                output: instance.output.clone(),
                failure: instance.failure.clone(),
                custom_status: instance.custom_status.clone(),
                parent_instance_id: instance.parent_instance_id.clone(),
            },
            consumed,
            activities: Vec::new(),
            messages: Vec::new(),
            now,
        })
        .await
}
