//! Instance rows: creation, lookup and messages from clients.

use crate::{
    CreateInstance, InstanceMessage, InstancePage, InstanceQuery, InstanceRecord, StoreError,
};
use async_trait::async_trait;

#[async_trait]
pub trait InstanceStore {
    /// Creates an instance as Pending with its start message in its inbox.
    /// An existing instance that is Pending, Running, ContinuedAsNew or
    /// Suspended is refused with [`StoreError::AlreadyExists`]; a finished
    /// one is replaced (its history, inbox and activities are dropped).
    async fn create_instance(&self, req: CreateInstance) -> Result<(), StoreError>;

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
