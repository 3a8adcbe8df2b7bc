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

    /// Extends a held lease by `lease` from now.
    /// [`ActivityQueue::complete_activity`], then, in the same transaction,
    /// takes the instance the result went to, as
    /// [`crate::OrchestrationQueue::fetch_orchestrations`] would, when it
    /// has no live lease, is not suspended and passes `filter`: the worker
    /// that ran the activity runs the turn that consumes its result without
    /// another round trip. The default completes and takes nothing.
    async fn complete_activity_and_take(
        &self,
        lock_token: &str,
        result: InstanceMessage,
        lease: Duration,
        max_messages: usize,
        filter: &WorkFilter,
    ) -> Result<Option<OrchestrationItem>, StoreError> {
        let _ = (lease, max_messages, filter);
        self.complete_activity(lock_token, result).await?;
        Ok(None)
    }

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
