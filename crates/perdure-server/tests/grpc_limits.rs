//! The gRPC door's bounds: long-poll waits past the cap are refused with
//! RESOURCE_EXHAUSTED, a connection that sends nothing is closed, a
//! request body that never finishes is refused after the body timeout,
//! and names are checked as over the other doors.

mod support;
use support::grpc::{create, get, start_with, GrpcServer};

use perdure_server::grpc::proto as pb;
use perdure_server::{Limits, ServerConfig, Waits};
use std::time::Duration;
use tonic::Code;

async fn server(limits: Limits) -> GrpcServer {
    start_with(ServerConfig {
        waits: Waits::new(limits.max_waits),
        limits,
        ..Default::default()
    })
    .await
}

async fn stop(s: GrpcServer) {
    let _ = s.stop.send(());
    s.worker.shutdown().await;
}

/// A wait with a free slot answers the finished instance; with none, the
/// call is refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_past_the_cap_are_refused() {
    for (max_waits, expected) in [(1, Code::Ok), (0, Code::ResourceExhausted)] {
        let mut s = server(Limits {
            max_waits,
            ..Limits::default()
        })
        .await;
        s.grpc
            .start_instance(create("HelloCities", "w", "null"))
            .await
            .expect("start");
        let waited = s.grpc.wait_for_instance_completion(get("w")).await;
        match waited {
            Ok(r) => {
                assert_eq!(expected, Code::Ok, "max_waits {max_waits}");
                let state = r.into_inner().orchestration_state.expect("state");
                assert_eq!(
                    state.orchestration_status,
                    pb::OrchestrationStatus::Completed as i32
                );
            }
            Err(e) => assert_eq!(e.code(), expected, "max_waits {max_waits}: {e}"),
        }
        stop(s).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_nothing_is_closed() {
    use tokio::io::AsyncReadExt;
    let s = server(Limits {
        header_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let mut tcp = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    let mut buf = vec![0u8; 1024];
    let closed = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .expect("the server kept a silent connection open");
    stop(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_checked_as_over_http() {
    let mut s = server(Limits::default()).await;
    let long = "n".repeat(257);
    let refused = s
        .grpc
        .start_instance(create(&long, "n1", "null"))
        .await
        .expect_err("a long name");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused}");
    assert!(
        refused.message().contains("orchestration name"),
        "{refused}"
    );
    s.grpc
        .start_instance(create("ApprovalWorkflow", "n2", "null"))
        .await
        .expect("start");
    let refused = s
        .grpc
        .raise_event(pb::RaiseEventRequest {
            instance_id: "n2".into(),
            name: "two\nlines".into(),
            input: None,
        })
        .await
        .expect_err("a control character");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused}");
    assert!(refused.message().contains("event name"), "{refused}");
    stop(s).await;
}

/// A call whose message never finishes arriving (written with a raw
/// HTTP/2 client: a gRPC frame that promises 100 bytes and sends 2) is
/// answered DEADLINE_EXCEEDED once the body timeout passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_never_finishes_is_refused() {
    let s = server(Limits {
        body_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let tcp = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    let (mut h2, conn) = h2::client::handshake(tcp).await.expect("handshake");
    tokio::spawn(conn);
    let req = axum::http::Request::builder()
        .method("POST")
        .uri(format!(
            "http://{}/TaskHubSidecarService/GetInstance",
            s.addr
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request");
    let (answer, mut body) = h2.send_request(req, false).expect("send");
    body.send_data(
        axum::body::Bytes::from_static(&[0, 0, 0, 0, 100, 10, 1]),
        false,
    )
    .expect("data");
    let answer = tokio::time::timeout(Duration::from_secs(10), answer)
        .await
        .expect("the server never answered")
        .expect("an answer");
    let mut code = answer
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if code.is_none() {
        let mut rest = answer.into_body();
        while let Some(chunk) = rest.data().await {
            chunk.expect("data");
        }
        code = rest.trailers().await.expect("trailers").and_then(|t| {
            t.get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        });
    }
    assert_eq!(
        code.as_deref(),
        Some((Code::DeadlineExceeded as i32).to_string().as_str())
    );
    drop(body);
    stop(s).await;
}
