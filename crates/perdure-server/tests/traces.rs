//! Traces end to end: a server exporting over OTLP to a receiver this test
//! runs, an orchestration started and raised through the HTTP API with a
//! W3C `traceparent`, activities (one failing), a timer, a sub-orchestration
//! and an event sent to another instance, with the replay cache off so that
//! every turn replays. The span tree must hang together under the caller's
//! trace, carry the SDKs' names and attributes, and hold every span once.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use perdure::{Client, Failure, OrchestrationContext, Registry, Worker, WorkerOptions};
use perdure_server::{serve_on, ServerConfig, BASE_PATH};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref()?.value.clone());
            assert_eq!(service, Some(AnyValue::StringValue("perdure".into())));
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.add_activity("Hello", |_ctx, who: String| async move {
        Ok(format!("Hello {who}"))
    });
    r.add_activity("Boom", |_ctx, (): ()| async move {
        Err::<(), _>(Failure::new("Kaboom", "it went off"))
    });
    r.add_orchestrator("Child", |ctx: OrchestrationContext| async move {
        Ok(ctx.call_activity::<String>("Hello", "child").await?)
    });
    r.add_orchestrator("Listener", |ctx: OrchestrationContext| async move {
        Ok(ctx.wait_for_external_event::<u32>("Ping").await?)
    });
    r.add_orchestrator("Parent", |ctx: OrchestrationContext| async move {
        let a = ctx.call_activity::<String>("Hello", "a").await?;
        let b = ctx.call_activity::<String>("Hello", "b").await?;
        let boom = ctx.call_activity::<()>("Boom", ()).await.is_err();
        ctx.create_timer_after(Duration::from_millis(50)).await;
        let c = ctx.call_sub_orchestrator::<String>("Child", ()).await?;
        ctx.send_event("traced-listener", "Ping", 7);
        let go: String = ctx.wait_for_external_event("Go").await?;
        Ok(serde_json::json!([a, b, boom, c, go]))
    });
    r
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn attr(s: &Span, key: &str) -> Option<String> {
    let v = s.attributes.iter().find(|a| a.key == key)?.value.as_ref()?;
    match v.value.as_ref()? {
        AnyValue::StringValue(s) => Some(s.clone()),
        AnyValue::IntValue(i) => Some(i.to_string()),
        other => Some(format!("{other:?}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_form_one_tree_under_the_callers_trace_without_duplicates() -> anyhow::Result<()> {
    std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "50");
    // The receiver.
    let receiver = Receiver::default();
    let otlp = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let otlp_addr = otlp.local_addr()?;
    let svc = TraceServiceServer::new(receiver.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(otlp)),
    );
    let exporter = perdure_server::telemetry::install_otlp(&format!("http://{otlp_addr}"))?;

    // The server, replaying every turn (no cache).
    let dir = tempfile::tempdir()?;
    let store =
        perdure::open_store(&format!("sqlite://{}", dir.path().join("t.db").display())).await?;
    let client = Client::new(store.clone());
    let options = WorkerOptions {
        cache_capacity: 0,
        ..WorkerOptions::default()
    };
    let worker = Worker::start(store, registry(), options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}{BASE_PATH}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = ServerConfig {
        api_key: None,
        known_orchestrators: None,
        ..Default::default()
    };
    tokio::spawn(serve_on(listener, client.clone(), config, async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace}-{caller}-01");
    client
        .start_new("Listener", Some("traced-listener"), ())
        .await?;
    let r = http
        .post(format!("{base}/orchestrators/Parent/traced-parent"))
        .header("traceparent", &traceparent)
        .header("tracestate", "vendor=1")
        .json(&())
        .send()
        .await?;
    assert_eq!(r.status(), 202);
    // Raise Go once the parent waits for it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = client
            .get_status("traced-parent", true)
            .await?
            .expect("parent");
        let waiting = st
            .history
            .iter()
            .flatten()
            .any(|e| matches!(&e.kind, perdure::EventKind::EventSent { .. }));
        if waiting {
            break;
        }
        assert!(Instant::now() < deadline, "the parent never sent its event");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = http
        .post(format!("{base}/instances/traced-parent/raiseEvent/Go"))
        .header("traceparent", &traceparent)
        .json(&"go")
        .send()
        .await?;
    assert_eq!(r.status(), 202);
    let done = client
        .wait_for_completion("traced-parent", Duration::from_secs(30))
        .await?;
    assert_eq!(
        done.output.as_deref(),
        Some(r#"["Hello a","Hello b",true,"Hello child","go"]"#)
    );
    client
        .wait_for_completion("traced-listener", Duration::from_secs(30))
        .await?;

    // Every expected span arrives (the batch goes out every 50 ms).
    let expected: HashMap<&str, usize> = [
        ("create_orchestration:Parent", 1),
        ("orchestration:Parent", 1),
        ("activity:Hello", 6),
        ("activity:Boom", 2),
        ("orchestration:Parent:timer", 1),
        ("orchestration:Child", 2),
        ("orchestration_event:Ping", 1),
        ("orchestration_event:Go", 1),
    ]
    .into_iter()
    .collect();
    let total: usize = expected.values().sum();
    let deadline = Instant::now() + Duration::from_secs(20);
    let spans = loop {
        let spans: Vec<Span> = receiver
            .spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| hex(&s.trace_id) == trace)
            .cloned()
            .collect();
        if spans.len() >= total || Instant::now() > deadline {
            break spans;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Give a duplicate time to show up, then count.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all: Vec<Span> = receiver.spans.lock().unwrap().clone();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for s in all.iter().filter(|s| hex(&s.trace_id) == trace) {
        *counts.entry(s.name.clone()).or_default() += 1;
    }
    let expected_owned: HashMap<String, usize> =
        expected.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    assert_eq!(
        counts, expected_owned,
        "spans by name in the caller's trace"
    );
    assert_eq!(spans.len(), total);

    let by_id: HashMap<String, &Span> = spans.iter().map(|s| (hex(&s.span_id), s)).collect();
    let named = |n: &str| -> Vec<&Span> { spans.iter().filter(|s| s.name == n).collect() };
    let parent_of = |s: &Span| by_id.get(&hex(&s.parent_span_id)).copied();
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind as K;

    let create = named("create_orchestration:Parent")[0];
    assert_eq!(
        hex(&create.parent_span_id),
        caller,
        "the start continues the caller"
    );
    assert_eq!(create.kind, K::Producer as i32);
    assert_eq!(
        attr(create, "durabletask.task.instance_id").as_deref(),
        Some("traced-parent")
    );
    assert_eq!(create.trace_state, "vendor=1");

    let orch = named("orchestration:Parent")[0];
    assert_eq!(orch.kind, K::Server as i32);
    assert_eq!(
        parent_of(orch).map(|p| p.name.as_str()),
        Some("create_orchestration:Parent")
    );
    assert_eq!(
        attr(orch, "durabletask.task.status").as_deref(),
        Some("Completed")
    );
    assert_eq!(
        attr(orch, "durabletask.type").as_deref(),
        Some("orchestration")
    );
    assert!(orch.end_time_unix_nano >= orch.start_time_unix_nano);
    let orch_id = hex(&orch.span_id);

    // Activities: a client span in the orchestration, and the function's
    // server span under it.
    for name in ["activity:Hello", "activity:Boom"] {
        for s in named(name) {
            let p = parent_of(s).expect("an activity span has its parent in the trace");
            if s.kind == K::Client as i32 {
                let is_parent_orch = hex(&p.span_id) == orch_id
                    || p.name == "orchestration:Child" && p.kind == K::Server as i32;
                assert!(is_parent_orch, "{name} client under an orchestration");
                assert!(attr(s, "durabletask.task.task_id").is_some());
            } else {
                assert_eq!(s.kind, K::Server as i32);
                assert_eq!((p.name.as_str(), p.kind), (name, K::Client as i32));
                assert_eq!(
                    attr(s, "durabletask.task.task_id"),
                    attr(p, "durabletask.task.task_id")
                );
            }
        }
    }
    for s in named("activity:Boom") {
        let status = s.status.as_ref().expect("status");
        assert_eq!(status.code, 2, "a failed activity's span is an error");
        assert!(status.message.contains("it went off"), "{}", status.message);
        assert_eq!(
            attr(s, "durabletask.task.status").as_deref(),
            Some("Failed")
        );
    }

    let timer = named("orchestration:Parent:timer")[0];
    assert_eq!(hex(&timer.parent_span_id), orch_id);
    assert_eq!(attr(timer, "durabletask.type").as_deref(), Some("timer"));
    assert!(attr(timer, "durabletask.fire_at").is_some());
    let waited = timer.end_time_unix_nano - timer.start_time_unix_nano;
    assert!(
        waited >= 50_000_000,
        "the timer span covers the wait: {waited} ns"
    );

    // The sub-orchestration: a client span in the parent, the child's own
    // server span under it, and the child's activity under that.
    let child_client = named("orchestration:Child")
        .into_iter()
        .find(|s| s.kind == K::Client as i32)
        .expect("client span");
    let child_server = named("orchestration:Child")
        .into_iter()
        .find(|s| s.kind == K::Server as i32)
        .expect("server span");
    assert_eq!(hex(&child_client.parent_span_id), orch_id);
    assert_eq!(child_server.parent_span_id, child_client.span_id);
    assert!(named("activity:Hello")
        .iter()
        .any(|s| s.parent_span_id == child_server.span_id));

    let ping = named("orchestration_event:Ping")[0];
    assert_eq!(hex(&ping.parent_span_id), orch_id);
    assert_eq!(
        attr(ping, "durabletask.event.target_instance_id").as_deref(),
        Some("traced-listener")
    );
    let go = named("orchestration_event:Go")[0];
    assert_eq!(hex(&go.parent_span_id), caller);
    assert_eq!(go.kind, K::Producer as i32);

    // The listener was started without a trace: its spans form a trace of
    // their own, never the caller's.
    assert!(all
        .iter()
        .any(|s| s.name == "orchestration:Listener" && hex(&s.trace_id) != trace));

    let _ = stop.send(());
    worker.shutdown().await;
    exporter.shutdown();
    Ok(())
}
