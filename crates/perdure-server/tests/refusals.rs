//! Every refusal is JSON: the framework's own (405, a path or query that
//! does not decode, 413, 414) answer with the same `{"error", "message"}`
//! body as the API's errors. Each case is one row: method, target, body,
//! expected status and error code.

mod support;
use support::Server;

use reqwest::{Method, StatusCode};

struct Case {
    what: &'static str,
    method: Method,
    /// Appended to the API's base URL.
    target: String,
    body: Option<Vec<u8>>,
    status: StatusCode,
    error: &'static str,
}

fn case(
    what: &'static str,
    method: Method,
    target: impl Into<String>,
    body: Option<Vec<u8>>,
    status: StatusCode,
    error: &'static str,
) -> Case {
    Case {
        what,
        method,
        target: target.into(),
        body,
        status,
        error,
    }
}

async fn run(s: &Server, cases: Vec<Case>) {
    for c in cases {
        let mut req = s
            .http
            .request(c.method.clone(), s.url(&c.target))
            .header("content-type", "application/json");
        if let Some(b) = c.body {
            req = req.body(b);
        }
        let r = req.send().await.expect(c.what);
        assert_eq!(r.status(), c.status, "{}", c.what);
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(ct.starts_with("application/json"), "{}: {ct}", c.what);
        let body: serde_json::Value = r.json().await.expect(c.what);
        assert_eq!(body["error"], c.error, "{}: {body}", c.what);
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}: {body}",
            c.what
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_frameworks_refusals_are_json() {
    let s = Server::start(None).await;
    run(
        &s,
        vec![
            case(
                "a method the route does not serve",
                Method::PUT,
                "/instances",
                None,
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
            ),
            case(
                "a method an instance route does not serve",
                Method::PATCH,
                "/instances/abc/terminate",
                None,
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
            ),
            case(
                "a path that is not UTF-8 once decoded",
                Method::GET,
                "/instances/%FF%FE",
                None,
                StatusCode::BAD_REQUEST,
                "BadRequest",
            ),
            case(
                "a query that is not UTF-8 once decoded",
                Method::GET,
                "/instances?top=%FF",
                None,
                StatusCode::BAD_REQUEST,
                "BadParameter",
            ),
            case(
                "a request target past the limit",
                Method::GET,
                format!("/instances/{}", "a".repeat(20_000)),
                None,
                StatusCode::URI_TOO_LONG,
                "UriTooLong",
            ),
            case(
                "a route that does not exist",
                Method::GET,
                "/nowhere",
                None,
                StatusCode::NOT_FOUND,
                "NotFound",
            ),
        ],
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_405_keeps_its_allow_header() {
    let s = Server::start(None).await;
    let r = s
        .http
        .put(s.url("/instances/abc"))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allow = r
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(allow.contains("GET") && allow.contains("DELETE"), "{allow}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_refused_like_ids() {
    let s = Server::start(None).await;
    let long = "n".repeat(257);
    run(
        &s,
        vec![
            case(
                "an orchestration name past 256 characters",
                Method::POST,
                format!("/orchestrators/{long}"),
                None,
                StatusCode::BAD_REQUEST,
                "InvalidName",
            ),
            case(
                "an event name with a control character",
                Method::POST,
                "/instances/any/raiseEvent/a%0Ab",
                None,
                StatusCode::BAD_REQUEST,
                "InvalidName",
            ),
            case(
                "an event name past 256 characters",
                Method::POST,
                format!("/instances/any/raiseEvent/{long}"),
                None,
                StatusCode::BAD_REQUEST,
                "InvalidName",
            ),
        ],
    )
    .await;
    s.stop().await;
}

/// A body that says it is past the limit is refused before it is read
/// (the client may still be sending it, so the request is written by hand).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_past_the_limit_is_refused_before_it_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Server::start(None).await;
    let mut tcp = tokio::net::TcpStream::connect(s.authority())
        .await
        .expect("connect");
    let head = format!(
        "POST /runtime/webhooks/durabletask/orchestrators/HelloCities HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n[",
        s.authority(),
        perdure_server::MAX_BODY_BYTES + 1
    );
    tcp.write_all(head.as_bytes()).await.expect("write");
    let mut got = Vec::new();
    let read = tcp.read_to_end(&mut got);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .expect("answered");
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 413"), "{got}");
    assert!(got.contains("application/json"), "{got}");
    assert!(got.contains("\"PayloadTooLarge\""), "{got}");
    s.stop().await;
}
