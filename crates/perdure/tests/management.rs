//! Instance management from the Rust client: suspend/resume, recursive
//! terminate, restart, rewind, purge, list with paging, scheduled start.

mod common;
use common::stores;

use perdure::{
    Client, ClientError, Failure, InstanceQuery, OrchestrationContext, PurgeFilter, Registry,
    RuntimeStatus, TaskError, Worker, WorkerOptions,
};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Counters {
    prepared: AtomicU32,
    flaky: AtomicU32,
}

fn registry(c: Arc<Counters>) -> Registry {
    let mut r = Registry::new();
    let c1 = c.clone();
    r.add_activity("Prepare", move |_ctx, ()| {
        let c = c1.clone();
        async move { Ok(c.prepared.fetch_add(1, Ordering::SeqCst) + 1) }
    });
    let c2 = c.clone();
    r.add_activity("FailFirstTime", move |_ctx, ()| {
        let c = c2.clone();
        async move {
            if c.flaky.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(Failure::new("Transient", "first call fails"))
            } else {
                Ok("recovered".to_string())
            }
        }
    });
    r.add_orchestrator("Rewindable", |ctx: OrchestrationContext| async move {
        let prepared: u32 = ctx.call_activity("Prepare", ()).await?;
        let result: String = ctx.call_activity("FailFirstTime", ()).await?;
        Ok(json!({ "prepared": prepared, "result": result }))
    });
    r.add_orchestrator("TwoEvents", |ctx: OrchestrationContext| async move {
        let a: String = ctx.wait_for_external_event("a").await?;
        let b: String = ctx.wait_for_external_event("b").await?;
        Ok(format!("{a}{b}"))
    });
    r.add_orchestrator("Forever", |ctx: OrchestrationContext| async move {
        let v: Value = ctx.wait_for_external_event("never").await?;
        Ok(v)
    });
    r.add_orchestrator("ParentOfForever", |ctx: OrchestrationContext| async move {
        let me = ctx.instance_id();
        let r: Result<Value, TaskError> = ctx
            .call_sub_orchestrator_with_id("Forever", Some(&format!("{me}-child")), ())
            .await;
        Ok(r.is_ok())
    });
    r.add_orchestrator("Echo", |ctx: OrchestrationContext| async move {
        let v: Value = ctx.get_input()?;
        Ok(v)
    });
    r.add_orchestrator("ParentOfEcho", |ctx: OrchestrationContext| async move {
        let v: Value = ctx.call_sub_orchestrator("Echo", 5).await?;
        Ok(v)
    });
    r
}

