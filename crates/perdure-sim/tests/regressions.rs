//! One test per defect the interleavings exposed, each driving the real
//! engine step by step over the memory store on a virtual clock, in the
//! order that broke it.

mod common;

use common::{engine, rig};
use perdure_core::RuntimeStatus;
use perdure_sim::program::Op;
use perdure_store::WorkFilter;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[tokio::test]
async fn continue_as_new_behind_a_backlog_of_events_runs() {
    let r = rig();
    r.start("ticker", vec![Op::Event("tick".into())], 3).await;
    r.turn(10).await;
    for n in 0..10 {
        r.client
            .raise_event("ticker", "tick", n)
            .await
            .expect("raise");
    }
    // Two messages a turn: the new start is queued behind eight events.
    r.settle(2).await;
    assert_eq!(r.status("ticker").await, RuntimeStatus::Completed);
}

#[tokio::test]
async fn a_terminate_in_the_batch_that_continues_as_new_ends_the_instance() {
    let r = rig();
    r.start("eternal", vec![Op::Event("tick".into())], 100)
        .await;
    r.turn(10).await;
    r.client
        .raise_event("eternal", "tick", 1)
        .await
        .expect("raise");
    r.client
        .terminate("eternal", "stop")
        .await
        .expect("terminate");
    r.settle(10).await;
    assert_eq!(r.status("eternal").await, RuntimeStatus::Terminated);
}

#[tokio::test]
async fn a_suspend_in_the_batch_that_continues_as_new_is_kept() {
    let r = rig();
    r.start("eternal", vec![Op::Event("tick".into())], 100)
        .await;
    r.turn(10).await;
    r.client
        .raise_event("eternal", "tick", 1)
        .await
        .expect("raise");
    r.client.suspend("eternal", "hold").await.expect("suspend");
    r.settle(10).await;
    assert_eq!(r.status("eternal").await, RuntimeStatus::Suspended);
}

#[tokio::test]
async fn a_terminate_before_the_first_turn_runs_no_step() {
    let r = rig();
    r.start(
        "early",
        vec![Op::Activity(1), Op::Sub(vec![Op::Activity(2)])],
        1,
    )
    .await;
    r.client
        .terminate("early", "never mind")
        .await
        .expect("terminate");
    r.turn(10).await;
    assert_eq!(r.status("early").await, RuntimeStatus::Terminated);
    let task = r
        .store
        .fetch_activity(Duration::from_secs(30), &WorkFilter::Any)
        .await
        .expect("fetch");
    assert!(
        task.is_none(),
        "an activity of a terminated first turn was scheduled"
    );
    assert!(r.effects.runs.lock().expect("runs").is_empty());
}

#[tokio::test]
async fn a_nondeterministic_replay_commits_nothing_of_the_new_code() {
    let mut r = rig();
    r.start("nd", vec![Op::Activity(1), Op::Activity(2)], 1)
        .await;
    // First turn schedules Work(1); the result waits in the store.
    let items = r
        .store
        .fetch_orchestrations(Duration::from_secs(30), 10, 1, &WorkFilter::Any)
        .await
        .expect("fetch");
    let claimed = r
        .engine
        .run_orchestration(items.into_iter().next().expect("item"))
        .await
        .expect("turn");
    // The code changes and the process restarts before the result lands.
    r.effects.changed.store(true, Ordering::SeqCst);
    r.engine = engine(&r.store, &r.effects);
    for a in claimed {
        r.activity(a).await;
    }
    r.settle(10).await;
    let rec = r.store.get_instance("nd").await.expect("get").expect("nd");
    assert_eq!(rec.status, RuntimeStatus::Failed);
    assert_eq!(rec.failure.expect("failure").error_type, "NonDeterminism");
    let history = r.store.read_history("nd").await.expect("history");
    let scheduled = history
        .iter()
        .filter(|e| e.type_name() == "TaskScheduled")
        .count();
    assert_eq!(scheduled, 1, "the changed code's activity was recorded");
    assert!(r
        .store
        .fetch_activity(Duration::from_secs(30), &WorkFilter::Any)
        .await
        .expect("fetch")
        .is_none());
}

