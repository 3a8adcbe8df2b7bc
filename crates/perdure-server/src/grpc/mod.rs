//! The Durable Task sidecar protocol (`TaskHubSidecarService`): the
//! generated types (`proto`), hand-written conversions (`convert`,
//! `actions`, and `flavour` where Microsoft's and Dapr's protocols differ), remote-worker dispatch (`workers`), the service of one task
//! hub (`service`) and the router that picks the hub a call names
//! (`hubs`), served by [`serve_grpc`] and [`serve_grpc_hubs`].

pub mod actions;
pub mod convert;
pub mod flavour;
pub mod hubs;
pub mod service;
pub mod workers;

pub use workers::{DispatchOptions, Dispatcher};

#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("_");
}

use perdure::Client;

/// Serves the sidecar protocol on a bound listener until `shutdown`. With
/// an API key, every call must carry `authorization: Bearer KEY`. Remote
/// workers get work under `dispatch`'s rules; work-item streams end at
/// shutdown and their work goes back to the queues.
pub async fn serve_grpc(
    listener: tokio::net::TcpListener,
    client: Client,
    dispatch: DispatchOptions,
    api_key: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let hubs = std::sync::Arc::new(perdure::TaskHubs::single(client));
    serve_grpc_hubs(listener, hubs, dispatch, api_key, shutdown).await
}

/// Like [`serve_grpc`], with task hubs: `hubs`' default client serves the
/// default hub, and a call whose `taskhub` header names another hub is
/// served by that hub's store (opened on first use, shared with the HTTP
/// door when it is given the same `hubs`).
pub async fn serve_grpc_hubs(
    listener: tokio::net::TcpListener,
    hubs: std::sync::Arc<perdure::TaskHubs>,
    dispatch: DispatchOptions,
    api_key: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let config = crate::ServerConfig {
        api_key,
        ..Default::default()
    };
    serve_grpc_with(listener, hubs, dispatch, &config, shutdown).await
}

/// Like [`serve_grpc_hubs`], under `config`'s key, limits (connection cap,
/// first-bytes and write timeouts, keep-alive pings, calls per
/// connection) and wait slots (share them with the HTTP door).
pub async fn serve_grpc_with(
    listener: tokio::net::TcpListener,
    hubs: std::sync::Arc<perdure::TaskHubs>,
    dispatch: DispatchOptions,
    config: &crate::ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let store = hubs.default_client().store().clone();
    let dispatcher = Dispatcher::new(store, dispatch.clone(), stopped.clone());
    let hubs = hubs::Hubs::new(
        hubs,
        dispatcher,
        dispatch,
        stopped.clone(),
        config.waits.clone(),
    );
    let svc = proto::task_hub_sidecar_service_server::TaskHubSidecarServiceServer::new(hubs)
        .max_decoding_message_size(perdure::MAX_PAYLOAD_BYTES + 1024 * 1024)
        .max_encoding_message_size(usize::MAX);
    let shutdown = async move {
        shutdown.await;
        let _ = stop.send(true);
    };
    let api_key = config.api_key.clone();
    let check = move |req: tonic::Request<()>| -> Result<tonic::Request<()>, tonic::Status> {
        let Some(key) = api_key.as_deref() else {
            return Ok(req);
        };
        let given = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given.is_some_and(|g| crate::guard::same_key(g, key)) {
            Ok(req)
        } else {
            Err(tonic::Status::unauthenticated(
                "an API key is required: send authorization: Bearer KEY",
            ))
        }
    };
    let limits = &config.limits;
    let (body_timeout, budget) = (
        limits.body_timeout,
        crate::intake::grpc_budget(limits.max_body_bytes_in_flight),
    );
    let bodies = tower::ServiceBuilder::new().map_request(
        move |req: axum::http::Request<tonic::body::Body>| {
            req.map(|b| crate::intake::TimedBody::wrap(b, body_timeout, &budget))
        },
    );
    tonic::transport::Server::builder()
        .layer(bodies)
        .http2_keepalive_interval(Some(limits.grpc_keepalive))
        .http2_keepalive_timeout(Some(limits.grpc_keepalive))
        .max_concurrent_streams(Some(limits.grpc_max_streams))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            svc, check,
        ))
        .serve_with_incoming_shutdown(crate::conn::incoming(listener, limits.clone()), shutdown)
        .await
}
