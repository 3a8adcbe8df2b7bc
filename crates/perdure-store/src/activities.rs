//! The activity queue: at-least-once delivery of activity tasks under leases.

use crate::{ActivityItem, InstanceMessage, StoreError, WorkFilter};
use async_trait::async_trait;
use std::time::Duration;

#[async_trait]
pub trait ActivityQueue {
    /// Locks a visible activity task with no live lease, whose name and
    /// version pass `filter`, for `lease`.
    async fn fetch_activity(
        &self,
        lease: Duration,
        filter: &WorkFilter,
    ) -> Result<Option<ActivityItem>, StoreError>;

    /// Atomically deletes the task and puts its result (TaskCompleted or
    /// TaskFailed) in the instance's inbox. A stale token gives
    /// [`StoreError::LockLost`] and changes nothing.
    async fn complete_activity(
        &self,
        lock_token: &str,
        result: InstanceMessage,
    ) -> Result<(), StoreError>;

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
}
