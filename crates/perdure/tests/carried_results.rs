//! An activity's result carried by the worker that ran it into the turn
//! that consumes it (one commit records both), or consumed by a turn run
//! without taking the instance at all, on the memory and SQLite stores with
//! a virtual clock: what happens to the result when something else reaches
//! the instance first, and when the worker dies holding it.

use perdure::{
    AfterActivity, Client, Engine, OrchestrationContext, Registry, RuntimeStatus, WorkerOptions,
};
use perdure_store::clock::ManualClock;
use perdure_store::{ActivityItem, MemoryStore, Store, WorkFilter};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(30);

/// What reaches the instance between the turn that scheduled the first
/// activity and that activity's end.
#[derive(Clone, Copy, Debug)]
enum Meanwhile {
    Nothing,
    /// An external event the orchestration does not wait for.
    Event,
    Terminate,
    Suspend,
    /// Another worker holds the instance's lease.
    Leased,
    /// Terminated and restarted under the same id: a new execution.
    Restarted,
    /// An event was raised and another worker ran the turn it made: the
    /// instance is free again, its history longer.
    HandledElsewhere,
}

/// How the engine that runs the activity works.
#[derive(Clone, Copy, Debug)]
enum Engine1 {
    /// Keeps replayed runs in memory: a turn waiting on one activity runs
    /// without taking the instance.
    Caching,
    /// Keeps none: every result is carried into a taken instance.
    NoCache,
    /// Keeps none, and dies after the activity, before the turn.
    NoCacheCrash,
}

/// What became of the first activity's result.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Result1 {
    /// Consumed by a turn committed without taking the instance.
    Unleased,
    /// Carried into the turn handed back.
    Carried,
    /// Recorded in the inbox on its own.
    Recorded,
    /// Discarded: its task was gone (lease lost).
    Discarded,
}

/// How the run went.
#[derive(Debug, PartialEq)]
struct Seen {
    result: Result1,
    status: RuntimeStatus,
    /// Activity runs in all.
    runs: u32,
}

fn registry(runs: Arc<AtomicU32>) -> Registry {
    let mut r = Registry::new();
    r.add_activity("Work", move |_c, n: u32| {
        let runs = runs.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok(n * 10)
        }
    });
    r.add_orchestrator("TwoSteps", |ctx: OrchestrationContext| async move {
        let a: u32 = ctx.call_activity("Work", 1).await?;
        let b: u32 = ctx.call_activity("Work", 2).await?;
        Ok(a + b)
    });
    r
}

async fn open(kind: &str, clock: Arc<ManualClock>, dir: &tempfile::TempDir) -> Arc<dyn Store> {
    match kind {
        "memory" => Arc::new(MemoryStore::with_clock(clock)),
        _ => Arc::new(
            perdure_sqlite::SqliteStore::open_with_clock(dir.path().join("c.db"), clock)
                .expect("sqlite"),
        ),
    }
}

/// Runs an activity and the turn its result leads to; returns the
/// activities claimed on the way.
async fn run_activity(engine: &Engine, a: ActivityItem) -> Vec<ActivityItem> {
    match engine.run_activity(a).await.expect("activity") {
        AfterActivity::Taken(next) => engine.run_orchestration(*next).await.expect("turn"),
        AfterActivity::TurnRan(claimed) => claimed,
        AfterActivity::Recorded => Vec::new(),
    }
}

/// Takes and runs every turn and activity there is, until none is left.
async fn drive(store: &Arc<dyn Store>, engine: &Engine) {
    for _ in 0..100 {
        let mut claimed: Vec<ActivityItem> = Vec::new();
        let items = store
            .fetch_orchestrations(LEASE, 100, 10, &WorkFilter::Any)
            .await
            .expect("fetch");
        let busy = !items.is_empty();
        for item in items {
            claimed.extend(engine.run_orchestration(item).await.expect("turn"));
        }
        claimed.extend(
            store
                .fetch_activities(LEASE, 10, &WorkFilter::Any)
                .await
                .expect("fetch"),
        );
        if !busy && claimed.is_empty() {
            return;
        }
        while let Some(a) = claimed.pop() {
            claimed.extend(run_activity(engine, a).await);
        }
    }
    panic!("never idle");
}

