//! Entity batches: the operation requests waiting in an entity's inbox run
//! one at a time, in order, against its state; callers get their answers
//! and the new state is committed with the consumed requests in one
//! transaction (a crash before the commit runs the batch again).

use perdure_core::{
    EntityId, EventKind, FailureDetails, HistoryEvent, Payload, RuntimeStatus, Timestamp,
};
use perdure_store::{
    InboxMessage, InstanceMessage, InstanceRecord, InstanceUpdate, OrchestrationCommit, Store,
    StoreError,
};
use std::future::Future;

/// A locked entity and its waiting requests.
#[derive(Clone, Debug)]
pub struct EntityBatch {
    pub instance: InstanceRecord,
    pub lock_token: String,
    pub messages: Vec<InboxMessage>,
    pub now: Timestamp,
}

/// Runs every request of `batch` with `run(operation, input, state)`, which
/// gives the state after the operation and its result (on failure the state
/// it was given), then commits.
pub async fn run_entity_batch<F, Fut>(
    store: &dyn Store,
    batch: EntityBatch,
    mut run: F,
) -> Result<(), StoreError>
where
    F: FnMut(&EntityId, String, Payload, Payload) -> Fut,
    Fut: Future<Output = (Payload, Result<Payload, FailureDetails>)>,
{
    let EntityBatch {
        instance,
        lock_token,
        messages,
        now,
    } = batch;
    let id =
        EntityId::parse(&instance.instance_id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut state = instance.output.clone();
    let mut replies = Vec::new();
    let consumed = messages.iter().map(|m| m.seq).collect();
    for m in messages {
        let (operation, input, reply) = match m.event.kind {
            EventKind::EntityOperationSignaled {
                operation, input, ..
            } => (operation, input, None),
            EventKind::EntityOperationCalled {
                request_id,
                operation,
                input,
                parent_instance_id,
                parent_execution_id,
                ..
            } => (
                operation,
                input,
                Some((request_id, parent_instance_id, parent_execution_id)),
            ),
            other => {
                tracing::debug!(kind = other.type_name(), entity = %id, "not an operation; dropped");
                continue;
            }
        };
        let span = tracing::info_span!("entity", otel.name = %format!("entity:{}", id.name), entity = %id, %operation);
        let (next, result) = {
            let _e = span.enter();
            run(&id, operation, input, state.clone())
        }
        .await;
        match &result {
            Ok(_) => state = next,
            Err(failure) => span.in_scope(
                || tracing::info!(%failure, "entity operation failed; state rolled back"),
            ),
        }
        if let Some((request_id, parent, execution)) = reply {
            let kind = match result {
                Ok(output) => EventKind::EntityOperationCompleted { request_id, output },
                Err(failure) => EventKind::EntityOperationFailed {
                    request_id,
                    failure,
                },
            };
            replies.push(InstanceMessage {
                instance_id: parent,
                execution_id: Some(execution),
                event: HistoryEvent::new(now, kind),
                visible_at: now,
            });
        }
    }
    let status = if state.is_some() {
        RuntimeStatus::Running
    } else {
        RuntimeStatus::Completed
    };
    store
        .commit_orchestration(OrchestrationCommit {
            instance_id: instance.instance_id.clone(),
            lock_token,
            replace_history: false,
            expected_history_len: instance.history_len,
            history: Vec::new(),
            update: InstanceUpdate {
                name: instance.name.clone(),
                version: None,
                status,
                execution_id: instance.execution_id.clone(),
                input: None,
                output: state,
                failure: None,
                custom_status: None,
                parent_instance_id: None,
            },
            consumed,
            activities: Vec::new(),
            messages: replies,
            now,
        })
        .await
}