#[tokio::test]
async fn the_turn_time_is_the_stores_clock_not_the_workers() {
    // The store's clock is in 2100; the worker's wall clock is not.
    let r = rig();
    r.start("clock", vec![Op::Timer(60_000)], 1).await;
    r.turn(10).await;
    let history = r.store.read_history("clock").await.expect("history");
    let fire_at = history
        .iter()
        .find_map(|e| match &e.kind {
            perdure_core::EventKind::TimerCreated { fire_at } => Some(*fire_at),
            _ => None,
        })
        .expect("timer");
    assert_eq!(
        fire_at,
        perdure_store::Clock::now(r.clock.as_ref()) + chrono::Duration::seconds(60)
    );
}

#[test]
fn a_stale_cached_run_after_a_rewind_elsewhere_is_not_used() {
    // Found by the simulator (seeds 1507 and 1751): two engines, a rewind
    // that cut the history back under the same execution id, and a cached
    // run whose history length the new history reached again. Without the
    // remote engine, as the simulator ran then, so the seeds keep their runs.
    let opts = perdure_sim::SimOptions {
        remote: false,
        ..Default::default()
    };
    for seed in [1507, 1751] {
        let report = perdure_sim::run_seed(seed, &opts);
        assert!(
            report.violations.is_empty(),
            "seed {seed}: {:?}",
            report.violations
        );
    }
}

#[tokio::test]
async fn a_child_whose_parent_rewinds_it_is_not_purged_before_the_rewind_runs() {
    // Found by the simulator (seeds 4606, 6687, 7171, 9127, 11391): the
    // parent's rewind sent ExecutionRewound to its failed child, a purge
    // took the child (still Failed) and its inbox, and the parent waited
    // for an answer that could never come.
    let r = rig();
    r.start("parent", vec![Op::Sub(vec![Op::FailOnce(3)])], 1)
        .await;
    r.settle(10).await;
    assert_eq!(r.status("parent").await, RuntimeStatus::Failed);
    r.client.rewind("parent", "again").await.expect("rewind");
    // Only the parent's rewind turn: the child's rewind is now queued.
    r.turn(10).await;
    let child = r
        .store
        .list_instances(&perdure::InstanceQuery {
            parent_instance_id: Some("parent".into()),
            page_size: 10,
            ..Default::default()
        })
        .await
        .expect("children")
        .instances
        .into_iter()
        .next()
        .expect("child");
    assert_eq!(child.status, RuntimeStatus::Failed);
    assert!(
        r.client
            .purge_instance_history(&child.instance_id)
            .await
            .is_err(),
        "a child with a rewind waiting was purged"
    );
    r.settle(10).await;
    assert_eq!(r.status("parent").await, RuntimeStatus::Completed);
}

#[tokio::test]
async fn a_rewind_of_a_nondeterministic_failure_takes_out_the_engines_unlocks() {
    // Found by the simulator's replay oracle (seeds 95482, 97318): the turn
    // that found the code changed inside a critical section committed the
    // unlocks the engine sent; a rewind kept them as if the code had sent
    // them, so the fixed code failed again on replay.
    let mut r = rig();
    r.start(
        "nd",
        vec![Op::Activity(1), Op::Transfer("a".into(), "b".into(), 5)],
        1,
    )
    .await;
    for _ in 0..50 {
        let history = r.store.read_history("nd").await.expect("history");
        if history.iter().any(|e| e.type_name() == "EntityLockGranted") {
            break;
        }
        r.turn(10).await;
    }
    r.effects.changed.store(true, Ordering::SeqCst);
    r.engine = engine(&r.store, &r.effects);
    r.settle(10).await;
    let rec = r.store.get_instance("nd").await.expect("get").expect("nd");
    assert_eq!(rec.failure.expect("failure").error_type, "NonDeterminism");
    // The code is put back, and the instance rewound.
    r.effects.changed.store(false, Ordering::SeqCst);
    r.engine = engine(&r.store, &r.effects);
    r.client.rewind("nd", "code fixed").await.expect("rewind");
    r.settle(10).await;
    assert_eq!(r.status("nd").await, RuntimeStatus::Completed);
    let history = r.store.read_history("nd").await.expect("history");
    let registry = perdure_sim::program::registry(r.effects.clone());
    perdure::replay::replay_history(&registry, "nd", &history).expect("replays");
}

