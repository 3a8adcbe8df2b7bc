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
    let too_big = vec![b' '; perdure_server::MAX_BODY_BYTES + 1];
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
                "a body past the limit",
                Method::POST,
                "/orchestrators/HelloCities",
                Some(too_big),
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
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
