//! Remote workers: the `GetWorkItems` streams and the completions that
//! answer them. Each connected stream gets its own fetch loops (one for
//! orchestrations, one for activities) that take work from the store under
//! leases with the stream's work-item filters, up to the stream's
//! concurrency limits. Work in the hands of a remote worker is *pending*:
//! its lease is renewed until the worker completes or abandons it, and
//! given back at once when the stream closes. A server that dies simply
//! stops renewing, and the leases run out.
//!
//! A closing stream stops its fetch loops cooperatively: they can be
//! interrupted only while they wait (for a concurrency slot, for work, in a
//! backoff, for room in the stream), never between taking work from the
//! store and either making it pending or giving it back, so no lease is
//! left to run out with nobody holding it. Then the stream's pending work
//! is given back.
//!
//! An orchestration work item carries the committed history (`pastEvents`)
//! and the turn prepared by [`perdure::dispatch::prepare`] (`newEvents`,
//! OrchestratorStarted first); its completion goes through
//! [`perdure::dispatch::build_commit`], the same commit the in-process
//! worker makes.

mod entities;
mod orchestrations;

pub(crate) use entities::entity_actions;

use super::convert::{self, event};
use super::proto as pb;
use perdure::dispatch::{self, EntityPlan, ExecutionInfo, TurnPlan};
use perdure_core::HistoryEvent;
use perdure_store::{ActivityItem, NameFilter, Store, StoreError, WorkFilter, WorkKind};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tonic::Status;

/// How the sidecar hands out work.
#[derive(Clone, Debug)]
pub struct DispatchOptions {
    /// Lease on work in a remote worker's hands; renewed every third of it.
    pub lease: Duration,
    /// Most new events in one orchestration work item.
    pub max_batch: usize,
    /// A health ping goes to a stream that has been silent this long.
    pub ping_every: Duration,
    /// The longest a fetch loop waits for a wake-up before looking again.
    pub poll_interval: Duration,
    /// Orchestration names served in this process; remote workers without
    /// filters are not given them.
    pub local_orchestrations: Vec<String>,
    /// Activity names served in this process.
    pub local_activities: Vec<String>,
}

impl Default for DispatchOptions {
    fn default() -> Self {
        DispatchOptions {
            lease: Duration::from_secs(30),
            max_batch: 1000,
            ping_every: Duration::from_secs(30),
            poll_interval: Duration::from_millis(500),
            local_orchestrations: Vec::new(),
            local_activities: Vec::new(),
        }
    }
}

enum Pending {
    Orchestration {
        plan: Box<TurnPlan>,
        exec: ExecutionInfo,
        /// The committed history the work item carried.
        past: Vec<HistoryEvent>,
        accepted: Vec<HistoryEvent>,
        stream: u64,
        _permit: OwnedSemaphorePermit,
    },
    Activity {
        item: ActivityItem,
        stream: u64,
        /// When it was handed to the worker (its duration, for metrics).
        sent: Instant,
        _permit: OwnedSemaphorePermit,
    },
    Entity {
        plan: Box<EntityPlan>,
        stream: u64,
        _permit: OwnedSemaphorePermit,
    },
}

impl Pending {
    fn stream(&self) -> u64 {
        match self {
            Pending::Orchestration { stream, .. }
            | Pending::Activity { stream, .. }
            | Pending::Entity { stream, .. } => *stream,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Pending::Orchestration { .. } => "an orchestration",
            Pending::Activity { .. } => "an activity",
            Pending::Entity { .. } => "an entity",
        }
    }

    /// The instance lease this item holds, if any.
    fn instance_lease(&self) -> Option<(&str, &str)> {
        match self {
            Pending::Orchestration { plan, .. } => {
                Some((&plan.instance.instance_id, &plan.lock_token))
            }
            Pending::Entity { plan, .. } => Some((&plan.instance.instance_id, &plan.lock_token)),
            Pending::Activity { .. } => None,
        }
    }
}

/// Hands work to remote workers and takes their results.
pub struct Dispatcher {
    store: Arc<dyn Store>,
    options: DispatchOptions,
    pending: Mutex<HashMap<String, Pending>>,
    next_stream: AtomicU64,
    connected: AtomicUsize,
    shutdown: watch::Receiver<bool>,
}

type Sender = mpsc::Sender<Result<pb::WorkItem, Status>>;

const DEFAULT_CONCURRENCY: usize = 100;
const MAX_CONCURRENCY: usize = 10_000;

