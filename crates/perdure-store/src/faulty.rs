//! A store wrapper that injects failures, for tests (after redb's crash
//! testing): every `every`-th write fails, either before it is applied (an
//! error, nothing changed) or after it is applied (the write is durable but
//! the caller is told it failed, as when a process dies right after commit).
//! A simulation instead gives it a plan that decides each write's fate, and
//! an observer that sees every orchestration commit and what became of it.

use crate::*;
use async_trait::async_trait;
use perdure_core::HistoryEvent;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Where an injected failure strikes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultPoint {
    BeforeCommit,
    AfterCommit,
}

/// Decides, write by write, whether and where a failure strikes.
pub type FaultPlan = Box<dyn Fn() -> Option<FaultPoint> + Send + Sync>;

/// Sees each orchestration commit and whether it was applied.
pub type CommitObserver = Box<dyn Fn(&OrchestrationCommit, bool) + Send + Sync>;

/// Wraps a store; see the module documentation.
pub struct FaultyStore<S> {
    inner: S,
    every: u64,
    point: FaultPoint,
    writes: AtomicU64,
    injected: AtomicU64,
    plan: Option<FaultPlan>,
    observer: Option<CommitObserver>,
}

impl<S> FaultyStore<S> {
    pub fn new(inner: S, every: u64, point: FaultPoint) -> Self {
        FaultyStore {
            inner,
            every: every.max(1),
            point,
            writes: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            plan: None,
            observer: None,
        }
    }

    /// A wrapper whose writes fail where `plan` says.
    pub fn with_plan(inner: S, plan: FaultPlan) -> Self {
        FaultyStore {
            plan: Some(plan),
            ..Self::new(inner, u64::MAX, FaultPoint::BeforeCommit)
        }
    }

    /// Calls `observer` with each orchestration commit and whether it was
    /// applied to the inner store.
    pub fn observed(mut self, observer: CommitObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// How many failures were injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    fn strike(&self) -> Option<FaultPoint> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        let hit = match &self.plan {
            Some(plan) => plan(),
            None => n.is_multiple_of(self.every).then_some(self.point),
        };
        if hit.is_some() {
            self.injected.fetch_add(1, Ordering::SeqCst);
        }
        hit
    }

    /// Runs `f` (a write) unless the plan fails it first; reports whether
    /// it was applied.
    async fn guarded<F, T>(&self, f: F) -> (Result<T, StoreError>, bool)
    where
        F: std::future::Future<Output = Result<T, StoreError>>,
    {
        let injected = || StoreError::Backend("injected failure".into());
        match self.strike() {
            None => {
                let r = f.await;
                let applied = r.is_ok();
                (r, applied)
            }
            Some(FaultPoint::BeforeCommit) => (Err(injected()), false),
            Some(FaultPoint::AfterCommit) => match f.await {
                Ok(_) => (Err(injected()), true),
                Err(e) => (Err(e), false),
            },
        }
    }
}

