//! Conformance checks for the dispatch fast paths: fetching many work items
//! in one round trip, activities claimed by the committing worker, and an
//! activity result that hands its instance to the worker that ran it; and
//! the queue counts that metrics export.

use super::{begin_turn, commit_for, create, fetch_activity_until, fetch_until, now, LEASE};
use crate::*;
use perdure_core::{EventKind, HistoryEvent, RuntimeStatus};
use std::collections::HashSet;
use std::time::Duration;

fn activity(id: &str, task_id: i64) -> NewActivity {
    NewActivity {
        trace_context: None,
        instance_id: id.into(),
        execution_id: format!("{id}-e1"),
        task_id,
        name: "Work".into(),
        version: None,
        input: None,
    }
}

fn result(id: &str, task_id: i64) -> InstanceMessage {
    InstanceMessage {
        instance_id: id.into(),
        execution_id: Some(format!("{id}-e1")),
        event: HistoryEvent::new(
            now(),
            EventKind::TaskCompleted {
                task_scheduled_id: task_id,
                result: Some(task_id.to_string().into()),
            },
        ),
        visible_at: now(),
    }
}

/// Batched fetches: distinct instances, at most the number asked for,
/// every instance once; activities the same.
pub async fn check_batched_fetch<S: Store>(s: &S) {
    for id in ["b1", "b2", "b3"] {
        s.create_instance(create(id)).await.expect("create");
    }
    let first = s
        .fetch_orchestrations(LEASE, 100, 2, &WorkFilter::Any)
        .await
        .expect("fetch");
    assert_eq!(first.len(), 2, "a batch holds at most what was asked");
    let rest = s
        .fetch_orchestrations(LEASE, 100, 10, &WorkFilter::Any)
        .await
        .expect("fetch");
    let ids: HashSet<String> = first
        .iter()
        .chain(&rest)
        .map(|i| i.instance.instance_id.clone())
        .collect();
    assert_eq!(rest.len(), 1, "locked instances are not handed out again");
    assert_eq!(ids.len(), 3, "each instance once");
    assert!(s
        .fetch_orchestrations(LEASE, 100, 10, &WorkFilter::Any)
        .await
        .expect("fetch")
        .is_empty());
    let item = &first[0];
    let mut k = commit_for(
        item,
        vec![HistoryEvent::new(now(), EventKind::OrchestratorStarted)],
    );
    let id = item.instance.instance_id.clone();
    k.activities = (1..=3).map(|t| activity(&id, t)).collect();
    s.commit_orchestration(k).await.expect("commit");
    let tasks = s
        .fetch_activities(LEASE, 2, &WorkFilter::Any)
        .await
        .expect("fetch activities");
    let more = s
        .fetch_activities(LEASE, 5, &WorkFilter::Any)
        .await
        .expect("fetch activities");
    let ids: Vec<i64> = tasks
        .iter()
        .chain(&more)
        .map(|t| t.activity.task_id)
        .collect();
    assert_eq!(ids, vec![1, 2, 3], "activities in order, each once");
    let tokens: HashSet<&str> = tasks
        .iter()
        .chain(&more)
        .map(|t| t.lock_token.as_str())
        .collect();
    assert_eq!(tokens.len(), 3, "each task has its own lease token");
}

/// Claimed activities are stored leased to the committing worker: nobody
/// else takes them while the lease lasts, its token completes them, and
/// they are delivered again when the lease runs out.
pub async fn check_claims<S: Store>(s: &S) {
    let (_, mut k) = begin_turn(s, "cl").await;
    k.activities = vec![activity("cl", 1), activity("cl", 2), activity("cl", 3)];
    k.claims = ActivityClaims {
        tokens: vec!["claim-1".into(), "claim-2".into()],
        lease: Duration::from_millis(300),
    };
    s.commit_orchestration(k).await.expect("commit");
    let free = s
        .fetch_activities(LEASE, 10, &WorkFilter::Any)
        .await
        .expect("fetch");
    assert_eq!(
        free.iter().map(|t| t.activity.task_id).collect::<Vec<_>>(),
        vec![3],
        "claimed activities are not handed out while their lease lasts"
    );
    s.complete_activity("claim-1", result("cl", 1))
        .await
        .expect("the claim's token completes its activity");
    let again = fetch_activity_until(s, LEASE, Duration::from_secs(5))
        .await
        .expect("an expired claim is delivered again");
    assert_eq!(
        (again.activity.task_id, again.dequeue_count),
        (2, 2),
        "a claim counts as the first delivery"
    );
    assert!(matches!(
        s.complete_activity("claim-2", result("cl", 2)).await,
        Err(StoreError::LockLost(_))
    ));
}

