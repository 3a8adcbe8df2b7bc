//! The worker: dispatch loops that take orchestration and activity work from
//! a store under leases, run user code, and commit the results. User code
//! can fail or panic; the worker records that and goes on.

mod activities;
mod backlog;
pub(crate) mod local;
mod orchestrations;

use crate::registry::Registry;
use perdure_store::{Store, WorkFilter, WorkKind};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

/// How a worker runs.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// Orchestration turns run at once. Turns mostly wait on their commit,
    /// and every waiting commit shares one transaction, so more turns in
    /// flight means more steps per fsync.
    pub orchestration_concurrency: usize,
    /// Activities run at once (taken from the store, or claimed by this
    /// worker's own turns when they schedule them).
    pub activity_concurrency: usize,
    /// How long a taken work item stays locked to this worker; a worker that
    /// dies loses its work to others once this passes. Long activities renew it.
    pub lease: Duration,
    /// The longest an idle dispatcher waits before looking again even with no
    /// wake-up (a safety net for work made visible by other processes).
    pub poll_interval: Duration,
    /// Most inbox messages applied in one turn.
    pub max_batch: usize,
    /// Replayed orchestrations kept in memory between turns (0: none; every
    /// turn then replays the stored history).
    pub cache_capacity: usize,
    /// Take work for names this worker has not registered, and fail it
    /// (`OrchestratorNotFound`, `ActivityNotFound`): right when this worker
    /// is the hub's only one. When other workers share the hub (remote
    /// workers over gRPC), set it to false: the worker then takes only the
    /// names it registered and leaves the rest for others.
    pub take_unknown_names: bool,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            orchestration_concurrency: 256,
            activity_concurrency: 256,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(500),
            max_batch: 1000,
            cache_capacity: 10_000,
            take_unknown_names: true,
        }
    }
}

pub(crate) struct Shared {
    pub store: Arc<dyn Store>,
    pub registry: Registry,
    pub options: WorkerOptions,
    pub cache: Mutex<lru::LruCache<String, crate::executor::OrchestrationRun>>,
    pub orchestration_filter: WorkFilter,
    pub activity_filter: WorkFilter,
    /// One permit per orchestration turn in progress.
    pub orchestration_slots: Arc<Semaphore>,
    /// One permit per activity running (fetched or claimed at commit).
    pub activity_slots: Arc<Semaphore>,
    /// Tasks claimed while every activity slot was busy, waiting for one.
    pub backlog: backlog::Backlog,
}

/// Most work items taken in one fetch.
const MAX_FETCH: usize = 128;

/// A running worker. Dropping it without [`Worker::shutdown`] leaves its
/// dispatchers running until the runtime stops.
pub struct Worker {
    stop: watch::Sender<bool>,
    loops: Vec<JoinHandle<()>>,
}

fn shared(store: Arc<dyn Store>, registry: Registry, options: WorkerOptions) -> Arc<Shared> {
    let cap = std::num::NonZeroUsize::new(options.cache_capacity.max(1))
        .unwrap_or(std::num::NonZeroUsize::MIN);
    let (orchestration_filter, activity_filter) = if options.take_unknown_names {
        (WorkFilter::Any, WorkFilter::Any)
    } else {
        (
            WorkFilter::names(
                registry
                    .orchestrator_names()
                    .into_iter()
                    .chain(registry.entity_instance_names()),
            ),
            WorkFilter::names(registry.activity_names()),
        )
    };
    let shared_store = store.shared_by_processes();
    Arc::new(Shared {
        store,
        registry,
        orchestration_filter,
        activity_filter,
        cache: Mutex::new(lru::LruCache::new(cap)),
        orchestration_slots: Arc::new(Semaphore::new(options.orchestration_concurrency.max(1))),
        activity_slots: Arc::new(Semaphore::new(options.activity_concurrency.max(1))),
        backlog: backlog::Backlog::new(
            options.activity_concurrency.max(1),
            options.lease,
            shared_store,
        ),
        options: options.clone(),
    })
}

impl Worker {
    /// Starts its dispatchers on the current tokio runtime.
    pub fn start(store: Arc<dyn Store>, registry: Registry, options: WorkerOptions) -> Worker {
        let shared = shared(store, registry, options);
        local::register(&shared);
        let (stop, stop_rx) = watch::channel(false);
        let loops = [WorkKind::Orchestration, WorkKind::Activity]
            .into_iter()
            .map(|kind| {
                let (s, rx) = (shared.clone(), stop_rx.clone());
                tokio::spawn(async move { dispatcher(s, rx, kind).await })
            })
            .collect();
        Worker { stop, loops }
    }

    /// Stops taking work and waits for the work in hand to finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for l in self.loops {
            let _ = l.await;
        }
    }
}

