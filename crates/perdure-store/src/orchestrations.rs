//! The orchestration queue: taking an instance with visible messages under a
//! lease, and committing a turn.

use crate::{OrchestrationCommit, OrchestrationItem, StoreError, WorkFilter};
use async_trait::async_trait;
use std::time::Duration;

#[async_trait]
pub trait OrchestrationQueue {
    /// Locks an instance that has visible inbox messages and no live lease,
    /// for `lease`, and returns it with its visible messages in sequence
    /// order (at most `max_messages`). Only instances whose name and version
    /// pass `filter` are taken. `None` when there is no such work.
    async fn fetch_orchestration(
        &self,
        lease: Duration,
        max_messages: usize,
        filter: &WorkFilter,
    ) -> Result<Option<OrchestrationItem>, StoreError>;

    /// Commits a turn atomically: history appended (after checking its
    /// length), instance row updated, activities and messages enqueued,
    /// consumed messages deleted, lease released. A stale lock token gives
    /// [`StoreError::LockLost`] and changes nothing.
    async fn commit_orchestration(&self, commit: OrchestrationCommit) -> Result<(), StoreError>;

    /// Extends a held lease by `lease` from now.
    async fn renew_orchestration_lock(
        &self,
        instance_id: &str,
        lock_token: &str,
        lease: Duration,
    ) -> Result<(), StoreError>;

    /// Gives the work back: the lease ends `retry_after` from now and the
    /// messages stay in the inbox.
    async fn abandon_orchestration(
        &self,
        instance_id: &str,
        lock_token: &str,
        retry_after: Duration,
    ) -> Result<(), StoreError>;
}
