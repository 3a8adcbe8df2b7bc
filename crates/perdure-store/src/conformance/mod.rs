//! The conformance kit: behaviour every store must show, as async checks
//! that panic with a message naming the broken rule. Each store's tests run
//! [`run_all`] against fresh stores.

mod batch;
mod clock;
mod purge;
mod tags;

pub use batch::{
    check_batched_fetch, check_claims, check_commit_unleased, check_create_with_first_turn,
    check_queue_depths, check_take_after_the_queue_grew, check_take_for_result,
};
pub use clock::check_turn_time_never_before_last_update;
pub use purge::{
    check_list_purge_suspend, check_purge_waits_for_a_new_start, check_purge_waits_for_a_rewind,
};
pub use tags::check_tags;

use crate::*;
use perdure_core::{EventKind, HistoryEvent, ParentInstance, RuntimeStatus};
use std::future::Future;
use std::time::{Duration, Instant};

fn now() -> perdure_core::Timestamp {
    chrono::Utc::now()
}

fn start_event(name: &str, exec: &str) -> HistoryEvent {
    HistoryEvent::new(
        now(),
        EventKind::ExecutionStarted {
            trace_context: None,
            tags: Default::default(),
            name: name.into(),
            version: None,
            input: Some("1".into()),
            execution_id: exec.into(),
            parent: None,
        },
    )
}

fn create(id: &str) -> CreateInstance {
    CreateInstance {
        instance_id: id.into(),
        name: "Orch".into(),
        version: None,
        input: Some("1".into()),
        execution_id: format!("{id}-e1"),
        start_event: start_event("Orch", &format!("{id}-e1")),
        visible_at: now(),
    }
}

fn raised(id: &str, name: &str, delay: Duration) -> InstanceMessage {
    InstanceMessage {
        instance_id: id.into(),
        execution_id: None,
        event: HistoryEvent::new(
            now(),
            EventKind::EventRaised {
                name: name.into(),
                input: None,
                trace_context: None,
            },
        ),
        visible_at: now() + chrono::Duration::from_std(delay).unwrap_or_default(),
    }
}

const LEASE: Duration = Duration::from_secs(30);

fn commit_for(item: &OrchestrationItem, history: Vec<HistoryEvent>) -> OrchestrationCommit {
    let r = &item.instance;
    OrchestrationCommit {
        instance_id: r.instance_id.clone(),
        lock_token: item.lock_token.clone(),
        replace_history: false,
        expected_history_len: r.history_len,
        history,
        update: InstanceUpdate {
            name: r.name.clone(),
            version: None,
            status: RuntimeStatus::Running,
            execution_id: r.execution_id.clone(),
            input: r.input.clone(),
            output: None,
            failure: None,
            custom_status: Some("\"cs\"".into()),
            parent_instance_id: None,
            tags: r.tags.clone(),
        },
        consumed: item.messages.iter().map(|m| m.seq).collect(),
        activities: Vec::new(),
        messages: Vec::new(),
        now: now(),
        claims: Default::default(),
        completed_tasks: Vec::new(),
    }
}

/// Creates instance `id`, takes it, and starts a turn's commit for it.
async fn begin_turn<S: Store>(s: &S, id: &str) -> (OrchestrationItem, OrchestrationCommit) {
    s.create_instance(create(id)).await.expect("create");
    let item = fetch_until(s, LEASE, Duration::from_secs(5))
        .await
        .expect("work");
    let k = commit_for(
        &item,
        vec![HistoryEvent::new(now(), EventKind::OrchestratorStarted)],
    );
    (item, k)
}

async fn fetch_until<S: Store>(
    s: &S,
    lease: Duration,
    within: Duration,
) -> Option<OrchestrationItem> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(item) = s
            .fetch_orchestration(lease, 100, &WorkFilter::Any)
            .await
            .expect("fetch")
        {
            return Some(item);
        }
        if Instant::now() >= deadline {
            return None;
        }
        s.wait_for_work(WorkKind::Orchestration, Duration::from_millis(50))
            .await;
    }
}

