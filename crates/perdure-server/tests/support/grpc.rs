//! The gRPC side of the test server: `perdure serve`'s gRPC door over a
//! real socket with in-process workers running the samples on SQLite, and
//! the calls a remote worker makes.

use pb::task_hub_sidecar_service_client::TaskHubSidecarServiceClient;
use perdure::{Client, Worker, WorkerOptions};
use perdure_server::grpc::{proto as pb, DispatchOptions};
use std::time::Duration;

pub type Grpc = TaskHubSidecarServiceClient<tonic::transport::Channel>;

pub async fn start(
    api_key: Option<&str>,
) -> (
    Grpc,
    Worker,
    tokio::sync::oneshot::Sender<()>,
    tempfile::TempDir,
) {
    let config = perdure_server::ServerConfig {
        api_key: api_key.map(str::to_string),
        ..Default::default()
    };
    let s = start_with(config).await;
    (s.grpc, s.worker, s.stop, s.dir)
}

/// A gRPC test server and what it holds.
pub struct GrpcServer {
    pub grpc: Grpc,
    pub worker: Worker,
    pub stop: tokio::sync::oneshot::Sender<()>,
    pub dir: tempfile::TempDir,
    pub addr: std::net::SocketAddr,
}

/// A server under `config` (its key, limits and wait slots).
pub async fn start_with(config: perdure_server::ServerConfig) -> GrpcServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = perdure::open_store(&format!("sqlite://{}", dir.path().join("g.db").display()))
        .await
        .expect("store");
    let client = Client::new(store.clone());
    let registry = perdure_examples::registry(client.clone());
    let dispatch = DispatchOptions {
        local_orchestrations: registry
            .orchestrator_names()
            .into_iter()
            .chain(registry.entity_instance_names())
            .collect(),
        local_activities: registry.activity_names(),
        ping_every: Duration::from_millis(300),
        lease: Duration::from_secs(3),
        ..DispatchOptions::default()
    };
    let worker = Worker::start(
        store,
        registry,
        WorkerOptions {
            take_unknown_names: false,
            ..WorkerOptions::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let hubs = std::sync::Arc::new(perdure::TaskHubs::single(client));
    tokio::spawn(async move {
        perdure_server::grpc::serve_grpc_with(listener, hubs, dispatch, &config, async move {
            let _ = rx.await;
        })
        .await
    });
    let grpc = TaskHubSidecarServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    GrpcServer {
        grpc,
        worker,
        stop,
        dir,
        addr,
    }
}

pub fn create(name: &str, id: &str, input: &str) -> pb::CreateInstanceRequest {
    pb::CreateInstanceRequest {
        instance_id: id.into(),
        name: name.into(),
        input: Some(input.into()),
        ..Default::default()
    }
}

pub fn get(id: &str) -> pb::GetInstanceRequest {
    pb::GetInstanceRequest {
        instance_id: id.into(),
        get_inputs_and_outputs: true,
    }
}

pub async fn wait(g: &mut Grpc, id: &str) -> pb::OrchestrationState {
    let mut req = tonic::Request::new(get(id));
    req.set_timeout(Duration::from_secs(30));
    let r = g
        .wait_for_instance_completion(req)
        .await
        .expect("completes")
        .into_inner();
    assert!(r.exists);
    r.orchestration_state.expect("state")
}

type Items = tonic::Streaming<pb::WorkItem>;

pub async fn open(g: &mut Grpc, orchestrations: &[&str], activities: &[&str]) -> Items {
    let f = pb::WorkItemFilters {
        orchestrations: orchestrations
            .iter()
            .map(|n| pb::OrchestrationFilter {
                name: n.to_string(),
                versions: Vec::new(),
            })
            .collect(),
        activities: activities
            .iter()
            .map(|n| pb::ActivityFilter {
                name: n.to_string(),
                versions: Vec::new(),
            })
            .collect(),
        entities: Vec::new(),
    };
    g.get_work_items(pb::GetWorkItemsRequest {
        work_item_filters: Some(f),
        ..Default::default()
    })
    .await
    .expect("stream")
    .into_inner()
}

/// The next work item that is not a health ping.
pub async fn next(items: &mut Items) -> pb::WorkItem {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), items.message())
            .await
            .expect("a work item in time")
            .expect("stream ok")
            .expect("stream open");
        if !matches!(item.request, Some(pb::work_item::Request::HealthPing(_))) {
            return item;
        }
    }
}

pub fn orchestrator(item: &pb::WorkItem) -> &pb::OrchestratorRequest {
    match &item.request {
        Some(pb::work_item::Request::OrchestratorRequest(r)) => r,
        other => panic!("expected an orchestrator request, got {other:?}"),
    }
}

pub fn kinds(events: &[pb::HistoryEvent]) -> Vec<&'static str> {
    use pb::history_event::EventType as T;
    events
        .iter()
        .map(|e| match e.event_type {
            Some(T::OrchestratorStarted(_)) => "orchestratorStarted",
            Some(T::ExecutionStarted(_)) => "executionStarted",
            Some(T::TaskScheduled(_)) => "taskScheduled",
            Some(T::TaskCompleted(_)) => "taskCompleted",
            Some(T::OrchestratorCompleted(_)) => "orchestratorCompleted",
            Some(T::EventRaised(_)) => "eventRaised",
            _ => "other",
        })
        .collect()
}

pub fn respond(
    item: &pb::WorkItem,
    actions: Vec<pb::OrchestratorAction>,
) -> pb::OrchestratorResponse {
    pb::OrchestratorResponse {
        instance_id: orchestrator(item).instance_id.clone(),
        actions,
        custom_status: Some("\"remote\"".into()),
        completion_token: item.completion_token.clone(),
        ..Default::default()
    }
}

pub fn complete(status: pb::OrchestrationStatus, result: &str) -> pb::OrchestratorAction {
    pb::OrchestratorAction {
        rewind_orchestration: Vec::new(),
        id: -1,
        orchestrator_action_type: Some(
            pb::orchestrator_action::OrchestratorActionType::CompleteOrchestration(
                pb::CompleteOrchestrationAction {
                    orchestration_status: status as i32,
                    result: Some(result.into()),
                    failure_details: (status == pb::OrchestrationStatus::Failed).then(|| {
                        pb::TaskFailureDetails {
                            error_type: "Boom".into(),
                            error_message: "remote failure".into(),
                            ..Default::default()
                        }
                    }),
                    ..Default::default()
                },
            ),
        ),
    }
}

/// Action `id`: schedule activity `name` with `input`.
pub fn schedule_task(id: i32, name: &str, input: &str) -> pb::OrchestratorAction {
    pb::OrchestratorAction {
        rewind_orchestration: Vec::new(),
        id,
        orchestrator_action_type: Some(
            pb::orchestrator_action::OrchestratorActionType::ScheduleTask(pb::ScheduleTaskAction {
                name: name.into(),
                input: Some(input.into()),
                ..Default::default()
            }),
        ),
    }
}
