//! Orchestration work items for remote workers: a turn prepared by
//! `perdure::dispatch` goes out as an `OrchestratorRequest` (past and new
//! events, duplicates left out); its `OrchestratorResponse` is mapped to
//! actions and committed through `perdure::dispatch::build_commit`, and a
//! commit that fails for any reason but a lost lease gives the instance
//! back at once. An execution that ends releases the critical sections it
//! still holds, whatever the worker sent.

use super::{convert, event, pb, Dispatcher, Pending};
use crate::grpc::actions::map_actions;
use perdure::dispatch::{self, ExecutionInfo, Outcome, Prepared, TurnResult};
use perdure_core::{EventKind, HistoryEvent};
use perdure_store::StoreError;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;
use tonic::Status;

/// Events in the form a worker replays them. OrchestratorCompleted only
/// closes a turn in the stored history and carries nothing a worker uses:
/// the Go sidecar never sends it, Microsoft's SDKs skip it and Dapr's
/// Python SDK fails a turn that contains it, so it stays home.
fn for_replay(id: &str, events: &[HistoryEvent]) -> Vec<pb::HistoryEvent> {
    events
        .iter()
        .filter(|e| !matches!(e.kind, EventKind::OrchestratorCompleted))
        .map(|e| event(id, e))
        .collect()
}

impl Dispatcher {
    /// Turns a locked item into a work item, or deals with it here when
    /// there is nothing for orchestrator code to do.
    pub(super) async fn orchestration_item(
        &self,
        stream: u64,
        item: perdure_store::OrchestrationItem,
        permit: OwnedSemaphorePermit,
    ) -> Result<Option<pb::WorkItem>, StoreError> {
        let mut plan = match dispatch::prepare(self.store.as_ref(), item).await? {
            Prepared::Handled => return Ok(None),
            Prepared::Entity(batch) => {
                return self.entity_item(stream, *batch, permit).await;
            }
            Prepared::Turn(plan) => plan,
        };
        let id = plan.instance.instance_id.clone();
        let past = if plan.new_execution {
            Vec::new()
        } else {
            self.store.read_history(&id).await?
        };
        let started = if plan.new_execution {
            plan.events.first().and_then(ExecutionInfo::from_start)
        } else {
            ExecutionInfo::from_history(&past)
        };
        let Some(exec) = started else {
            return Err(StoreError::Corrupt(format!(
                "instance `{id}` has no ExecutionStarted event"
            )));
        };
        let accepted = dedupe(&past, plan.take_turn_events());
        if accepted.len() <= 1 && !plan.new_execution {
            // Only duplicates or stale messages: consume them here.
            let commit = dispatch::build_commit(
                *plan,
                &exec,
                TurnResult {
                    accepted,
                    ..TurnResult::default()
                },
            );
            self.store.commit_orchestration(commit).await?;
            return Ok(None);
        }
        let request = pb::OrchestratorRequest {
            instance_id: id.clone(),
            execution_id: Some(exec.execution_id.clone()),
            past_events: for_replay(&id, &past),
            new_events: for_replay(&id, &accepted),
            orchestration_trace_context: orchestration_trace(&id, &exec, &past, &accepted),
            ..Default::default()
        };
        let token = format!("o-{}", uuid::Uuid::new_v4().simple());
        self.pending().insert(
            token.clone(),
            Pending::Orchestration {
                plan,
                exec,
                past,
                accepted,
                stream,
                _permit: permit,
            },
        );
        Ok(Some(pb::WorkItem {
            request: Some(pb::work_item::Request::OrchestratorRequest(request)),
            completion_token: token,
        }))
    }