async fn fetch_activity_until<S: Store>(
    s: &S,
    lease: Duration,
    within: Duration,
) -> Option<ActivityItem> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(item) = s
            .fetch_activity(lease, &WorkFilter::Any)
            .await
            .expect("fetch activity")
        {
            return Some(item);
        }
        if Instant::now() >= deadline {
            return None;
        }
        s.wait_for_work(WorkKind::Activity, Duration::from_millis(50))
            .await;
    }
}

/// Creation, duplicates, lookups and messages to unknown instances.
pub async fn check_instances<S: Store>(s: &S) {
    s.create_instance(create("a")).await.expect("create");
    let r = s.get_instance("a").await.expect("get").expect("exists");
    assert_eq!(
        (r.status, r.history_len, r.input.as_deref()),
        (RuntimeStatus::Pending, 0, Some("1"))
    );
    assert!(
        matches!(
            s.create_instance(create("a")).await,
            Err(StoreError::AlreadyExists { .. })
        ),
        "creating a Pending instance again must be refused"
    );
    assert!(s.get_instance("nope").await.expect("get").is_none());
    assert!(matches!(
        s.send_message(raised("nope", "e", Duration::ZERO)).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(s.read_history("nope").await.expect("history").is_empty());
}

/// Fetching locks an instance with its visible messages in order; leases end.
pub async fn check_fetch_and_leases<S: Store>(s: &S) {
    s.create_instance(create("f")).await.expect("create");
    s.send_message(raised("f", "one", Duration::ZERO))
        .await
        .expect("send");
    s.send_message(raised("f", "later", Duration::from_secs(3600)))
        .await
        .expect("send");
    let item = fetch_until(s, Duration::from_millis(300), Duration::from_secs(5))
        .await
        .expect("work");
    let kinds: Vec<_> = item.messages.iter().map(|m| m.event.type_name()).collect();
    assert_eq!(
        kinds,
        ["ExecutionStarted", "EventRaised"],
        "visible messages in order, future ones held back"
    );
    assert!(item.messages.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(
        s.fetch_orchestration(LEASE, 100, &WorkFilter::Any)
            .await
            .expect("fetch")
            .is_none(),
        "a locked instance is not handed out twice"
    );
    // The lease ends: someone else gets the work with a new token.
    let again = fetch_until(s, LEASE, Duration::from_secs(5))
        .await
        .expect("work after the lease ended");
    assert_ne!(again.lock_token, item.lock_token);
    let stale = commit_for(
        &item,
        vec![HistoryEvent::new(now(), EventKind::OrchestratorStarted)],
    );
    assert!(
        matches!(
            s.commit_orchestration(stale).await,
            Err(StoreError::LockLost(_))
        ),
        "stale token must not commit"
    );
    assert!(
        s.read_history("f").await.expect("history").is_empty(),
        "a refused commit changes nothing"
    );
    s.renew_orchestration_lock("f", &again.lock_token, LEASE)
        .await
        .expect("renew");
    assert!(matches!(
        s.renew_orchestration_lock("f", "bogus", LEASE).await,
        Err(StoreError::LockLost(_))
    ));
    s.abandon_orchestration("f", &again.lock_token, Duration::ZERO)
        .await
        .expect("abandon");
    let third = fetch_until(s, LEASE, Duration::from_secs(5))
        .await
        .expect("abandoned work comes back");
    assert_eq!(third.messages.len(), 2);
}

/// A commit applies everything or, when refused, nothing.
pub async fn check_commit<S: Store>(s: &S) {
    s.create_instance(create("c")).await.expect("create");
    let item = fetch_until(s, LEASE, Duration::from_secs(5))
        .await
        .expect("work");
    let h = vec![
        HistoryEvent::new(now(), EventKind::OrchestratorStarted),
        item.messages[0].event.clone(),
        HistoryEvent {
            event_id: 0,
            timestamp: now(),
            kind: EventKind::TaskScheduled {
                trace_context: None,
                name: "A".into(),
                version: None,
                input: None,
                tags: Default::default(),
            },
        },
        HistoryEvent::new(now(), EventKind::OrchestratorCompleted),
    ];
    // A wrong history length is refused and changes nothing.
    let mut bad = commit_for(&item, h.clone());
    bad.expected_history_len = 7;
    assert!(matches!(
        s.commit_orchestration(bad).await,
        Err(StoreError::HistoryConflict { .. })
    ));
    assert!(s.read_history("c").await.expect("h").is_empty());
    let mut k = commit_for(&item, h.clone());
    let task_trace = perdure_core::TraceContext::new(0xfeed, 0xbeef, 1, Some("k=v".into()));
    k.activities.push(NewActivity {
        trace_context: Some(task_trace.clone()),
        instance_id: "c".into(),
        execution_id: "c-e1".into(),
        task_id: 0,
        name: "A".into(),
        version: None,
        input: Some("2".into()),
    });
    let child_start = HistoryEvent::new(
        now(),
        EventKind::ExecutionStarted {
            trace_context: None,
            tags: Default::default(),
            name: "Child".into(),
            version: None,
            input: None,
            execution_id: "ce".into(),
            parent: Some(ParentInstance {
                name: "Orch".into(),
                instance_id: "c".into(),
                execution_id: "c-e1".into(),
                task_scheduled_id: 1,
            }),
        },
    );
    k.messages.push(InstanceMessage {
        instance_id: "c:child".into(),
        execution_id: Some("ce".into()),
        event: child_start,
        visible_at: now(),
    });
    k.messages.push(raised("ghost", "dropped", Duration::ZERO));
    s.commit_orchestration(k).await.expect("commit");
    let stored = s.read_history("c").await.expect("h");
    assert_eq!(stored, h, "history appended in order");
    let r = s.get_instance("c").await.expect("get").expect("exists");
    assert_eq!(
        (r.status, r.history_len, r.custom_status.as_deref()),
        (RuntimeStatus::Running, 4, Some("\"cs\""))
    );
    let child = s
        .get_instance("c:child")
        .await
        .expect("get")
        .expect("a start message creates its instance");
    assert_eq!(
        (child.status, child.parent_instance_id.as_deref()),
        (RuntimeStatus::Pending, Some("c"))
    );
    assert!(
        s.get_instance("ghost").await.expect("get").is_none(),
        "other messages to unknown instances are dropped"
    );
    // The lease was released and the consumed start is gone.
    let act = fetch_activity_until(s, LEASE, Duration::from_secs(5))
        .await
        .expect("the activity was enqueued");
    assert_eq!(
        (
            act.activity.name.as_str(),
            act.activity.input.as_deref(),
            act.dequeue_count
        ),
        ("A", Some("2"), 1)
    );
    assert_eq!(
        act.activity.trace_context,
        Some(task_trace),
        "a task keeps its trace context"
    );
    let mut seen_child = false;
    while let Some(item) = s
        .fetch_orchestration(LEASE, 100, &WorkFilter::Any)
        .await
        .expect("fetch")
    {
        assert_ne!(
            item.instance.instance_id, "c",
            "consumed messages must be gone"
        );
        seen_child |= item.instance.instance_id == "c:child";
    }
    assert!(seen_child);
    // Replacing history.
    s.send_message(raised("c", "x", Duration::ZERO))
        .await
        .expect("send");
    let item = fetch_until(s, LEASE, Duration::from_secs(5))
        .await
        .expect("work");
    assert_eq!(item.instance.instance_id, "c");
    let mut k = commit_for(
        &item,
        vec![HistoryEvent::new(now(), EventKind::OrchestratorStarted)],
    );
    k.replace_history = true;
    k.expected_history_len = 0;
    s.commit_orchestration(k).await.expect("commit");
    assert_eq!(s.read_history("c").await.expect("h").len(), 1);
}

/// Activities: exclusive, at least once, results land in the inbox.
pub async fn check_activities<S: Store>(s: &S) {
    let (_, mut k) = begin_turn(s, "t").await;
    k.activities.push(NewActivity {
        trace_context: None,
        instance_id: "t".into(),
        execution_id: "t-e1".into(),
        task_id: 3,
        name: "Work".into(),
        version: None,
        input: None,
    });
    s.commit_orchestration(k).await.expect("commit");
    let first = fetch_activity_until(s, Duration::from_millis(300), Duration::from_secs(5))
        .await
        .expect("task");
    assert!(
        s.fetch_activity(LEASE, &WorkFilter::Any)
            .await
            .expect("fetch")
            .is_none(),
        "a locked task is not handed out twice"
    );
    let again = fetch_activity_until(s, LEASE, Duration::from_secs(5))
        .await
        .expect("redelivered after the lease ended");
    assert_eq!((again.activity.task_id, again.dequeue_count), (3, 2));
    let result = InstanceMessage {
        instance_id: "t".into(),
        execution_id: Some("t-e1".into()),
        event: HistoryEvent::new(
            now(),
            EventKind::TaskCompleted {
                task_scheduled_id: 3,
                result: Some("9".into()),
            },
        ),
        visible_at: now(),
    };
    assert!(matches!(
        s.complete_activity(&first.lock_token, result.clone()).await,
        Err(StoreError::LockLost(_))
    ));
    assert!(
        s.fetch_orchestration(LEASE, 100, &WorkFilter::Any)
            .await
            .expect("fetch")
            .is_none(),
        "a refused completion enqueues nothing"
    );
    s.renew_activity_lock(&again.lock_token, LEASE)
        .await
        .expect("renew");
    s.complete_activity(&again.lock_token, result)
        .await
        .expect("complete");
    let item = fetch_until(s, LEASE, Duration::from_secs(5))
        .await
        .expect("result delivered");
    assert!(matches!(
        item.messages[0].event.kind,
        EventKind::TaskCompleted {
            task_scheduled_id: 3,
            ..
        }
    ));
    assert!(
        s.fetch_activity(LEASE, &WorkFilter::Any)
            .await
            .expect("fetch")
            .is_none(),
        "a completed task is gone"
    );
    assert!(matches!(
        s.abandon_activity("bogus", Duration::ZERO).await,
        Err(StoreError::LockLost(_))
    ));
}

/// Abandoned activities come back after the delay.
pub async fn check_abandon_activity<S: Store>(s: &S) {
    let (_, mut k) = begin_turn(s, "b").await;
    k.activities.push(NewActivity {
        trace_context: None,
        instance_id: "b".into(),
        execution_id: "b-e1".into(),
        task_id: 0,
        name: "W".into(),
        version: None,
        input: None,
    });
    s.commit_orchestration(k).await.expect("commit");
    let a = fetch_activity_until(s, LEASE, Duration::from_secs(5))
        .await
        .expect("task");
    s.abandon_activity(&a.lock_token, Duration::from_millis(200))
        .await
        .expect("abandon");
    assert!(
        s.fetch_activity(LEASE, &WorkFilter::Any)
            .await
            .expect("fetch")
            .is_none(),
        "not visible before the delay"
    );
    assert!(fetch_activity_until(s, LEASE, Duration::from_secs(5))
        .await
        .is_some());
}

/// Finished instances can be replaced; wake-ups come promptly.
pub async fn check_replace_and_wake<S: Store>(s: &S) {
    let (_, mut k) = begin_turn(s, "r").await;
    k.update.status = RuntimeStatus::Completed;
    s.commit_orchestration(k).await.expect("commit");
    s.create_instance(create("r"))
        .await
        .expect("a finished instance is replaced");
    let r = s.get_instance("r").await.expect("get").expect("exists");
    assert_eq!((r.status, r.history_len), (RuntimeStatus::Pending, 0));
    assert!(s.read_history("r").await.expect("h").is_empty());
    let _ = fetch_until(s, LEASE, Duration::from_secs(5))
        .await
        .expect("work");
    // A message due shortly wakes a waiter when it is due, well before max_wait.
    s.create_instance(create("w")).await.expect("create");
    let item = fetch_until(s, LEASE, Duration::from_secs(5))
        .await
        .expect("work");
    let mut k = commit_for(&item, vec![]);
    k.messages
        .push(raised("w", "soon", Duration::from_millis(300)));
    s.commit_orchestration(k).await.expect("commit");
    let t = Instant::now();
    let mut got = None;
    while t.elapsed() < Duration::from_secs(20) && got.is_none() {
        s.wait_for_work(WorkKind::Orchestration, Duration::from_secs(20))
            .await;
        got = s
            .fetch_orchestration(LEASE, 10, &WorkFilter::Any)
            .await
            .expect("fetch");
    }
    assert!(
        got.is_some() && t.elapsed() < Duration::from_secs(10),
        "a due message wakes the dispatcher"
    );
}

/// A PostgreSQL URL for a test, in a task hub of its own, from
/// `PERDURE_TEST_POSTGRES`; `None` (saying plainly that `what` was skipped)
/// when the variable is not set.
pub fn postgres_test_url(what: &str) -> Option<String> {
    static HUBS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    match std::env::var("PERDURE_TEST_POSTGRES") {
        Ok(base) if !base.is_empty() => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() % 1_000_000_000_000)
                .unwrap_or(0);
            let n = HUBS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let hub = format!("t_{}_{nanos}_{n}", std::process::id());
            let sep = if base.contains('?') { '&' } else { '?' };
            Some(format!("{base}{sep}hub={hub}"))
        }
        _ => {
            eprintln!(
                "skipped: PERDURE_TEST_POSTGRES is not set, so {what} did not run on PostgreSQL"
            );
            None
        }
    }
}

/// Runs every check, each on a fresh store from `make`.
/// Name and version filters on both queues: workers that serve different
/// names share a hub without taking each other's work.
pub async fn check_filters<S: Store>(s: &S) {
    let only = |name: &str, versions: &[&str]| {
        WorkFilter::Only(vec![NameFilter {
            name: name.into(),
            versions: versions.iter().map(|v| v.to_string()).collect(),
        }])
    };
    let mut other = create("w2");
    other.name = "Other".into();
    other.version = Some("2".into());
    s.create_instance(create("w1")).await.expect("create");
    s.create_instance(other).await.expect("create");
    let take = |f: WorkFilter| async move {
        s.fetch_orchestration(LEASE, 10, &f)
            .await
            .expect("fetch")
            .map(|i| i.instance.instance_id)
    };
    assert_eq!(take(WorkFilter::names(["Nope"])).await, None);
    assert_eq!(
        take(WorkFilter::Only(Vec::new())).await,
        None,
        "empty takes nothing"
    );
    assert_eq!(
        take(only("Other", &["1"])).await,
        None,
        "version must match"
    );
    assert_eq!(
        take(WorkFilter::Except(vec!["Orch".into(), "Other".into()])).await,
        None
    );
    assert_eq!(
        take(only("Other", &["1", "2"])).await.as_deref(),
        Some("w2")
    );
    let item = s
        .fetch_orchestration(LEASE, 10, &WorkFilter::Except(vec!["Other".into()]))
        .await
        .expect("fetch")
        .expect("w1 passes a filter that excludes another name");
    assert_eq!(item.instance.instance_id, "w1");
    let mut k = commit_for(
        &item,
        vec![HistoryEvent::new(now(), EventKind::OrchestratorStarted)],
    );
    for (task_id, (name, version)) in [("A", None), ("B", Some("v1"))].into_iter().enumerate() {
        k.activities.push(NewActivity {
            trace_context: None,
            instance_id: "w1".into(),
            execution_id: item.instance.execution_id.clone(),
            task_id: task_id as i64,
            name: name.into(),
            version: version.map(str::to_string),
            input: None,
        });
    }
    s.commit_orchestration(k).await.expect("commit");
    let act = |f: WorkFilter| async move {
        s.fetch_activity(LEASE, &f)
            .await
            .expect("fetch")
            .map(|a| a.activity.name)
    };
    assert_eq!(act(only("B", &["v2"])).await, None);
    assert_eq!(act(only("A", &["v1"])).await, None, "no version is \"\"");
    assert_eq!(act(only("B", &["v1"])).await.as_deref(), Some("B"));
    assert_eq!(act(WorkFilter::Except(vec!["A".into()])).await, None);
    assert_eq!(act(only("A", &[""])).await.as_deref(), Some("A"));
}

/// Messages one commit sends arrive in the order sent (FIFO per sender),
/// and a message to an entity id creates the entity.
pub async fn check_message_order<S: Store>(s: &S) {
    let (_, mut k) = begin_turn(s, "m1").await;
    let names: Vec<String> = (0..12).map(|i| format!("e{i}")).collect();
    for n in &names {
        k.messages.push(raised("m1", n, Duration::ZERO));
        k.messages.push(raised("@counter@k", n, Duration::ZERO));
    }
    s.commit_orchestration(k).await.expect("commit");
    for id in ["m1", "@counter@k"] {
        let got = fetch_until(s, LEASE, Duration::from_secs(5))
            .await
            .expect("messages");
        let order: Vec<String> = got
            .messages
            .iter()
            .filter_map(|m| match &m.event.kind {
                EventKind::EventRaised { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(order, names, "{id}: inbox order is send order");
        if id.starts_with('@') {
            assert_eq!(
                got.instance.name, "@counter",
                "an entity is created by its first message"
            );
        }
    }
}

/// For stores that several processes share (each `Store` value here is a
/// process): a wait on an instance in one process sees the commit of
/// another that finishes it, without polling; other changes are left to
/// the waiter's poll.
pub async fn check_finish_seen_elsewhere<S: Store>(waiter: &S, worker: &S) {
    let mut watch = waiter
        .watch_instance("fin")
        .expect("a shared store watches instances");
    let (_, mut k) = begin_turn(worker, "fin").await;
    k.update.status = RuntimeStatus::Completed;
    k.update.output = Some("\"done\"".into());
    worker.commit_orchestration(k).await.expect("commit");
    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if *watch.borrow_and_update() == Some(RuntimeStatus::Completed) {
                return;
            }
            if watch.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    })
    .await;
    assert!(
        seen.is_ok(),
        "a finish committed by another process reaches this one's watch"
    );
}

/// A message that arrives while its instance is leased (a second signal
/// to a busy entity) cannot be taken when it wakes the dispatchers; the
/// commit that gives the lease back wakes them again, so it does not wait
/// for the safety poll.
pub async fn check_message_during_a_turn_wakes<S: Store>(s: &S) {
    let (_, k) = begin_turn(s, "md").await;
    s.send_message(raised("md", "late", Duration::ZERO))
        .await
        .expect("a message arrives during the turn");
    // Its own wake-up (in this process, and echoed by other processes'
    // notifications) is spent while the instance is leased.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        s.wait_for_work(WorkKind::Orchestration, Duration::from_millis(50))
            .await;
    }
    s.commit_orchestration(k).await.expect("commit");
    let woke = tokio::time::timeout(
        Duration::from_secs(20),
        s.wait_for_work(WorkKind::Orchestration, Duration::from_secs(60)),
    )
    .await;
    assert!(
        woke.is_ok(),
        "the commit that gives the lease back wakes the dispatchers for the message"
    );
    let next = s
        .fetch_orchestration(LEASE, 100, &WorkFilter::Any)
        .await
        .expect("fetch")
        .expect("the instance with its message");
    assert_eq!(next.messages.len(), 1, "the message that arrived");
}

pub async fn run_all<S, F, Fut>(make: F)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    check_instances(&make().await).await;
    check_fetch_and_leases(&make().await).await;
    check_commit(&make().await).await;
    check_activities(&make().await).await;
    check_abandon_activity(&make().await).await;
    check_replace_and_wake(&make().await).await;
    check_list_purge_suspend(&make().await).await;
    check_filters(&make().await).await;
    check_message_order(&make().await).await;
    check_batched_fetch(&make().await).await;
    check_claims(&make().await).await;
    check_take_after_the_queue_grew(&make().await).await;
    check_take_for_result(&make().await).await;
    check_commit_unleased(&make().await).await;
    check_create_with_first_turn(&make().await).await;
    check_queue_depths(&make().await).await;
    check_purge_waits_for_a_rewind(&make().await).await;
    check_purge_waits_for_a_new_start(&make().await).await;
    check_tags(&make().await).await;
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_store_conforms() {
        super::run_all(|| async { crate::MemoryStore::new() }).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_turn_time_never_before_last_update() {
        let clock = std::sync::Arc::new(crate::ManualClock::new(chrono::Utc::now()));
        let s = crate::MemoryStore::with_clock(clock.clone());
        super::check_turn_time_never_before_last_update(&s, &clock).await;
    }
}
