//! Task hubs over gRPC and HTTP: the `taskhub` header and the `taskHub`
//! query parameter pick the hub, hubs are isolated (a client on one never
//! sees another's instances, a worker never takes another's work),
//! `CreateTaskHub` and `DeleteTaskHub` work, no header (or an empty one) is
//! the default hub, and both doors see the same hubs.

use pb::task_hub_sidecar_service_client::TaskHubSidecarServiceClient;
use perdure::Client;
use perdure_server::grpc::{proto as pb, DispatchOptions};
use std::time::Duration;
use tonic::Request;

type Grpc = TaskHubSidecarServiceClient<tonic::transport::Channel>;

struct Hubbed {
    g: Grpc,
    /// The HTTP API's base URL.
    http: String,
    dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn serve() -> Hubbed {
    serve_on(None).await
}

/// Both doors over one set of hubs beside `base` (a SQLite file in a
/// temporary directory when `None`).
async fn serve_on(base: Option<&str>) -> Hubbed {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = match base {
        Some(b) => b.to_string(),
        None => format!("sqlite://{}", dir.path().join("h.db").display()),
    };
    let store = perdure::open_store(&base).await.expect("store");
    let hubs = std::sync::Arc::new(perdure::TaskHubs::new(Client::new(store), Some(base)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let http = format!(
        "http://{}{}",
        http_listener.local_addr().expect("addr"),
        perdure_server::BASE_PATH
    );
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let (http_stop, http_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(perdure_server::serve_hubs_on(
        http_listener,
        hubs.clone(),
        perdure_server::ServerConfig::default(),
        async move {
            let _ = http_rx.await;
        },
    ));
    tokio::spawn(perdure_server::grpc::serve_grpc_hubs(
        listener,
        hubs,
        DispatchOptions {
            ping_every: Duration::from_millis(300),
            ..DispatchOptions::default()
        },
        None,
        async move {
            let _ = rx.await;
            let _ = http_stop.send(());
        },
    ));
    let g = TaskHubSidecarServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    Hubbed {
        g,
        http,
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

/// The HTTP status code of `GET /instances/{id}` on hub `hub`.
async fn http_status(h: &Hubbed, hub: Option<&str>, id: &str) -> u16 {
    let url = match hub {
        Some(hub) => format!("{}/instances/{id}?taskHub={hub}", h.http),
        None => format!("{}/instances/{id}", h.http),
    };
    reqwest::get(url).await.expect("get").status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_task_hub_parameter_sees_the_hub_grpc_uses() {
    // On memory stores too: one store per hub, shared by the two doors.
    for base in [None, Some("memory")] {
        let mut h = serve_on(base).await;
        start(&mut h.g, Some("blue"), "b1").await;
        let seen = [
            http_status(&h, Some("blue"), "b1").await,
            http_status(&h, Some("Blue"), "b1").await,
            http_status(&h, None, "b1").await,
            http_status(&h, Some("green"), "b1").await,
        ];
        assert_eq!(seen, [202, 202, 404, 404], "{base:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_start_lands_in_the_named_hub_and_its_urls_name_it() {
    let mut h = serve().await;
    let r = reqwest::Client::new()
        .post(format!("{}/orchestrators/Waits/g1?taskHub=green", h.http))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 202);
    let body: serde_json::Value = r.json().await.expect("json");
    let status_url = body["statusQueryGetUri"].as_str().expect("url");
    assert!(status_url.contains("taskHub=green"), "{status_url}");
    assert_eq!(
        reqwest::get(status_url)
            .await
            .expect("get")
            .status()
            .as_u16(),
        202,
        "the status URL finds the instance"
    );
    assert!(exists(&mut h.g, Some("green"), "g1").await);
    assert!(!exists(&mut h.g, None, "g1").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_request_for_a_bad_hub_name_is_refused() {
    let h = serve().await;
    let r = reqwest::get(format!("{}/instances/x?taskHub=a%2Fb", h.http))
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 400);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"], "InvalidTaskHub");
}
