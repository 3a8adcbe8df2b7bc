//! Data-driven tests of the replay state machine: each case is a history, the
//! calls the "code" makes, and the expected outcome.

use super::*;
use chrono::{TimeZone, Utc};

fn ts(s: i64) -> Timestamp {
    Utc.timestamp_opt(1_700_000_000 + s, 0)
        .single()
        .unwrap_or_default()
}

fn ev(id: i64, kind: EventKind) -> HistoryEvent {
    HistoryEvent {
        event_id: id,
        timestamp: ts(0),
        kind,
    }
}

fn started() -> HistoryEvent {
    ev(
        -1,
        EventKind::ExecutionStarted {
            trace_context: None,
            name: "O".into(),
            version: None,
            input: None,
            execution_id: "x".into(),
            parent: None,
            tags: Default::default(),
        },
    )
}

fn sched(id: i64, name: &str) -> HistoryEvent {
    ev(
        id,
        EventKind::TaskScheduled {
            trace_context: None,
            name: name.into(),
            version: None,
            input: None,
            tags: Default::default(),
        },
    )
}

fn done(id: i64, result: &str) -> HistoryEvent {
    ev(
        -1,
        EventKind::TaskCompleted {
            task_scheduled_id: id,
            result: Some(result.into()),
        },
    )
}

fn os() -> HistoryEvent {
    ev(-1, EventKind::OrchestratorStarted)
}

fn oc() -> HistoryEvent {
    ev(-1, EventKind::OrchestratorCompleted)
}

/// Replays `history`; `code` is called after every event with the state and
/// schedules what the orchestrator would. Returns the first error.
fn replay(
    history: &[HistoryEvent],
    mut code: impl FnMut(&mut ExecutionState, &Applied),
) -> Result<ExecutionState, NonDeterminism> {
    let mut st = ExecutionState::new("i", ts(0));
    st.set_replaying(true);
    for e in history {
        let a = st.apply(e)?;
        code(&mut st, &a);
    }
    Ok(st)
}

/// A "chain" orchestrator: on start schedules the first name, and after each
/// completion the next one.
fn chain(names: &'static [&'static str]) -> impl FnMut(&mut ExecutionState, &Applied) {
    let mut i = 0;
    move |st, a| {
        if matches!(a, Applied::Started | Applied::Resolved(_)) && i < names.len() {
            st.schedule_task(names[i], None, None);
            i += 1;
        }
    }
}

#[test]
fn matching_history_replays_cleanly() {
    let h = [
        os(),
        started(),
        sched(0, "A"),
        oc(),
        os(),
        done(0, "1"),
        sched(1, "B"),
        oc(),
    ];
    let st = replay(&h, chain(&["A", "B"])).expect("deterministic");
    assert!(st.has_open_tasks());
}

#[test]
fn nondeterminism_cases() {
    let h = [
        os(),
        started(),
        sched(0, "A"),
        oc(),
        os(),
        done(0, "1"),
        sched(1, "B"),
        oc(),
    ];
    let cases: Vec<(&str, &'static [&'static str], &str, &str)> = vec![
        (
            "renamed activity",
            &["A", "C"],
            "PERDURE-ND-002",
            "ScheduleTask `C`",
        ),
        (
            "first renamed",
            &["Z", "B"],
            "PERDURE-ND-002",
            "ScheduleTask `Z`",
        ),
        (
            "missing step",
            &["A"],
            "PERDURE-ND-003",
            "scheduled nothing",
        ),
    ];
    for (what, names, code, actual) in cases {
        let err = replay(&h, chain(names)).expect_err(what);
        assert_eq!(err.code, code, "{what}");
        assert!(err.actual.contains(actual), "{what}: {err}");
        assert!(err.to_string().contains("NonDeterminism"), "{what}");
    }
    // An extra step in the first turn.
    let err = replay(&h, |st, a| {
        if matches!(a, Applied::Started) {
            st.schedule_task("A", None, None);
            st.schedule_task("Extra", None, None);
        }
    })
    .expect_err("extra");
    assert_eq!(err.code, "PERDURE-ND-004");
    let h1 = [os(), started(), sched(0, "A"), oc()];
    let err = replay(&h1, |st, a| {
        if matches!(a, Applied::Started) {
            st.schedule_task("A", None, None);
            st.schedule_task("Extra", None, None);
        }
    })
    .expect_err("extra at end of turn");
    assert_eq!(err.code, "PERDURE-ND-004");
    assert!(err.actual.contains("Extra"));
}

#[test]
fn another_kind_of_action_is_nd_001() {
    let h = [os(), started(), sched(0, "A"), oc()];
    let err = replay(&h, |st, a| {
        if matches!(a, Applied::Started) {
            st.create_timer(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH);
        }
    })
    .expect_err("a timer where an activity was");
    assert_eq!(err.kind, NonDeterminismKind::OtherKind);
    assert_eq!(err.code, "PERDURE-ND-001");
    assert_eq!(err.event_id, 0);
    assert!(err.to_string().contains("PERDURE-ND-001"), "{err}");
    assert!(err.actual.contains("CreateTimer"), "{err}");
}