/// Starts `TwoSteps`, runs its first turn, lets `meanwhile` happen, ends
/// the first activity, then (unless `crash`) runs the turn it hands back;
/// a crash drops the engine and what it held, and a new one carries on
/// once the leases have run out. Everything left then runs to the end.
async fn scenario(kind: &str, meanwhile: Meanwhile, engine1: Engine1) -> Seen {
    let crash = matches!(engine1, Engine1::NoCacheCrash);
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(perdure::testing::default_start()));
    let store = open(kind, clock.clone(), &dir).await;
    let client = Client::new(store.clone());
    let runs = Arc::new(AtomicU32::new(0));
    let options = WorkerOptions {
        lease: LEASE,
        cache_capacity: match engine1 {
            Engine1::Caching => 10,
            _ => 0,
        },
        ..WorkerOptions::default()
    };
    let engine = Engine::new(store.clone(), registry(runs.clone()), options.clone());
    client
        .start_new("TwoSteps", Some("c1"), ())
        .await
        .expect("start");
    let first = store
        .fetch_orchestration(LEASE, 100, &WorkFilter::Any)
        .await
        .expect("fetch")
        .expect("the start");
    let mut claimed = engine.run_orchestration(first).await.expect("turn");
    let activity = claimed.pop().expect("the first activity, claimed");
    let mut holder = None;
    match meanwhile {
        Meanwhile::Nothing => {}
        Meanwhile::Event => client.raise_event("c1", "ping", 1).await.expect("raise"),
        Meanwhile::Terminate => client.terminate("c1", "stop").await.expect("terminate"),
        Meanwhile::Suspend => client.suspend("c1", "hold").await.expect("suspend"),
        Meanwhile::Leased => {
            client.raise_event("c1", "ping", 1).await.expect("raise");
            holder = store
                .fetch_orchestration(LEASE, 100, &WorkFilter::Any)
                .await
                .expect("fetch");
            assert!(holder.is_some(), "another worker takes the instance");
        }
        Meanwhile::HandledElsewhere => {
            client.raise_event("c1", "ping", 1).await.expect("raise");
            let other = Engine::new(store.clone(), registry(runs.clone()), options.clone());
            claimed.extend(drive_turns(&store, &other).await);
        }
        Meanwhile::Restarted => {
            client.terminate("c1", "stop").await.expect("terminate");
            claimed.extend(drive_turns(&store, &engine).await);
            client.restart("c1", false).await.expect("restart");
            claimed.extend(drive_turns(&store, &engine).await);
        }
    }
    let (next, result) = match engine.run_activity(activity).await {
        Ok(AfterActivity::Taken(n)) if !n.carried.is_empty() => (Some(*n), Result1::Carried),
        Ok(AfterActivity::Taken(n)) => (Some(*n), Result1::Recorded),
        Ok(AfterActivity::Recorded) => (None, Result1::Recorded),
        Ok(AfterActivity::TurnRan(more)) => {
            claimed.extend(more);
            (None, Result1::Unleased)
        }
        Err(perdure::StoreError::LockLost(_)) => (None, Result1::Discarded),
        Err(e) => panic!("activity: {e}"),
    };
    if let Some(h) = holder {
        engine.run_orchestration(h).await.expect("the other turn");
    }
    let engine = if crash {
        drop(next);
        drop(engine);
        clock.advance(LEASE * 2);
        Engine::new(store.clone(), registry(runs.clone()), options)
    } else {
        if let Some(next) = next {
            claimed.extend(engine.run_orchestration(next).await.expect("turn"));
        }
        engine
    };
    while let Some(a) = claimed.pop() {
        claimed.extend(run_activity(&engine, a).await);
    }
    if matches!(meanwhile, Meanwhile::Suspend) {
        client.resume("c1", "go on").await.expect("resume");
    }
    drive(&store, &engine).await;
    let status = client
        .get_status("c1", false)
        .await
        .expect("status")
        .expect("instance")
        .runtime_status;
    Seen {
        result,
        status,
        runs: runs.load(Ordering::SeqCst),
    }
}

/// Runs the turns waiting now, without running any activity; returns
/// the activities they claimed.
async fn drive_turns(store: &Arc<dyn Store>, engine: &Engine) -> Vec<ActivityItem> {
    let mut claimed = Vec::new();
    while let Some(item) = store
        .fetch_orchestration(LEASE, 100, &WorkFilter::Any)
        .await
        .expect("fetch")
    {
        claimed.extend(engine.run_orchestration(item).await.expect("turn"));
    }
    claimed
}