/// A take asked again and again of an empty queue (a store may plan its
/// statement then) still takes, once the queue has grown, the oldest tasks
/// not leased, in order, passing over the leased ones at its head; with a
/// worker's filter as without.
pub async fn check_take_after_the_queue_grew<S: Store>(s: &S) {
    let work = WorkFilter::names(["Work".to_string()]);
    for _ in 0..8 {
        for filter in [&WorkFilter::Any, &work] {
            let none = s.fetch_activities(LEASE, 4, filter).await.expect("fetch");
            assert!(none.is_empty(), "an empty queue hands out nothing");
        }
    }
    let (_, mut k) = begin_turn(s, "qg").await;
    k.activities = (1..=60).map(|t| activity("qg", t)).collect();
    k.claims = ActivityClaims {
        tokens: (1..=10).map(|t| format!("qg-claim-{t}")).collect(),
        lease: LEASE,
    };
    s.commit_orchestration(k).await.expect("commit");
    let ids = |tasks: Vec<ActivityItem>| -> Vec<i64> {
        tasks.iter().map(|t| t.activity.task_id).collect()
    };
    let first = s
        .fetch_activities(LEASE, 5, &WorkFilter::Any)
        .await
        .expect("fetch");
    assert_eq!(
        ids(first),
        (11..=15).collect::<Vec<_>>(),
        "the oldest tasks not leased, in order"
    );
    let filtered = s.fetch_activities(LEASE, 5, &work).await.expect("fetch");
    assert_eq!(
        ids(filtered),
        (16..=20).collect::<Vec<_>>(),
        "a filtered take: the next oldest, in order"
    );
    let rest = s
        .fetch_activities(LEASE, 100, &WorkFilter::Any)
        .await
        .expect("fetch");
    assert_eq!(
        ids(rest),
        (21..=60).collect::<Vec<_>>(),
        "the rest, each once"
    );
}

/// The worker that ran an activity can take its running instance to carry
/// the result into the turn (a lease only: nothing of the result is
/// stored), and that turn's commit completes the task.
pub async fn check_take_for_result<S: Store>(s: &S) {
    let (_, mut k) = begin_turn(s, "ct").await;
    k.activities = vec![activity("ct", 1), activity("ct", 2)];
    s.commit_orchestration(k).await.expect("commit");
    let tasks = s
        .fetch_activities(LEASE, 2, &WorkFilter::Any)
        .await
        .expect("fetch");
    assert_eq!(tasks.len(), 2);
    let (first, second) = (&tasks[0].lock_token, &tasks[1].lock_token);
    let other = WorkFilter::names(["SomethingElse".to_string()]);
    let refused = s.take_for_result(first, "ct", LEASE, 100, &other).await;
    assert!(
        refused.expect("take").is_none(),
        "an instance the filter refuses is not taken"
    );
    assert!(
        matches!(
            s.take_for_result("no-such-token", "ct", LEASE, 100, &WorkFilter::Any)
                .await,
            Err(StoreError::LockLost(_))
        ),
        "a task not leased under the token takes nothing"
    );
    let taken = s
        .take_for_result(second, "ct", LEASE, 100, &WorkFilter::Any)
        .await
        .expect("take")
        .expect("a free running instance is taken with an empty inbox");
    assert_eq!(taken.instance.instance_id, "ct");
    assert!(taken.messages.is_empty(), "nothing was recorded");
    assert!(
        s.take_for_result(first, "ct", LEASE, 100, &WorkFilter::Any)
            .await
            .expect("take")
            .is_none(),
        "a leased instance is not taken again"
    );
    s.send_message(super::raised("ct", "e", Duration::ZERO))
        .await
        .expect("send");
    assert!(
        s.fetch_orchestration(LEASE, 100, &WorkFilter::Any)
            .await
            .expect("fetch")
            .is_none(),
        "the taken instance is leased"
    );
    let mut k = commit_for(
        &taken,
        vec![HistoryEvent::new(now(), EventKind::OrchestratorStarted)],
    );
    k.completed_tasks = vec![second.clone()];
    s.commit_orchestration(k).await.expect("commit");
    assert!(
        matches!(
            s.complete_activity(second, result("ct", 2)).await,
            Err(StoreError::LockLost(_))
        ),
        "the turn's commit completed the carried task"
    );
    assert_eq!(
        s.pending_tasks("ct", "ct-e1").await.expect("pending"),
        vec![1],
        "the other task is still pending"
    );
    let next = fetch_until(s, LEASE, Duration::from_secs(5))
        .await
        .expect("the event waits in the inbox");
    assert_eq!(next.messages.len(), 1);
}

