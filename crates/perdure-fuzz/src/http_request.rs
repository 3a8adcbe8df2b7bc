//! Whole HTTP requests through the router and its handlers, in process,
//! over a memory store with no workers. The input is a method byte, then
//! lines: the path under the API's base, the query, the `Content-Type`
//! (empty: none), and the body (the rest). Path and query bytes are
//! percent-encoded where a URI needs it, so every input is a request the
//! server could receive. Properties: no panic; no 5xx; every answer with a
//! body on the API's routes is JSON and says so; every refusal carries
//! `{"error", "message"}`.
//!
//! Requests whose query asks to wait (`timeout`) are not sent: the handler
//! would poll the store for up to a day of real time.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use perdure_server::BASE_PATH;
use std::cell::RefCell;
use std::sync::Arc;
use tower::ServiceExt;

/// Paths, query names and bodies the router knows.
pub const DICTIONARY: &[&[u8]] = &[
    b"/orchestrators/",
    b"/instances",
    b"/instances/",
    b"/raiseEvent/",
    b"/terminate",
    b"/suspend",
    b"/resume",
    b"/rewind",
    b"/restart",
    b"/entities/",
    b"?op=",
    b"showHistory=true",
    b"runtimeStatus=",
    b"createdTimeFrom=2024-01-31T12:00:00Z",
    b"taskHub=",
    b"top=",
    b"reason=",
    b"restartWithNewInstanceId=true",
    b"application/json",
    b"text/plain",
    b"%2F",
    b"%40",
    b"%00",
    b"{\"a\":1}",
    b"\n",
];

const METHODS: [Method; 6] = [
    Method::GET,
    Method::POST,
    Method::DELETE,
    Method::PUT,
    Method::PATCH,
    Method::HEAD,
];

/// Requests served by one router before a fresh store replaces it (the
/// memory store keeps every instance started).
const RENEW_AFTER: u32 = 5_000;

struct App {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    served: u32,
}

thread_local! {
    static APP: RefCell<Option<App>> = const { RefCell::new(None) };
}

fn new_router() -> axum::Router {
    let store: Arc<dyn perdure_store::Store> = Arc::new(perdure_store::MemoryStore::new());
    perdure_server::router(
        perdure::Client::new(store),
        perdure_server::ServerConfig::default(),
    )
}

/// Percent-encodes every byte outside `keep` and the unreserved set.
fn encode(raw: &[u8], keep: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for &b in raw {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The request an input stands for, or `None` when it is not one to send.
pub fn request(data: &[u8]) -> Option<Request<Body>> {
    let (&m, rest) = data.split_first()?;
    let method = METHODS[usize::from(m) % METHODS.len()].clone();
    let (path, rest) = crate::split_once(rest, b'\n');
    let (query, rest) = crate::split_once(rest, b'\n');
    let (content_type, body) = crate::split_once(rest, b'\n');
    let query = encode(query, b"&=%+,:");
    if perdure_server::fuzzing::query(query.as_bytes())
        .keys()
        .any(|k| k == "timeout")
    {
        return None;
    }
    let mut uri = format!("{BASE_PATH}/{}", encode(path, b"/%@:"));
    if !query.is_empty() {
        uri.push('?');
        uri.push_str(&query);
    }
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "localhost");
    if !content_type.is_empty() {
        builder = builder.header(header::CONTENT_TYPE, content_type);
    }
    builder.body(Body::from(body.to_vec())).ok()
}

/// Sends one request.
pub fn run(data: &[u8]) -> bool {
    let Some(req) = request(data) else {
        return false;
    };
    APP.with(|cell| {
        let mut slot = cell.borrow_mut();
        let fresh = match slot.as_ref() {
            Some(app) => app.served >= RENEW_AFTER,
            None => true,
        };
        if fresh {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => panic!("cannot start a runtime for the router: {e}"),
            };
            let router = runtime.block_on(async { new_router() });
            *slot = Some(App {
                runtime,
                router,
                served: 0,
            });
        }
        let Some(app) = slot.as_mut() else {
            return false;
        };
        app.served += 1;
        let router = app.router.clone();
        app.runtime.block_on(send(router, req))
    })
}

async fn send(router: axum::Router, req: Request<Body>) -> bool {
    let head = req.method() == Method::HEAD;
    let what = format!("{} {}", req.method(), req.uri());
    let resp = match router.oneshot(req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    };
    let status = resp.status();
    let json_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let bytes = match axum::body::to_bytes(resp.into_body(), usize::MAX).await {
        Ok(b) => b,
        Err(e) => panic!("{what}: the answer's body cannot be read: {e}"),
    };
    assert!(
        !status.is_server_error(),
        "{what}: {status} {}",
        String::from_utf8_lossy(&bytes)
    );
    if !bytes.is_empty() && !head {
        assert!(
            json_type,
            "{what}: {status} with a body that is not typed JSON"
        );
        let value: serde_json::Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => panic!("{what}: {status} with a body that is not JSON ({e})"),
        };
        if !status.is_success() {
            assert!(
                value.get("error").is_some_and(|e| e.is_string())
                    && value.get("message").is_some_and(|m| m.is_string()),
                "{what}: {status} without an error and a message: {value}"
            );
        }
    }
    status.is_success() || status == StatusCode::NOT_FOUND
}

fn req(method: u8, lines: &[&str]) -> Vec<u8> {
    let mut out = vec![method];
    out.extend_from_slice(lines.join("\n").as_bytes());
    out
}

/// One request per route, and some the door refuses.
pub fn seeds() -> Vec<Vec<u8>> {
    // Method bytes: 0 GET, 1 POST, 2 DELETE, 3 PUT, 4 PATCH, 5 HEAD.
    vec![
        req(1, &["orchestrators/HelloCities", "", "application/json", "{\"city\":\"Tokyo\"}"]),
        req(1, &["orchestrators/HelloCities/order-1", "", "", ""]),
        req(0, &["instances/order-1", "showHistory=true&showHistoryOutput=true&showInput=false", "", ""]),
        req(0, &["instances", "runtimeStatus=Running,Pending&top=2&createdTimeFrom=2024-01-31T12:00:00Z&showInput=1", "", ""]),
        req(2, &["instances", "createdTimeFrom=2024-01-31T12:00:00Z&runtimeStatus=Completed", "", ""]),
        req(2, &["instances/order-1", "", "", ""]),
        req(1, &["instances/order-1/raiseEvent/Approval", "", "application/json", "true"]),
        req(1, &["instances/order-1/terminate", "reason=why&recursive=true", "", ""]),
        req(1, &["instances/order-1/suspend", "reason=pause", "", ""]),
        req(1, &["instances/order-1/resume", "reason=go", "", ""]),
        req(1, &["instances/order-1/rewind", "reason=again", "", ""]),
        req(1, &["instances/order-1/restart", "restartWithNewInstanceId=true", "", ""]),
        req(1, &["entities/Counter/k", "op=add", "application/json", "1"]),
        req(0, &["entities/Counter/k", "", "", ""]),
        req(0, &["entities", "fetchState=true&top=5", "", ""]),
        req(0, &["entities/Counter", "", "", ""]),
        req(1, &["orchestrators/HelloCities", "taskHub=other", "text/plain", "x"]),
        req(3, &["instances/order-1", "", "", ""]),
    ]
}
