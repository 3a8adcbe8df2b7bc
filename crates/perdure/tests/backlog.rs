//! Activities a turn claims while every activity slot of its worker is
//! busy, on every store: they wait in the worker's backlog for a slot (on
//! PostgreSQL, a dozen per slot when calls take 20 ms) and run there once
//! each; one that gets no slot
//! in time is given back to the store and run once all the same. Data, one case each, through one helper.

mod common;

use perdure::{Client, OrchestrationContext, Registry, RuntimeStatus, Worker, WorkerOptions};
use perdure_store::Store;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Runs an orchestration that, phase after phase, starts each phase's
/// activities at once (each sleeping its duration) on a worker with one
/// activity slot, and returns their sum and how many times activities ran
/// in all.
async fn fan_out_on_one_slot(store: Arc<dyn Store>, phases: &[&[u64]]) -> (u64, u32) {
    let runs = Arc::new(AtomicU32::new(0));
    let mut r = Registry::new();
    let counted = runs.clone();
    r.add_activity("Sleep", move |_ctx, ms: u64| {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(ms)
        }
    });
    r.add_orchestrator("Fan", |ctx: OrchestrationContext| async move {
        let phases: Vec<Vec<u64>> = ctx.get_input()?;
        let mut sum = 0;
        for phase in phases {
            let done = ctx
                .when_all(
                    phase
                        .into_iter()
                        .map(|ms| ctx.call_activity::<u64>("Sleep", ms)),
                )
                .await;
            for d in done {
                sum += d?;
            }
        }
        Ok(sum)
    });
    let options = WorkerOptions {
        activity_concurrency: 1,
        poll_interval: Duration::from_millis(50),
        ..WorkerOptions::default()
    };
    let worker = Worker::start(store.clone(), r, options);
    let client = Client::new(store);
    let id = client
        .start_new(
            "Fan",
            None,
            phases.iter().map(|p| p.to_vec()).collect::<Vec<_>>(),
        )
        .await
        .expect("start");
    let st = client
        .wait_for_completion(&id, Duration::from_secs(30))
        .await
        .expect("completes");
    assert_eq!(
        st.runtime_status,
        RuntimeStatus::Completed,
        "{:?}",
        st.failure
    );
    worker.shutdown().await;
    (
        st.output_as::<u64>().expect("a sum"),
        runs.load(Ordering::SeqCst),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claimed_tasks_wait_for_a_slot_and_each_runs_once() {
    let cases: [(&str, &[&[u64]]); 3] = [
        // The one slot frees long before the backlog's wait ends.
        ("slots free up soon", &[&[30, 30, 30]]),
        // The first activity holds the slot past the backlog's wait (1 s):
        // the task waiting for it is given back and taken again.
        ("no slot within the wait", &[&[1_500, 10]]),
        // After calls of 20 ms, on a store shared by processes
        // (PostgreSQL), the backlog holds a dozen per slot: the second
        // phase's tasks are all claimed by its turn and wait there.
        (
            "short calls: many waiting per slot",
            &[&[20, 20], &[20, 20, 20, 20, 20, 20, 20, 20, 20, 20]],
        ),
    ];
    for (store_name, store, _dir) in common::stores().await {
        for (what, phases) in cases {
            let (sum, runs) = fan_out_on_one_slot(store.clone(), phases).await;
            let all: Vec<u64> = phases.iter().flat_map(|p| p.iter().copied()).collect();
            assert_eq!(sum, all.iter().sum::<u64>(), "{store_name}: {what}");
            assert_eq!(
                runs as usize,
                all.len(),
                "{store_name}: {what}: each ran once"
            );
        }
    }
}
