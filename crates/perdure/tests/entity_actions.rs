//! What a Rust entity operation sends (signals to entities, new
//! orchestrations) on every store: delivered when the operation succeeds,
//! dropped with its state change when it fails, and continuing the trace of
//! the request it served; and the trace context a raised event carries.

mod common;
use common::stores;

use perdure::{
    Client, EntityContext, EntityId, EventKind, Failure, OrchestrationContext, Registry,
    RuntimeStatus, TraceContext, Worker, WorkerOptions,
};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn id(name: &str, key: &str) -> EntityId {
    EntityId::new(name, key).expect("valid entity id")
}

/// `Dispatcher`: `forward` signals the counter, `launch` starts `Report`
/// as the instance its input names; `launch-then-fail` does the same and
/// then fails.
async fn dispatcher(ctx: EntityContext) -> Result<Value, Failure> {
    match ctx.operation() {
        "forward" => {
            let by: i64 = ctx.get_input()?;
            ctx.signal_entity(&id("Counter", "c"), "add", by)?;
            Ok(Value::Null)
        }
        "launch" | "launch-then-fail" => {
            let instance: String = ctx.get_input()?;
            let started = ctx.start_new_orchestration("Report", Some(&instance), 7)?;
            ctx.signal_entity(&id("Counter", "c"), "add", 100)?;
            if ctx.operation() == "launch-then-fail" {
                return Err(Failure::new("Refused", "changed its mind"));
            }
            Ok(json!(started))
        }
        "launch-bad-id" => {
            ctx.start_new_orchestration("Report", Some(""), ())?;
            Ok(Value::Null)
        }
        other => Err(Failure::new("UnknownOperation", other.to_string())),
    }
}

async fn counter(ctx: EntityContext) -> Result<Value, Failure> {
    let n: i64 = ctx.get_state_or_default()?;
    let by: i64 = ctx.get_input()?;
    ctx.set_state(n + by)?;
    Ok(json!(n + by))
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.add_entity("Dispatcher", dispatcher);
    r.add_entity("Counter", counter);
    r.add_orchestrator("Report", |ctx: OrchestrationContext| async move {
        let n: i64 = ctx.get_input()?;
        Ok(n * 6)
    });
    r.add_orchestrator("LaunchBadId", |ctx: OrchestrationContext| async move {
        match ctx
            .call_entity::<Value>(&id("Dispatcher", "d"), "launch-bad-id", ())
            .await
        {
            Err(e) => Ok(e
                .failure()
                .map(|f| f.error_type.clone())
                .unwrap_or_default()),
            Ok(_) => Ok("started".to_string()),
        }
    });
    r.add_orchestrator("Listen", |ctx: OrchestrationContext| async move {
        let v: Value = ctx.wait_for_external_event("go").await?;
        Ok(v)
    });
    r
}

async fn until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + WAIT;
    while !f().await {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn counter_is(client: &Client, want: i64) -> bool {
    client
        .read_entity_state::<i64>(&id("Counter", "c"))
        .await
        .ok()
        .flatten()
        == Some(want)
}

/// Waits for instance `iid` (which an entity starts later) to exist and
/// finish.
async fn finished(client: &Client, iid: &str) -> perdure::OrchestrationStatus {
    until(&format!("{iid} exists"), || async {
        matches!(client.get_status(iid, false).await, Ok(Some(_)))
    })
    .await;
    client.wait_for_completion(iid, WAIT).await.expect(iid)
}

fn trace_id(t: &TraceContext) -> &str {
    &t.traceparent[3..35]
}

/// Runs `body` against a worker and a client on every store.
async fn each_store<F, Fut>(body: F)
where
    F: Fn(&'static str, Client, Arc<dyn perdure::Store>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for (name, store, _dir) in stores().await {
        let worker = Worker::start(store.clone(), registry(), WorkerOptions::default());
        body(name, Client::new(store.clone()), store).await;
        worker.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entity_signal_reaches_another_entity() {
    each_store(|name, client, _| async move {
        let d = id("Dispatcher", "d");
        client.signal_entity(&d, "forward", 3).await.expect(name);
        client.signal_entity(&d, "forward", 4).await.expect(name);
        until(&format!("{name}: counter at 7"), || counter_is(&client, 7)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entity_starts_an_orchestration_that_runs() {
    each_store(|name, client, _| async move {
        let d = id("Dispatcher", "d");
        client
            .signal_entity(&d, "launch", "report-1")
            .await
            .expect(name);
        let st = finished(&client, "report-1").await;
        assert_eq!(st.runtime_status, RuntimeStatus::Completed, "{name}");
        assert_eq!(st.output_as::<i64>().expect(name), 42, "{name}");
        until(&format!("{name}: its signal too"), || {
            counter_is(&client, 100)
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_operation_sends_nothing() {
    each_store(|name, client, _| async move {
        let d = id("Dispatcher", "d");
        client
            .signal_entity(&d, "launch-then-fail", "report-2")
            .await
            .expect(name);
        client.signal_entity(&d, "forward", 1).await.expect(name);
        // The later signal ran, so the failed operation's batch committed.
        until(&format!("{name}: counter at 1"), || counter_is(&client, 1)).await;
        assert!(
            client
                .get_status("report-2", false)
                .await
                .expect(name)
                .is_none(),
            "{name}: the failed operation's start was dropped"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_instance_id_fails_the_operation() {
    each_store(|name, client, _| async move {
        let iid = client.start_new("LaunchBadId", None, ()).await.expect(name);
        let st = client.wait_for_completion(&iid, WAIT).await.expect(name);
        assert_eq!(st.runtime_status, RuntimeStatus::Completed, "{name}");
        assert_eq!(
            st.output_as::<String>().expect(name),
            "InvalidInstanceId",
            "{name}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestration_an_entity_starts_continues_the_signal_trace() {
    each_store(|name, client, store| async move {
        let parent = TraceContext::from_w3c(PARENT, None).expect("valid traceparent");
        client
            .with_trace_parent(parent.clone())
            .signal_entity(&id("Dispatcher", "d"), "launch", "report-3")
            .await
            .expect(name);
        finished(&client, "report-3").await;
        let history = store.read_history("report-3").await.expect(name);
        let started = history.iter().find_map(|e| match &e.kind {
            EventKind::ExecutionStarted { trace_context, .. } => trace_context.clone(),
            _ => None,
        });
        let started = started.unwrap_or_else(|| panic!("{name}: no trace context"));
        assert_eq!(trace_id(&started), trace_id(&parent), "{name}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raised_event_carries_the_raisers_trace() {
    each_store(|name, client, store| async move {
        let parent = TraceContext::from_w3c(PARENT, None).expect("valid traceparent");
        let iid = client.start_new("Listen", None, ()).await.expect(name);
        client
            .with_trace_parent(parent.clone())
            .raise_event(&iid, "go", 1)
            .await
            .expect(name);
        client.wait_for_completion(&iid, WAIT).await.expect(name);
        let history = store.read_history(&iid).await.expect(name);
        let raised = history.iter().find_map(|e| match &e.kind {
            EventKind::EventRaised { trace_context, .. } => trace_context.clone(),
            _ => None,
        });
        let raised = raised.unwrap_or_else(|| panic!("{name}: no trace context"));
        assert_eq!(trace_id(&raised), trace_id(&parent), "{name}");
    })
    .await;
}
