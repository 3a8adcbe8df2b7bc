//! Conformance checks for purge: a finished instance with a rewind waiting
//! in its inbox is not finished (a parent's rewind sends one to its failed
//! child; purging the child then would leave the parent waiting forever).

use super::{begin_turn, now, LEASE};
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
