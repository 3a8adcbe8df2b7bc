//! The sidecar gives work back to the queues at once when it cannot keep
//! it: a completion whose commit fails in the store (a turn, an activity,
//! an entity batch) or whose actions cannot be read, and a stream that
//! closes while one of its fetch loops is taking work from the store. The
//! lease is 60 s, so only an immediate give-back lets the work come back
//! within the tests' few seconds.

use pb::work_item::Request;
use perdure::Client;
use perdure_core::HistoryEvent;
use perdure_server::grpc::{proto as pb, DispatchOptions, Dispatcher};
use perdure_store::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tonic::{async_trait, Code, Status};

/// Well under the lease: work seen again this soon was given back.
const SOON: Duration = Duration::from_secs(5);

/// A memory store whose next commit can be made to fail, and whose next
/// fetch that takes work can be held (the work already leased) until the
/// test releases it.
struct Gated {
    inner: MemoryStore,
    fail_next_commit: AtomicBool,
    hold_orchestration_fetch: AtomicBool,
    hold_activity_fetch: AtomicBool,
    /// A held fetch has taken its work.
    held: Notify,
    /// Lets a held fetch return.
    release: Semaphore,
}

impl Gated {
    fn new() -> Self {
        Gated {
            inner: MemoryStore::new(),
            fail_next_commit: AtomicBool::new(false),
            hold_orchestration_fetch: AtomicBool::new(false),
            hold_activity_fetch: AtomicBool::new(false),
            held: Notify::new(),
            release: Semaphore::new(0),
        }
    }

    fn fail(&self) -> Result<(), StoreError> {
        if self.fail_next_commit.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Backend("injected: disk I/O error".into()));
        }
        Ok(())
    }

    async fn gate(&self, hold: &AtomicBool) {
        if hold.swap(false, Ordering::SeqCst) {
            self.held.notify_one();
            if let Ok(p) = self.release.acquire().await {
                p.forget();
            }
        }
    }
}

#[async_trait]
impl InstanceStore for Gated {
    async fn create_instance(&self, req: CreateInstance) -> Result<(), StoreError> {
        self.inner.create_instance(req).await
    }
    async fn get_instance(&self, id: &str) -> Result<Option<InstanceRecord>, StoreError> {
        self.inner.get_instance(id).await
    }
    async fn send_message(&self, msg: InstanceMessage) -> Result<(), StoreError> {
        self.inner.send_message(msg).await
    }
    async fn list_instances(&self, q: &InstanceQuery) -> Result<InstancePage, StoreError> {
        self.inner.list_instances(q).await
    }
    async fn purge_instance(&self, id: &str) -> Result<bool, StoreError> {
        self.inner.purge_instance(id).await
    }
}

#[async_trait]
impl HistoryStore for Gated {
    async fn read_history(&self, id: &str) -> Result<Vec<HistoryEvent>, StoreError> {
        self.inner.read_history(id).await
    }
}

#[async_trait]
impl OrchestrationQueue for Gated {
    async fn fetch_orchestrations(
        &self,
        lease: Duration,
        max: usize,
        max_items: usize,
        filter: &WorkFilter,
    ) -> Result<Vec<OrchestrationItem>, StoreError> {
        let items = self
            .inner
            .fetch_orchestrations(lease, max, max_items, filter)
            .await?;
        if !items.is_empty() {
            self.gate(&self.hold_orchestration_fetch).await;
        }
        Ok(items)
    }
    async fn commit_orchestration(&self, commit: OrchestrationCommit) -> Result<(), StoreError> {
        self.fail()?;
        self.inner.commit_orchestration(commit).await
    }
    async fn renew_orchestration_lock(
        &self,
        id: &str,
        token: &str,
        lease: Duration,
    ) -> Result<(), StoreError> {
        self.inner.renew_orchestration_lock(id, token, lease).await
    }
    async fn abandon_orchestration(
        &self,
        id: &str,
        token: &str,
        retry_after: Duration,
    ) -> Result<(), StoreError> {
        self.inner
            .abandon_orchestration(id, token, retry_after)
            .await
    }
}

