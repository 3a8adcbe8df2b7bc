//! Task hubs over gRPC. A client or worker names its hub in the
//! `taskhub` metadata header (the Durable Task Scheduler SDKs always send
//! it; none, or an empty one, is the `default` hub). The default hub is the
//! server's own store, with the in-process workers; any other hub is opened
//! on first use beside it (`perdure::hub_store_url`: another SQLite file,
//! another PostgreSQL schema, another memory store), with a client and a
//! dispatcher of its own, so hubs are isolated: a client on one never sees
//! another's instances, a worker never takes another's work.
//! `CreateTaskHub` opens the named hub (emptied first with
//! `recreateIfExists`); `DeleteTaskHub` deletes the named hub's store.

use super::proto as pb;
use super::service::{Sidecar, Stream};
use super::workers::{DispatchOptions, Dispatcher};
use crate::limits::Waits;
use pb::task_hub_sidecar_service_server::TaskHubSidecarService;
use perdure::{HubError, TaskHubs};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{watch, Mutex};
use tonic::{Request, Response, Status};

/// The metadata header that names a task hub.
pub const TASKHUB_HEADER: &str = "taskhub";

/// Every hub a server serves, by name: each hub's store and client come
/// from the server's [`TaskHubs`] (shared with the HTTP door), with a
/// dispatcher of its own for remote workers.
pub struct Hubs {
    hubs: Arc<TaskHubs>,
    default: Arc<Sidecar>,
    others: Mutex<HashMap<String, Arc<Sidecar>>>,
    shutdown: watch::Receiver<bool>,
    options: DispatchOptions,
    waits: Waits,
}

/// A hub error as the protocol reports it.
fn hub_status(e: HubError) -> Status {
    match e {
        HubError::BadName { .. } => Status::invalid_argument(e.to_string()),
        HubError::SingleHub(_) | HubError::DefaultHub => Status::failed_precondition(e.to_string()),
        HubError::Store { .. } => Status::unavailable(e.to_string()),
    }
}

impl Hubs {
    /// The hubs of a server whose default hub `dispatcher` serves (with
    /// `hubs`' default client); other hubs get dispatchers with `options`
    /// minus the in-process names (no in-process worker serves them).
    pub fn new(
        hubs: Arc<TaskHubs>,
        dispatcher: Arc<Dispatcher>,
        options: DispatchOptions,
        shutdown: watch::Receiver<bool>,
        waits: Waits,
    ) -> Self {
        Hubs {
            default: Arc::new(Sidecar::new(
                hubs.default_client().clone(),
                dispatcher,
                waits.clone(),
            )),
            waits,
            hubs,
            others: Mutex::new(HashMap::new()),
            shutdown,
            options: DispatchOptions {
                local_orchestrations: Vec::new(),
                local_activities: Vec::new(),
                ..options
            },
        }
    }

    fn name_of<T>(req: &Request<T>) -> Result<String, Status> {
        let raw = match req.metadata().get(TASKHUB_HEADER) {
            None => "",
            Some(v) => v
                .to_str()
                .map_err(|_| Status::invalid_argument("the taskhub header is not text"))?,
        };
        TaskHubs::name(raw).map_err(hub_status)
    }

    /// The hub a request names, opened if this is its first use.
    async fn hub<T>(&self, req: &Request<T>) -> Result<Arc<Sidecar>, Status> {
        let name = Self::name_of(req)?;
        self.open(&name).await
    }

    async fn open(&self, name: &str) -> Result<Arc<Sidecar>, Status> {
        if name == perdure::DEFAULT_HUB {
            return Ok(self.default.clone());
        }
        let mut others = self.others.lock().await;
        if let Some(hub) = others.get(name) {
            return Ok(hub.clone());
        }
        let (_, client) = self.hubs.client(name).await.map_err(hub_status)?;
        let dispatcher = Dispatcher::new(
            client.store().clone(),
            self.options.clone(),
            self.shutdown.clone(),
        );
        let hub = Arc::new(Sidecar::new(client, dispatcher, self.waits.clone()));
        others.insert(name.to_string(), hub.clone());
        Ok(hub)
    }