#[async_trait]
impl<S: Store> InstanceStore for FaultyStore<S> {
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
impl<S: Store> HistoryStore for FaultyStore<S> {
    async fn read_history(&self, id: &str) -> Result<Vec<HistoryEvent>, StoreError> {
        self.inner.read_history(id).await
    }
}

#[async_trait]
impl<S: Store> OrchestrationQueue for FaultyStore<S> {
    async fn fetch_orchestrations(
        &self,
        lease: Duration,
        max: usize,
        max_items: usize,
        filter: &WorkFilter,
    ) -> Result<Vec<OrchestrationItem>, StoreError> {
        self.inner
            .fetch_orchestrations(lease, max, max_items, filter)
            .await
    }
    async fn commit_orchestration(&self, commit: OrchestrationCommit) -> Result<(), StoreError> {
        let seen = self.observer.as_ref().map(|_| commit.clone());
        let (r, applied) = self.guarded(self.inner.commit_orchestration(commit)).await;
        if let (Some(observe), Some(commit)) = (&self.observer, seen) {
            observe(&commit, applied);
        }
        r
    }
    async fn commit_unleased(
        &self,
        commit: OrchestrationCommit,
        last_update: perdure_core::Timestamp,
    ) -> Result<bool, StoreError> {
        // "Not applied" travels as an error through `guarded`, so that the
        // observer hears of applied commits only.
        const NOT_APPLIED: &str = "unleased turn not applied";
        let seen = self.observer.as_ref().map(|_| commit.clone());
        let inner = async {
            match self.inner.commit_unleased(commit, last_update).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(StoreError::LockLost(NOT_APPLIED.into())),
                Err(e) => Err(e),
            }
        };
        let (r, applied) = self.guarded(inner).await;
        if let (Some(observe), Some(commit)) = (&self.observer, seen) {
            observe(&commit, applied);
        }
        match r {
            Ok(()) => Ok(true),
            Err(StoreError::LockLost(what)) if what == NOT_APPLIED => Ok(false),
            Err(e) => Err(e),
        }
    }
    async fn create_with_first_turn(
        &self,
        commit: OrchestrationCommit,
    ) -> Result<FirstTurn, StoreError> {
        // A decline (nothing written) travels as an error through
        // `guarded`, so that the observer hears of applied commits only.
        let seen = self.observer.as_ref().map(|_| commit.clone());
        let mut declined = None;
        let inner = async {
            match self.inner.create_with_first_turn(commit).await {
                Ok(FirstTurn::Created) => Ok(()),
                Ok(FirstTurn::Declined(c)) => {
                    declined = Some(c);
                    Err(StoreError::LockLost("first turn declined".into()))
                }
                Err(e) => Err(e),
            }
        };
        let (r, applied) = self.guarded(inner).await;
        if let (Some(observe), Some(commit)) = (&self.observer, seen) {
            observe(&commit, applied);
        }
        match (r, declined) {
            (_, Some(commit)) => Ok(FirstTurn::Declined(commit)),
            (Ok(()), None) => Ok(FirstTurn::Created),
            (Err(e), None) => Err(e),
        }
    }
    fn unleased_now(&self) -> Option<perdure_core::Timestamp> {
        self.inner.unleased_now()
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
impl<S: Store> ActivityQueue for FaultyStore<S> {
    fn shared_by_processes(&self) -> bool {
        self.inner.shared_by_processes()
    }

    async fn fetch_activities(
        &self,
        lease: Duration,
        max_items: usize,
        filter: &WorkFilter,
    ) -> Result<Vec<ActivityItem>, StoreError> {
        self.inner.fetch_activities(lease, max_items, filter).await
    }
    async fn complete_activity(
        &self,
        token: &str,
        result: InstanceMessage,
    ) -> Result<(), StoreError> {
        self.guarded(self.inner.complete_activity(token, result))
            .await
            .0
    }
    async fn take_for_result(
        &self,
        token: &str,
        instance_id: &str,
        lease: Duration,
        max_messages: usize,
        filter: &WorkFilter,
    ) -> Result<Option<OrchestrationItem>, StoreError> {
        let take = self
            .inner
            .take_for_result(token, instance_id, lease, max_messages, filter);
        self.guarded(take).await.0
    }
    async fn renew_activity_lock(&self, token: &str, lease: Duration) -> Result<(), StoreError> {
        self.inner.renew_activity_lock(token, lease).await
    }
    async fn pending_tasks(&self, id: &str, execution_id: &str) -> Result<Vec<i64>, StoreError> {
        self.inner.pending_tasks(id, execution_id).await
    }

    async fn abandon_activity(&self, token: &str, retry_after: Duration) -> Result<(), StoreError> {
        self.inner.abandon_activity(token, retry_after).await
    }
}

#[async_trait]
impl<S: Store> WakeSignal for FaultyStore<S> {
    async fn wait_for_work(&self, kind: WorkKind, max_wait: Duration) {
        self.inner.wait_for_work(kind, max_wait).await
    }

    fn watch_instance(&self, instance_id: &str) -> Option<crate::InstanceWatch> {
        self.inner.watch_instance(instance_id)
    }
}

#[async_trait]
impl<S: Store> crate::StoreStats for FaultyStore<S> {
    fn commit_stats(&self) -> crate::CommitStats {
        self.inner.commit_stats()
    }

    async fn queue_depths(&self) -> Result<crate::QueueDepths, StoreError> {
        self.inner.queue_depths().await
    }
}
