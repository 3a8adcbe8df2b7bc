//! The worker: dispatch loops that take orchestration and activity work from
//! a store under leases, run user code, and commit the results. User code
//! can fail or panic; the worker records that and goes on.

mod activities;
mod orchestrations;

use crate::registry::Registry;
use perdure_store::{Store, WorkFilter, WorkKind};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How a worker runs.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// Orchestration turns run at once.
    pub orchestration_concurrency: usize,
    /// Activities run at once.
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
            orchestration_concurrency: 4,
            activity_concurrency: 16,
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
}

/// A running worker. Dropping it without [`Worker::shutdown`] leaves its
/// loops running until the runtime stops.
pub struct Worker {
    stop: watch::Sender<bool>,
    loops: Vec<JoinHandle<()>>,
}

impl Worker {
    /// Starts dispatch loops on the current tokio runtime.
    pub fn start(store: Arc<dyn Store>, registry: Registry, options: WorkerOptions) -> Worker {
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
        let shared = Arc::new(Shared {
            store,
            registry,
            orchestration_filter,
            activity_filter,
            cache: Mutex::new(lru::LruCache::new(cap)),
            options: options.clone(),
        });
        let (stop, stop_rx) = watch::channel(false);
        let mut loops = Vec::new();
        for _ in 0..options.orchestration_concurrency.max(1) {
            let (s, rx) = (shared.clone(), stop_rx.clone());
            loops.push(tokio::spawn(async move {
                dispatch_loop(s, rx, WorkKind::Orchestration).await
            }));
        }
        for _ in 0..options.activity_concurrency.max(1) {
            let (s, rx) = (shared.clone(), stop_rx.clone());
            loops.push(tokio::spawn(async move {
                dispatch_loop(s, rx, WorkKind::Activity).await
            }));
        }
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

async fn dispatch_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>, kind: WorkKind) {
    let mut backoff = Duration::from_millis(50);
    loop {
        if *stop.borrow() {
            return;
        }
        let did = match kind {
            WorkKind::Orchestration => orchestrations::step(&shared).await,
            WorkKind::Activity => activities::step(&shared).await,
        };
        match did {
            Ok(true) => {
                backoff = Duration::from_millis(50);
                continue;
            }
            Ok(false) => {
                tokio::select! {
                    _ = shared.store.wait_for_work(kind, shared.options.poll_interval) => {}
                    _ = stop.changed() => return,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, ?kind, "store error in dispatch loop; backing off");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