#[async_trait]
impl ActivityQueue for Gated {
    async fn fetch_activities(
        &self,
        lease: Duration,
        max_items: usize,
        filter: &WorkFilter,
    ) -> Result<Vec<ActivityItem>, StoreError> {
        let items = self
            .inner
            .fetch_activities(lease, max_items, filter)
            .await?;
        if !items.is_empty() {
            self.gate(&self.hold_activity_fetch).await;
        }
        Ok(items)
    }
    async fn complete_activity(
        &self,
        token: &str,
        result: InstanceMessage,
    ) -> Result<(), StoreError> {
        self.fail()?;
        self.inner.complete_activity(token, result).await
    }
    async fn renew_activity_lock(&self, token: &str, lease: Duration) -> Result<(), StoreError> {
        self.inner.renew_activity_lock(token, lease).await
    }
    async fn abandon_activity(&self, token: &str, retry_after: Duration) -> Result<(), StoreError> {
        self.inner.abandon_activity(token, retry_after).await
    }
    async fn pending_tasks(&self, id: &str, execution_id: &str) -> Result<Vec<i64>, StoreError> {
        self.inner.pending_tasks(id, execution_id).await
    }
}

#[async_trait]
impl WakeSignal for Gated {
    async fn wait_for_work(&self, kind: WorkKind, max_wait: Duration) {
        self.inner.wait_for_work(kind, max_wait).await
    }
    fn watch_instance(&self, instance_id: &str) -> Option<InstanceWatch> {
        self.inner.watch_instance(instance_id)
    }
}

#[async_trait]
impl StoreStats for Gated {
    fn commit_stats(&self) -> CommitStats {
        self.inner.commit_stats()
    }
    async fn queue_depths(&self) -> Result<QueueDepths, StoreError> {
        self.inner.queue_depths().await
    }
}

struct Sidecar {
    store: Arc<Gated>,
    client: Client,
    dispatcher: Arc<Dispatcher>,
    _shutdown: watch::Sender<bool>,
}

type Items = mpsc::Receiver<Result<pb::WorkItem, Status>>;

impl Sidecar {
    fn new() -> Self {
        let store = Arc::new(Gated::new());
        let (shutdown, stopped) = watch::channel(false);
        let options = DispatchOptions {
            lease: Duration::from_secs(60),
            ..DispatchOptions::default()
        };
        Sidecar {
            client: Client::new(store.clone()),
            dispatcher: Dispatcher::new(store.clone(), options, stopped),
            store,
            _shutdown: shutdown,
        }
    }

    /// A stream for orchestration `Remote`, activity `Double` and entity
    /// `counter`.
    fn open(&self) -> Items {
        self.dispatcher.open_stream(pb::GetWorkItemsRequest {
            work_item_filters: Some(pb::WorkItemFilters {
                orchestrations: vec![pb::OrchestrationFilter {
                    name: "Remote".into(),
                    versions: Vec::new(),
                }],
                activities: vec![pb::ActivityFilter {
                    name: "Double".into(),
                    versions: Vec::new(),
                }],
                entities: vec![pb::EntityFilter {
                    name: "counter".into(),
                }],
            }),
            ..Default::default()
        })
    }

    async fn start(&self, id: &str) {
        self.client
            .start_new("Remote", Some(id), 21)
            .await
            .expect("started");
    }

