//! Durable HTTP against a real local HTTP server started by the test:
//! responses recorded in history (replays never call again), 202 polling on
//! durable timers honouring Retry-After, polling turned off, retries of
//! chosen status codes, timeouts, and bad requests.

mod common;
use common::stores;

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use perdure::{
    Client, DurableHttpRequest, OrchestrationContext, Registry, RetryPolicy, RuntimeStatus, Worker,
    WorkerOptions,
};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Hits {
    hello: AtomicU32,
    polls: AtomicU32,
    flaky: AtomicU32,
}

async fn serve(hits: Arc<Hits>) -> String {
    let h1 = hits.clone();
    let h2 = hits.clone();
    let h3 = hits.clone();
    let app = Router::new()
        .route(
            "/hello",
            get(move |headers: HeaderMap| {
                let hits = h1.clone();
                async move {
                    hits.hello.fetch_add(1, Ordering::SeqCst);
                    let who = headers
                        .get("x-who")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("nobody")
                        .to_string();
                    ([("x-test", "yes")], format!("hello {who}"))
                }
            }),
        )
        .route(
            "/jobs",
            post(|| async {
                (
                    StatusCode::ACCEPTED,
                    [("location", "/jobs/1"), ("retry-after", "1")],
                    "",
                )
            }),
        )
        .route(
            "/jobs/1",
            get(move || {
                let hits = h2.clone();
                async move {
                    if hits.polls.fetch_add(1, Ordering::SeqCst) < 1 {
                        (
                            StatusCode::ACCEPTED,
                            [("location", "/jobs/1"), ("retry-after", "1")],
                            String::new(),
                        )
                            .into_response()
                    } else {
                        (StatusCode::OK, r#"{"done":true}"#).into_response()
                    }
                }
            }),
        )
        .route(
            "/flaky",
            get(move || {
                let hits = h3.clone();
                async move {
                    if hits.flaky.fetch_add(1, Ordering::SeqCst) < 2 {
                        StatusCode::SERVICE_UNAVAILABLE.into_response()
                    } else {
                        "recovered".into_response()
                    }
                }
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.add_orchestrator("CallHttp", |ctx: OrchestrationContext| async move {
        let base: String = ctx.get_input()?;
        let hello = ctx
            .call_http(DurableHttpRequest::get(&format!("{base}/hello")).header("x-who", "perdure"))
            .await?;
        let started = ctx.current_utc_date_time();
        let job = ctx
            .call_http(DurableHttpRequest::post(&format!("{base}/jobs"), "{}"))
            .await?;
        let waited = (ctx.current_utc_date_time() - started).num_milliseconds();
        let raw = ctx
            .call_http(DurableHttpRequest::post(&format!("{base}/jobs"), "{}").without_polling())
            .await?;
        let policy = RetryPolicy::new(Duration::from_millis(100), 5)?;
        let flaky = ctx
            .call_http(DurableHttpRequest::get(&format!("{base}/flaky")).with_retry(policy, &[503]))
            .await?;
        let timeout = ctx
            .call_http(
                DurableHttpRequest::get(&format!("{base}/slow"))
                    .timeout(Duration::from_millis(200)),
            )
            .await
            .err()
            .and_then(|e| e.failure().map(|f| f.error_type.clone()));
        let bad = ctx
            .call_http(DurableHttpRequest::get("not a url"))
            .await
            .err()
            .and_then(|e| e.failure().map(|f| f.error_type.clone()));
        Ok(json!({
            "hello": [hello.status, hello.body, hello.header("X-Test")],
            "job": [job.status, job.json::<Value>()?],
            "waited_ms_at_least_2000": waited >= 2000,
            "raw": [raw.status, raw.header("location").map(|l| l.ends_with("/jobs/1"))],
            "flaky": [flaky.status, flaky.body],
            "timeout": timeout,
            "bad": bad,
        }))
    });
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_http_calls_are_recorded_polled_and_retried() {
    for (name, store, _dir) in stores().await {
        let hits = Arc::new(Hits::default());
        let base = serve(hits.clone()).await;
        // No cache: every turn replays the history, which must not call again.
        let worker = Worker::start(
            store.clone(),
            registry(),
            WorkerOptions {
                cache_capacity: 0,
                ..WorkerOptions::default()
            },
        );
        let client = Client::new(store.clone());
        let began = Instant::now();
        let id = client.start_new("CallHttp", None, &base).await.unwrap();
        let st = client
            .wait_for_completion(&id, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            st.runtime_status,
            RuntimeStatus::Completed,
            "{name}: {st:?}"
        );
        assert_eq!(
            st.output_as::<Value>().unwrap(),
            json!({
                "hello": [200, "hello perdure", "yes"],
                "job": [200, {"done": true}],
                "waited_ms_at_least_2000": true,
                "raw": [202, true],
                "flaky": [200, "recovered"],
                "timeout": "HttpTimeout",
                "bad": "InvalidHttpRequest",
            }),
            "{name}"
        );
        assert!(began.elapsed() >= Duration::from_secs(2));
        assert_eq!(
            hits.hello.load(Ordering::SeqCst),
            1,
            "{name}: replays did not call again"
        );
        assert_eq!(
            hits.polls.load(Ordering::SeqCst),
            2,
            "{name}: polled until done"
        );
        assert_eq!(
            hits.flaky.load(Ordering::SeqCst),
            3,
            "{name}: retried the 503s"
        );
        worker.shutdown().await;
    }
}
