//! The client's entity operations: signal an entity, read its state, list
//! entities. Entities live as instances `@name@key` in the same store.

use super::Client;
use crate::error::ClientError;
use crate::payload::IntoPayload;
use chrono::{DateTime, Utc};
use perdure_core::{EntityId, EventKind, HistoryEvent, Payload, RuntimeStatus};
use perdure_store::{InstanceMessage, InstanceQuery};
use serde::de::DeserializeOwned;

/// An entity and its state.
#[derive(Clone, Debug, PartialEq)]
pub struct EntityMetadata {
    pub id: EntityId,
    /// The state as JSON text.
    pub state: Payload,
    pub last_modified: DateTime<Utc>,
    /// The orchestration holding the entity's lock, if one does.
    pub locked_by: Option<String>,
}

/// What [`Client::clean_entity_storage`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanEntityStorageResult {
    /// Entities without state, lock or waiting requests that were deleted.
    pub empty_entities_removed: usize,
    /// Locks held by orchestrations that have finished or no longer exist,
    /// released.
    pub orphaned_locks_released: usize,
}

/// Which entities [`Client::list_entities`] returns.
#[derive(Clone, Debug, Default)]
pub struct EntityQuery {
    /// Only entities of this name.
    pub name: Option<String>,
    /// Only keys starting with this (with `name`).
    pub key_prefix: Option<String>,
    /// Only entities whose instance id (`@name@key`) starts with this;
    /// overrides `name` and `key_prefix`.
    pub instance_id_prefix: Option<String>,
    /// Most entities in one page (at least 1).
    pub page_size: usize,
    /// Where the previous page stopped.
    pub continuation: Option<String>,
}

/// One page of entities.
#[derive(Clone, Debug, PartialEq)]
pub struct EntityPage {
    pub entities: Vec<EntityMetadata>,
    pub continuation_token: Option<String>,
}

impl Client {
    /// Signals an operation on an entity (one-way). The entity exists from
    /// its first operation.
    pub async fn signal_entity(
        &self,
        entity: &EntityId,
        operation: &str,
        input: impl IntoPayload,
    ) -> Result<(), ClientError> {
        self.signal_entity_at(entity, operation, input, None).await
    }

    /// Signals an operation, delivered no earlier than `at` when given.
    pub async fn signal_entity_at(
        &self,
        entity: &EntityId,
        operation: &str,
        input: impl IntoPayload,
        at: Option<DateTime<Utc>>,
    ) -> Result<(), ClientError> {
        if operation.is_empty() {
            return Err(ClientError::InvalidArgument(
                "entity operation name must not be empty".into(),
            ));
        }
        let message = crate::dispatch::signal_message(
            entity.to_string(),
            operation.to_string(),
            input.into_payload()?,
            at,
            self.trace_parent().cloned(),
            Utc::now(),
        );
        self.store.send_message(message).await?;
        Ok(())
    }

    /// The entity's state as `T`; `None` if it has none (never written,
    /// deleted, or no such entity).
    pub async fn read_entity_state<T: DeserializeOwned>(
        &self,
        entity: &EntityId,
    ) -> Result<Option<T>, ClientError> {
        let Some(rec) = self.store.get_instance(&entity.to_string()).await? else {
            return Ok(None);
        };
        match rec.output.as_deref() {
            None => Ok(None),
            Some(text) => serde_json::from_str(text)
                .map(Some)
                .map_err(|e| ClientError::Serialization(e.to_string())),
        }
    }

    /// Cleans entity storage: deletes entities that have no state, hold no
    /// lock and have nothing waiting (`remove_empty`), and releases locks
    /// held by orchestrations that finished or were purged
    /// (`release_orphaned_locks`). Entities with requests in flight are
    /// left alone.
    pub async fn clean_entity_storage(
        &self,
        remove_empty: bool,
        release_orphaned_locks: bool,
    ) -> Result<CleanEntityStorageResult, ClientError> {
        let mut result = CleanEntityStorageResult::default();
        let mut query = InstanceQuery {
            instance_id_prefix: Some("@".into()),
            page_size: 500,
            ..InstanceQuery::default()
        };
        loop {
            let page = self.store.list_instances(&query).await?;
            for r in &page.instances {
                if release_orphaned_locks {
                    if let Some((section, owner)) =
                        crate::dispatch::entity_lock_holder(&r.custom_status)
                    {
                        let gone = match self.store.get_instance(&owner).await? {
                            None => true,
                            Some(o) => o.status.is_terminal(),
                        };
                        if gone {
                            let now = Utc::now();
                            let event = EventKind::EntityUnlockSent {
                                critical_section_id: section,
                                target: r.instance_id.clone(),
                                parent_instance_id: owner,
                            };
                            self.store
                                .send_message(InstanceMessage {
                                    instance_id: r.instance_id.clone(),
                                    execution_id: None,
                                    event: HistoryEvent::new(now, event),
                                    visible_at: now,
                                })
                                .await?;
                            result.orphaned_locks_released += 1;
                        }
                    }
                }
                let empty = r.output.is_none()
                    && r.status == RuntimeStatus::Completed
                    && crate::dispatch::entity_schedule_is_empty(&r.custom_status);
                if remove_empty && empty {
                    match self.store.purge_instance(&r.instance_id).await {
                        Ok(true) => result.empty_entities_removed += 1,
                        Ok(false) | Err(perdure_store::StoreError::NotFinished { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            match page.continuation {
                Some(t) => query.continuation = Some(t),
                None => return Ok(result),
            }
        }
    }

    /// Entities that have state, by name and key prefix, a page at a time.
    pub async fn list_entities(&self, query: &EntityQuery) -> Result<EntityPage, ClientError> {
        let prefix = if let Some(p) = &query.instance_id_prefix {
            if !p.starts_with('@') {
                return Err(ClientError::InvalidArgument(format!(
                    "entity instance ids start with `@`; `{p}` does not"
                )));
            }
            p.clone()
        } else {
            match (&query.name, &query.key_prefix) {
                (Some(name), key) => {
                    format!("@{}@{}", name.to_lowercase(), key.as_deref().unwrap_or(""))
                }
                (None, Some(_)) => {
                    return Err(ClientError::InvalidArgument(
                        "a key prefix needs an entity name".into(),
                    ))
                }
                (None, None) => "@".to_string(),
            }
        };
        let page = self
            .store
            .list_instances(&InstanceQuery {
                statuses: vec![RuntimeStatus::Running],
                instance_id_prefix: Some(prefix),
                page_size: query.page_size.max(1),
                continuation: query.continuation.clone(),
                ..InstanceQuery::default()
            })
            .await?;
        Ok(EntityPage {
            entities: page
                .instances
                .into_iter()
                .filter_map(|r| {
                    Some(EntityMetadata {
                        id: EntityId::parse(&r.instance_id).ok()?,
                        locked_by: crate::dispatch::entity_lock_holder(&r.custom_status)
                            .map(|(_, owner)| owner),
                        state: r.output,
                        last_modified: r.updated_at,
                    })
                })
                .collect(),
            continuation_token: page.continuation,
        })
    }
}