/// The id of `parent`'s only sub-orchestration.
async fn only_child(r: &common::Rig, parent: &str) -> String {
    r.store
        .list_instances(&perdure::InstanceQuery {
            parent_instance_id: Some(parent.into()),
            page_size: 10,
            ..Default::default()
        })
        .await
        .expect("children")
        .instances
        .into_iter()
        .next()
        .expect("a child")
        .instance_id
}

#[tokio::test]
async fn a_child_terminated_before_its_first_turn_tells_its_parent() {
    let r = rig();
    r.start("parent", vec![Op::Sub(vec![Op::Activity(1)])], 1)
        .await;
    r.turn(10).await;
    let child = only_child(&r, "parent").await;
    // Suspended before it ever ran: its start waits for a resume.
    r.client.suspend(&child, "hold").await.expect("suspend");
    r.turn(10).await;
    assert_eq!(r.status(&child).await, RuntimeStatus::Suspended);
    r.client.terminate(&child, "stop").await.expect("terminate");
    r.settle(10).await;
    assert_eq!(r.status(&child).await, RuntimeStatus::Terminated);
    assert_eq!(
        r.status("parent").await,
        RuntimeStatus::Failed,
        "the parent still waits for a child that ended"
    );
}

#[tokio::test]
async fn a_rewound_parent_runs_its_terminated_child_again() {
    let r = rig();
    r.start(
        "parent",
        vec![Op::Sub(vec![Op::Event("go".into()), Op::Activity(4)])],
        1,
    )
    .await;
    r.settle(10).await;
    let child = only_child(&r, "parent").await;
    r.client.terminate(&child, "stop").await.expect("terminate");
    r.settle(10).await;
    assert_eq!(r.status("parent").await, RuntimeStatus::Failed);
    r.client.rewind("parent", "again").await.expect("rewind");
    r.settle(10).await;
    assert_eq!(r.status(&child).await, RuntimeStatus::Running);
    r.client.raise_event(&child, "go", 1).await.expect("raise");
    r.settle(10).await;
    assert_eq!(r.status("parent").await, RuntimeStatus::Completed);
}

#[tokio::test]
async fn a_second_start_in_a_childs_first_batch_is_refused_to_its_parent() {
    // Found by the simulator (seed 4963 of its version then): a parent
    // terminated and restarted created the same child twice before the
    // child ran; its first batch held both starts, ran the first and
    // dropped the second, and the restarted parent waited for ever.
    let r = rig();
    r.start("parent", vec![Op::Sub(vec![Op::Event("go".into())])], 1)
        .await;
    r.turn(10).await;
    let child = only_child(&r, "parent").await;
    r.client.suspend(&child, "hold").await.expect("suspend");
    r.turn(10).await;
    r.client
        .terminate("parent", "stop")
        .await
        .expect("terminate");
    r.turn(10).await;
    assert_eq!(r.status("parent").await, RuntimeStatus::Terminated);
    r.client.restart("parent", false).await.expect("restart");
    r.turn(10).await;
    r.client.resume(&child, "go on").await.expect("resume");
    r.settle(10).await;
    assert_eq!(
        r.status("parent").await,
        RuntimeStatus::Failed,
        "the restarted parent still waits for its child's start"
    );
}

#[tokio::test]
async fn a_child_with_a_new_start_waiting_is_neither_purged_nor_replaced() {
    // Found by the simulator (seeds 4883 and 9445 of its version then): a
    // restarted parent's new start for its failed child, or a parent's
    // rewind, was lost when a purge or a restart took the child first.
    let r = rig();
    r.start("parent", vec![Op::Sub(vec![Op::FailOnce(3)])], 1)
        .await;
    r.settle(10).await;
    assert_eq!(r.status("parent").await, RuntimeStatus::Failed);
    let child = only_child(&r, "parent").await;
    r.client.restart("parent", false).await.expect("restart");
    // The restarted parent's first turn: the child's new start is queued.
    r.turn(10).await;
    assert_eq!(r.status(&child).await, RuntimeStatus::Failed);
    assert!(
        r.client.purge_instance_history(&child).await.is_err(),
        "purged with a new start waiting"
    );
    assert!(
        r.client.restart(&child, false).await.is_err(),
        "replaced with a new start waiting"
    );
    r.settle(10).await;
    assert_eq!(r.status("parent").await, RuntimeStatus::Completed);
}

