//! Conformance checks for listing, purging, suspending and replacing
//! instances. A finished instance with a rewind or a new start waiting in
//! its inbox is not finished (a parent's rewind sends its failed child a
//! rewind, a restarted parent sends its child a new start; purging the
//! child, or starting it afresh over it, would leave the parent waiting
//! forever).

use super::{begin_turn, commit_for, create, fetch_until, now, raised, start_event, LEASE};
use crate::*;
use perdure_core::{EventKind, FailureDetails, HistoryEvent, RuntimeStatus};
use std::time::Duration;

/// Creates instance `id` and fails it in its first turn; returns the item
/// that turn took.
async fn failed<S: Store>(s: &S, id: &str) -> OrchestrationItem {
    let (item, mut k) = begin_turn(s, id).await;
    k.update.status = RuntimeStatus::Failed;
    k.update.failure = Some(FailureDetails::new("Boom", "failed"));
    s.commit_orchestration(k).await.expect("fail");
    item
}

/// A failed instance refuses a purge while a rewind waits for it, and is
/// purged once the rewind has run and it has failed again.
pub async fn check_purge_waits_for_a_rewind<S: Store>(s: &S) {
    failed(s, "rw-1").await;
    s.send_message(InstanceMessage {
        instance_id: "rw-1".into(),
        execution_id: None,
        event: HistoryEvent::new(
            now(),
            EventKind::ExecutionRewound {
                reason: Some("\"again\"".into()),
            },
        ),
        visible_at: now(),
    })
    .await
    .expect("rewind");
    assert!(
        matches!(
            s.purge_instance("rw-1").await,
            Err(StoreError::NotFinished { .. })
        ),
        "a failed instance with a rewind waiting was purged"
    );
    let mut again = create("rw-1");
    again.execution_id = "rw-1-e2".into();
    again.start_event = start_event("Orch", "rw-1-e2");
    assert!(
        matches!(
            s.create_instance(again).await,
            Err(StoreError::AlreadyExists { .. })
        ),
        "a failed instance with a rewind waiting was replaced by a new start"
    );
    // A stale event waiting does not keep a finished instance.
    let item = s
        .fetch_orchestration(LEASE, 10, &WorkFilter::Any)
        .await
        .expect("fetch")
        .expect("the rewind is work");
    let mut k = commit_for(&item, Vec::new());
    k.update.status = RuntimeStatus::Failed;
    s.commit_orchestration(k).await.expect("fail again");
    s.send_message(raised("rw-1", "late", Duration::ZERO))
        .await
        .expect("raise");
    // A rewind's marker for its own next turn (tagged with the execution)
    // asks for nothing.
    s.send_message(InstanceMessage {
        instance_id: "rw-1".into(),
        execution_id: Some(item.instance.execution_id.clone()),
        event: HistoryEvent::new(now(), EventKind::ExecutionRewound { reason: None }),
        visible_at: now(),
    })
    .await
    .expect("marker");
    assert!(
        s.purge_instance("rw-1").await.expect("purge"),
        "a failed instance with only a stale event and a rewind's marker waiting was not purged"
    );
}

/// A failed instance refuses a purge while the start of a new execution
/// waits for it, and not for the void start of the execution it has.
pub async fn check_purge_waits_for_a_new_start<S: Store>(s: &S) {
    let item = failed(s, "rs-1").await;
    let start = |exec: &str| InstanceMessage {
        instance_id: "rs-1".into(),
        execution_id: Some(exec.into()),
        event: start_event("Orch", exec),
        visible_at: now(),
    };
    s.send_message(start(&item.instance.execution_id))
        .await
        .expect("own start again");
    assert!(
        s.purge_instance("rs-1").await.expect("purge"),
        "the void start of its own execution kept a finished instance"
    );
    failed(s, "rs-2").await;
    let mut next = start("rs-2-e2");
    next.instance_id = "rs-2".into();
    s.send_message(next).await.expect("new start");
    assert!(
        matches!(
            s.purge_instance("rs-2").await,
            Err(StoreError::NotFinished { .. })
        ),
        "a failed instance with a new start waiting was purged"
    );
}