/// A turn committed without a lease applies only while the instance is
/// free, running, unchanged since the turn's view of it and has nothing
/// visible in its inbox; otherwise nothing changes.
pub async fn check_commit_unleased<S: Store>(s: &S) {
    let (item, k) = begin_turn(s, "cu").await;
    let first = k.now;
    s.commit_orchestration(k).await.expect("commit");
    let turn = |len: u64, at| {
        let mut k = commit_for(
            &item,
            vec![
                HistoryEvent::new(at, EventKind::OrchestratorStarted),
                HistoryEvent::new(at, EventKind::OrchestratorCompleted),
            ],
        );
        k.lock_token = String::new();
        k.consumed.clear();
        k.expected_history_len = len;
        k.now = at;
        k
    };
    let stale = first - chrono::Duration::milliseconds(5);
    assert!(
        !s.commit_unleased(turn(1, now()), stale)
            .await
            .expect("commit"),
        "a turn that saw an older update is refused"
    );
    assert!(
        !s.commit_unleased(turn(3, now()), first)
            .await
            .expect("commit"),
        "a turn that saw another history length is refused"
    );
    // Later than the first to the millisecond (stores keep milliseconds).
    let second = now().max(first + chrono::Duration::milliseconds(1));
    assert!(
        s.commit_unleased(turn(1, second), first)
            .await
            .expect("commit"),
        "a turn on the instance as it is applies"
    );
    assert_eq!(s.read_history("cu").await.expect("history").len(), 3);
    assert!(
        !s.commit_unleased(turn(3, now()), first)
            .await
            .expect("commit"),
        "the same view, used twice, is refused the second time"
    );
    s.send_message(super::raised("cu", "e", Duration::ZERO))
        .await
        .expect("send");
    assert!(
        !s.commit_unleased(turn(3, now().max(second)), second)
            .await
            .expect("commit"),
        "a visible message refuses it"
    );
    let held = fetch_until(s, LEASE, Duration::from_secs(5))
        .await
        .expect("the event makes it runnable");
    assert!(
        !s.commit_unleased(turn(3, now().max(second)), second)
            .await
            .expect("commit"),
        "a live lease refuses it"
    );
    let mut k = commit_for(&held, Vec::new());
    k.expected_history_len = 3;
    s.commit_orchestration(k)
        .await
        .expect("the lease holder commits");
    assert_eq!(
        s.read_history("cu").await.expect("history").len(),
        3,
        "refused turns wrote nothing"
    );
}

