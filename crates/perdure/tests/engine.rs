//! The orchestration context, failures, non-determinism and the client, end
//! to end on the memory and SQLite stores.

mod common;
use common::stores;

use perdure::future::{select, Either};
use perdure::{
    Client, ClientError, Failure, OrchestrationContext, Registry, RetryPolicy, RuntimeStatus,
    TaskError, Worker, WorkerOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn opts() -> WorkerOptions {
    WorkerOptions {
        poll_interval: Duration::from_millis(100),
        ..WorkerOptions::default()
    }
}

#[derive(Serialize, Deserialize)]
struct Order {
    id: u32,
    items: Vec<String>,
}

fn registry(calls: Arc<AtomicU32>) -> Registry {
    let mut r = Registry::new();
    r.add_activity("Echo", |_c, v: Value| async move { Ok(v) });
    r.add_activity("Add", |_c, (a, b): (i64, i64)| async move { Ok(a + b) });
    r.add_activity("Count", |_c, o: Order| async move {
        Ok(o.items.len() as u32 * 100 + o.id)
    });
    r.add_activity("Fail", |_c, msg: String| async move {
        Err::<(), _>(Failure::new("InsufficientFunds", msg))
    });
    r.add_activity("Panic", |_c, ()| async move {
        if true {
            panic!("activity exploded");
        }
        Ok(())
    });
    let c2 = calls.clone();
    r.add_activity("Flaky", move |_c, fails: u32| {
        let calls = c2.clone();
        async move {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            if n <= fails {
                Err(Failure::new("Transient", format!("attempt {n}")))
            } else {
                Ok(n)
            }
        }
    });
    r.add_orchestrator("Params", |ctx: OrchestrationContext| async move {
        let (a, b): (i64, i64) = ctx.get_input()?;
        let sum: i64 = ctx.call_activity("Add", (a, b)).await?;
        let n: u32 = ctx
            .call_activity(
                "Count",
                Order {
                    id: 7,
                    items: vec!["x".into(), "y".into()],
                },
            )
            .await?;
        Ok(json!({ "sum": sum, "count": n, "id": ctx.instance_id() }))
    });
    r.add_orchestrator("Compensate", |ctx: OrchestrationContext| async move {
        match ctx.call_activity::<()>("Fail", "balance too low").await {
            Err(e) if e.is_type("InsufficientFunds") => {
                let f = e
                    .failure()
                    .cloned()
                    .ok_or_else(|| Failure::new("Bug", "no failure"))?;
                Ok(json!({ "compensated": true, "type": f.error_type, "message": f.message }))
            }
            Err(e) => Err(e.into()),
            Ok(()) => Ok(json!({ "compensated": false })),
        }
    });
    r.add_orchestrator("Unhandled", |ctx: OrchestrationContext| async move {
        ctx.call_activity::<()>("Fail", "no money").await?;
        Ok(())
    });
    r.add_orchestrator("PanicActivity", |ctx: OrchestrationContext| async move {
        match ctx.call_activity::<()>("Panic", ()).await {
            Err(e) => Ok(e
                .failure()
                .map(|f| (f.error_type.clone(), f.message.clone()))),
            Ok(()) => Ok(None),
        }
    });
    r.add_orchestrator(
        "PanicOrchestrator",
        |ctx: OrchestrationContext| async move {
            ctx.call_activity::<Value>("Echo", 1).await?;
            if ctx.instance_id().starts_with("p") {
                panic!("orchestrator exploded");
            }
            Ok(())
        },
    );
    r.add_orchestrator("Parent", |ctx: OrchestrationContext| async move {
        let child: Result<(), TaskError> = ctx.call_sub_orchestrator("Unhandled", ()).await;
        let err = child.expect_err("child fails");
        let ok: Value = ctx.call_sub_orchestrator("Params", (2, 3)).await?;
        Ok(json!({ "childError": err.to_string(), "isType": err.is_type("InsufficientFunds"), "ok": ok }))
    });
    r.add_orchestrator("Retry", |ctx: OrchestrationContext| async move {
        let fails: u32 = ctx.get_input()?;
        let p = RetryPolicy::new(Duration::from_millis(100), 3)?.with_backoff_coefficient(2.0)?;
        let n: u32 = ctx.call_activity_with_retry("Flaky", &p, fails).await?;
        Ok(n)
    });
    r.add_orchestrator("RetryPredicate", |ctx: OrchestrationContext| async move {
        let p = RetryPolicy::new(Duration::from_millis(50), 5)?
            .with_handle(|f| f.error_type != "InsufficientFunds");
        let r: Result<(), _> = ctx.call_activity_with_retry("Fail", &p, "nope").await;
        Ok(r.is_err())
    });
    r.add_orchestrator("RetrySub", |ctx: OrchestrationContext| async move {
        let p = RetryPolicy::new(Duration::from_millis(50), 2)?;
        let r: Result<(), TaskError> = ctx
            .call_sub_orchestrator_with_retry("Unhandled", None, &p, ())
            .await;
        Ok(r.is_err())
    });
    r.add_orchestrator("Events", |ctx: OrchestrationContext| async move {
        let first: String = ctx.wait_for_external_event("Go").await?;
        let second: String = ctx.wait_for_external_event("go").await?;
        let timed: Result<String, TaskError> = ctx
            .wait_for_external_event_with_timeout("Never", Duration::from_millis(300))
            .await;
        Ok(json!({ "first": first, "second": second, "timedOut": matches!(timed, Err(TaskError::Timeout(_))) }))
    });
    r.add_orchestrator("Race", |ctx: OrchestrationContext| async move {
        let a = ctx.create_timer_after(Duration::from_millis(200));
        let b = ctx.call_activity::<Value>("Echo", "fast");
        let winner = match select(a, b).await {
            Either::Left(_) => "timer".to_string(),
            Either::Right((v, timer)) => {
                timer.cancel();
                v?.to_string()
            }
        };
        let tasks = vec![ctx.call_activity::<Value>("Echo", 1), ctx.call_activity::<Value>("Echo", 2)];
        let (idx, _) = ctx.when_any(tasks).await;
        let guid1 = ctx.new_guid();
        let guid2 = ctx.new_guid();
        ctx.set_custom_status(json!({ "stage": "done" }));
        Ok(json!({ "winner": winner, "anyIdx": idx, "guids": [guid1, guid2], "time": ctx.current_utc_date_time() }))
    });
    r.add_orchestrator("Counter", |ctx: OrchestrationContext| async move {
        let n: u32 = ctx.get_input()?;
        if n >= 3 {
            return Ok(n);
        }
        let _inc: String = ctx.wait_for_external_event("inc").await?;
        ctx.continue_as_new_with_options(n + 1, true);
        Ok(n)
    });
    r.add_orchestrator("Collector", |ctx: OrchestrationContext| async move {
        let (preserve, round): (bool, u32) = ctx.get_input()?;
        if round == 0 {
            let _a: String = ctx.wait_for_external_event("a").await?;
            ctx.continue_as_new_with_options((preserve, 1), preserve);
            return Ok(None);
        }
        let b: Result<String, TaskError> = ctx
            .wait_for_external_event_with_timeout("b", Duration::from_millis(500))
            .await;
        Ok(b.ok())
    });
    // Calls whatever its input names: an activity, or a sub-orchestration.
    r.add_orchestrator("CallByName", |ctx: OrchestrationContext| async move {
        let (kind, name): (String, String) = ctx.get_input()?;
        let called: Result<Value, TaskError> = if kind == "activity" {
            ctx.call_activity(&name, ()).await
        } else {
            ctx.call_sub_orchestrator(&name, ()).await
        };
        Ok(match called {
            Err(TaskError::InvalidCall(m)) => format!("invalid call: {m}"),
            other => format!("{other:?}"),
        })
    });
    // Absurd durations: a timer, an event timeout and a retry wait far past
    // the year 9999, none of which may panic.
    r.add_orchestrator("AbsurdTimes", |ctx: OrchestrationContext| async move {
        let far = ctx.create_timer_after(Duration::MAX);
        let v: String = ctx
            .wait_for_external_event_with_timeout("go", Duration::MAX)
            .await?;
        far.cancel();
        let p = RetryPolicy::new(Duration::MAX, 2)?
            .with_backoff_coefficient(1e300)?
            .with_max_retry_interval(Duration::MAX);
        let retried: Result<String, TaskError> =
            ctx.call_activity_with_retry("Fail", &p, "no").await;
        Ok(format!("{v} {}", retried.is_err()))
    });
    r.add_orchestrator("Version", |ctx: OrchestrationContext| async move {
        Ok(ctx.version())
    });
    r.add_orchestrator("WaitForever", |ctx: OrchestrationContext| async move {
        let v: Value = ctx.wait_for_external_event("never").await?;
        Ok(v)
    });
    r
}

struct Env {
    name: &'static str,
    client: Client,
    worker: Worker,
    calls: Arc<AtomicU32>,
    _dir: tempfile::TempDir,
}

async fn envs() -> Vec<Env> {
    stores()
        .await
        .into_iter()
        .map(|(name, store, dir)| {
            let calls = Arc::new(AtomicU32::new(0));
            let worker = Worker::start(store.clone(), registry(calls.clone()), opts());
            Env {
                name,
                client: Client::new(store),
                worker,
                calls,
                _dir: dir,
            }
        })
        .collect()
}

async fn run(
    env: &Env,
    name: &str,
    id: Option<&str>,
    input: Value,
) -> perdure::OrchestrationStatus {
    let id = env.client.start_new(name, id, input).await.expect("start");
    env.client
        .wait_for_completion(&id, WAIT)
        .await
        .expect("finishes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_travel_as_tuples_and_structs() {
    for env in envs().await {
        let st = run(&env, "Params", Some("order-1"), json!([40, 2])).await;
        let out: Value = st.output_as().unwrap();
        assert_eq!(
            out,
            json!({ "sum": 42, "count": 207, "id": "order-1" }),
            "{}",
            env.name
        );
        assert_eq!(st.input_as::<(i64, i64)>().unwrap(), (40, 2));
        env.worker.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_typed_recorded_and_survivable() {
    for env in envs().await {
        let n = env.name;
        let st = run(&env, "Compensate", None, Value::Null).await;
        assert_eq!(
            st.output_as::<Value>().unwrap(),
            json!({ "compensated": true, "type": "InsufficientFunds", "message": "balance too low" }),
            "{n}"
        );
        let hist = env
            .client
            .get_status(&st.instance_id, true)
            .await
            .unwrap()
            .unwrap()
            .history
            .unwrap();
        assert!(hist.iter().any(|e| matches!(&e.kind, perdure::EventKind::TaskFailed { failure, .. } if failure.error_type == "InsufficientFunds")));

        let st = run(&env, "Unhandled", None, Value::Null).await;
        assert_eq!(st.runtime_status, RuntimeStatus::Failed, "{n}");
        let f = st.failure.unwrap();
        assert_eq!(f.error_type, "ActivityFailed");
        assert!(f.is_caused_by("InsufficientFunds"), "{f:?}");

        let st = run(&env, "PanicActivity", None, Value::Null).await;
        assert_eq!(
            st.output_as::<Option<(String, String)>>().unwrap(),
            Some(("panic".into(), "activity exploded".into())),
            "{n}"
        );

        let st = run(&env, "PanicOrchestrator", Some("p1"), Value::Null).await;
        assert_eq!(st.runtime_status, RuntimeStatus::Failed, "{n}");
        assert_eq!(st.failure.as_ref().unwrap().error_type, "panic");
        assert!(st
            .failure
            .unwrap()
            .message
            .contains("orchestrator exploded"));

        let st = run(&env, "Parent", None, Value::Null).await;
        let out: Value = st.output_as().unwrap();
        assert_eq!(out["isType"], json!(true), "{n}: {out}");
        assert_eq!(out["ok"]["sum"], json!(5));

        let st = run(&env, "NoSuchOrchestrator", None, Value::Null).await;
        assert_eq!(st.runtime_status, RuntimeStatus::Failed);
        assert_eq!(st.failure.unwrap().error_type, "OrchestratorNotFound");
        // The worker is still alive after all of that.
        let st = run(&env, "Params", None, json!([1, 1])).await;
        assert_eq!(st.runtime_status, RuntimeStatus::Completed);
        env.worker.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_policies() {
    for env in envs().await {
        let st = run(&env, "Retry", None, json!(2)).await;
        assert_eq!(st.output_as::<u32>().unwrap(), 3, "{}: {st:?}", env.name);
        env.calls.store(0, Ordering::SeqCst);
        let st = run(&env, "Retry", None, json!(5)).await;
        assert_eq!(
            st.runtime_status,
            RuntimeStatus::Failed,
            "gives up after 3 attempts"
        );
        assert_eq!(env.calls.load(Ordering::SeqCst), 3);
        let st = run(&env, "RetryPredicate", None, Value::Null).await;
        assert!(st.output_as::<bool>().unwrap());
        let h = env
            .client
            .get_status(&st.instance_id, true)
            .await
            .unwrap()
            .unwrap()
            .history
            .unwrap();
        assert_eq!(
            h.iter()
                .filter(|e| e.type_name() == "TaskScheduled")
                .count(),
            1,
            "predicate refused the retry"
        );
        let st = run(&env, "RetrySub", None, Value::Null).await;
        assert!(st.output_as::<bool>().unwrap());
        let h = env
            .client
            .get_status(&st.instance_id, true)
            .await
            .unwrap()
            .unwrap()
            .history
            .unwrap();
        assert_eq!(
            h.iter()
                .filter(|e| e.type_name() == "SubOrchestrationInstanceCreated")
                .count(),
            2
        );
        env.worker.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_events_buffered_case_insensitive_with_timeout() {
    for env in envs().await {
        let id = env
            .client
            .start_new("Events", None, Value::Null)
            .await
            .unwrap();
        // Both arrive before anyone waits for the second.
        env.client.raise_event(&id, "GO", "one").await.unwrap();
        env.client.raise_event(&id, "gO", "two").await.unwrap();
        let st = env.client.wait_for_completion(&id, WAIT).await.unwrap();
        assert_eq!(
            st.output_as::<Value>().unwrap(),
            json!({ "first": "one", "second": "two", "timedOut": true }),
            "{}",
            env.name
        );
        env.worker.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composition_guids_and_custom_status() {
    for env in envs().await {
        let st = run(&env, "Race", None, Value::Null).await;
        let out: Value = st.output_as().unwrap();
        assert_eq!(out["winner"], json!("\"fast\""), "{}", env.name);
        assert!(out["anyIdx"] == json!(0) || out["anyIdx"] == json!(1));
        assert_ne!(out["guids"][0], out["guids"][1]);
        assert_eq!(
            st.custom_status_as::<Value>().unwrap(),
            json!({ "stage": "done" })
        );
        env.worker.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_as_new_keeps_unprocessed_events() {
    for env in envs().await {
        let id = env.client.start_new("Counter", None, 0).await.unwrap();
        for _ in 0..3 {
            env.client.raise_event(&id, "inc", "x").await.unwrap();
        }
        let st = env.client.wait_for_completion(&id, WAIT).await.unwrap();
        assert_eq!(st.output_as::<u32>().unwrap(), 3, "{}", env.name);
        // "b" arrives first and waits in the buffer while the execution
        // continues as new: carried over only when asked.
        for preserve in [true, false] {
            let id = env
                .client
                .start_new("Collector", None, (preserve, 0))
                .await
                .unwrap();
            wait_running(&env.client, &id).await;
            env.client.raise_event(&id, "b", "kept").await.unwrap();
            wait_history(&env.client, &id, "EventRaised").await;
            env.client.raise_event(&id, "a", "go").await.unwrap();
            let st = env.client.wait_for_completion(&id, WAIT).await.unwrap();
            let expect = if preserve {
                Some("kept".to_string())
            } else {
                None
            };
            assert_eq!(
                st.output_as::<Option<String>>().unwrap(),
                expect,
                "{} preserve={preserve}",
                env.name
            );
        }
        env.worker.shutdown().await;
    }
}

async fn wait_running(c: &Client, id: &str) {
    wait_history(c, id, "OrchestratorCompleted").await
}

async fn wait_history(c: &Client, id: &str, event_type: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let st = c.get_status(id, true).await.unwrap().unwrap();
        if st
            .history
            .unwrap()
            .iter()
            .any(|e| e.type_name() == event_type)
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id} never recorded {event_type}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_checked_like_ids() {
    let long = "n".repeat(257);
    for env in envs().await {
        let c = &env.client;
        for bad in ["", "tab\there", long.as_str()] {
            assert!(
                matches!(
                    c.start_new(bad, None, ()).await,
                    Err(ClientError::InvalidName(_))
                ),
                "start {bad:?}"
            );
        }
        let id = c.start_new("WaitForever", None, ()).await.unwrap();
        for bad in ["", "new\nline", long.as_str()] {
            assert!(
                matches!(
                    c.raise_event(&id, bad, ()).await,
                    Err(ClientError::InvalidName(_))
                ),
                "raise {bad:?}"
            );
        }
        assert!(matches!(
            c.signal_entity(&perdure::EntityId::new("ok", "k").unwrap(), "op", ())
                .await,
            Ok(())
        ));
        assert!(perdure::EntityId::new(&long, "k").is_err());
        for (kind, bad) in [
            ("activity", ""),
            ("activity", long.as_str()),
            ("sub", "a\u{1}b"),
        ] {
            let st = run(&env, "CallByName", None, json!([kind, bad])).await;
            let out: String = st.output_as().unwrap();
            assert!(
                out.starts_with("invalid call:") && out.contains("name"),
                "{} {kind} {bad:?}: {out}",
                env.name
            );
        }
        c.terminate(&id, "done").await.unwrap();
        env.worker.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_durations_clamp_to_the_year_9999() {
    let latest = perdure_core::time::latest();
    for env in envs().await {
        let c = &env.client;
        let id = c.start_new("AbsurdTimes", None, ()).await.unwrap();
        wait_running(c, &id).await;
        c.raise_event(&id, "go", "went").await.unwrap();
        wait_history(c, &id, "TaskFailed").await;
        let st = c.get_status(&id, true).await.unwrap().unwrap();
        assert_eq!(st.runtime_status, RuntimeStatus::Running, "{}", env.name);
        let fire_times: Vec<_> = st
            .history
            .unwrap()
            .iter()
            .filter_map(|e| match &e.kind {
                perdure_core::EventKind::TimerCreated { fire_at, .. } => Some(*fire_at),
                _ => None,
            })
            .collect();
        // The timer, the event's timeout, and (once the first attempt
        // failed) the wait before the retry.
        assert_eq!(fire_times.len(), 3, "{}: {fire_times:?}", env.name);
        for t in fire_times {
            assert_eq!(t, latest, "{}", env.name);
        }
        c.terminate(&id, "done").await.unwrap();
        env.worker.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orchestrator_sees_the_version_it_was_started_with() {
    for env in envs().await {
        for version in [Some("v2"), None] {
            let options = perdure::StartOptions {
                version: version.map(str::to_string),
                ..Default::default()
            };
            let id = env
                .client
                .start_new_with("Version", (), options)
                .await
                .unwrap();
            let st = env.client.wait_for_completion(&id, WAIT).await.unwrap();
            assert_eq!(
                st.output_as::<Option<String>>().unwrap().as_deref(),
                version,
                "{}",
                env.name
            );
        }
        env.worker.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_rules_and_terminate() {
    for env in envs().await {
        let c = &env.client;
        for bad in ["", "@entity", "a/b", "a#b", "q?", "tab\there"] {
            assert!(
                matches!(
                    c.start_new("WaitForever", Some(bad), ()).await,
                    Err(ClientError::InvalidInstanceId(_))
                ),
                "{bad:?}"
            );
        }
        let huge = "x".repeat(perdure::MAX_PAYLOAD_BYTES + 1);
        assert!(matches!(
            c.start_new("WaitForever", None, &huge).await,
            Err(ClientError::PayloadTooLarge { .. })
        ));
        let long = "x".repeat(257);
        assert!(matches!(
            c.start_new("WaitForever", Some(&long), ()).await,
            Err(ClientError::InvalidInstanceId(_))
        ));
        let id = c.start_new("WaitForever", None, ()).await.unwrap();
        assert_eq!(id.len(), 32);
        assert!(id.chars().all(|ch| ch.is_ascii_hexdigit()));
        c.start_new("WaitForever", Some("fixed"), ()).await.unwrap();
        assert!(matches!(
            c.start_new("WaitForever", Some("fixed"), ()).await,
            Err(ClientError::AlreadyRunning { .. })
        ));
        assert!(matches!(
            c.raise_event("missing", "e", 1).await,
            Err(ClientError::NotFound(_))
        ));
        assert!(c.get_status("missing", false).await.unwrap().is_none());
        assert!(matches!(
            c.wait_for_completion("fixed", Duration::from_millis(200))
                .await,
            Err(ClientError::Timeout(..))
        ));
        c.terminate("fixed", "operator said so").await.unwrap();
        let st = c.wait_for_completion("fixed", WAIT).await.unwrap();
        assert_eq!(st.runtime_status, RuntimeStatus::Terminated, "{}", env.name);
        assert_eq!(st.output_as::<String>().unwrap(), "operator said so");
        assert!(matches!(
            c.terminate("fixed", "again").await,
            Err(ClientError::AlreadyFinished { .. })
        ));
        assert!(matches!(
            c.raise_event("fixed", "e", 1).await,
            Err(ClientError::AlreadyFinished { .. })
        ));
        // A finished id can be started again.
        c.start_new("WaitForever", Some("fixed"), ()).await.unwrap();
        let st = c.get_status("fixed", true).await.unwrap().unwrap();
        assert!(st.created_time <= st.last_updated_time);
        assert!(!st
            .history
            .unwrap()
            .iter()
            .any(|e| e.type_name() == "ExecutionTerminated"));
        c.terminate(&id, ()).await.unwrap();
        c.terminate("fixed", ()).await.unwrap();
        env.worker.shutdown().await;
    }
}

fn changed_registry(variant: &'static str) -> Registry {
    let mut r = Registry::new();
    r.add_activity("A", |_c, ()| async move { Ok(1) });
    r.add_activity("B", |_c, ()| async move { Ok(2) });
    r.add_activity("X", |_c, ()| async move { Ok(3) });
    r.add_orchestrator("Evolving", move |ctx: OrchestrationContext| async move {
        match variant {
            "original" => {
                ctx.call_activity::<u32>("A", ()).await?;
            }
            "renamed" => {
                ctx.call_activity::<u32>("X", ()).await?;
            }
            "extra" => {
                drop(ctx.call_activity::<u32>("X", ()));
                ctx.call_activity::<u32>("A", ()).await?;
            }
            _ => {} // "missing": the step was removed
        }
        let _go: String = ctx.wait_for_external_event("go").await?;
        ctx.call_activity::<u32>("B", ()).await?;
        Ok(())
    });
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nondeterminism_fails_the_instance_naming_both_actions() {
    for (name, store, _dir) in stores().await {
        let client = Client::new(store.clone());
        for (variant, code, expected, actual) in [
            (
                "renamed",
                "PERDURE-ND-002",
                "ScheduleTask `A`",
                "ScheduleTask `X`",
            ),
            (
                "missing",
                "PERDURE-ND-003",
                "ScheduleTask `A`",
                "scheduled nothing",
            ),
            (
                "extra",
                "PERDURE-ND-002",
                "ScheduleTask `A`",
                "ScheduleTask `X`",
            ),
        ] {
            let w = Worker::start(store.clone(), changed_registry("original"), opts());
            let id = client.start_new("Evolving", None, ()).await.unwrap();
            // Wait until the first step is recorded and the instance waits for "go".
            let deadline = std::time::Instant::now() + WAIT;
            loop {
                let st = client.get_status(&id, true).await.unwrap().unwrap();
                if st
                    .history
                    .unwrap()
                    .iter()
                    .any(|e| e.type_name() == "TaskCompleted")
                {
                    break;
                }
                assert!(std::time::Instant::now() < deadline);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            w.shutdown().await;
            let w = Worker::start(store.clone(), changed_registry(variant), opts());
            client.raise_event(&id, "go", "now").await.unwrap();
            let st = client.wait_for_completion(&id, WAIT).await.unwrap();
            assert_eq!(st.runtime_status, RuntimeStatus::Failed, "{name}/{variant}");
            let f = st.failure.unwrap();
            assert_eq!(f.error_type, "NonDeterminism", "{name}/{variant}");
            for part in [code, expected, actual] {
                assert!(
                    f.message.contains(part),
                    "{name}/{variant}: {} lacks {part}",
                    f.message
                );
            }
            w.shutdown().await;
        }
    }
}

/// A deploy checked before it happens: the running instances' histories
/// replay against the code they ran, and the changed code is named with
/// its stable code, the instance and the step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_histories_are_checked_against_changed_code() {
    for (name, store, _dir) in stores().await {
        let client = Client::new(store.clone());
        let w = Worker::start(store.clone(), changed_registry("original"), opts());
        let id = client.start_new("Evolving", None, ()).await.unwrap();
        wait_history(&client, &id, "TaskCompleted").await;
        w.shutdown().await;
        let running = perdure::InstanceQuery {
            statuses: vec![RuntimeStatus::Running],
            page_size: 1,
            ..Default::default()
        };
        for (variant, code) in [
            ("original", None),
            ("renamed", Some("PERDURE-ND-002")),
            ("missing", Some("PERDURE-ND-003")),
        ] {
            let checks =
                perdure::replay::check_instances(&changed_registry(variant), &client, &running)
                    .await
                    .unwrap();
            let mine: Vec<_> = checks.iter().filter(|c| c.instance_id == id).collect();
            assert_eq!(mine.len(), 1, "{name}/{variant}");
            match (&mine[0].result, code) {
                (Ok(()), None) => {}
                (Err(perdure::replay::ReplayError::NonDeterministic(nd)), Some(code)) => {
                    assert_eq!(nd.code, code, "{name}/{variant}: {nd}");
                }
                (other, _) => panic!("{name}/{variant}: {other:?}"),
            }
        }
        client.terminate(&id, "done").await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_without_cache_gives_the_same_results() {
    for (name, store, _dir) in stores().await {
        let calls = Arc::new(AtomicU32::new(0));
        let w = Worker::start(
            store.clone(),
            registry(calls),
            WorkerOptions {
                cache_capacity: 0,
                ..opts()
            },
        );
        let client = Client::new(store.clone());
        let id = client.start_new("Race", None, Value::Null).await.unwrap();
        let st = client.wait_for_completion(&id, WAIT).await.unwrap();
        assert_eq!(
            st.runtime_status,
            RuntimeStatus::Completed,
            "{name}: {st:?}"
        );
        let id = client.start_new("Parent", None, Value::Null).await.unwrap();
        let st = client.wait_for_completion(&id, WAIT).await.unwrap();
        assert_eq!(
            st.runtime_status,
            RuntimeStatus::Completed,
            "{name}: {st:?}"
        );
        w.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_with_their_own_names_share_a_hub() {
    for (name, store, _dir) in stores().await {
        let mut front = Registry::new();
        front.add_orchestrator("Front", |ctx: OrchestrationContext| async move {
            let back: String = ctx.call_activity("Back", "a".to_string()).await?;
            let side: String = ctx.call_sub_orchestrator("Side", back.clone()).await?;
            Ok(format!("{back}|{side}"))
        });
        let mut back = Registry::new();
        back.add_activity("Back", |_c, s: String| async move { Ok(format!("{s}b")) });
        back.add_orchestrator("Side", |ctx: OrchestrationContext| async move {
            let s: String = ctx.get_input()?;
            ctx.call_activity::<String>("Back", s)
                .await
                .map_err(Into::into)
        });
        let shared = WorkerOptions {
            take_unknown_names: false,
            ..opts()
        };
        let w1 = Worker::start(store.clone(), front, shared.clone());
        let w2 = Worker::start(store.clone(), back, shared);
        let client = Client::new(store.clone());
        let id = client.start_new("Front", None, Value::Null).await.unwrap();
        let st = client.wait_for_completion(&id, WAIT).await.unwrap();
        assert_eq!(
            (st.runtime_status, st.output.as_deref()),
            (RuntimeStatus::Completed, Some("\"ab|abb\"")),
            "{name}: each worker ran only its own names"
        );
        // A name nobody registered waits for a worker that knows it.
        let id = client.start_new("Nobody", None, Value::Null).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let st = client.get_status(&id, false).await.unwrap().unwrap();
        assert_eq!(st.runtime_status, RuntimeStatus::Pending, "{name}");
        w1.shutdown().await;
        w2.shutdown().await;
    }
}
