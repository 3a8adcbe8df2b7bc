//! Instance rows: creation, lookup and messages from clients.

use crate::{
    CreateInstance, InstanceMessage, InstancePage, InstanceQuery, InstanceRecord, LeasedCreate,
    StoreError,
};
use async_trait::async_trait;
use std::time::Duration;

#[async_trait]
pub trait InstanceStore {
    /// Creates an instance as Pending with its start message in its inbox.
    /// An existing instance that is Pending, Running, ContinuedAsNew or
    /// Suspended is refused with [`StoreError::AlreadyExists`]; a finished
    /// one is replaced (its history, inbox and activities are dropped).
    async fn create_instance(&self, req: CreateInstance) -> Result<(), StoreError>;

    /// Creates a new instance as [`InstanceStore::create_instance`] does,
    /// but already leased to the caller for `lease`, and hands it back as a
    /// fetch would have (its record, its start message, the lock token): a
    /// process that runs the instance's first turn itself skips the fetch.
    /// Durable as a create is; if the caller dies, the lease ends and any
    /// worker takes the instance. [`LeasedCreate::Declined`] (nothing
    /// written) when the id is taken, the start is scheduled for later, or
    /// the store does not create instances this way: the caller then uses
    /// `create_instance`.
    async fn create_leased(
        &self,
        req: CreateInstance,
        lease: Duration,
    ) -> Result<LeasedCreate, StoreError> {
        let _ = lease;
        Ok(LeasedCreate::Declined(Box::new(req)))
    }

    async fn get_instance(&self, instance_id: &str) -> Result<Option<InstanceRecord>, StoreError>;

    /// Puts a message in an existing instance's inbox
    /// ([`StoreError::NotFound`] otherwise).
    async fn send_message(&self, msg: InstanceMessage) -> Result<(), StoreError>;

    /// Instances matching `query`, ordered by creation time then id, one
    /// page at a time; the page's continuation token gives the next page.
    async fn list_instances(&self, query: &InstanceQuery) -> Result<InstancePage, StoreError>;

    /// Deletes a finished instance with its history, inbox and activities.
    /// `Ok(false)` if there is no such instance; [`StoreError::NotFinished`]
    /// if it is still Pending, Running, ContinuedAsNew or Suspended.
    async fn purge_instance(&self, instance_id: &str) -> Result<bool, StoreError>;
}