/// Queue depths count ready and scheduled messages, due and scheduled
/// timers, and ready, running and delayed activities.
pub async fn check_queue_depths<S: Store>(s: &S) {
    assert_eq!(
        s.queue_depths().await.expect("depths"),
        QueueDepths::default(),
        "an empty store counts nothing"
    );
    let (_, mut k) = begin_turn(s, "qd").await;
    k.activities = vec![activity("qd", 1), activity("qd", 2), activity("qd", 3)];
    let timer = |id: i64, at| InstanceMessage {
        instance_id: "qd".into(),
        execution_id: Some("qd-e1".into()),
        event: HistoryEvent::new(
            now(),
            EventKind::TimerFired {
                timer_id: id,
                fire_at: at,
            },
        ),
        visible_at: at,
    };
    let later = now() + chrono::Duration::hours(1);
    // An event whose payload reads like a timer is not one (stored
    // payloads are not escaped).
    let lookalike = InstanceMessage {
        event: HistoryEvent::new(
            now(),
            EventKind::EventRaised {
                name: "TimerFired".into(),
                input: Some(r#"{"type":"TimerFired","timer_id":1}"#.into()),
                trace_context: None,
            },
        ),
        ..timer(12, now())
    };
    k.messages = vec![timer(10, later), timer(11, now()), lookalike];
    s.commit_orchestration(k).await.expect("commit");
    s.create_instance(create("qd-other")).await.expect("create");
    let running = s
        .fetch_activities(LEASE, 1, &WorkFilter::Any)
        .await
        .expect("fetch");
    assert_eq!(running.len(), 1);
    let delayed = s
        .fetch_activities(LEASE, 1, &WorkFilter::Any)
        .await
        .expect("fetch");
    s.abandon_activity(&delayed[0].lock_token, Duration::from_secs(3600))
        .await
        .expect("abandon");
    let d = s.queue_depths().await.expect("depths");
    assert_eq!(
        d,
        QueueDepths {
            // The due timer, the lookalike and qd-other's start.
            messages_ready: 3,
            messages_scheduled: 1,
            timers_due: 1,
            timers_scheduled: 1,
            activities_ready: 1,
            activities_running: 1,
            activities_delayed: 1,
        }
    );
    // Once the instance has ended, its timer is no longer scheduled.
    let taken = s
        .fetch_orchestrations(LEASE, 100, 10, &WorkFilter::Any)
        .await
        .expect("fetch");
    let item = taken
        .into_iter()
        .find(|i| i.instance.instance_id == "qd")
        .expect("the due timer is work");
    let mut end = commit_for(&item, Vec::new());
    end.update.status = RuntimeStatus::Completed;
    s.commit_orchestration(end).await.expect("complete");
    let d = s.queue_depths().await.expect("depths");
    assert_eq!(
        d.timers_scheduled, 0,
        "a timer of an ended instance is not counted as scheduled"
    );
}

/// A new instance created with its first turn: one write, the turn's
/// state, history and tasks as a leased commit leaves them, no start
/// message and no lease left behind; a taken id is declined untouched; the
/// turn's messages create the instances they start; and the next turn can
/// go unleased on the first turn's time.
pub async fn check_create_with_first_turn<S: Store>(s: &S) {
    let at = now();
    let first = |id: &str, messages: Vec<InstanceMessage>| {
        let item = create(id).into_item(0, String::new(), at.timestamp_millis());
        let start = item.messages[0].event.clone();
        let mut k = commit_for(
            &item,
            vec![
                HistoryEvent::new(at, EventKind::OrchestratorStarted),
                start,
                HistoryEvent::new(
                    at,
                    EventKind::TaskScheduled {
                        name: "Work".into(),
                        version: None,
                        input: None,
                        trace_context: None,
                        tags: Default::default(),
                    },
                ),
            ],
        );
        k.now = at;
        k.activities = vec![activity(id, 2), activity(id, 3)];
        k.claims.tokens = vec![format!("{id}-claim")];
        k.claims.lease = LEASE;
        k.messages = messages;
        k
    };
    match s
        .create_with_first_turn(first("ft", Vec::new()))
        .await
        .expect("first turn")
    {
        FirstTurn::Created => {}
        FirstTurn::Declined(_) => panic!("a new id is created with its first turn"),
    }
    let rec = s.get_instance("ft").await.expect("get").expect("created");
    assert_eq!(rec.status, RuntimeStatus::Running);
    assert_eq!(rec.history_len, 3);
    assert_eq!(rec.input.as_deref(), Some("1"));
    assert_eq!(rec.custom_status.as_deref(), Some("\"cs\""));
    assert_eq!(rec.created_at.timestamp_millis(), at.timestamp_millis());
    assert_eq!(rec.updated_at.timestamp_millis(), at.timestamp_millis());
    let history = s.read_history("ft").await.expect("history");
    assert_eq!(history.len(), 3);
    assert!(matches!(
        history[1].kind,
        EventKind::ExecutionStarted { .. }
    ));
    assert!(
        s.fetch_orchestrations(LEASE, 100, 10, &WorkFilter::Any)
            .await
            .expect("fetch")
            .is_empty(),
        "no start message and no lease are left: nothing to take"
    );
    let free = fetch_activity_until(s, LEASE, Duration::from_secs(5))
        .await
        .expect("the unclaimed activity is anyone's");
    assert_eq!(
        free.activity.task_id, 3,
        "the claimed one is leased to the caller"
    );
    match s
        .create_with_first_turn(first("ft", Vec::new()))
        .await
        .expect("again")
    {
        FirstTurn::Declined(k) => {
            assert_eq!(k.instance_id, "ft");
            let req = CreateInstance::from_first_turn(*k).expect("the start is in its history");
            assert_eq!(
                (req.name.as_str(), req.input.as_deref()),
                ("Orch", Some("1"))
            );
        }
        FirstTurn::Created => panic!("a taken id must be declined"),
    }
    assert_eq!(
        s.read_history("ft").await.expect("history").len(),
        3,
        "declined: untouched"
    );
    // The next turn, unleased, on the first turn's time.
    let item = create("ft").into_item(0, String::new(), at.timestamp_millis());
    let mut next = commit_for(
        &item,
        vec![HistoryEvent::new(at, EventKind::OrchestratorStarted)],
    );
    next.lock_token = String::new();
    next.consumed.clear();
    next.expected_history_len = 3;
    next.now = now().max(at + chrono::Duration::milliseconds(1));
    assert!(
        s.commit_unleased(next, at).await.expect("commit"),
        "a turn after the first applies unleased, on the time it was created at"
    );
    // A first turn that starts a sub-orchestration creates it.
    let child = super::create("ft-child");
    let start_child = InstanceMessage {
        instance_id: child.instance_id.clone(),
        execution_id: Some(child.execution_id.clone()),
        event: child.start_event.clone(),
        visible_at: at,
    };
    assert!(matches!(
        s.create_with_first_turn(first("ft-parent", vec![start_child]))
            .await
            .expect("with a message"),
        FirstTurn::Created
    ));
    assert_eq!(
        s.get_instance("ft-parent")
            .await
            .expect("get")
            .map(|r| r.history_len),
        Some(3)
    );
    let taken = fetch_until(s, LEASE, Duration::from_secs(5))
        .await
        .expect("the child's start is work");
    assert_eq!(taken.instance.instance_id, "ft-child");
}
