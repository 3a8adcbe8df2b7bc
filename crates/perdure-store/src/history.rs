//! Reading an instance's history.

use crate::StoreError;
use async_trait::async_trait;
use perdure_core::HistoryEvent;

#[async_trait]
pub trait HistoryStore {
    /// The current execution's history in order (empty for an unknown instance).
    async fn read_history(&self, instance_id: &str) -> Result<Vec<HistoryEvent>, StoreError>;
}
