//! The activity queue: at-least-once delivery of activity tasks under leases.

use crate::{ActivityItem, InstanceMessage, OrchestrationItem, StoreError, WorkFilter};
use async_trait::async_trait;
use std::time::Duration;

#[async_trait]
pub trait ActivityQueue {
    /// Locks up to `max_items` visible activity tasks with no live lease,
    /// whose name and version pass `filter`, each for `lease`, in one
    /// transaction (oldest first). Empty when there is no such work.
    async fn fetch_activities(
        &self,
        lease: Duration,
        max_items: usize,
        filter: &WorkFilter,
    ) -> Result<Vec<ActivityItem>, StoreError>;

    /// Whether other processes take work from this store too (a hub such
    /// as PostgreSQL's). A task that goes back through such a store costs
    /// a take there and, in whichever worker runs it, a take of its
    /// instance for the result; so a worker keeps more of the tasks its own
    /// turns scheduled at hand (its backlog) than on a store of one process.
    fn shared_by_processes(&self) -> bool {
        false
    }

    /// Takes one task: [`ActivityQueue::fetch_activities`] with `max_items` 1.
    async fn fetch_activity(
        &self,
        lease: Duration,
        filter: &WorkFilter,
    ) -> Result<Option<ActivityItem>, StoreError> {
        Ok(self.fetch_activities(lease, 1, filter).await?.pop())
    }

    async fn complete_activity(
        &self,
        lock_token: &str,
        result: InstanceMessage,
    ) -> Result<(), StoreError>;

    /// Takes the instance a just-finished activity's result goes to, so
    /// that the worker which ran it carries the result into the turn that
    /// consumes it ([`crate::OrchestrationItem::carried`]) and one commit
    /// records both: a lease-only write (no wait for the disk). Taken only
    /// when the task is still leased under `lock_token` (else
    /// [`StoreError::LockLost`]) and instance `instance_id` has no live
    /// lease, is running (started, not suspended, not finished) and passes
    /// `filter`; the item holds its visible messages (perhaps none).
    /// `None` when it could not be taken: the caller then records the
    /// result with [`ActivityQueue::complete_activity`]. The default takes
    /// nothing.
    async fn take_for_result(
        &self,
        lock_token: &str,
        instance_id: &str,
        lease: Duration,
        max_messages: usize,
        filter: &WorkFilter,
    ) -> Result<Option<OrchestrationItem>, StoreError> {
        let _ = (lock_token, instance_id, lease, max_messages, filter);
        Ok(None)
    }

    /// Extends a held lease by `lease` from now.
    async fn renew_activity_lock(
        &self,
        lock_token: &str,
        lease: Duration,
    ) -> Result<(), StoreError>;

    /// Gives the task back; it becomes visible again after `retry_after`.
    async fn abandon_activity(
        &self,
        lock_token: &str,
        retry_after: Duration,
    ) -> Result<(), StoreError>;

    /// The task ids of execution `execution_id` of `instance_id` that are
    /// still queued or running (their results not yet recorded).
    async fn pending_tasks(
        &self,
        instance_id: &str,
        execution_id: &str,
    ) -> Result<Vec<i64>, StoreError>;
}
