//! The `TaskHubSidecarService` implementation. Client RPCs act through
//! [`perdure::Client`], so instances started over gRPC are the instances
//! HTTP and Rust see. Worker RPCs (work-item streams, completions, abandons)
//! go to the [`Dispatcher`]. One `Sidecar` serves one task hub; the
//! router in `hubs.rs` picks it by the `taskhub` header.

use super::convert;
use super::proto as pb;
use super::workers::Dispatcher;
use crate::limits::Waits;
use perdure::{Client, ClientError, InstanceQuery, PurgeFilter, RuntimeStatus};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

pub(super) type Stream<T> =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The sidecar service: a client for the client RPCs, a dispatcher for
/// the worker RPCs.
pub struct Sidecar {
    client: Client,
    dispatcher: Arc<Dispatcher>,
    waits: Waits,
}

impl Sidecar {
    /// Serves `client`'s hub; its long-poll waits take slots of `waits`.
    pub fn new(client: Client, dispatcher: Arc<Dispatcher>, waits: Waits) -> Self {
        Sidecar {
            client,
            dispatcher,
            waits,
        }
    }
}

fn status(e: ClientError) -> Status {
    match &e {
        ClientError::InvalidInstanceId(_)
        | ClientError::InvalidName(_)
        | ClientError::InvalidArgument(_)
        | ClientError::Serialization(_)
        | ClientError::PayloadTooLarge { .. } => Status::invalid_argument(e.to_string()),
        ClientError::NotFound(_) => Status::not_found(e.to_string()),
        ClientError::AlreadyRunning { .. } => Status::already_exists(e.to_string()),
        ClientError::AlreadyFinished { .. }
        | ClientError::StillRunning { .. }
        | ClientError::NotFailed { .. } => Status::failed_precondition(e.to_string()),
        ClientError::Timeout(..) => Status::deadline_exceeded(e.to_string()),
        ClientError::Store(_) => Status::internal(e.to_string()),
    }
}

fn entity_id(instance_id: &str) -> Result<perdure::EntityId, Status> {
    perdure::EntityId::parse(instance_id).map_err(|e| Status::invalid_argument(e.to_string()))
}

fn entity_metadata(e: perdure::EntityMetadata, include_state: bool) -> pb::EntityMetadata {
    pb::EntityMetadata {
        instance_id: e.id.to_string(),
        last_modified_time: Some(convert::ts(e.last_modified)),
        backlog_queue_size: 0,
        locked_by: e.locked_by.clone(),
        serialized_state: if include_state {
            e.state.as_deref().map(str::to_string)
        } else {
            None
        },
    }
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!("{what} is not served by Perdure yet"))
}

fn statuses(codes: &[i32]) -> Result<Vec<RuntimeStatus>, Status> {
    codes
        .iter()
        .map(|c| {
            convert::from_status(*c).ok_or_else(|| {
                Status::invalid_argument(format!("unknown orchestration status {c}"))
            })
        })
        .collect()
}

impl Sidecar {
    /// Waits, woken by the store's watch, until the instance's status
    /// satisfies `done` (the caller's deadline ends the call). Holds one of
    /// the server's wait slots: with none free, answers RESOURCE_EXHAUSTED.
    async fn wait_until(
        &self,
        id: &str,
        with_payloads: bool,
        done: impl Fn(RuntimeStatus) -> bool,
    ) -> Result<pb::GetInstanceResponse, Status> {
        let Some(_slot) = self.waits.try_start() else {
            return Err(Status::resource_exhausted(
                "the server is holding as many waits as it may; poll GetInstance instead, or retry shortly",
            ));
        };
        let st = self
            .client
            .wait_until(id, None, done)
            .await
            .map_err(status)?;
        Ok(pb::GetInstanceResponse {
            exists: st.is_some(),
            orchestration_state: st.map(|st| convert::state(&st, with_payloads)),
        })
    }
}

#[tonic::async_trait]
impl pb::task_hub_sidecar_service_server::TaskHubSidecarService for Sidecar {
    async fn hello(&self, _: Request<()>) -> Result<Response<()>, Status> {
        Ok(Response::new(()))
    }