#[test]
fn duplicate_and_stale_completions_are_ignored() {
    let mut st = ExecutionState::new("i", ts(0));
    let id = st.schedule_task("A", None, None);
    assert_eq!(
        st.apply(&done(id, "1")).unwrap(),
        Applied::Resolved(TaskKey::Action(id))
    );
    assert_eq!(st.apply(&done(id, "1")).unwrap(), Applied::Ignored);
    assert_eq!(st.apply(&done(99, "1")).unwrap(), Applied::Ignored);
    // A timer-fired for an activity id is not a completion of it.
    let a = st.schedule_task("B", None, None);
    let fired = ev(
        -1,
        EventKind::TimerFired {
            timer_id: a,
            fire_at: ts(1),
        },
    );
    assert_eq!(st.apply(&fired).unwrap(), Applied::Ignored);
}

#[test]
fn events_are_case_insensitive_buffered_and_fifo() {
    let mut st = ExecutionState::new("i", ts(0));
    let raise = |n: &str, v: &str| {
        ev(
            -1,
            EventKind::EventRaised {
                name: n.into(),
                input: Some(v.into()),
                trace_context: None,
            },
        )
    };
    assert_eq!(
        st.apply(&raise("Approval", "1")).unwrap(),
        Applied::Buffered
    );
    assert_eq!(
        st.apply(&raise("APPROVAL", "2")).unwrap(),
        Applied::Buffered
    );
    let k1 = st.wait_for_event("approval");
    assert_eq!(st.take_ready(k1), Some(Completion::Ok(Some("1".into()))));
    let k2 = st.wait_for_event("approval");
    assert_eq!(st.take_ready(k2), Some(Completion::Ok(Some("2".into()))));
    let k3 = st.wait_for_event("Other");
    let k4 = st.wait_for_event("other");
    assert_eq!(
        st.apply(&raise("OTHER", "3")).unwrap(),
        Applied::Resolved(k3)
    );
    st.cancel(k4);
    assert_eq!(st.apply(&raise("other", "4")).unwrap(), Applied::Buffered);
    assert_eq!(st.unprocessed_events().count(), 1);
}

#[test]
fn guids_are_deterministic_and_distinct() {
    let mut a = ExecutionState::new("i", ts(0));
    let mut b = ExecutionState::new("i", ts(0));
    let ga: Vec<_> = (0..3).map(|_| a.new_guid()).collect();
    let gb: Vec<_> = (0..3).map(|_| b.new_guid()).collect();
    assert_eq!(ga, gb);
    assert_ne!(ga[0], ga[1]);
    assert_eq!(ga[0].len(), 36);
    let mut c = ExecutionState::new("j", ts(0));
    assert_ne!(c.new_guid(), ga[0]);
}

#[test]
fn current_time_follows_orchestrator_started() {
    let mut st = ExecutionState::new("i", ts(0));
    let mut e = os();
    e.timestamp = ts(42);
    st.apply(&e).unwrap();
    assert_eq!(st.current_time(), ts(42));
}

#[test]
fn sub_orchestration_ids_are_derived_deterministically() {
    let mut st = ExecutionState::new("parent", ts(0));
    st.schedule_task("A", None, None);
    let (id, child) = st.create_sub_orchestration("Child", None, None, None);
    assert_eq!((id, child.as_str()), (1, "parent:0001"));
    let (_, explicit) = st.create_sub_orchestration("Child", None, Some("mine".into()), None);
    assert_eq!(explicit, "mine");
}

fn marker(change: &str) -> HistoryEvent {
    ev(
        -1,
        EventKind::PatchMarker {
            change_id: change.into(),
        },
    )
}

/// What `is_patched("c")` answers on a state that knows `history`'s
/// markers, replaying or live, and the markers it asks to record.
fn patched(history: &[HistoryEvent], replaying: bool) -> (bool, Vec<String>) {
    let mut st = ExecutionState::new("i", ts(0));
    st.know_patches(history);
    st.set_replaying(replaying);
    let answer = st.is_patched("c");
    (answer, st.take_new_patches())
}

#[test]
fn is_patched_while_replaying_a_history_without_the_marker_is_false() {
    assert_eq!(patched(&[started(), os()], true), (false, vec![]));
}

#[test]
fn is_patched_while_replaying_a_history_with_the_marker_is_true() {
    assert_eq!(
        patched(&[started(), os(), marker("c")], true),
        (true, vec![])
    );
}

#[test]
fn is_patched_live_is_true_and_records_the_marker_once() {
    let mut st = ExecutionState::new("i", ts(0));
    assert!(st.is_patched("c"));
    assert!(st.is_patched("c"));
    assert_eq!(st.take_new_patches(), vec!["c".to_string()]);
}

#[test]
fn is_patched_live_with_the_marker_recorded_records_nothing_more() {
    assert_eq!(patched(&[started(), marker("c")], false), (true, vec![]));
}

#[test]
fn a_marker_of_another_change_does_not_count() {
    assert_eq!(patched(&[started(), marker("d")], true), (false, vec![]));
}

#[test]
fn a_marker_in_history_needs_no_code_asking_for_it() {
    let history = [started(), os(), marker("c"), oc()];
    assert!(replay(&history, |_, _| {}).is_ok());
}

#[test]
fn deprecate_patch_records_live_and_nothing_while_replaying() {
    let mut st = ExecutionState::new("i", ts(0));
    st.set_replaying(true);
    st.deprecate_patch("c");
    assert!(st.take_new_patches().is_empty());
    st.set_replaying(false);
    st.deprecate_patch("c");
    assert_eq!(st.take_new_patches(), vec!["c".to_string()]);
}
