//! Entity work items for remote workers: a planned entity batch goes out
//! as an `EntityRequest`; its `EntityBatchResult` (one result per
//! operation, the final state, the signals and orchestration starts the
//! operations sent) is committed through `perdure::dispatch::entity_commit`.

use super::{convert, event, pb, Dispatcher, Pending};
use perdure::dispatch;
use perdure_store::{InstanceMessage, StoreError};
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;
use tonic::Status;

impl Dispatcher {
    /// An entity batch for a remote worker: the requests that run now,
    /// planned here (locks and queue); lock bookkeeping alone is committed
    /// here without a worker.
    pub(super) async fn entity_item(
        &self,
        stream: u64,
        batch: dispatch::EntityBatch,
        permit: OwnedSemaphorePermit,
    ) -> Result<Option<pb::WorkItem>, StoreError> {
        let plan = dispatch::plan_entity_batch(batch)?;
        if plan.operations.is_empty() {
            let state = plan.instance.output.clone();
            let commit = dispatch::entity_commit(plan, state, Vec::new(), Vec::new());
            self.store.commit_orchestration(commit).await?;
            return Ok(None);
        }
        let id = plan.instance.instance_id.clone();
        let request = pb::EntityRequest {
            instance_id: id.clone(),
            execution_id: String::new(),
            entity_state: plan.instance.output.as_deref().map(str::to_string),
            operation_requests: plan
                .operations
                .iter()
                .map(|o| event(&id, &o.event))
                .collect(),
        };
        let token = format!("e-{}", uuid::Uuid::new_v4().simple());
        self.pending().insert(
            token.clone(),
            Pending::Entity {
                plan: Box::new(plan),
                stream,
                _permit: permit,
            },
        );
        Ok(Some(pb::WorkItem {
            request: Some(pb::work_item::Request::EntityRequestV2(request)),
            completion_token: token,
        }))
    }

    /// Commits a remote entity batch: one result per operation, in order,
    /// the final state, and the signals and orchestration starts it sent.
    pub async fn complete_entity(&self, mut r: pb::EntityBatchResult) -> Result<(), Status> {
        let Pending::Entity { plan, .. } = self.take_kind(&r.completion_token, "an entity")? else {
            return Err(Status::internal("pending work changed kind"));
        };
        let id = plan.instance.instance_id.clone();
        let retry_later = |why: String| async {
            let _ = self
                .store
                .abandon_orchestration(&id, &plan.lock_token, Duration::from_secs(1))
                .await;
            why
        };
        if let Some(f) = &r.failure_details {
            // The whole batch failed (not one operation): run it again later.
            let why = retry_later(convert::from_failure(f).to_string()).await;
            tracing::warn!(entity = %id, failure = %why, "remote entity batch failed; it will be retried");
            return Ok(());
        }
        if r.results.len() != plan.operations.len() {
            let (got, want) = (r.results.len(), plan.operations.len());
            let why = retry_later(format!(
                "entity batch for `{id}` answered {got} operations; it had {want}"
            ))
            .await;
            return Err(Status::invalid_argument(why));
        }
        use pb::operation_result::ResultType as R;
        // Results and state are moved out of the message, not copied.
        let results = std::mem::take(&mut r.results)
            .into_iter()
            .map(|res| match res.result_type {
                Some(R::Success(ok)) => Ok(ok.result.map(perdure_core::PayloadText::from)),
                Some(R::Failure(f)) => Err(f
                    .failure_details
                    .as_ref()
                    .map(convert::from_failure)
                    .unwrap_or_else(|| {
                        perdure_core::FailureDetails::new("OperationFailed", "no details")
                    })),
                None => Err(perdure_core::FailureDetails::new(
                    "InvalidResult",
                    "the worker sent an empty operation result",
                )),
            })
            .collect();
        let messages = match entity_actions(&r.actions, plan.now) {
            Ok(m) => m,
            Err(status) => {
                // The batch is not committed: it runs again, not when the
                // lease runs out but after a pause.
                retry_later(String::new()).await;
                return Err(status);
            }
        };
        let lock = plan.lock_token.clone();
        let commit = dispatch::entity_commit(
            *plan,
            r.entity_state.take().map(perdure_core::PayloadText::from),
            results,
            messages,
        );
        match self.store.commit_orchestration(commit).await {
            Ok(()) => Ok(()),
            Err(StoreError::LockLost(what)) => Err(Status::aborted(format!(
                "the lease on `{what}` was lost; the batch will be redone"
            ))),
            Err(e) => {
                // The lease is still ours and nobody holds the batch any
                // more: give it back now rather than when the lease runs out.
                if let Err(a) = self
                    .store
                    .abandon_orchestration(&id, &lock, Duration::ZERO)
                    .await
                {
                    tracing::debug!(error = %a, entity = %id, "giving back an entity batch whose commit failed");
                }
                Err(Status::internal(e.to_string()))
            }
        }
    }
}

/// What an entity batch sent: signals to entities, orchestration starts.
pub(crate) fn entity_actions(
    actions: &[pb::OperationAction],
    now: perdure_core::Timestamp,
) -> Result<Vec<InstanceMessage>, Status> {
    use pb::operation_action::OperationActionType as T;
    let mut out = Vec::new();
    for a in actions {
        match &a.operation_action_type {
            Some(T::SendSignal(sig)) => {
                let target = perdure_core::EntityId::parse(&sig.instance_id)
                    .map_err(|e| Status::invalid_argument(e.to_string()))?
                    .to_string();
                out.push(dispatch::signal_message(
                    target,
                    sig.name.clone(),
                    sig.input.as_deref().map(perdure_core::PayloadText::from),
                    sig.scheduled_time.as_ref().and_then(convert::from_ts),
                    convert::trace_from_pb(sig.parent_trace_context.as_ref()),
                    now,
                ));
            }
            Some(T::StartNewOrchestration(start)) => {
                let instance_id = if start.instance_id.is_empty() {
                    uuid::Uuid::new_v4().simple().to_string()
                } else {
                    start.instance_id.clone()
                };
                perdure_core::validate_instance_id(&instance_id)
                    .map_err(|e| Status::invalid_argument(e.to_string()))?;
                out.push(
                    dispatch::StartRequest {
                        instance_id,
                        name: start.name.clone(),
                        version: start.version.clone(),
                        input: start.input.as_deref().map(perdure_core::PayloadText::from),
                        at: start.scheduled_time.as_ref().and_then(convert::from_ts),
                        trace_context: convert::trace_from_pb(start.parent_trace_context.as_ref()),
                    }
                    .message(now),
                );
            }
            None => {}
        }
    }
    Ok(out)
}
