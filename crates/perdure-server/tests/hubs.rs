//! Task hubs over gRPC: the `taskhub` header picks the hub, hubs are
//! isolated (a client on one never sees another's instances, a worker never
//! takes another's work), `CreateTaskHub` and `DeleteTaskHub` work, and no
//! header (or an empty one) is the default hub.

use pb::task_hub_sidecar_service_client::TaskHubSidecarServiceClient;
use perdure::Client;
use perdure_server::grpc::{proto as pb, DispatchOptions};
use std::time::Duration;
use tonic::Request;

type Grpc = TaskHubSidecarServiceClient<tonic::transport::Channel>;

struct Hubbed {
    g: Grpc,
    dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn serve() -> Hubbed {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = format!("sqlite://{}", dir.path().join("h.db").display());
    let store = perdure::open_store(&base).await.expect("store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(perdure_server::grpc::serve_grpc_hubs(
        listener,
        Client::new(store),
        Some(base),
        DispatchOptions {
            ping_every: Duration::from_millis(300),
            ..DispatchOptions::default()
        },
        None,
        async move {
            let _ = rx.await;
        },
    ));
    let g = TaskHubSidecarServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    Hubbed {
        g,
        dir,
        _stop: stop,
    }
}

/// `msg` for hub `hub` (`None`: no header at all).
fn on<T>(hub: Option<&str>, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    if let Some(h) = hub {
        r.metadata_mut()
            .insert("taskhub", h.parse().expect("header value"));
    }
    r
}

async fn start(g: &mut Grpc, hub: Option<&str>, id: &str) {
    g.start_instance(on(
        hub,
        pb::CreateInstanceRequest {
            instance_id: id.into(),
            name: "Waits".into(),
            ..Default::default()
        },
    ))
    .await
    .expect("start");
}

async fn exists(g: &mut Grpc, hub: Option<&str>, id: &str) -> bool {
    g.get_instance(on(
        hub,
        pb::GetInstanceRequest {
            instance_id: id.into(),
            get_inputs_and_outputs: false,
        },
    ))
    .await
    .expect("get")
    .into_inner()
    .exists
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sees_only_its_own_hubs_instances() {
    let mut h = serve().await;
    start(&mut h.g, Some("orders"), "o1").await;
    start(&mut h.g, None, "d1").await;
    let seen = [
        exists(&mut h.g, Some("orders"), "o1").await,
        exists(&mut h.g, Some("orders"), "d1").await,
        exists(&mut h.g, None, "o1").await,
        exists(&mut h.g, Some("default"), "d1").await,
        exists(&mut h.g, Some(""), "d1").await,
        exists(&mut h.g, Some("billing"), "o1").await,
    ];
    assert_eq!(seen, [true, false, false, true, true, false]);
    assert!(
        h.dir.path().join("h.orders.db").exists(),
        "the hub is a file beside the base store"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_takes_only_its_own_hubs_work() {
    let mut h = serve().await;
    start(&mut h.g, Some("orders"), "o1").await;
    let mut on_default =
        h.g.get_work_items(on(None, pb::GetWorkItemsRequest::default()))
            .await
            .expect("stream")
            .into_inner();
    let mut on_orders =
        h.g.get_work_items(on(Some("orders"), pb::GetWorkItemsRequest::default()))
            .await
            .expect("stream")
            .into_inner();
    let default_got = next_orchestration(&mut on_default).await;
    let orders_got = next_orchestration(&mut on_orders).await;
    assert_eq!(
        default_got, None,
        "the default hub's worker got another hub's work"
    );
    assert_eq!(orders_got.as_deref(), Some("o1"));
}

/// The instance of the next orchestration work item within two seconds
/// (health pings skipped).
async fn next_orchestration(items: &mut tonic::Streaming<pb::WorkItem>) -> Option<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        match tokio::time::timeout_at(deadline, items.message()).await {
            Ok(Ok(Some(w))) => match w.request {
                Some(pb::work_item::Request::OrchestratorRequest(r)) => return Some(r.instance_id),
                _ => continue,
            },
            _ => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_hub_is_empty_and_the_others_keep_theirs() {
    let mut h = serve().await;
    start(&mut h.g, Some("scratch"), "s1").await;
    start(&mut h.g, Some("keep"), "k1").await;
    h.g.delete_task_hub(on(Some("scratch"), pb::DeleteTaskHubRequest {}))
        .await
        .expect("delete");
    assert!(!exists(&mut h.g, Some("scratch"), "s1").await);
    assert!(exists(&mut h.g, Some("keep"), "k1").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_task_hub_recreates_it_empty_when_asked() {
    let mut h = serve().await;
    start(&mut h.g, Some("fresh"), "f1").await;
    h.g.create_task_hub(on(
        Some("fresh"),
        pb::CreateTaskHubRequest {
            recreate_if_exists: false,
        },
    ))
    .await
    .expect("create");
    assert!(
        exists(&mut h.g, Some("fresh"), "f1").await,
        "kept without recreate"
    );
    h.g.create_task_hub(on(
        Some("fresh"),
        pb::CreateTaskHubRequest {
            recreate_if_exists: true,
        },
    ))
    .await
    .expect("recreate");
    assert!(
        !exists(&mut h.g, Some("fresh"), "f1").await,
        "emptied by recreate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_hub_cannot_be_deleted_and_bad_names_are_refused() {
    let mut h = serve().await;
    let del =
        h.g.delete_task_hub(on(None, pb::DeleteTaskHubRequest {}))
            .await
            .unwrap_err();
    assert_eq!(del.code(), tonic::Code::FailedPrecondition);
    let bad =
        h.g.get_instance(on(
            Some("a/b"),
            pb::GetInstanceRequest {
                instance_id: "x".into(),
                get_inputs_and_outputs: false,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
}