    async fn start_instance(
        &self,
        req: Request<pb::CreateInstanceRequest>,
    ) -> Result<Response<pb::CreateInstanceResponse>, Status> {
        let mut r = req.into_inner();
        let id = (!r.instance_id.is_empty()).then_some(r.instance_id.as_str());
        if let Some(id) = id {
            if let Some(existing) = self.client.get_status(id, false).await.map_err(status)? {
                let reusable = r.orchestration_id_reuse_policy.as_ref().is_some_and(|p| {
                    p.replaceable_status
                        .contains(&(convert::status(existing.runtime_status) as i32))
                });
                if !reusable {
                    return Err(Status::already_exists(format!(
                        "instance `{id}` already exists and is {}",
                        existing.runtime_status
                    )));
                }
                if !existing.runtime_status.is_terminal() {
                    // The policy allows replacing it: terminate it first.
                    self.client
                        .terminate(id, "replaced by a new instance with the same id")
                        .await
                        .map_err(status)?;
                    let ended = self.wait_until(id, false, |s| s.is_terminal());
                    if tokio::time::timeout(Duration::from_secs(30), ended)
                        .await
                        .is_err()
                    {
                        return Err(Status::failed_precondition(format!(
                            "instance `{id}` was asked to terminate so that it could be \
                             replaced, but no worker ended it within 30 s"
                        )));
                    }
                }
            }
        }
        let start_at = r
            .scheduled_start_timestamp
            .as_ref()
            .and_then(convert::from_ts);
        let input = wire_json(r.input.take(), "input")?;
        let options = perdure::StartOptions {
            trace_context: convert::trace_from_pb(r.parent_trace_context.as_ref()),
            instance_id: id.map(str::to_string),
            start_at,
            version: r.version.clone().filter(|v| !v.is_empty()),
            tags: convert::tags_from_pb(&r.tags),
        };
        let id = self
            .client
            .start_new_with(&r.name, input, options)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CreateInstanceResponse {
            instance_id: id,
        }))
    }

    async fn get_instance(
        &self,
        req: Request<pb::GetInstanceRequest>,
    ) -> Result<Response<pb::GetInstanceResponse>, Status> {
        let r = req.into_inner();
        let st = self
            .client
            .get_status(&r.instance_id, false)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetInstanceResponse {
            exists: st.is_some(),
            orchestration_state: st.map(|s| convert::state(&s, r.get_inputs_and_outputs)),
        }))
    }

    async fn rewind_instance(
        &self,
        req: Request<pb::RewindInstanceRequest>,
    ) -> Result<Response<pb::RewindInstanceResponse>, Status> {
        let r = req.into_inner();
        // The reason is the client's words, kept as they are.
        self.client
            .rewind(&r.instance_id, perdure::PlainText(r.reason))
            .await
            .map_err(status)?;
        // Answer once the rewind is applied (the instance is no longer
        // Failed), so that a wait for completion that follows waits for the
        // rewound run rather than seeing the old failure. Without a worker
        // for the name the rewind waits in the queue; answer anyway.
        let applied = self.wait_until(&r.instance_id, false, |s| s != RuntimeStatus::Failed);
        let _ = tokio::time::timeout(Duration::from_secs(10), applied).await;
        Ok(Response::new(pb::RewindInstanceResponse {}))
    }

    async fn restart_instance(
        &self,
        req: Request<pb::RestartInstanceRequest>,
    ) -> Result<Response<pb::RestartInstanceResponse>, Status> {
        let r = req.into_inner();
        let id = self
            .client
            .restart(&r.instance_id, r.restart_with_new_instance_id)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RestartInstanceResponse {
            instance_id: id,
        }))
    }

    async fn wait_for_instance_start(
        &self,
        req: Request<pb::GetInstanceRequest>,
    ) -> Result<Response<pb::GetInstanceResponse>, Status> {
        let r = req.into_inner();
        Ok(Response::new(
            self.wait_until(&r.instance_id, r.get_inputs_and_outputs, |s| {
                s != RuntimeStatus::Pending
            })
            .await?,
        ))
    }

    async fn wait_for_instance_completion(
        &self,
        req: Request<pb::GetInstanceRequest>,
    ) -> Result<Response<pb::GetInstanceResponse>, Status> {
        let r = req.into_inner();
        Ok(Response::new(
            self.wait_until(
                &r.instance_id,
                r.get_inputs_and_outputs,
                RuntimeStatus::is_terminal,
            )
            .await?,
        ))
    }

    async fn raise_event(
        &self,
        req: Request<pb::RaiseEventRequest>,
    ) -> Result<Response<pb::RaiseEventResponse>, Status> {
        let mut r = req.into_inner();
        let data = wire_json(r.input.take(), "event data")?;
        // The SDK client recorded the raise's span itself.
        self.client
            .for_sdk_clients()
            .raise_event(&r.instance_id, &r.name, data)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RaiseEventResponse {}))
    }

    async fn terminate_instance(
        &self,
        req: Request<pb::TerminateRequest>,
    ) -> Result<Response<pb::TerminateResponse>, Status> {
        let r = req.into_inner();
        // A reason that is not JSON is kept as a JSON string.
        let reason = match wire_json(r.output.as_deref(), "reason") {
            Ok(json) => json,
            Err(_) => {
                let text = serde_json::to_string(r.output.as_deref().unwrap_or_default())
                    .map_err(|e| Status::invalid_argument(e.to_string()))?;
                perdure::RawJson::parse(text).map_err(status)?
            }
        };
        self.client
            .terminate_with_options(&r.instance_id, reason, r.recursive)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::TerminateResponse {}))
    }

    async fn suspend_instance(
        &self,
        req: Request<pb::SuspendRequest>,
    ) -> Result<Response<pb::SuspendResponse>, Status> {
        let r = req.into_inner();
        self.client
            .suspend(&r.instance_id, r.reason)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::SuspendResponse {}))
    }

    async fn resume_instance(
        &self,
        req: Request<pb::ResumeRequest>,
    ) -> Result<Response<pb::ResumeResponse>, Status> {
        let r = req.into_inner();
        self.client
            .resume(&r.instance_id, r.reason)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ResumeResponse {}))
    }

    async fn query_instances(
        &self,
        req: Request<pb::QueryInstancesRequest>,
    ) -> Result<Response<pb::QueryInstancesResponse>, Status> {
        let q = req.into_inner().query.unwrap_or_default();
        let query = InstanceQuery {
            statuses: statuses(&q.runtime_status)?,
            created_from: q.created_time_from.as_ref().and_then(convert::from_ts),
            created_to: q.created_time_to.as_ref().and_then(convert::from_ts),
            instance_id_prefix: q.instance_id_prefix.clone(),
            name: None,
            parent_instance_id: None,
            page_size: if q.max_instance_count > 0 {
                q.max_instance_count as usize
            } else {
                100
            },
            continuation: q.continuation_token.clone().filter(|t| !t.is_empty()),
        };
        let page = self
            .client
            .list_instances(&query, q.fetch_inputs_and_outputs)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::QueryInstancesResponse {
            orchestration_state: page
                .instances
                .iter()
                .map(|s| convert::state(s, q.fetch_inputs_and_outputs))
                .collect(),
            continuation_token: page.continuation_token,
        }))
    }

    async fn list_instance_ids(
        &self,
        req: Request<pb::ListInstanceIdsRequest>,
    ) -> Result<Response<pb::ListInstanceIdsResponse>, Status> {
        let r = req.into_inner();
        let from = r.completed_time_from.as_ref().and_then(convert::from_ts);
        let to = r.completed_time_to.as_ref().and_then(convert::from_ts);
        let mut wanted = statuses(&r.runtime_status)?;
        if wanted.is_empty() && (from.is_some() || to.is_some()) {
            wanted = RuntimeStatus::ALL
                .into_iter()
                .filter(|s| s.is_terminal())
                .collect();
        }
        let size = if r.page_size > 0 {
            r.page_size as usize
        } else {
            100
        };
        let mut query = InstanceQuery {
            statuses: wanted,
            page_size: size,
            continuation: r.last_instance_key.filter(|k| !k.is_empty()),
            ..InstanceQuery::default()
        };
        let mut ids = Vec::new();
        loop {
            let page = self
                .client
                .list_instances(&query, false)
                .await
                .map_err(status)?;
            ids.extend(
                page.instances
                    .iter()
                    .filter(|s| {
                        from.is_none_or(|f| s.last_updated_time >= f)
                            && to.is_none_or(|t| s.last_updated_time <= t)
                    })
                    .map(|s| s.instance_id.clone()),
            );
            match page.continuation_token {
                Some(token) if ids.len() < size => query.continuation = Some(token),
                last => {
                    return Ok(Response::new(pb::ListInstanceIdsResponse {
                        instance_ids: ids,
                        last_instance_key: last,
                    }))
                }
            }
        }
    }

    async fn purge_instances(
        &self,
        req: Request<pb::PurgeInstancesRequest>,
    ) -> Result<Response<pb::PurgeInstancesResponse>, Status> {
        use pb::purge_instances_request::Request as R;
        let r = req.into_inner();
        let deleted = match r.request {
            Some(R::InstanceId(id)) => self
                .client
                .purge_instance_history_with_options(&id, r.recursive)
                .await
                .map_err(status)?,
            Some(R::PurgeInstanceFilter(f)) => {
                let filter = PurgeFilter {
                    created_from: f.created_time_from.as_ref().and_then(convert::from_ts),
                    created_to: f.created_time_to.as_ref().and_then(convert::from_ts),
                    statuses: statuses(&f.runtime_status)?,
                };
                self.client.purge_instances(&filter).await.map_err(status)?
            }
            Some(R::InstanceBatch(b)) => {
                let mut n = 0;
                for id in b.instance_ids {
                    n += self
                        .client
                        .purge_instance_history_with_options(&id, r.recursive)
                        .await
                        .map_err(status)?;
                }
                n
            }
            None => {
                return Err(Status::invalid_argument(
                    "give an instance id, a filter or a batch of ids",
                ))
            }
        };
        Ok(Response::new(pb::PurgeInstancesResponse {
            deleted_instance_count: deleted as i32,
            is_complete: Some(true),
        }))
    }

    type GetWorkItemsStream = Stream<pb::WorkItem>;

    async fn get_work_items(
        &self,
        req: Request<pb::GetWorkItemsRequest>,
    ) -> Result<Response<Self::GetWorkItemsStream>, Status> {
        let rx = self.dispatcher.open_stream(req.into_inner());
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn complete_activity_task(
        &self,
        req: Request<pb::ActivityResponse>,
    ) -> Result<Response<pb::CompleteTaskResponse>, Status> {
        self.dispatcher.complete_activity(req.into_inner()).await?;
        Ok(Response::new(pb::CompleteTaskResponse {}))
    }

    async fn complete_orchestrator_task(
        &self,
        req: Request<pb::OrchestratorResponse>,
    ) -> Result<Response<pb::CompleteTaskResponse>, Status> {
        self.dispatcher
            .complete_orchestration(req.into_inner())
            .await?;
        Ok(Response::new(pb::CompleteTaskResponse {}))
    }

    async fn complete_entity_task(
        &self,
        req: Request<pb::EntityBatchResult>,
    ) -> Result<Response<pb::CompleteTaskResponse>, Status> {
        self.dispatcher.complete_entity(req.into_inner()).await?;
        Ok(Response::new(pb::CompleteTaskResponse {}))
    }

    type StreamInstanceHistoryStream = Stream<pb::HistoryChunk>;

    async fn stream_instance_history(
        &self,
        req: Request<pb::StreamInstanceHistoryRequest>,
    ) -> Result<Response<Self::StreamInstanceHistoryStream>, Status> {
        let r = req.into_inner();
        let st = self
            .client
            .get_status(&r.instance_id, true)
            .await
            .map_err(status)?
            .ok_or_else(|| {
                Status::not_found(format!("instance `{}` was not found", r.instance_id))
            })?;
        let events: Vec<pb::HistoryEvent> = st
            .history
            .unwrap_or_default()
            .iter()
            .map(|e| convert::event(&r.instance_id, e))
            .collect();
        let chunks: Vec<Result<pb::HistoryChunk, Status>> = events
            .chunks(500)
            .map(|c| Ok(pb::HistoryChunk { events: c.to_vec() }))
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    // Task hubs are the router's (see `hubs.rs`); a hub's own service is
    // already the hub.
    async fn create_task_hub(
        &self,
        _: Request<pb::CreateTaskHubRequest>,
    ) -> Result<Response<pb::CreateTaskHubResponse>, Status> {
        Ok(Response::new(pb::CreateTaskHubResponse {}))
    }

    async fn delete_task_hub(
        &self,
        _: Request<pb::DeleteTaskHubRequest>,
    ) -> Result<Response<pb::DeleteTaskHubResponse>, Status> {
        Err(Status::failed_precondition(
            "a task hub is deleted by its name",
        ))
    }

    async fn signal_entity(
        &self,
        req: Request<pb::SignalEntityRequest>,
    ) -> Result<Response<pb::SignalEntityResponse>, Status> {
        let mut r = req.into_inner();
        let id = entity_id(&r.instance_id)?;
        let input = wire_json(r.input.take(), "input")?;
        let at = r.scheduled_time.as_ref().and_then(convert::from_ts);
        // The operation, and what it starts, continue the caller's span.
        let client = match convert::trace_from_pb(r.parent_trace_context.as_ref()) {
            Some(parent) => self.client.with_trace_parent(parent),
            None => self.client.clone(),
        };
        client
            .signal_entity_at(&id, &r.name, input, at)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::SignalEntityResponse {}))
    }

    async fn get_entity(
        &self,
        req: Request<pb::GetEntityRequest>,
    ) -> Result<Response<pb::GetEntityResponse>, Status> {
        let r = req.into_inner();
        let id = entity_id(&r.instance_id)?;
        let query = perdure::EntityQuery {
            instance_id_prefix: Some(id.to_string()),
            page_size: 1,
            ..Default::default()
        };
        let page = self.client.list_entities(&query).await.map_err(status)?;
        let found = page.entities.into_iter().find(|e| e.id == id);
        Ok(Response::new(pb::GetEntityResponse {
            exists: found.is_some(),
            entity: found.map(|e| entity_metadata(e, r.include_state)),
        }))
    }

    async fn query_entities(
        &self,
        req: Request<pb::QueryEntitiesRequest>,
    ) -> Result<Response<pb::QueryEntitiesResponse>, Status> {
        let q = req.into_inner().query.unwrap_or_default();
        let prefix = q.instance_id_starts_with.unwrap_or_default();
        let prefix = if prefix.starts_with('@') {
            prefix
        } else {
            format!("@{prefix}")
        };
        let query = perdure::EntityQuery {
            instance_id_prefix: Some(prefix),
            page_size: q
                .page_size
                .map(|n| n.clamp(1, 10_000) as usize)
                .unwrap_or(100),
            continuation: q.continuation_token.filter(|t| !t.is_empty()),
            ..Default::default()
        };
        let page = self.client.list_entities(&query).await.map_err(status)?;
        let from = q.last_modified_from.as_ref().and_then(convert::from_ts);
        let to = q.last_modified_to.as_ref().and_then(convert::from_ts);
        Ok(Response::new(pb::QueryEntitiesResponse {
            entities: page
                .entities
                .into_iter()
                .filter(|e| from.is_none_or(|t| e.last_modified >= t))
                .filter(|e| to.is_none_or(|t| e.last_modified <= t))
                .map(|e| entity_metadata(e, q.include_state))
                .collect(),
            continuation_token: page.continuation_token,
        }))
    }

    async fn clean_entity_storage(
        &self,
        req: Request<pb::CleanEntityStorageRequest>,
    ) -> Result<Response<pb::CleanEntityStorageResponse>, Status> {
        let r = req.into_inner();
        let done = self
            .client
            .clean_entity_storage(r.remove_empty_entities, r.release_orphaned_locks)
            .await
            .map_err(status)?;
        let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        Ok(Response::new(pb::CleanEntityStorageResponse {
            continuation_token: None,
            empty_entities_removed: count(done.empty_entities_removed),
            orphaned_locks_released: count(done.orphaned_locks_released),
        }))
    }

    async fn abandon_task_activity_work_item(
        &self,
        req: Request<pb::AbandonActivityTaskRequest>,
    ) -> Result<Response<pb::AbandonActivityTaskResponse>, Status> {
        self.dispatcher
            .abandon_token(&req.into_inner().completion_token, "an activity")
            .await?;
        Ok(Response::new(pb::AbandonActivityTaskResponse {}))
    }

    async fn abandon_task_orchestrator_work_item(
        &self,
        req: Request<pb::AbandonOrchestrationTaskRequest>,
    ) -> Result<Response<pb::AbandonOrchestrationTaskResponse>, Status> {
        self.dispatcher
            .abandon_token(&req.into_inner().completion_token, "an orchestration")
            .await?;
        Ok(Response::new(pb::AbandonOrchestrationTaskResponse {}))
    }

    async fn abandon_task_entity_work_item(
        &self,
        req: Request<pb::AbandonEntityTaskRequest>,
    ) -> Result<Response<pb::AbandonEntityTaskResponse>, Status> {
        self.dispatcher
            .abandon_token(&req.into_inner().completion_token, "an entity")
            .await?;
        Ok(Response::new(pb::AbandonEntityTaskResponse {}))
    }

    async fn skip_graceful_orchestration_terminations(
        &self,
        _: Request<pb::SkipGracefulOrchestrationTerminationsRequest>,
    ) -> Result<Response<pb::SkipGracefulOrchestrationTerminationsResponse>, Status> {
        Err(not_yet("SkipGracefulOrchestrationTerminations"))
    }
}

/// A payload from the protocol: kept as the client sent it once it is
/// checked to be JSON; absent or empty is no payload.
fn wire_json<S: AsRef<str> + Into<String>>(
    text: Option<S>,
    what: &str,
) -> Result<perdure::RawJson, Status> {
    perdure::RawJson::from_wire(text).map_err(|e| match e {
        perdure::ClientError::Serialization(why) => {
            Status::invalid_argument(format!("{what} is not valid JSON: {why}"))
        }
        other => status(other),
    })
}
