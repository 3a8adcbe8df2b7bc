//! The Durable Task sidecar protocol (`TaskHubSidecarService`): the
//! generated types (`proto`), hand-written conversions (`convert`), and the
//! service (`service`), served by [`serve_grpc`].

pub mod convert;
pub mod service;

#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("_");
}

use perdure::Client;

/// Serves the sidecar protocol on a bound listener until `shutdown`. With
/// an API key, every call must carry `authorization: Bearer KEY`.
pub async fn serve_grpc(
    listener: tokio::net::TcpListener,
    client: Client,
    api_key: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let svc = proto::task_hub_sidecar_service_server::TaskHubSidecarServiceServer::new(
        service::Sidecar::new(client),
    )
    .max_decoding_message_size(perdure::MAX_PAYLOAD_BYTES + 1024 * 1024);
    let check = move |req: tonic::Request<()>| -> Result<tonic::Request<()>, tonic::Status> {
        let Some(key) = api_key.as_deref() else {
            return Ok(req);
        };
        let given = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given == Some(key) {
            Ok(req)
        } else {
            Err(tonic::Status::unauthenticated(
                "an API key is required: send authorization: Bearer KEY",
            ))
        }
    };
    tonic::transport::Server::builder()
        .add_service(tonic::service::interceptor::InterceptedService::new(
            svc, check,
        ))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown,
        )
        .await
}
