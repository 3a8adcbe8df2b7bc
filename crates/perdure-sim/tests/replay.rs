//! `perdure::replay::replay_history`: a history the engine wrote replays
//! from scratch, with no store, to the end it recorded; changed code, a
//! changed end or a history with no start are errors that say so.

mod common;

use perdure::dispatch::Outcome;
use perdure::replay::{replay_history, ReplayError};
use perdure_core::{EventKind, RuntimeStatus};
use perdure_sim::program::{self, Op};
use std::sync::atomic::Ordering;

/// What a case does to the instance before its history is replayed.
#[derive(Clone, Copy)]
enum Then {
    /// Runs it to its end.
    Finish,
    /// Leaves it waiting for an event.
    Wait,
    /// Terminates it while it waits.
    Terminate,
    /// Runs it to its end, then replays with the code changed.
    ChangeCode,
    /// Runs it to its end, then replays a history whose output was edited.
    EditOutput,
    /// Replays nothing at all.
    Empty,
}

/// How the replay came out, in a word.
fn outcome(r: &Result<Option<Outcome>, ReplayError>) -> String {
    match r {
        Ok(None) => "running".into(),
        Ok(Some(Outcome::Completed(out))) => format!("completed {}", out.as_deref().unwrap_or("")),
        Ok(Some(Outcome::Failed(_))) => "failed".into(),
        Ok(Some(Outcome::Terminated(_))) => "terminated".into(),
        Ok(Some(Outcome::ContinuedAsNew { .. })) => "continued".into(),
        Err(ReplayError::NotStarted) => "not started".into(),
        Err(ReplayError::Unregistered(name)) => format!("unregistered {name}"),
        Err(ReplayError::NonDeterministic(nd)) => format!("nondeterministic {}", nd.code),
        Err(ReplayError::DifferentEnd { .. }) => "different end".into(),
    }
}

async fn replayed(ops: Vec<Op>, then: Then) -> String {
    let r = common::rig();
    r.start("r", ops, 1).await;
    r.settle(10).await;
    if let Then::Terminate = then {
        r.client.terminate("r", "stop").await.expect("terminate");
        r.settle(10).await;
    }
    let mut history = r.store.read_history("r").await.expect("history");
    match then {
        Then::ChangeCode => r.effects.changed.store(true, Ordering::SeqCst),
        Then::EditOutput => {
            for e in &mut history {
                if let EventKind::ExecutionCompleted { result, status, .. } = &mut e.kind {
                    assert_eq!(*status, RuntimeStatus::Completed);
                    *result = Some("999".into());
                }
            }
        }
        Then::Empty => history.clear(),
        _ => {}
    }
    let registry = program::registry(r.effects.clone());
    outcome(&replay_history(&registry, "r", &history))
}

#[tokio::test]
async fn replays_end_where_their_histories_end() {
    let lock = || Op::Transfer("a".into(), "b".into(), 5);
    let cases: Vec<(&str, Vec<Op>, Then, &str)> = vec![
        (
            "a finished history replays to its output",
            vec![Op::Activity(2), Op::All(vec![1, 2]), Op::Timer(10)],
            Then::Finish,
            "completed 5",
        ),
        (
            "a critical section replays, unlocks and all",
            vec![lock(), Op::Activity(1)],
            Then::Finish,
            "completed 1",
        ),
        (
            "a failed history replays to its failure",
            vec![Op::Activity(1), Op::FailOnce(2)],
            Then::Finish,
            "failed",
        ),
        (
            "a history still waiting replays to running",
            vec![Op::Activity(1), Op::Event("never".into())],
            Then::Wait,
            "running",
        ),
        (
            "a terminated history replays to its terminate",
            vec![Op::Event("never".into())],
            Then::Terminate,
            "terminated",
        ),
        (
            "changed code is nondeterministic",
            vec![Op::Activity(1)],
            Then::ChangeCode,
            "nondeterministic PERDURE-ND-002",
        ),
        (
            "an output the code does not compute is a different end",
            vec![Op::Activity(1)],
            Then::EditOutput,
            "different end",
        ),
        (
            "a history with no start is not started",
            vec![Op::Activity(1)],
            Then::Empty,
            "not started",
        ),
    ];
    for (name, ops, then, want) in cases {
        assert_eq!(replayed(ops, then).await, want, "{name}");
    }
}