/// Listing with filters and paging; purging finished instances only;
/// a Suspended instance is handed out only for resume and terminate.
pub async fn check_list_purge_suspend<S: Store>(s: &S) {
    for id in ["p-1", "p-2", "p-3", "q-1", "q-2"] {
        s.create_instance(create(id)).await.expect("create");
    }
    let mut seen = Vec::new();
    let mut q = InstanceQuery {
        page_size: 2,
        ..InstanceQuery::default()
    };
    loop {
        let page = s.list_instances(&q).await.expect("list");
        assert!(page.instances.len() <= 2);
        seen.extend(page.instances.iter().map(|r| r.instance_id.clone()));
        match page.continuation {
            Some(c) => q.continuation = Some(c),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        ["p-1", "p-2", "p-3", "q-1", "q-2"],
        "paging returns every instance once"
    );
    let q = InstanceQuery {
        instance_id_prefix: Some("q-".into()),
        page_size: 10,
        ..InstanceQuery::default()
    };
    assert_eq!(s.list_instances(&q).await.expect("list").instances.len(), 2);
    for (name, want) in [("Orch", 5), ("Other", 0)] {
        let q = InstanceQuery {
            name: Some(name.into()),
            page_size: 10,
            ..InstanceQuery::default()
        };
        let got = s.list_instances(&q).await.expect("list").instances.len();
        assert_eq!(got, want, "instances named {name}");
    }
    let q = InstanceQuery {
        statuses: vec![RuntimeStatus::Completed],
        page_size: 10,
        ..InstanceQuery::default()
    };
    assert!(s
        .list_instances(&q)
        .await
        .expect("list")
        .instances
        .is_empty());
    let q = InstanceQuery {
        created_to: Some(now() - chrono::Duration::hours(1)),
        page_size: 10,
        ..InstanceQuery::default()
    };
    assert!(s
        .list_instances(&q)
        .await
        .expect("list")
        .instances
        .is_empty());
    assert!(matches!(
        s.list_instances(&InstanceQuery {
            continuation: Some("garbage".into()),
            page_size: 1,
            ..InstanceQuery::default()
        })
        .await,
        Err(StoreError::BadContinuation(_))
    ));
    assert!(
        matches!(
            s.purge_instance("p-1").await,
            Err(StoreError::NotFinished { .. })
        ),
        "running instances are not purged"
    );
    assert!(!s.purge_instance("nope").await.expect("purge"));
    // Finish p-1, suspend p-2, leave the rest running.
    while let Some(item) = s
        .fetch_orchestration(LEASE, 10, &WorkFilter::Any)
        .await
        .expect("fetch")
    {
        let mut k = commit_for(
            &item,
            vec![HistoryEvent::new(now(), EventKind::OrchestratorStarted)],
        );
        k.update.status = match item.instance.instance_id.as_str() {
            "p-1" => RuntimeStatus::Completed,
            "p-2" => RuntimeStatus::Suspended,
            _ => RuntimeStatus::Running,
        };
        s.commit_orchestration(k).await.expect("commit");
    }
    assert!(s.purge_instance("p-1").await.expect("purge"));
    assert!(s.get_instance("p-1").await.expect("get").is_none());
    assert!(s.read_history("p-1").await.expect("h").is_empty());
    let p2 = s.get_instance("p-2").await.expect("get").expect("exists");
    assert_eq!(p2.status, RuntimeStatus::Suspended);
    {
        s.send_message(raised("p-2", "held", Duration::ZERO))
            .await
            .expect("send");
        while let Some(it) = s
            .fetch_orchestration(LEASE, 10, &WorkFilter::Any)
            .await
            .expect("fetch")
        {
            assert_ne!(
                it.instance.instance_id, "p-2",
                "a suspended instance takes no ordinary message"
            );
            s.commit_orchestration(commit_for(&it, vec![]))
                .await
                .expect("commit");
        }
        let resume = InstanceMessage {
            instance_id: "p-2".into(),
            execution_id: None,
            event: HistoryEvent::new(now(), EventKind::ExecutionResumed { reason: None }),
            visible_at: now(),
        };
        s.send_message(resume).await.expect("send");
        let it = fetch_until(s, LEASE, Duration::from_secs(5))
            .await
            .expect("resume is delivered");
        assert_eq!(it.instance.instance_id, "p-2");
        let kinds: Vec<_> = it.messages.iter().map(|m| m.event.type_name()).collect();
        assert_eq!(
            kinds,
            ["ExecutionResumed"],
            "only control messages reach a suspended instance"
        );
    }
}