    /// Deletes hub `name`'s store (and forgets it).
    async fn delete(&self, name: &str) -> Result<(), Status> {
        let mut others = self.others.lock().await;
        self.hubs.delete(name).await.map_err(hub_status)?;
        others.remove(name);
        Ok(())
    }
}

#[tonic::async_trait]
impl TaskHubSidecarService for Hubs {
    async fn hello(&self, _: Request<()>) -> Result<Response<()>, Status> {
        Ok(Response::new(()))
    }

    async fn start_instance(
        &self,
        req: Request<pb::CreateInstanceRequest>,
    ) -> Result<Response<pb::CreateInstanceResponse>, Status> {
        self.hub(&req).await?.start_instance(req).await
    }

    async fn get_instance(
        &self,
        req: Request<pb::GetInstanceRequest>,
    ) -> Result<Response<pb::GetInstanceResponse>, Status> {
        self.hub(&req).await?.get_instance(req).await
    }

    async fn rewind_instance(
        &self,
        req: Request<pb::RewindInstanceRequest>,
    ) -> Result<Response<pb::RewindInstanceResponse>, Status> {
        self.hub(&req).await?.rewind_instance(req).await
    }

    async fn restart_instance(
        &self,
        req: Request<pb::RestartInstanceRequest>,
    ) -> Result<Response<pb::RestartInstanceResponse>, Status> {
        self.hub(&req).await?.restart_instance(req).await
    }

    async fn wait_for_instance_start(
        &self,
        req: Request<pb::GetInstanceRequest>,
    ) -> Result<Response<pb::GetInstanceResponse>, Status> {
        self.hub(&req).await?.wait_for_instance_start(req).await
    }

    async fn wait_for_instance_completion(
        &self,
        req: Request<pb::GetInstanceRequest>,
    ) -> Result<Response<pb::GetInstanceResponse>, Status> {
        self.hub(&req)
            .await?
            .wait_for_instance_completion(req)
            .await
    }

    async fn raise_event(
        &self,
        req: Request<pb::RaiseEventRequest>,
    ) -> Result<Response<pb::RaiseEventResponse>, Status> {
        self.hub(&req).await?.raise_event(req).await
    }

    async fn terminate_instance(
        &self,
        req: Request<pb::TerminateRequest>,
    ) -> Result<Response<pb::TerminateResponse>, Status> {
        self.hub(&req).await?.terminate_instance(req).await
    }

    async fn suspend_instance(
        &self,
        req: Request<pb::SuspendRequest>,
    ) -> Result<Response<pb::SuspendResponse>, Status> {
        self.hub(&req).await?.suspend_instance(req).await
    }

    async fn resume_instance(
        &self,
        req: Request<pb::ResumeRequest>,
    ) -> Result<Response<pb::ResumeResponse>, Status> {
        self.hub(&req).await?.resume_instance(req).await
    }

    async fn query_instances(
        &self,
        req: Request<pb::QueryInstancesRequest>,
    ) -> Result<Response<pb::QueryInstancesResponse>, Status> {
        self.hub(&req).await?.query_instances(req).await
    }

    async fn list_instance_ids(
        &self,
        req: Request<pb::ListInstanceIdsRequest>,
    ) -> Result<Response<pb::ListInstanceIdsResponse>, Status> {
        self.hub(&req).await?.list_instance_ids(req).await
    }

    async fn purge_instances(
        &self,
        req: Request<pb::PurgeInstancesRequest>,
    ) -> Result<Response<pb::PurgeInstancesResponse>, Status> {
        self.hub(&req).await?.purge_instances(req).await
    }

    async fn complete_activity_task(
        &self,
        req: Request<pb::ActivityResponse>,
    ) -> Result<Response<pb::CompleteTaskResponse>, Status> {
        self.hub(&req).await?.complete_activity_task(req).await
    }

    async fn complete_orchestrator_task(
        &self,
        req: Request<pb::OrchestratorResponse>,
    ) -> Result<Response<pb::CompleteTaskResponse>, Status> {
        self.hub(&req).await?.complete_orchestrator_task(req).await
    }