    /// Commits a remote orchestration turn.
    pub async fn complete_orchestration(
        &self,
        mut r: pb::OrchestratorResponse,
    ) -> Result<(), Status> {
        let Pending::Orchestration {
            plan,
            mut exec,
            past,
            accepted,
            ..
        } = self.take_kind(
            &self.answer_token(&r.completion_token, &r.instance_id, None),
            "an orchestration",
        )?
        else {
            return Err(Status::internal("pending work changed kind"));
        };
        if r.instance_id != plan.instance.instance_id {
            let id = plan.instance.instance_id.clone();
            let _ = self
                .store
                .abandon_orchestration(&id, &plan.lock_token, Duration::ZERO)
                .await;
            return Err(Status::invalid_argument(format!(
                "completion for instance `{}` answers a work item for `{id}`",
                r.instance_id
            )));
        }
        let actions = std::mem::take(&mut r.actions);
        let mut mapped = map_actions(&plan.instance.instance_id, &exec, actions, plan.now);
        // A terminated execution ends, whatever the worker answered.
        if let Some(reason) = accepted.iter().find_map(|e| match &e.kind {
            EventKind::ExecutionTerminated { reason } => Some(reason.clone()),
            _ => None,
        }) {
            if !matches!(mapped.outcome, Some(Outcome::Terminated(_))) {
                mapped.actions.clear();
                mapped.outcome = Some(Outcome::Terminated(reason));
            }
        }
        if mapped.outcome.is_some() {
            // An execution that ends releases every critical section it
            // still holds or has asked for, whatever the worker sent (an
            // SDK that fails a replay on non-determinism sends no unlocks).
            let mut all = past;
            all.extend(accepted.iter().cloned());
            all.extend(mapped.actions.iter().map(|a| a.to_event(plan.now)));
            mapped
                .actions
                .extend(perdure_core::release_held_locks(&all));
        }
        if let (Some(Outcome::ContinuedAsNew { .. }), Some(v)) =
            (&mapped.outcome, &mapped.new_version)
        {
            exec.version = Some(v.clone());
        }
        let (id, lock) = (plan.instance.instance_id.clone(), plan.lock_token.clone());
        let mut commit = dispatch::build_commit(
            *plan,
            &exec,
            TurnResult {
                accepted,
                actions: mapped.actions,
                outcome: mapped.outcome,
                custom_status: r.custom_status.map(perdure_core::PayloadText::from),
                leftover: Vec::new(),
            },
        );
        commit.messages.extend(mapped.messages);
        let summary = perdure::metrics::TurnSummary::of(&commit);
        match self.store.commit_orchestration(commit).await {
            Ok(()) => {
                perdure::metrics::global().turn_committed(&summary);
                Ok(())
            }
            Err(StoreError::LockLost(what)) | Err(StoreError::HistoryConflict { id: what, .. }) => {
                Err(Status::aborted(format!(
                    "the lease on `{what}` was lost; the turn will be redone"
                )))
            }
            Err(e) => {
                // The lease is still ours and nobody holds the work any
                // more: give it back now rather than when the lease runs out.
                if let Err(a) = self
                    .store
                    .abandon_orchestration(&id, &lock, Duration::ZERO)
                    .await
                {
                    tracing::debug!(error = %a, instance_id = %id, "giving back a turn whose commit failed");
                }
                Err(Status::internal(e.to_string()))
            }
        }
    }
}

/// The turn's events without results already in history or repeated in the
/// batch (at-least-once delivery can repeat one), and without results for
/// steps the history never scheduled. An id may be scheduled more than once
/// (the Python SDK retries an activity under its first id), so results are
/// counted against schedules.
fn dedupe(past: &[HistoryEvent], turn: Vec<HistoryEvent>) -> Vec<HistoryEvent> {
    let mut open: HashMap<i64, i64> = HashMap::new();
    for e in past {
        match &e.kind {
            EventKind::TaskScheduled { .. }
            | EventKind::TimerCreated { .. }
            | EventKind::SubOrchestrationInstanceCreated { .. } => {
                *open.entry(e.event_id).or_default() += 1;
            }
            _ => {
                if let Some(id) = e.completion_id() {
                    *open.entry(id).or_default() -= 1;
                }
            }
        }
    }
    turn.into_iter()
        .filter(|e| match e.completion_id() {
            None => true,
            Some(id) => {
                let waiting = open.entry(id).or_default();
                let keep = *waiting > 0;
                if keep {
                    *waiting -= 1;
                } else {
                    tracing::debug!(
                        task_id = id,
                        kind = e.type_name(),
                        "dropped a repeated or unexpected result"
                    );
                }
                keep
            }
        })
        .collect()
}

/// The execution's span as an SDK worker records it: the id every turn
/// uses (derived from instance and execution, so SDK-emitted child spans
/// nest under it however many turns and processes run it) and its start,
/// the ExecutionStarted time. `None` for an execution without a trace.
fn orchestration_trace(
    id: &str,
    exec: &ExecutionInfo,
    past: &[HistoryEvent],
    accepted: &[HistoryEvent],
) -> Option<pb::OrchestrationTraceContext> {
    exec.trace_context.as_ref()?;
    let started = past
        .iter()
        .chain(accepted)
        .find(|e| matches!(e.kind, EventKind::ExecutionStarted { .. }))?;
    let span = perdure_core::trace::orchestration_span_id(id, &exec.execution_id);
    Some(pb::OrchestrationTraceContext {
        span_id: Some(format!("{span:016x}")),
        span_start_time: Some(convert::ts(started.timestamp)),
    })
}