fn concurrency(asked: i32) -> usize {
    match usize::try_from(asked) {
        Ok(0) | Err(_) => DEFAULT_CONCURRENCY,
        Ok(n) => n.min(MAX_CONCURRENCY),
    }
}

fn to_filter(list: Vec<(String, Vec<String>)>) -> WorkFilter {
    WorkFilter::Only(
        list.into_iter()
            .map(|(name, versions)| NameFilter { name, versions })
            .collect(),
    )
}

impl Dispatcher {
    /// A dispatcher; its lease-renewal loop runs until `shutdown` turns true.
    pub fn new(
        store: Arc<dyn Store>,
        options: DispatchOptions,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Self> {
        let d = Arc::new(Dispatcher {
            store,
            options,
            pending: Mutex::new(HashMap::new()),
            next_stream: AtomicU64::new(1),
            connected: AtomicUsize::new(0),
            shutdown,
        });
        let weak = Arc::downgrade(&d);
        let every = d.options.lease / 3;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(d) = weak.upgrade() else { return };
                d.renew_all().await;
            }
        });
        d
    }

    /// Remote worker streams open now.
    pub fn connected_workers(&self) -> usize {
        self.connected.load(Ordering::Relaxed)
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn renew_all(&self) {
        let held: Vec<(String, Option<String>, String)> = self
            .pending()
            .iter()
            .map(|(token, p)| match (p.instance_lease(), p) {
                (Some((id, lock)), _) => (token.clone(), Some(id.to_string()), lock.to_string()),
                (None, Pending::Activity { item, .. }) => {
                    (token.clone(), None, item.lock_token.clone())
                }
                (None, _) => (token.clone(), None, String::new()),
            })
            .collect();
        for (token, instance, lock) in held {
            let r = match &instance {
                Some(id) => {
                    self.store
                        .renew_orchestration_lock(id, &lock, self.options.lease)
                        .await
                }
                None => {
                    self.store
                        .renew_activity_lock(&lock, self.options.lease)
                        .await
                }
            };
            if let Err(StoreError::LockLost(what)) = r {
                tracing::warn!(%what, "lease lost on work held by a remote worker; its completion will be refused");
                self.pending().remove(&token);
            }
        }
    }

    /// The filters of a `GetWorkItems` request: with filters, what they
    /// name (present but empty takes nothing); without, everything not
    /// served in this process.
    fn filters(&self, req: &pb::GetWorkItemsRequest) -> (WorkFilter, WorkFilter) {
        match &req.work_item_filters {
            Some(f) => (
                to_filter(
                    f.orchestrations
                        .iter()
                        .map(|o| (o.name.clone(), o.versions.clone()))
                        .chain(
                            f.entities
                                .iter()
                                .map(|e| (format!("@{}", e.name.to_lowercase()), Vec::new())),
                        )
                        .collect(),
                ),
                to_filter(
                    f.activities
                        .iter()
                        .map(|a| (a.name.clone(), a.versions.clone()))
                        .collect(),
                ),
            ),
            None => {
                let except = |names: &Vec<String>| {
                    if names.is_empty() {
                        WorkFilter::Any
                    } else {
                        WorkFilter::Except(names.clone())
                    }
                };
                (
                    except(&self.options.local_orchestrations),
                    except(&self.options.local_activities),
                )
            }
        }
    }

    /// Opens a work-item stream for one remote worker.
    pub fn open_stream(
        self: &Arc<Self>,
        req: pb::GetWorkItemsRequest,
    ) -> mpsc::Receiver<Result<pb::WorkItem, Status>> {
        let (tx, rx) = mpsc::channel(64);
        let stream = self.new_stream();
        let (orch_filter, act_filter) = self.filters(&req);
        let orch_slots = Arc::new(Semaphore::new(concurrency(
            req.max_concurrent_orchestration_work_items,
        )));
        let act_slots = Arc::new(Semaphore::new(concurrency(
            req.max_concurrent_activity_work_items,
        )));
        self.connected.fetch_add(1, Ordering::Relaxed);
        tracing::info!(stream, ?orch_filter, ?act_filter, "remote worker connected");
        let last_sent = Arc::new(Mutex::new(Instant::now()));
        let d = self.clone();
        tokio::spawn(async move {
            let _counted = perdure::metrics::global().grpc_worker_connected();
            let (stop_loops, stop) = watch::channel(false);
            let orchestrations = d.clone().orchestration_loop(
                stream,
                orch_filter,
                orch_slots,
                tx.clone(),
                last_sent.clone(),
                stop.clone(),
            );
            let activities = d.clone().activity_loop(
                stream,
                act_filter,
                act_slots,
                tx.clone(),
                last_sent.clone(),
                stop,
            );
            // The fetch loops are never dropped mid-step: told to stop,
            // they end where they hold no work of their own (see the
            // module doc). A loop ends by itself only when the stream is
            // gone, which `tx.closed()` sees too.
            let loops = async move {
                tokio::join!(orchestrations, activities);
            };
            tokio::pin!(loops);
            let pings = d.clone().ping_loop(tx.clone(), last_sent);
            let mut shutdown = d.shutdown.clone();
            let loops_ended = tokio::select! {
                _ = &mut loops => true,
                _ = pings => false,
                _ = tx.closed() => false,
                _ = shutdown.wait_for(|s| *s) => false,
            };
            d.connected.fetch_sub(1, Ordering::Relaxed);
            let _ = stop_loops.send(true);
            if !loops_ended {
                loops.await;
            }
            drop(tx);
            d.close_stream(stream).await;
            tracing::info!(
                stream,
                "remote worker disconnected; its work went back to the queues"
            );
        });
        rx
    }

    /// Returns every item a closed stream held to its queue at once.
    pub async fn close_stream(&self, stream: u64) {
        let items: Vec<Pending> = {
            let mut p = self.pending();
            let tokens: Vec<String> = p
                .iter()
                .filter(|(_, v)| v.stream() == stream)
                .map(|(k, _)| k.clone())
                .collect();
            tokens.into_iter().filter_map(|t| p.remove(&t)).collect()
        };
        for item in items {
            self.abandon(item, Duration::ZERO).await;
        }
    }

    async fn abandon(&self, item: Pending, retry_after: Duration) {
        let r = match (item.instance_lease(), &item) {
            (Some((id, lock)), _) => {
                self.store
                    .abandon_orchestration(id, lock, retry_after)
                    .await
            }
            (None, Pending::Activity { item, .. }) => {
                self.store
                    .abandon_activity(&item.lock_token, retry_after)
                    .await
            }
            (None, _) => Ok(()),
        };
        if let Err(e) = r {
            tracing::debug!(error = %e, "abandon found the lease gone; the work is redone anyway");
        }
    }

    async fn ping_loop(self: Arc<Self>, tx: Sender, last_sent: Arc<Mutex<Instant>>) {
        let every = self.options.ping_every;
        loop {
            let since = last_sent.lock().map(|t| t.elapsed()).unwrap_or_default();
            if since >= every {
                let ping = pb::WorkItem {
                    request: Some(pb::work_item::Request::HealthPing(pb::HealthPing {})),
                    completion_token: String::new(),
                };
                if tx.send(Ok(ping)).await.is_err() {
                    return;
                }
                mark(&last_sent);
                tokio::time::sleep(every).await;
            } else {
                tokio::time::sleep(every - since).await;
            }
        }
    }

    /// Waits for work (or, after a failure, backs off); false when the
    /// loop was told to stop meanwhile.
    async fn wait(
        &self,
        kind: WorkKind,
        backoff: &mut Duration,
        failed: bool,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        if failed {
            let slept = until_stopped(stop, tokio::time::sleep(*backoff)).await;
            *backoff = (*backoff * 2).min(Duration::from_secs(5));
            slept.is_some()
        } else {
            *backoff = Duration::from_millis(50);
            let waited = self.store.wait_for_work(kind, self.options.poll_interval);
            until_stopped(stop, waited).await.is_some()
        }
    }

    /// Sends a pending work item down its stream; a closed stream gives the
    /// item back at once (false: the stream is gone, or the loop was told
    /// to stop, and then the item stays pending for `close_stream`).
    async fn send(
        &self,
        tx: &Sender,
        work: pb::WorkItem,
        last_sent: &Mutex<Instant>,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let token = work.completion_token.clone();
        match until_stopped(stop, tx.send(Ok(work))).await {
            Some(Ok(())) => {
                mark(last_sent);
                true
            }
            Some(Err(_)) => {
                let held = self.pending().remove(&token);
                if let Some(p) = held {
                    self.abandon(p, Duration::ZERO).await;
                }
                false
            }
            None => false,
        }
    }

    async fn orchestration_loop(
        self: Arc<Self>,
        stream: u64,
        filter: WorkFilter,
        slots: Arc<Semaphore>,
        tx: Sender,
        last_sent: Arc<Mutex<Instant>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut backoff = Duration::from_millis(50);
        loop {
            let Some(Ok(permit)) = until_stopped(&mut stop, slots.clone().acquire_owned()).await
            else {
                return;
            };
            // From here until the item is pending or given back, nothing
            // interrupts the loop: the fetch has leased it.
            let item = match self
                .store
                .fetch_orchestration(self.options.lease, self.options.max_batch, &filter)
                .await
            {
                Ok(Some(item)) => item,
                Ok(None) => {
                    if !self
                        .wait(WorkKind::Orchestration, &mut backoff, false, &mut stop)
                        .await
                    {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "store error fetching orchestration work");
                    if !self
                        .wait(WorkKind::Orchestration, &mut backoff, true, &mut stop)
                        .await
                    {
                        return;
                    }
                    continue;
                }
            };
            let id = item.instance.instance_id.clone();
            let lock = item.lock_token.clone();
            if *stop.borrow() {
                // The stream closed while the fetch ran: nobody will take it.
                let _ = self
                    .store
                    .abandon_orchestration(&id, &lock, Duration::ZERO)
                    .await;
                return;
            }
            match self.offer_orchestration(stream, item, permit).await {
                Ok(None) => {}
                Ok(Some(work)) => {
                    if !self.send(&tx, work, &last_sent, &mut stop).await {
                        return;
                    }
                }
                Err(_) => {
                    if !self
                        .wait(WorkKind::Orchestration, &mut backoff, true, &mut stop)
                        .await
                    {
                        return;
                    }
                }
            }
        }
    }

    async fn activity_loop(
        self: Arc<Self>,
        stream: u64,
        filter: WorkFilter,
        slots: Arc<Semaphore>,
        tx: Sender,
        last_sent: Arc<Mutex<Instant>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut backoff = Duration::from_millis(50);
        loop {
            let Some(Ok(permit)) = until_stopped(&mut stop, slots.clone().acquire_owned()).await
            else {
                return;
            };
            // From here until the item is pending or given back, nothing
            // interrupts the loop: the fetch has leased it.
            let item = match self.store.fetch_activity(self.options.lease, &filter).await {
                Ok(Some(item)) => item,
                Ok(None) => {
                    if !self
                        .wait(WorkKind::Activity, &mut backoff, false, &mut stop)
                        .await
                    {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "store error fetching activity work");
                    if !self
                        .wait(WorkKind::Activity, &mut backoff, true, &mut stop)
                        .await
                    {
                        return;
                    }
                    continue;
                }
            };
            if *stop.borrow() {
                // The stream closed while the fetch ran: nobody will take it.
                let _ = self
                    .store
                    .abandon_activity(&item.lock_token, Duration::ZERO)
                    .await;
                return;
            }
            let work = self.offer_activity(stream, item, permit);
            if !self.send(&tx, work, &last_sent, &mut stop).await {
                return;
            }
        }
    }

    /// A new stream's id: the work handed out under it is given back
    /// together when it closes.
    pub fn new_stream(&self) -> u64 {
        self.next_stream.fetch_add(1, Ordering::Relaxed)
    }

    /// Makes a taken instance pending for `stream` and returns its work
    /// item, or deals with it here (`None`) when there is nothing for
    /// orchestrator code to do. An item that cannot be prepared is given
    /// back (retried a second later) and the error returned.
    pub async fn offer_orchestration(
        &self,
        stream: u64,
        item: perdure_store::OrchestrationItem,
        permit: OwnedSemaphorePermit,
    ) -> Result<Option<pb::WorkItem>, StoreError> {
        let (id, lock) = (item.instance.instance_id.clone(), item.lock_token.clone());
        let offered = self.orchestration_item(stream, item, permit).await;
        if let Err(e) = &offered {
            tracing::warn!(error = %e, instance_id = %id, "could not prepare orchestration work; it will be retried");
            let _ = self
                .store
                .abandon_orchestration(&id, &lock, Duration::from_secs(1))
                .await;
        }
        offered
    }

    /// Makes a taken activity pending for `stream` and returns its work item.
    pub fn offer_activity(
        &self,
        stream: u64,
        item: ActivityItem,
        permit: OwnedSemaphorePermit,
    ) -> pb::WorkItem {
        let a = &item.activity;
        let request = pb::ActivityRequest {
            name: a.name.clone(),
            version: a.version.clone(),
            input: a.input.as_deref().map(str::to_string),
            orchestration_instance: Some(pb::OrchestrationInstance {
                instance_id: a.instance_id.clone(),
                execution_id: Some(a.execution_id.clone()),
            }),
            task_id: a.task_id as i32,
            parent_trace_context: a.trace_context.as_ref().map(convert::trace_to_pb),
            ..Default::default()
        };
        let token = format!("a-{}", uuid::Uuid::new_v4().simple());
        self.pending().insert(
            token.clone(),
            Pending::Activity {
                item,
                stream,
                sent: Instant::now(),
                _permit: permit,
            },
        );
        pb::WorkItem {
            request: Some(pb::work_item::Request::ActivityRequest(request)),
            completion_token: token,
        }
    }

    /// The token of the pending item an answer without a completion token
    /// is for (SDKs that predate the tokens name the work by instance, and
    /// an activity by its task id too). An instance is leased to one
    /// worker at a time, and so is a task, so there is at most one.
    fn token_for(&self, instance_id: &str, task_id: Option<i32>) -> Option<String> {
        self.pending()
            .iter()
            .filter(|(_, p)| match (p, task_id) {
                (Pending::Orchestration { plan, .. }, None) => {
                    plan.instance.instance_id == instance_id
                }
                (Pending::Activity { item, .. }, Some(task)) => {
                    item.activity.instance_id == instance_id
                        && item.activity.task_id == i64::from(task)
                }
                _ => false,
            })
            .map(|(token, _)| token.clone())
            .next()
    }

    /// The completion token an answer carries, or, when it carries none,
    /// the one of the pending item it names.
    fn answer_token(&self, token: &str, instance_id: &str, task_id: Option<i32>) -> String {
        if !token.is_empty() {
            return token.to_string();
        }
        self.token_for(instance_id, task_id).unwrap_or_default()
    }

    fn take(&self, token: &str) -> Result<Pending, Status> {
        self.pending().remove(token).ok_or_else(|| {
            Status::not_found(format!(
                "no work item is pending with completion token `{token}`: it was completed, \
                 abandoned, or its lease ran out and it went to another worker"
            ))
        })
    }

    fn take_kind(&self, token: &str, kind: &str) -> Result<Pending, Status> {
        let p = self.take(token)?;
        if p.kind() != kind {
            let found = p.kind();
            // Put it back: the caller named the wrong kind of work.
            self.pending().insert(token.to_string(), p);
            return Err(Status::invalid_argument(format!(
                "completion token `{token}` belongs to {found} work item, not {kind} one"
            )));
        }
        Ok(p)
    }

    /// Records a remote activity's result.
    pub async fn complete_activity(&self, r: pb::ActivityResponse) -> Result<(), Status> {
        let token = self.answer_token(&r.completion_token, &r.instance_id, Some(r.task_id));
        let Pending::Activity { item, sent, .. } = self.take_kind(&token, "an activity")? else {
            return Err(Status::internal("pending work changed kind"));
        };
        perdure::metrics::global().activity_finished(
            &item.activity.name,
            r.failure_details.is_none(),
            Some(sent.elapsed()),
        );
        let result = match &r.failure_details {
            Some(f) => Err(convert::from_failure(f)),
            None => Ok(r.result.map(perdure_core::PayloadText::from)),
        };
        let msg = dispatch::activity_result(&item.activity, result);
        match self.store.complete_activity(&item.lock_token, msg).await {
            Ok(()) => Ok(()),
            Err(StoreError::LockLost(what)) => Err(Status::aborted(format!(
                "the lease on {what} was lost; another worker runs it"
            ))),
            Err(e) => {
                // As for a turn: give the activity back at once.
                if let Err(a) = self
                    .store
                    .abandon_activity(&item.lock_token, Duration::ZERO)
                    .await
                {
                    tracing::debug!(error = %a, "giving back an activity whose completion failed");
                }
                Err(Status::internal(e.to_string()))
            }
        }
    }

    /// Gives a work item back to its queue at once.
    pub async fn abandon_token(&self, token: &str, kind: &str) -> Result<(), Status> {
        let p = self.take_kind(token, kind)?;
        // A worker that refuses an item (a version it does not run) should
        // not get it back in a tight loop.
        self.abandon(p, Duration::from_millis(250)).await;
        Ok(())
    }
}

/// Runs `f` unless `stop` turns true (or its sender is gone) first: `None`
/// then. The fetch loops wait only through this.
async fn until_stopped<F: std::future::Future>(
    stop: &mut watch::Receiver<bool>,
    f: F,
) -> Option<F::Output> {
    tokio::select! {
        biased;
        _ = stop.wait_for(|s| *s) => None,
        out = f => Some(out),
    }
}

fn mark(last_sent: &Mutex<Instant>) {
    if let Ok(mut t) = last_sent.lock() {
        *t = Instant::now();
    }
}