    async fn complete_entity_task(
        &self,
        req: Request<pb::EntityBatchResult>,
    ) -> Result<Response<pb::CompleteTaskResponse>, Status> {
        self.hub(&req).await?.complete_entity_task(req).await
    }

    async fn signal_entity(
        &self,
        req: Request<pb::SignalEntityRequest>,
    ) -> Result<Response<pb::SignalEntityResponse>, Status> {
        self.hub(&req).await?.signal_entity(req).await
    }

    async fn get_entity(
        &self,
        req: Request<pb::GetEntityRequest>,
    ) -> Result<Response<pb::GetEntityResponse>, Status> {
        self.hub(&req).await?.get_entity(req).await
    }

    async fn query_entities(
        &self,
        req: Request<pb::QueryEntitiesRequest>,
    ) -> Result<Response<pb::QueryEntitiesResponse>, Status> {
        self.hub(&req).await?.query_entities(req).await
    }

    async fn clean_entity_storage(
        &self,
        req: Request<pb::CleanEntityStorageRequest>,
    ) -> Result<Response<pb::CleanEntityStorageResponse>, Status> {
        self.hub(&req).await?.clean_entity_storage(req).await
    }

    async fn abandon_task_activity_work_item(
        &self,
        req: Request<pb::AbandonActivityTaskRequest>,
    ) -> Result<Response<pb::AbandonActivityTaskResponse>, Status> {
        self.hub(&req)
            .await?
            .abandon_task_activity_work_item(req)
            .await
    }

    async fn abandon_task_orchestrator_work_item(
        &self,
        req: Request<pb::AbandonOrchestrationTaskRequest>,
    ) -> Result<Response<pb::AbandonOrchestrationTaskResponse>, Status> {
        self.hub(&req)
            .await?
            .abandon_task_orchestrator_work_item(req)
            .await
    }

    async fn abandon_task_entity_work_item(
        &self,
        req: Request<pb::AbandonEntityTaskRequest>,
    ) -> Result<Response<pb::AbandonEntityTaskResponse>, Status> {
        self.hub(&req)
            .await?
            .abandon_task_entity_work_item(req)
            .await
    }

    async fn skip_graceful_orchestration_terminations(
        &self,
        req: Request<pb::SkipGracefulOrchestrationTerminationsRequest>,
    ) -> Result<Response<pb::SkipGracefulOrchestrationTerminationsResponse>, Status> {
        self.hub(&req)
            .await?
            .skip_graceful_orchestration_terminations(req)
            .await
    }

    type GetWorkItemsStream = Stream<pb::WorkItem>;

    async fn get_work_items(
        &self,
        req: Request<pb::GetWorkItemsRequest>,
    ) -> Result<Response<Self::GetWorkItemsStream>, Status> {
        self.hub(&req).await?.get_work_items(req).await
    }

    type StreamInstanceHistoryStream = Stream<pb::HistoryChunk>;

    async fn stream_instance_history(
        &self,
        req: Request<pb::StreamInstanceHistoryRequest>,
    ) -> Result<Response<Self::StreamInstanceHistoryStream>, Status> {
        self.hub(&req).await?.stream_instance_history(req).await
    }

    async fn create_task_hub(
        &self,
        req: Request<pb::CreateTaskHubRequest>,
    ) -> Result<Response<pb::CreateTaskHubResponse>, Status> {
        let name = Self::name_of(&req)?;
        if req.get_ref().recreate_if_exists && name != perdure::DEFAULT_HUB {
            self.delete(&name).await?;
        }
        self.open(&name).await?;
        Ok(Response::new(pb::CreateTaskHubResponse {}))
    }

    async fn delete_task_hub(
        &self,
        req: Request<pb::DeleteTaskHubRequest>,
    ) -> Result<Response<pb::DeleteTaskHubResponse>, Status> {
        self.delete(&Self::name_of(&req)?).await?;
        Ok(Response::new(pb::DeleteTaskHubResponse {}))
    }
}