/// A worker's decisions without its dispatch loops: the caller takes work
/// from the store and hands it over one item at a time, deciding the order
/// in which turns and activities happen. A deterministic simulation drives
/// the engine through this; the [`Worker`] runs exactly the same code.
/// Dropping an engine is a crash: its cache is gone and the leases it held
/// run out.
pub struct Engine {
    shared: Arc<Shared>,
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, registry: Registry, options: WorkerOptions) -> Engine {
        Engine {
            shared: shared(store, registry, options),
        }
    }

    /// The fetch filters this engine's worker would use (orchestrations,
    /// activities).
    pub fn filters(&self) -> (&WorkFilter, &WorkFilter) {
        (
            &self.shared.orchestration_filter,
            &self.shared.activity_filter,
        )
    }

    /// Runs one taken instance's turn and commits it; returns the activities
    /// the commit claimed for this engine, already leased to it.
    pub async fn run_orchestration(
        &self,
        item: perdure_store::OrchestrationItem,
    ) -> Result<Vec<perdure_store::ActivityItem>, perdure_store::StoreError> {
        let claimed = orchestrations::turn(&self.shared, item).await?;
        Ok(claimed.into_iter().map(|(item, _)| item).collect())
    }

    /// Runs one taken activity and what its result leads to (see
    /// [`AfterActivity`]).
    pub async fn run_activity(
        &self,
        item: perdure_store::ActivityItem,
    ) -> Result<AfterActivity, perdure_store::StoreError> {
        Ok(match activities::run(&self.shared, item, None).await? {
            activities::After::Recorded => AfterActivity::Recorded,
            activities::After::Turn(item, _) => AfterActivity::Taken(item),
            activities::After::Ran(claimed) => {
                AfterActivity::TurnRan(claimed.into_iter().map(|(item, _)| item).collect())
            }
        })
    }
}

/// What an activity run by [`Engine::run_activity`] led to.
#[derive(Debug)]
pub enum AfterActivity {
    /// Its result is recorded in its instance's inbox.
    Recorded,
    /// Its instance was taken for this engine with the result carried in
    /// ([`perdure_store::OrchestrationItem::carried`]): the turn run on this
    /// item records the result with its own commit. Dropping the item is a
    /// crash: the task runs again when its lease ends.
    Taken(Box<perdure_store::OrchestrationItem>),
    /// The turn that consumes the result ran at once, without taking the
    /// instance (the engine held its run, waiting on this activity alone),
    /// and committed; these are the activities it claimed for this engine.
    TurnRan(Vec<perdure_store::ActivityItem>),
}

impl AfterActivity {
    /// The taken item, if the result was carried into one.
    pub fn taken(self) -> Option<perdure_store::OrchestrationItem> {
        match self {
            AfterActivity::Taken(item) => Some(*item),
            _ => None,
        }
    }
}

/// One dispatcher per kind of work: it takes as many items as it has free
/// slots in one fetch, runs each in its own task, and sleeps only when a
/// fetch found nothing (until a wake-up, a due time or the poll interval).
async fn dispatcher(shared: Arc<Shared>, mut stop: watch::Receiver<bool>, kind: WorkKind) {
    let slots = match kind {
        WorkKind::Orchestration => shared.orchestration_slots.clone(),
        WorkKind::Activity => shared.activity_slots.clone(),
    };
    let mut backoff = Duration::from_millis(50);
    loop {
        if *stop.borrow() {
            break;
        }
        let first = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.changed() => break,
        };
        let mut permits = vec![first];
        while permits.len() < MAX_FETCH {
            match slots.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        let taken = match kind {
            WorkKind::Orchestration => shared
                .store
                .fetch_orchestrations(
                    shared.options.lease,
                    shared.options.max_batch,
                    permits.len(),
                    &shared.orchestration_filter,
                )
                .await
                .map(|items| {
                    let n = items.len();
                    for item in items {
                        let Some(permit) = permits.pop() else { break };
                        orchestrations::spawn(shared.clone(), item, permit);
                    }
                    n
                }),
            WorkKind::Activity => shared
                .store
                .fetch_activities(shared.options.lease, permits.len(), &shared.activity_filter)
                .await
                .map(|items| {
                    let n = items.len();
                    for item in items {
                        let Some(permit) = permits.pop() else { break };
                        activities::spawn(shared.clone(), item, activities::Slot::Running(permit));
                    }
                    n
                }),
        };
        drop(permits);
        match taken {
            Ok(0) => {
                backoff = Duration::from_millis(50);
                tokio::select! {
                    _ = shared.store.wait_for_work(kind, shared.options.poll_interval) => {}
                    _ = stop.changed() => break,
                }
            }
            Ok(_) => backoff = Duration::from_millis(50),
            Err(e) => {
                tracing::warn!(error = %e, ?kind, "store error in dispatch loop; backing off");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    // Wait for the work in hand, then refuse new claims.
    let all = match kind {
        WorkKind::Orchestration => shared.options.orchestration_concurrency,
        WorkKind::Activity => shared.options.activity_concurrency,
    };
    let _ = slots.acquire_many(all.max(1) as u32).await;
    slots.close();
}