async fn until(
    c: &Client,
    id: &str,
    what: &str,
    f: impl Fn(&perdure::OrchestrationStatus) -> bool,
) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(st) = c.get_status(id, true).await.expect("status") {
            if f(&st) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{id}: never {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn has(st: &perdure::OrchestrationStatus, event: &str) -> bool {
    st.history
        .as_ref()
        .is_some_and(|h| h.iter().any(|e| e.type_name() == event))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_resume_terminate_restart() {
    for (name, store, _dir) in stores().await {
        let w = Worker::start(
            store.clone(),
            registry(Arc::default()),
            WorkerOptions::default(),
        );
        let c = Client::new(store);
        let id = c.start_new("TwoEvents", None, ()).await.unwrap();
        until(&c, &id, "ran", |st| {
            st.runtime_status == RuntimeStatus::Running
        })
        .await;
        c.suspend(&id, "maintenance").await.unwrap();
        until(&c, &id, "suspended", |st| {
            st.runtime_status == RuntimeStatus::Suspended
        })
        .await;
        c.raise_event(&id, "a", "x").await.unwrap();
        c.raise_event(&id, "b", "y").await.unwrap();
        // Give a wrong implementation every chance to process them.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let st = c.get_status(&id, true).await.unwrap().unwrap();
        assert_eq!(st.runtime_status, RuntimeStatus::Suspended, "{name}");
        assert!(
            !has(&st, "EventRaised"),
            "{name}: events wait while suspended"
        );
        c.resume(&id, "done").await.unwrap();
        let st = c.wait_for_completion(&id, WAIT).await.unwrap();
        assert_eq!(
            st.output_as::<String>().unwrap(),
            "xy",
            "{name}: the kept events are processed"
        );
        let full = c.get_status(&id, true).await.unwrap().unwrap();
        assert!(has(&full, "ExecutionSuspended") && has(&full, "ExecutionResumed"));
        assert!(matches!(
            c.suspend(&id, "").await,
            Err(ClientError::AlreadyFinished { .. })
        ));

        // Recursive terminate reaches the child.
        let pid = c.start_new("ParentOfForever", None, ()).await.unwrap();
        let child = format!("{pid}-child");
        until(&c, &child, "started", |st| {
            st.runtime_status == RuntimeStatus::Running
        })
        .await;
        c.terminate_with_options(&pid, "stop all", true)
            .await
            .unwrap();
        assert_eq!(
            c.wait_for_completion(&pid, WAIT)
                .await
                .unwrap()
                .runtime_status,
            RuntimeStatus::Terminated
        );
        assert_eq!(
            c.wait_for_completion(&child, WAIT)
                .await
                .unwrap()
                .runtime_status,
            RuntimeStatus::Terminated,
            "{name}"
        );

        // Restart: same id and a new one.
        let eid = c
            .start_new("Echo", Some("echo-1"), json!({ "k": 1 }))
            .await
            .unwrap();
        c.wait_for_completion(&eid, WAIT).await.unwrap();
        assert_eq!(c.restart(&eid, false).await.unwrap(), "echo-1");
        assert_eq!(
            c.wait_for_completion("echo-1", WAIT)
                .await
                .unwrap()
                .output_as::<Value>()
                .unwrap(),
            json!({ "k": 1 })
        );
        let other = c.restart(&eid, true).await.unwrap();
        assert_ne!(other, "echo-1");
        assert_eq!(
            c.wait_for_completion(&other, WAIT)
                .await
                .unwrap()
                .output_as::<Value>()
                .unwrap(),
            json!({ "k": 1 })
        );
        let running = c.start_new("Forever", None, ()).await.unwrap();
        assert!(matches!(
            c.restart(&running, false).await,
            Err(ClientError::StillRunning { .. })
        ));
        assert!(matches!(
            c.restart("missing", false).await,
            Err(ClientError::NotFound(_))
        ));
        c.terminate(&running, ()).await.unwrap();
        w.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewind_retries_failed_steps_only() {
    for (name, store, _dir) in stores().await {
        let counters = Arc::new(Counters::default());
        let w = Worker::start(
            store.clone(),
            registry(counters.clone()),
            WorkerOptions::default(),
        );
        let c = Client::new(store);
        let id = c.start_new("Rewindable", None, ()).await.unwrap();
        let st = c.wait_for_completion(&id, WAIT).await.unwrap();
        assert_eq!(st.runtime_status, RuntimeStatus::Failed, "{name}");
        let ok = c.start_new("Echo", None, 1).await.unwrap();
        c.wait_for_completion(&ok, WAIT).await.unwrap();
        assert!(matches!(
            c.rewind(&ok, "no").await,
            Err(ClientError::NotFailed { .. })
        ));
        c.rewind(&id, "fixed the bug").await.unwrap();
        until(&c, &id, "rewound", |st| has(st, "ExecutionRewound")).await;
        let st = c.wait_for_completion(&id, WAIT).await.unwrap();
        assert_eq!(
            st.runtime_status,
            RuntimeStatus::Completed,
            "{name}: {st:?}"
        );
        assert_eq!(
            st.output_as::<Value>().unwrap(),
            json!({ "prepared": 1, "result": "recovered" })
        );
        assert_eq!(
            counters.prepared.load(Ordering::SeqCst),
            1,
            "{name}: the completed step was not re-run"
        );
        assert_eq!(
            counters.flaky.load(Ordering::SeqCst),
            2,
            "{name}: the failed step ran again"
        );
        let h = c.get_status(&id, true).await.unwrap().unwrap();
        assert!(has(&h, "ExecutionRewound") && !has(&h, "TaskFailed"));
        w.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_purge_and_scheduled_start() {
    for (name, store, _dir) in stores().await {
        let w = Worker::start(
            store.clone(),
            registry(Arc::default()),
            WorkerOptions::default(),
        );
        let c = Client::new(store);
        for i in 0..7 {
            let id = c
                .start_new("Echo", Some(&format!("batch-{i}")), i)
                .await
                .unwrap();
            c.wait_for_completion(&id, WAIT).await.unwrap();
        }
        let live = c
            .start_new("Forever", Some("batch-live"), ())
            .await
            .unwrap();
        let mut q = InstanceQuery {
            instance_id_prefix: Some("batch-".into()),
            page_size: 3,
            ..InstanceQuery::default()
        };
        let mut ids = Vec::new();
        let mut pages = 0;
        loop {
            let page = c.list_instances(&q, false).await.unwrap();
            pages += 1;
            assert!(
                page.instances.iter().all(|s| s.input.is_none()),
                "inputs left out"
            );
            ids.extend(page.instances.into_iter().map(|s| s.instance_id));
            match page.continuation_token {
                Some(t) => q.continuation = Some(t),
                None => break,
            }
        }
        assert_eq!((ids.len(), pages), (8, 3), "{name}: {ids:?}");
        let q = InstanceQuery {
            statuses: vec![RuntimeStatus::Running, RuntimeStatus::Pending],
            page_size: 100,
            ..InstanceQuery::default()
        };
        let running = c.list_instances(&q, true).await.unwrap();
        assert_eq!(
            running
                .instances
                .iter()
                .map(|s| s.instance_id.as_str())
                .collect::<Vec<_>>(),
            ["batch-live"],
            "{name}"
        );

        assert!(matches!(
            c.purge_instance_history(&live).await,
            Err(ClientError::StillRunning { .. })
        ));
        assert_eq!(c.purge_instance_history("batch-0").await.unwrap(), 1);
        assert_eq!(c.purge_instance_history("batch-0").await.unwrap(), 0);
        assert!(c.get_status("batch-0", false).await.unwrap().is_none());
        let p = c
            .start_new("ParentOfEcho", Some("parent-1"), ())
            .await
            .unwrap();
        c.wait_for_completion(&p, WAIT).await.unwrap();
        assert_eq!(
            c.purge_instance_history_with_options(&p, true)
                .await
                .unwrap(),
            2,
            "{name}: parent and child"
        );
        let n = c
            .purge_instances(&PurgeFilter {
                statuses: vec![RuntimeStatus::Completed],
                ..PurgeFilter::default()
            })
            .await
            .unwrap();
        assert!(n >= 6, "{name}: purged {n}");
        assert!(
            c.get_status("batch-live", false).await.unwrap().is_some(),
            "running instances are kept"
        );
        c.terminate(&live, ()).await.unwrap();

        let at = chrono::Utc::now() + chrono::Duration::milliseconds(800);
        let sid = c
            .start_new_at("Echo", None, "later", Some(at))
            .await
            .unwrap();
        let st = c.wait_for_completion(&sid, WAIT).await.unwrap();
        let h = c
            .get_status(&sid, true)
            .await
            .unwrap()
            .unwrap()
            .history
            .unwrap();
        assert!(
            h[0].timestamp >= at,
            "{name}: started at {} before {at}",
            h[0].timestamp
        );
        assert_eq!(st.output_as::<String>().unwrap(), "later");
        w.shutdown().await;
    }
}

/// A process that exports no spans keeps the caller's trace context as it
/// is, so the worker that runs the instance (and may export) continues it;
/// the activities it schedules carry that trace too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_trace_context_is_kept_without_an_exporter() {
    let store = perdure::open_store("memory://").await.expect("store");
    let parent = perdure::TraceContext {
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
        tracestate: Some("k=v".into()),
    };
    let client = Client::new(store.clone()).with_trace_parent(parent.clone());
    let mut r = Registry::new();
    r.add_activity("Echo", |_ctx, x: u32| async move { Ok(x) });
    r.add_orchestrator("Traced", |ctx: OrchestrationContext| async move {
        Ok(ctx.call_activity::<u32>("Echo", 7).await?)
    });
    let worker = Worker::start(store, r, WorkerOptions::default());
    let id = client.start_new("Traced", None, ()).await.expect("start");
    client.wait_for_completion(&id, WAIT).await.expect("done");
    let history = client
        .get_status(&id, true)
        .await
        .expect("status")
        .expect("exists")
        .history
        .expect("history");
    let started = history.iter().find_map(|e| match &e.kind {
        perdure::EventKind::ExecutionStarted { trace_context, .. } => trace_context.clone(),
        _ => None,
    });
    assert_eq!(started, Some(parent));
    let task = history.iter().find_map(|e| match &e.kind {
        perdure::EventKind::TaskScheduled { trace_context, .. } => trace_context.clone(),
        _ => None,
    });
    let task = task
        .expect("the activity carries the trace")
        .parse()
        .expect("valid");
    assert_eq!(
        format!("{:032x}", task.trace_id),
        "0af7651916cd43dd8448eb211c80319c"
    );
    worker.shutdown().await;
}

/// Tags given at the start stay with the instance on every store: through
/// continue-as-new to its completion, and into a restart under a new id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_stay_through_continue_as_new_and_restart() {
    let tags: perdure::Tags = [("env", "test"), ("team", "payments")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (name, store, _dir) in stores().await {
        let client = Client::new(store.clone());
        let mut r = Registry::new();
        r.add_orchestrator("CountTo2", |ctx: OrchestrationContext| async move {
            let n: u32 = ctx.get_input()?;
            if n < 2 {
                ctx.continue_as_new(n + 1);
            }
            Ok(n)
        });
        let worker = Worker::start(store, r, WorkerOptions::default());
        let options = perdure::StartOptions {
            tags: tags.clone(),
            ..Default::default()
        };
        let id = client
            .start_new_with("CountTo2", 0, options)
            .await
            .expect("start");
        let done = client.wait_for_completion(&id, WAIT).await.expect("done");
        assert_eq!(done.output.as_deref(), Some("2"), "{name}");
        assert_eq!(done.tags, tags, "{name}: tags after continue-as-new");
        let again = client.restart(&id, true).await.expect("restart");
        let st = client
            .wait_for_completion(&again, WAIT)
            .await
            .expect("done");
        assert_eq!(st.tags, tags, "{name}: the restart keeps the tags");
        worker.shutdown().await;
    }
}
