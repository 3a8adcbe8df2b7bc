//! What the HTTP door refuses before any handler runs, over a real socket:
//! on a keyless server, requests for a host that is not loopback (DNS
//! rebinding) and requests from another origin (a web page the developer
//! opened); everywhere, bodies that claim a media type other than JSON;
//! with a key, requests without it, and keys that need percent-decoding.
//! Each case is one row: method, path, headers, body, expected status and
//! error code.

mod support;
use support::{body, Server};

use reqwest::{Method, StatusCode};

struct Case {
    what: &'static str,
    method: Method,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Option<&'static str>,
    status: StatusCode,
    error: Option<&'static str>,
}

const START: &str = "/orchestrators/HelloCities";

fn case(
    what: &'static str,
    method: Method,
    path: &'static str,
    headers: &[(&'static str, &str)],
    body: Option<&'static str>,
    status: StatusCode,
    error: Option<&'static str>,
) -> Case {
    Case {
        what,
        method,
        path,
        headers: headers.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        body,
        status,
        error,
    }
}

/// Sends each case to `s` (a path starting with `/` outside the API is
/// taken from the server's root) and checks its status and error code.
async fn run(s: &Server, cases: &[Case]) {
    let root = s
        .base
        .trim_end_matches(perdure_server::BASE_PATH)
        .to_string();
    for c in cases {
        let outside_api = ["/metrics", "/dashboard/"]
            .iter()
            .any(|p| c.path.starts_with(p));
        let url = if c.path == "/" || c.path.starts_with("/?") || outside_api {
            format!("{root}{}", c.path)
        } else {
            s.url(c.path)
        };
        let mut req = s.http.request(c.method.clone(), &url);
        for (k, v) in &c.headers {
            req = req.header(*k, v);
        }
        if let Some(b) = c.body {
            req = req.body(b);
        }
        let r = req.send().await.expect(c.what);
        assert_eq!(r.status(), c.status, "{}", c.what);
        if let Some(code) = c.error {
            assert_eq!(body(r).await["error"], code, "{}", c.what);
        }
    }
}

const JSON: &[(&str, &str)] = &[("content-type", "application/json")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyless_server_answers_only_loopback_hosts() {
    let s = Server::start(None).await;
    run(
        &s,
        &[
            case(
                "a rebinding page's host",
                Method::GET,
                "/instances",
                &[("host", "evil.example:7071")],
                None,
                StatusCode::FORBIDDEN,
                Some("ForbiddenHost"),
            ),
            case(
                "a rebinding page reads metrics",
                Method::GET,
                "/metrics",
                &[("host", "evil.example")],
                None,
                StatusCode::FORBIDDEN,
                Some("ForbiddenHost"),
            ),
            case(
                "a rebinding page reads the dashboard",
                Method::GET,
                "/",
                &[("host", "attacker.example")],
                None,
                StatusCode::FORBIDDEN,
                Some("ForbiddenHost"),
            ),
            case(
                "a LAN address",
                Method::GET,
                "/instances",
                &[("host", "192.168.1.20:7071")],
                None,
                StatusCode::FORBIDDEN,
                Some("ForbiddenHost"),
            ),
            case(
                "localhost",
                Method::GET,
                "/instances",
                &[("host", "localhost:7071")],
                None,
                StatusCode::OK,
                None,
            ),
            case(
                "IPv6 loopback",
                Method::GET,
                "/instances",
                &[("host", "[::1]:7071")],
                None,
                StatusCode::OK,
                None,
            ),
        ],
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyless_server_answers_only_its_own_pages() {
    let s = Server::start(None).await;
    // The server's own origin is its Host, as the browser spells it.
    let host = s
        .base
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let own = format!("http://{host}");
    let own_headers = [
        ("origin", own.as_str()),
        ("content-type", "application/json"),
    ];
    run(
        &s,
        &[
            case(
                "another site starts an instance",
                Method::POST,
                START,
                &[("origin", "https://evil.example")],
                None,
                StatusCode::FORBIDDEN,
                Some("ForbiddenOrigin"),
            ),
            case(
                "another site, with a JSON body",
                Method::POST,
                START,
                &[
                    ("origin", "http://evil.example"),
                    ("content-type", "application/json"),
                ],
                Some("null"),
                StatusCode::FORBIDDEN,
                Some("ForbiddenOrigin"),
            ),
            case(
                "a sandboxed page (origin null)",
                Method::POST,
                START,
                &[("origin", "null")],
                None,
                StatusCode::FORBIDDEN,
                Some("ForbiddenOrigin"),
            ),
            case(
                "another port on localhost",
                Method::POST,
                START,
                &[("origin", "http://127.0.0.1:1")],
                None,
                StatusCode::FORBIDDEN,
                Some("ForbiddenOrigin"),
            ),
            case(
                "a read from another site",
                Method::GET,
                "/instances",
                &[("origin", "https://evil.example")],
                None,
                StatusCode::FORBIDDEN,
                Some("ForbiddenOrigin"),
            ),
            case(
                "the dashboard itself",
                Method::POST,
                START,
                &own_headers,
                Some("null"),
                StatusCode::ACCEPTED,
                None,
            ),
            case(
                "a local tool (no origin)",
                Method::POST,
                START,
                JSON,
                Some("null"),
                StatusCode::ACCEPTED,
                None,
            ),
        ],
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_are_not_json_are_refused() {
    let s = Server::start(None).await;
    run(
        &s,
        &[
            case(
                "text/plain (no preflight)",
                Method::POST,
                START,
                &[("content-type", "text/plain")],
                Some("null"),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Some("UnsupportedMediaType"),
            ),
            case(
                "a form",
                Method::POST,
                START,
                &[("content-type", "application/x-www-form-urlencoded")],
                Some("a=1"),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Some("UnsupportedMediaType"),
            ),
            case(
                "multipart",
                Method::POST,
                "/instances/x/raiseEvent/E",
                &[("content-type", "multipart/form-data; boundary=b")],
                Some("--b--"),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Some("UnsupportedMediaType"),
            ),
            case(
                "JSON with a charset",
                Method::POST,
                START,
                &[("content-type", "application/json; charset=utf-8")],
                Some("null"),
                StatusCode::ACCEPTED,
                None,
            ),
            case(
                "a +json type",
                Method::POST,
                START,
                &[("content-type", "application/problem+json")],
                Some("null"),
                StatusCode::ACCEPTED,
                None,
            ),
            case(
                "no type at all",
                Method::POST,
                START,
                &[],
                Some("null"),
                StatusCode::ACCEPTED,
                None,
            ),
        ],
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_with_base64_characters_works_in_every_form() {
    let s = Server::start(Some("a+b/c=")).await;
    run(
        &s,
        &[
            case(
                "no key",
                Method::GET,
                "/instances",
                &[],
                None,
                StatusCode::UNAUTHORIZED,
                Some("Unauthorized"),
            ),
            case(
                "header",
                Method::GET,
                "/instances",
                &[("authorization", "Bearer a+b/c=")],
                None,
                StatusCode::OK,
                None,
            ),
            case(
                "percent-encoded code",
                Method::GET,
                "/instances?code=a%2Bb%2Fc%3D",
                &[],
                None,
                StatusCode::OK,
                None,
            ),
            case(
                "a '+' read as a space is another key",
                Method::GET,
                "/instances?code=a+b/c=",
                &[],
                None,
                StatusCode::UNAUTHORIZED,
                Some("Unauthorized"),
            ),
            case(
                "a prefix of the key",
                Method::GET,
                "/instances",
                &[("authorization", "Bearer a+b/c")],
                None,
                StatusCode::UNAUTHORIZED,
                Some("Unauthorized"),
            ),
            case(
                "with a key, any host",
                Method::GET,
                "/instances",
                &[
                    ("authorization", "Bearer a+b/c="),
                    ("host", "perdure.internal:7071"),
                ],
                None,
                StatusCode::OK,
                None,
            ),
            case(
                "the dashboard's script needs none",
                Method::GET,
                "/dashboard/app.js",
                &[],
                None,
                StatusCode::OK,
                None,
            ),
        ],
    )
    .await;
    // A management URL the server hands out works as it is.
    let r = s
        .http
        .post(s.url(START))
        .header("authorization", "Bearer a+b/c=")
        .send()
        .await
        .expect("start");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let status_url = body(r).await["statusQueryGetUri"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let r = s.http.get(&status_url).send().await.expect("status");
    assert!(r.status().is_success(), "{status_url}: {}", r.status());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_key_reads_and_changes_nothing() {
    let s = Server::start_config(perdure_server::ServerConfig {
        api_key: Some("write+key=".into()),
        read_key: Some("read/key=".into()),
        ..Default::default()
    })
    .await;
    const READ: &[(&str, &str)] = &[("authorization", "Bearer read/key=")];
    const READ_JSON: &[(&str, &str)] = &[
        ("authorization", "Bearer read/key="),
        ("content-type", "application/json"),
    ];
    run(
        &s,
        &[
            case(
                "lists",
                Method::GET,
                "/instances",
                READ,
                None,
                StatusCode::OK,
                None,
            ),
            case(
                "scrapes metrics",
                Method::GET,
                "/metrics",
                READ,
                None,
                StatusCode::OK,
                None,
            ),
            case(
                "opens the dashboard by code",
                Method::GET,
                "/?code=read%2Fkey%3D",
                &[],
                None,
                StatusCode::OK,
                None,
            ),
            case(
                "starts",
                Method::POST,
                START,
                READ_JSON,
                Some("null"),
                StatusCode::FORBIDDEN,
                Some("ReadOnlyKey"),
            ),
            case(
                "terminates",
                Method::POST,
                "/instances/any/terminate",
                READ,
                None,
                StatusCode::FORBIDDEN,
                Some("ReadOnlyKey"),
            ),
            case(
                "purges",
                Method::DELETE,
                "/instances/any",
                READ,
                None,
                StatusCode::FORBIDDEN,
                Some("ReadOnlyKey"),
            ),
            case(
                "a wrong key",
                Method::GET,
                "/instances",
                &[("authorization", "Bearer read/key")],
                None,
                StatusCode::UNAUTHORIZED,
                Some("Unauthorized"),
            ),
        ],
    )
    .await;
    // The status of a running instance, read with the read key, hands out
    // URLs that carry the read key, never the API key.
    // (With its input, so that it waits for its approval: without, it
    // fails at once, and may have by the time its status is read.)
    let r = s
        .http
        .post(s.url("/orchestrators/ApprovalWorkflow/waiting"))
        .header("authorization", "Bearer write+key=")
        .header("content-type", "application/json")
        .body(r#"{"request": "guard", "timeout_secs": 3600}"#)
        .send()
        .await
        .expect("start");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = s
        .http
        .get(s.url("/instances/waiting"))
        .header("authorization", "Bearer read/key=")
        .send()
        .await
        .expect("status");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(location.contains("code=read%2Fkey%3D"), "{location}");
    assert!(!location.contains("write"), "{location}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_forbids_inline_code_and_framing() {
    let s = Server::start(None).await;
    let root = s
        .base
        .trim_end_matches(perdure_server::BASE_PATH)
        .to_string();
    for path in ["/", "/dashboard/app.js", "/dashboard/style.css"] {
        let r = s
            .http
            .get(format!("{root}{path}"))
            .send()
            .await
            .expect(path);
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap_or_default();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
    }
    s.stop().await;
}
