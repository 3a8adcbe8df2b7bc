//! An execution that ends through the sidecar releases every critical
//! section it holds or has asked for, whatever the remote worker sent: an
//! SDK that fails a replay on non-determinism sends the failure alone, and
//! one that completes or continues as new inside a critical section sends
//! no unlocks either. Found by the simulator's remote engine (seed 25 of
//! its first version): the entity stayed locked by a finished instance.

use pb::orchestrator_action::OrchestratorActionType as A;
use perdure::Client;
use perdure_core::EventKind;
use perdure_server::grpc::{proto as pb, DispatchOptions, Dispatcher};
use perdure_store::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};

const LEASE: Duration = Duration::from_secs(60);
const ENTITY: &str = "@acct@a";

struct Sidecar {
    store: Arc<dyn Store>,
    dispatcher: Arc<Dispatcher>,
    stream: u64,
    slots: Arc<Semaphore>,
    _stop: watch::Sender<bool>,
}

impl Sidecar {
    fn new() -> Self {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let (stop, stopped) = watch::channel(false);
        let dispatcher = Dispatcher::new(store.clone(), DispatchOptions::default(), stopped);
        Sidecar {
            stream: dispatcher.new_stream(),
            store,
            dispatcher,
            slots: Arc::new(Semaphore::new(10)),
            _stop: stop,
        }
    }

    /// The completion token of instance `id`'s next orchestration work item.
    async fn work(&self, id: &str) -> String {
        let filter = WorkFilter::Only(vec![NameFilter {
            name: "Locker".into(),
            versions: Vec::new(),
        }]);
        let item = self
            .store
            .fetch_orchestration(LEASE, 100, &filter)
            .await
            .expect("fetch")
            .expect("work for the instance");
        assert_eq!(item.instance.instance_id, id);
        let permit = self.slots.clone().acquire_owned().await.expect("slot");
        let work = self
            .dispatcher
            .offer_orchestration(self.stream, item, permit)
            .await
            .expect("offered")
            .expect("a work item");
        assert!(matches!(
            work.request,
            Some(pb::work_item::Request::OrchestratorRequest(_))
        ));
        work.completion_token
    }

    async fn answer(&self, id: &str, token: String, actions: Vec<pb::OrchestratorAction>) {
        self.dispatcher
            .complete_orchestration(pb::OrchestratorResponse {
                instance_id: id.into(),
                actions,
                completion_token: token,
                ..Default::default()
            })
            .await
            .expect("completed");
    }

    /// What the entity's inbox holds, in order.
    async fn entity_inbox(&self) -> Vec<EventKind> {
        let entities = WorkFilter::Only(vec![NameFilter {
            name: "@acct".into(),
            versions: Vec::new(),
        }]);
        match self
            .store
            .fetch_orchestration(LEASE, 100, &entities)
            .await
            .expect("fetch")
        {
            Some(item) => item.messages.into_iter().map(|m| m.event.kind).collect(),
            None => Vec::new(),
        }
    }
}

fn action(id: i32, kind: A) -> pb::OrchestratorAction {
    pb::OrchestratorAction {
        rewind_orchestration: Vec::new(),
        id,
        orchestrator_action_type: Some(kind),
    }
}

fn lock(id: &str) -> pb::OrchestratorAction {
    action(
        0,
        A::SendEntityMessage(pb::SendEntityMessageAction {
            entity_message_type: Some(
                pb::send_entity_message_action::EntityMessageType::EntityLockRequested(
                    pb::EntityLockRequestedEvent {
                        critical_section_id: "cs-1".into(),
                        lock_set: vec![ENTITY.into()],
                        position: 0,
                        parent_instance_id: Some(id.into()),
                    },
                ),
            ),
        }),
    )
}

fn unlock(id: &str) -> pb::OrchestratorAction {
    action(
        1,
        A::SendEntityMessage(pb::SendEntityMessageAction {
            entity_message_type: Some(
                pb::send_entity_message_action::EntityMessageType::EntityUnlockSent(
                    pb::EntityUnlockSentEvent {
                        critical_section_id: "cs-1".into(),
                        parent_instance_id: Some(id.into()),
                        target_instance_id: Some(ENTITY.into()),
                    },
                ),
            ),
        }),
    )
}

fn end(status: pb::OrchestrationStatus) -> pb::OrchestratorAction {
    action(
        2,
        A::CompleteOrchestration(pb::CompleteOrchestrationAction {
            orchestration_status: status as i32,
            failure_details: (status == pb::OrchestrationStatus::Failed).then(|| {
                pb::TaskFailureDetails {
                    error_type: "NonDeterminism".into(),
                    error_message: "the code changed".into(),
                    ..Default::default()
                }
            }),
            ..Default::default()
        }),
    )
}

/// Starts a `Locker`, whose first turn asks for a lock on the entity; its
/// second turn (on an event) answers with `second`. Returns the entity's
/// inbox afterwards.
async fn entity_inbox_after(
    second: Vec<pb::OrchestratorAction>,
    with_lock: bool,
) -> Vec<EventKind> {
    let s = Sidecar::new();
    let client = Client::new(s.store.clone());
    let id = "locker";
    client
        .start_new("Locker", Some(id), ())
        .await
        .expect("start");
    let first = s.work(id).await;
    let first_actions = if with_lock {
        vec![lock(id)]
    } else {
        Vec::new()
    };
    s.answer(id, first, first_actions).await;
    client.raise_event(id, "go", ()).await.expect("raise");
    let turn = s.work(id).await;
    s.answer(id, turn, second).await;
    s.entity_inbox().await
}

fn unlocks(inbox: &[EventKind]) -> usize {
    inbox
        .iter()
        .filter(|k| matches!(k, EventKind::EntityUnlockSent { critical_section_id, .. } if critical_section_id == "cs-1"))
        .count()
}

async fn check_released(second: Vec<pb::OrchestratorAction>) {
    let inbox = entity_inbox_after(second, true).await;
    assert!(
        matches!(inbox.first(), Some(EventKind::EntityLockRequested { .. })),
        "the lock request reached the entity: {inbox:?}"
    );
    assert_eq!(unlocks(&inbox), 1, "one unlock follows it: {inbox:?}");
}

#[tokio::test]
async fn a_nondeterministic_failure_without_unlocks_releases_the_lock() {
    check_released(vec![end(pb::OrchestrationStatus::Failed)]).await;
}

#[tokio::test]
async fn a_completion_inside_a_critical_section_releases_the_lock() {
    check_released(vec![end(pb::OrchestrationStatus::Completed)]).await;
}

#[tokio::test]
async fn a_continue_as_new_inside_a_critical_section_releases_the_lock() {
    check_released(vec![end(pb::OrchestrationStatus::ContinuedAsNew)]).await;
}

#[tokio::test]
async fn a_completion_that_unlocks_itself_is_not_unlocked_twice() {
    check_released(vec![
        unlock("locker"),
        end(pb::OrchestrationStatus::Completed),
    ])
    .await;
}

#[tokio::test]
async fn an_execution_without_locks_sends_no_unlocks() {
    let inbox = entity_inbox_after(vec![end(pb::OrchestrationStatus::Completed)], false).await;
    assert!(inbox.is_empty(), "{inbox:?}");
}
