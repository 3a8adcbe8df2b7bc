//! The orchestration queue: taking an instance with visible messages under a
//! lease, and committing a turn.

use crate::{FirstTurn, OrchestrationCommit, OrchestrationItem, StoreError, WorkFilter};
use async_trait::async_trait;
use perdure_core::Timestamp;
use std::time::Duration;

#[async_trait]
pub trait OrchestrationQueue {
    /// Locks up to `max_items` instances that have visible inbox messages
    /// and no live lease, each for `lease`, and returns them (oldest work
    /// first) with their visible messages in sequence order (at most
    /// `max_messages` each), in one transaction. Only instances whose name
    /// and version pass `filter` are taken. Empty when there is no such work.
    async fn fetch_orchestrations(
        &self,
        lease: Duration,
        max_messages: usize,
        max_items: usize,
        filter: &WorkFilter,
    ) -> Result<Vec<OrchestrationItem>, StoreError>;

    /// Takes one instance: [`OrchestrationQueue::fetch_orchestrations`] with
    /// `max_items` 1.
    async fn fetch_orchestration(
        &self,
        lease: Duration,
        max_messages: usize,
        filter: &WorkFilter,
    ) -> Result<Option<OrchestrationItem>, StoreError> {
        Ok(self
            .fetch_orchestrations(lease, max_messages, 1, filter)
            .await?
            .pop())
    }

    async fn commit_orchestration(&self, commit: OrchestrationCommit) -> Result<(), StoreError>;

    /// Creates a new instance together with its first turn, which the
    /// caller ran on a start it never stored
    /// ([`crate::CreateInstance::into_item`]): the instance, created at
    /// `commit.now`, with the turn's state, history, activities (claims
    /// included) and messages, in one durable write: no start message, no
    /// lease, no fetch. Applied only when no instance has the id; a taken
    /// id (even a finished instance's) is [`FirstTurn::Declined`], nothing
    /// written, and the caller creates the instance the usual way.
    /// `commit.lock_token`, `commit.consumed` and
    /// `commit.expected_history_len` are ignored. The default declines.
    async fn create_with_first_turn(
        &self,
        commit: OrchestrationCommit,
    ) -> Result<FirstTurn, StoreError> {
        Ok(FirstTurn::Declined(Box::new(commit)))
    }

    /// Commits a turn its worker ran without taking the instance: the turn
    /// that consumes an activity result the worker carried, on the run it
    /// holds in memory, when that run waits on nothing else. `commit.lock_token`
    /// is ignored. Applied only when, at commit, the instance has no live
    /// lease, is running, has `commit.expected_history_len` events, was last
    /// updated at `last_update` (to the millisecond: the worker's own last
    /// commit) and has no visible message in its inbox: the state in which
    /// a take would have handed the worker this very turn. `Ok(false)`, and
    /// nothing changed, otherwise. The default applies nothing.
    async fn commit_unleased(
        &self,
        commit: OrchestrationCommit,
        last_update: Timestamp,
    ) -> Result<bool, StoreError> {
        let _ = (commit, last_update);
        Ok(false)
    }

    /// The time a turn without a lease runs at: the store's clock (for a
    /// database server, its clock as last seen). `None` when the store does
    /// not commit such turns ([`OrchestrationQueue::commit_unleased`]).
    fn unleased_now(&self) -> Option<Timestamp> {
        None
    }

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