async fn check(meanwhile: Meanwhile, engine1: Engine1, expected: Seen) {
    for kind in ["memory", "sqlite"] {
        let seen = scenario(kind, meanwhile, engine1).await;
        assert_eq!(seen, expected, "{kind}, {meanwhile:?}, {engine1:?}");
    }
}

fn seen(result: Result1, status: RuntimeStatus, runs: u32) -> Seen {
    Seen {
        result,
        status,
        runs,
    }
}

#[tokio::test]
async fn a_result_is_carried_into_the_next_turn_of_a_free_instance() {
    check(
        Meanwhile::Nothing,
        Engine1::NoCache,
        seen(Result1::Carried, RuntimeStatus::Completed, 2),
    )
    .await;
}

#[tokio::test]
async fn a_run_waiting_on_one_activity_takes_its_result_without_a_lease() {
    check(
        Meanwhile::Nothing,
        Engine1::Caching,
        seen(Result1::Unleased, RuntimeStatus::Completed, 2),
    )
    .await;
}

#[tokio::test]
async fn an_event_waiting_in_the_inbox_joins_the_carried_result() {
    check(
        Meanwhile::Event,
        Engine1::NoCache,
        seen(Result1::Carried, RuntimeStatus::Completed, 2),
    )
    .await;
}

#[tokio::test]
async fn an_event_waiting_in_the_inbox_refuses_the_unleased_turn() {
    check(
        Meanwhile::Event,
        Engine1::Caching,
        seen(Result1::Carried, RuntimeStatus::Completed, 2),
    )
    .await;
}

#[tokio::test]
async fn a_carried_result_lost_in_a_crash_runs_its_activity_again() {
    check(
        Meanwhile::Nothing,
        Engine1::NoCacheCrash,
        seen(Result1::Carried, RuntimeStatus::Completed, 3),
    )
    .await;
}

#[tokio::test]
async fn a_terminate_waiting_in_the_inbox_gets_the_result_recorded_not_carried() {
    check(
        Meanwhile::Terminate,
        Engine1::NoCache,
        seen(Result1::Recorded, RuntimeStatus::Terminated, 1),
    )
    .await;
}

#[tokio::test]
async fn a_terminate_waiting_in_the_inbox_refuses_the_unleased_turn() {
    check(
        Meanwhile::Terminate,
        Engine1::Caching,
        seen(Result1::Recorded, RuntimeStatus::Terminated, 1),
    )
    .await;
}

#[tokio::test]
async fn a_suspend_waiting_in_the_inbox_keeps_the_result_for_the_resume() {
    check(
        Meanwhile::Suspend,
        Engine1::NoCache,
        seen(Result1::Recorded, RuntimeStatus::Completed, 2),
    )
    .await;
}

#[tokio::test]
async fn a_suspend_waiting_in_the_inbox_refuses_the_unleased_turn() {
    check(
        Meanwhile::Suspend,
        Engine1::Caching,
        seen(Result1::Recorded, RuntimeStatus::Completed, 2),
    )
    .await;
}

#[tokio::test]
async fn a_result_for_an_instance_leased_elsewhere_waits_in_its_inbox() {
    check(
        Meanwhile::Leased,
        Engine1::NoCache,
        seen(Result1::Recorded, RuntimeStatus::Completed, 2),
    )
    .await;
}

#[tokio::test]
async fn an_instance_leased_elsewhere_refuses_the_unleased_turn() {
    check(
        Meanwhile::Leased,
        Engine1::Caching,
        seen(Result1::Recorded, RuntimeStatus::Completed, 2),
    )
    .await;
}

#[tokio::test]
async fn a_turn_run_elsewhere_meanwhile_refuses_the_unleased_turn() {
    check(
        Meanwhile::HandledElsewhere,
        Engine1::Caching,
        seen(Result1::Carried, RuntimeStatus::Completed, 2),
    )
    .await;
}

#[tokio::test]
async fn a_result_for_an_execution_replaced_by_a_restart_is_discarded() {
    check(
        Meanwhile::Restarted,
        Engine1::Caching,
        seen(Result1::Discarded, RuntimeStatus::Completed, 3),
    )
    .await;
}