    /// Closes a stream and waits until the sidecar has seen it close.
    async fn close(&self, items: Items) {
        drop(items);
        tokio::time::timeout(SOON, async {
            while self.dispatcher.connected_workers() > 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the sidecar sees the stream close");
    }

    /// Waits until a held fetch has taken its work.
    async fn fetch_held(&self) {
        tokio::time::timeout(SOON, self.store.held.notified())
            .await
            .expect("a fetch took the work");
    }
}

/// The next work item that is not a health ping, within `within`.
async fn next(items: &mut Items, within: Duration) -> pb::WorkItem {
    loop {
        let item = tokio::time::timeout(within, items.recv())
            .await
            .expect("a work item in time (work still leased to nobody?)")
            .expect("stream open")
            .expect("work item");
        if !matches!(item.request, Some(Request::HealthPing(_))) {
            return item;
        }
    }
}

fn instance_of(item: &pb::WorkItem) -> &str {
    match &item.request {
        Some(Request::OrchestratorRequest(r)) => &r.instance_id,
        other => panic!("expected an orchestrator request, got {other:?}"),
    }
}

fn activity_of(item: &pb::WorkItem) -> (&str, i32) {
    match &item.request {
        Some(Request::ActivityRequest(a)) => (&a.name, a.task_id),
        other => panic!("expected an activity request, got {other:?}"),
    }
}

fn respond(item: &pb::WorkItem, action: pb::OrchestratorAction) -> pb::OrchestratorResponse {
    pb::OrchestratorResponse {
        instance_id: instance_of(item).to_string(),
        actions: vec![action],
        completion_token: item.completion_token.clone(),
        ..Default::default()
    }
}

fn schedule_double() -> pb::OrchestratorAction {
    pb::OrchestratorAction {
        rewind_orchestration: Vec::new(),
        id: 0,
        orchestrator_action_type: Some(
            pb::orchestrator_action::OrchestratorActionType::ScheduleTask(pb::ScheduleTaskAction {
                name: "Double".into(),
                input: Some("21".into()),
                ..Default::default()
            }),
        ),
    }
}

fn complete() -> pb::OrchestratorAction {
    pb::OrchestratorAction {
        rewind_orchestration: Vec::new(),
        id: -1,
        orchestrator_action_type: Some(
            pb::orchestrator_action::OrchestratorActionType::CompleteOrchestration(
                pb::CompleteOrchestrationAction {
                    orchestration_status: pb::OrchestrationStatus::Completed as i32,
                    result: Some("42".into()),
                    ..Default::default()
                },
            ),
        ),
    }
}

/// Schedules `Double` for instance `id` and returns its activity work item.
async fn scheduled(s: &Sidecar, items: &mut Items, id: &str) -> pb::WorkItem {
    s.start(id).await;
    let first = next(items, SOON).await;
    s.dispatcher
        .complete_orchestration(respond(&first, schedule_double()))
        .await
        .expect("turn committed");
    next(items, SOON).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_orchestration_commit_gives_the_instance_back_at_once() {
    let s = Sidecar::new();
    let mut items = s.open();
    s.start("r1").await;
    let first = next(&mut items, SOON).await;
    assert_eq!(instance_of(&first), "r1");
    s.store.fail_next_commit.store(true, Ordering::SeqCst);
    let err = s
        .dispatcher
        .complete_orchestration(respond(&first, complete()))
        .await
        .expect_err("the commit fails");
    assert_eq!(err.code(), Code::Internal);
    let again = next(&mut items, SOON).await;
    assert_eq!(instance_of(&again), "r1");
    assert_ne!(again.completion_token, first.completion_token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_activity_completion_gives_the_activity_back_at_once() {
    let s = Sidecar::new();
    let mut items = s.open();
    let act = scheduled(&s, &mut items, "r1").await;
    assert_eq!(activity_of(&act), ("Double", 0));
    s.store.fail_next_commit.store(true, Ordering::SeqCst);
    let err = s
        .dispatcher
        .complete_activity(pb::ActivityResponse {
            instance_id: "r1".into(),
            task_id: 0,
            result: Some("42".into()),
            completion_token: act.completion_token.clone(),
            ..Default::default()
        })
        .await
        .expect_err("the commit fails");
    assert_eq!(err.code(), Code::Internal);
    let again = next(&mut items, SOON).await;
    assert_eq!(activity_of(&again), ("Double", 0));
    assert_ne!(again.completion_token, act.completion_token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_closed_during_an_orchestration_fetch_gives_the_instance_back() {
    let s = Sidecar::new();
    let items = s.open();
    s.store
        .hold_orchestration_fetch
        .store(true, Ordering::SeqCst);
    s.start("r1").await;
    s.fetch_held().await;
    s.close(items).await;
    s.store.release.add_permits(1);
    let mut items = s.open();
    assert_eq!(instance_of(&next(&mut items, SOON).await), "r1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_closed_during_an_activity_fetch_gives_the_activity_back() {
    let s = Sidecar::new();
    let mut items = s.open();
    s.start("r1").await;
    let first = next(&mut items, SOON).await;
    s.store.hold_activity_fetch.store(true, Ordering::SeqCst);
    s.dispatcher
        .complete_orchestration(respond(&first, schedule_double()))
        .await
        .expect("turn committed");
    s.fetch_held().await;
    s.close(items).await;
    s.store.release.add_permits(1);
    let mut items = s.open();
    assert_eq!(activity_of(&next(&mut items, SOON).await), ("Double", 0));
}

fn entity_request(item: &pb::WorkItem) -> &pb::EntityRequest {
    match &item.request {
        Some(Request::EntityRequestV2(r)) => r,
        other => panic!("expected an entity request, got {other:?}"),
    }
}

/// Signals `@counter@k` and returns its batch's work item.
async fn entity_batch(s: &Sidecar, items: &mut Items) -> pb::WorkItem {
    let counter = perdure::EntityId::new("counter", "k").expect("entity id");
    s.client
        .signal_entity(&counter, "add", 1)
        .await
        .expect("signalled");
    let item = next(items, SOON).await;
    assert_eq!(entity_request(&item).instance_id, "@counter@k");
    item
}

fn batch_result(item: &pb::WorkItem, actions: Vec<pb::OperationAction>) -> pb::EntityBatchResult {
    use pb::operation_result::ResultType;
    pb::EntityBatchResult {
        results: vec![pb::OperationResult {
            result_type: Some(ResultType::Success(pb::OperationResultSuccess {
                result: Some("1".into()),
                ..Default::default()
            })),
        }],
        actions,
        entity_state: Some("1".into()),
        completion_token: item.completion_token.clone(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_entity_commit_gives_the_batch_back_at_once() {
    let s = Sidecar::new();
    let mut items = s.open();
    let first = entity_batch(&s, &mut items).await;
    s.store.fail_next_commit.store(true, Ordering::SeqCst);
    let err = s
        .dispatcher
        .complete_entity(batch_result(&first, Vec::new()))
        .await
        .expect_err("the commit fails");
    assert_eq!(err.code(), Code::Internal);
    let again = next(&mut items, SOON).await;
    assert_eq!(entity_request(&again).instance_id, "@counter@k");
    assert_ne!(again.completion_token, first.completion_token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entity_batch_with_an_unreadable_action_is_given_back() {
    let s = Sidecar::new();
    let mut items = s.open();
    let first = entity_batch(&s, &mut items).await;
    // A signal to something that is not an entity: the batch cannot be
    // committed as answered, and runs again after a pause.
    let bad = pb::OperationAction {
        id: 0,
        operation_action_type: Some(pb::operation_action::OperationActionType::SendSignal(
            pb::SendSignalAction {
                instance_id: "not-an-entity".into(),
                name: "add".into(),
                ..Default::default()
            },
        )),
    };
    let err = s
        .dispatcher
        .complete_entity(batch_result(&first, vec![bad]))
        .await
        .expect_err("the action is refused");
    assert_eq!(err.code(), Code::InvalidArgument);
    let again = next(&mut items, SOON).await;
    assert_eq!(entity_request(&again).instance_id, "@counter@k");
}
