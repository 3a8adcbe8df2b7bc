//! Conformance checks for purge and replace: a finished instance with a
//! rewind or a new start waiting in its inbox is not finished (a parent's
//! rewind sends its failed child a rewind, a restarted parent sends its
//! child a new start; purging the child, or starting it afresh over it,
//! would leave the parent waiting forever).

use super::{begin_turn, now, start_event, LEASE};
use crate::*;
use perdure_core::{EventKind, FailureDetails, HistoryEvent, RuntimeStatus};

/// A failed instance refuses a purge while a rewind waits for it, and is
/// purged once the rewind has run and it has failed again.
pub async fn check_purge_waits_for_a_rewind<S: Store>(s: &S) {
    let (_, mut k) = begin_turn(s, "rw-1").await;
    k.update.status = RuntimeStatus::Failed;
    k.update.failure = Some(FailureDetails::new("Boom", "failed"));
    s.commit_orchestration(k).await.expect("fail");
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
    let mut again = super::create("rw-1");
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
    let mut k = super::commit_for(&item, Vec::new());
    k.update.status = RuntimeStatus::Failed;
    s.commit_orchestration(k).await.expect("fail again");
    s.send_message(super::raised("rw-1", "late", std::time::Duration::ZERO))
        .await
        .expect("raise");
    assert!(
        s.purge_instance("rw-1").await.expect("purge"),
        "a failed instance with only a stale event waiting was not purged"
    );
}

/// A failed instance refuses a purge while the start of a new execution
/// waits for it, and not for the void start of the execution it has.
pub async fn check_purge_waits_for_a_new_start<S: Store>(s: &S) {
    let (item, mut k) = begin_turn(s, "rs-1").await;
    k.update.status = RuntimeStatus::Failed;
    k.update.failure = Some(FailureDetails::new("Boom", "failed"));
    s.commit_orchestration(k).await.expect("fail");
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
    let (_, mut k) = begin_turn(s, "rs-2").await;
    k.update.status = RuntimeStatus::Failed;
    s.commit_orchestration(k).await.expect("fail");
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