#[test]
fn a_rewinds_own_marker_arriving_after_a_new_failure_asks_for_nothing() {
    // Found by the simulator over SQLite (seed 545 of its version then): a
    // second client rewind was taken by the turn after a rewind, the
    // instance failed again (its code had changed), and the rewind's own
    // marker for that turn, arriving later, was taken for a new rewind
    // request: rewind, fail, rewind, for ever.
    let opts = perdure_sim::SimOptions {
        store: perdure_sim::SimStore::Sqlite,
        remote: false,
        ..Default::default()
    };
    let report = perdure_sim::run_seed(545, &opts);
    assert!(report.violations.is_empty(), "{:?}", report.violations);
}

#[tokio::test]
async fn a_rewound_parent_does_not_wait_for_an_earlier_executions_child() {
    // Found by the simulator (seeds 177, 392, 1972, 7992, 9185 of its
    // version then): the parent was terminated and restarted while its
    // child ran; the restarted parent's start of the child was refused and
    // it failed; its rewind saw the child running and waited for an answer
    // that goes to the earlier execution.
    let r = rig();
    r.start("parent", vec![Op::Sub(vec![Op::Event("go".into())])], 1)
        .await;
    r.settle(10).await;
    let child = only_child(&r, "parent").await;
    assert_eq!(r.status(&child).await, RuntimeStatus::Running);
    r.client
        .terminate("parent", "stop")
        .await
        .expect("terminate");
    r.settle(10).await;
    r.client.restart("parent", false).await.expect("restart");
    r.settle(10).await;
    assert_eq!(r.status("parent").await, RuntimeStatus::Failed);
    r.client.rewind("parent", "again").await.expect("rewind");
    r.settle(10).await;
    assert_eq!(
        r.status("parent").await,
        RuntimeStatus::Failed,
        "the rewound parent waits for a child that answers another execution"
    );
    // Once the earlier child is done, a rewind starts one of its own.
    r.client.raise_event(&child, "go", 1).await.expect("raise");
    r.settle(10).await;
    r.client.rewind("parent", "again").await.expect("rewind");
    r.settle(10).await;
    r.client.raise_event(&child, "go", 2).await.expect("raise");
    r.settle(10).await;
    assert_eq!(r.status("parent").await, RuntimeStatus::Completed);
}

#[tokio::test]
async fn a_rewound_parent_does_not_wait_for_a_child_a_client_restarted() {
    // Found by the simulator with its remote engine (seeds 54388, 63179):
    // a client restarted a failed child (a start of its own, answering
    // nobody) and the parent was rewound before the child's first turn;
    // the rewind took the child's empty history for its own start and
    // waited for an answer that never came.
    let r = rig();
    r.start(
        "parent",
        vec![Op::Sub(vec![Op::Event("go".into()), Op::Activity(4)])],
        1,
    )
    .await;
    r.settle(10).await;
    let child = only_child(&r, "parent").await;
    r.client.terminate(&child, "stop").await.expect("terminate");
    r.settle(10).await;
    assert_eq!(r.status("parent").await, RuntimeStatus::Failed);
    r.client.restart(&child, false).await.expect("restart");
    // Held before its first turn, so the parent's rewind finds it unstarted.
    r.client.suspend(&child, "hold").await.expect("suspend");
    r.client.rewind("parent", "again").await.expect("rewind");
    r.settle(10).await;
    r.client.resume(&child, "go on").await.expect("resume");
    r.client.raise_event(&child, "go", 1).await.expect("raise");
    r.settle(10).await;
    assert_eq!(r.status(&child).await, RuntimeStatus::Completed);
    assert_eq!(
        r.status("parent").await,
        RuntimeStatus::Failed,
        "the rewound parent is told its new start was refused, not left waiting"
    );
}
