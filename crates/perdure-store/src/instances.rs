//! Instance rows: creation, lookup and messages from clients.

use crate::{CreateInstance, InstanceMessage, InstanceRecord, StoreError};
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
}
