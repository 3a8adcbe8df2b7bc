//! Injected store failures before and after commits: the worker survives,
//! every instance completes with the right output, and no history holds a
//! step twice.

use perdure::{Client, OrchestrationContext, Registry, RuntimeStatus, Worker, WorkerOptions};
use perdure_store::faulty::{FaultPoint, FaultyStore};
use perdure_store::MemoryStore;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

fn registry() -> Registry {
    let mut r = Registry::new();
    r.add_activity("Double", |_c, n: u64| async move { Ok(n * 2) });
    r.add_orchestrator("Work", |ctx: OrchestrationContext| async move {
        let mut total = 0;
        for i in 0..3u64 {
            total += ctx.call_activity::<u64>("Double", i).await?;
        }
        let fan = ctx
            .when_all((0..10u64).map(|i| ctx.call_activity::<u64>("Double", i)))
            .await;
        for r in fan {
            total += r?;
        }
        ctx.create_timer_after(Duration::from_millis(20)).await;
        Ok(total)
    });
    r
}

/// Starts instance `id`, as a careful caller does when a start may fail
/// (the first turn of an in-process start is a write the faults strike):
/// again on an error, with the same id; "already running" after an error
/// means the failed attempt was applied.
async fn start_surely(client: &Client, id: &str) -> String {
    let mut failed = false;
    for _ in 0..50 {
        match client.start_new("Work", Some(id), ()).await {
            Ok(id) => return id,
            Err(perdure::ClientError::AlreadyRunning { .. }) if failed => return id.to_string(),
            Err(_) => failed = true,
        }
    }
    panic!("{id}: no start got through in 50 attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_failures_lose_and_duplicate_nothing() {
    for point in [FaultPoint::BeforeCommit, FaultPoint::AfterCommit] {
        let faulty = Arc::new(FaultyStore::new(MemoryStore::new(), 7, point));
        let store: Arc<dyn perdure::Store> = faulty.clone();
        let options = WorkerOptions {
            lease: Duration::from_millis(500),
            poll_interval: Duration::from_millis(50),
            ..WorkerOptions::default()
        };
        let worker = Worker::start(store.clone(), registry(), options);
        let client = Client::new(store);
        let mut ids = Vec::new();
        for i in 0..20 {
            ids.push(start_surely(&client, &format!("work-{i}")).await);
        }
        for id in &ids {
            let st = client
                .wait_for_completion(id, Duration::from_secs(60))
                .await
                .expect("completes");
            assert_eq!(
                st.runtime_status,
                RuntimeStatus::Completed,
                "{point:?} {id}: {:?}",
                st.failure
            );
            assert_eq!(st.output_as::<u64>().expect("output"), 6 + 90, "{point:?}");
            let h = client
                .get_status(id, true)
                .await
                .expect("status")
                .expect("exists")
                .history
                .expect("history");
            let mut done = HashSet::new();
            for e in &h {
                if let perdure::EventKind::TaskCompleted {
                    task_scheduled_id, ..
                } = e.kind
                {
                    assert!(
                        done.insert(task_scheduled_id),
                        "{point:?} {id}: task {task_scheduled_id} recorded twice"
                    );
                }
            }
            assert_eq!(done.len(), 13, "{point:?}");
        }
        assert!(
            faulty.injected() > 10,
            "{point:?}: only {} failures injected",
            faulty.injected()
        );
        worker.shutdown().await;
    }
}
