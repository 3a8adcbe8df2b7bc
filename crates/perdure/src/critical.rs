//! Critical sections (Durable Functions' `LockAsync`): an orchestration
//! locks a set of entities, always in sorted order so that two
//! orchestrations locking overlapping sets cannot deadlock, and holds them
//! until the [`EntityLock`] guard is released or dropped, or the
//! orchestration ends. While it holds them it may call only those entities,
//! may not signal them, may not start sub-orchestrations and may not lock
//! again: each such call fails with [`TaskError::LockingRulesViolation`].

use crate::context::{lock, OrchestrationContext, Shared};
use crate::error::TaskError;
use crate::tasks::RawTask;
use perdure_core::{Completion, EntityId, TaskKey};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// A held critical section. Dropping it (or calling [`EntityLock::release`])
/// unlocks its entities.
pub struct EntityLock {
    shared: Arc<Mutex<Shared>>,
    id: String,
}

impl EntityLock {
    /// The critical section's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Ends the critical section now.
    pub fn release(self) {}
}

impl Drop for EntityLock {
    fn drop(&mut self) {
        lock(&self.shared).exec.unlock_entities(&self.id);
    }
}

/// Awaiting it gives the [`EntityLock`] once every entity is locked.
pub struct LockTask {
    raw: Option<RawTask>,
    early: Option<TaskError>,
    shared: Arc<Mutex<Shared>>,
    id: String,
}

impl Future for LockTask {
    type Output = Result<EntityLock, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(e) = this.early.take() {
            return Poll::Ready(Err(e));
        }
        let Some(raw) = this.raw.as_mut() else {
            return Poll::Ready(Err(TaskError::InvalidCall(
                "lock task polled after completion".into(),
            )));
        };
        match raw.poll_raw(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Completion::Ok(_))) => {
                this.raw = None;
                Poll::Ready(Ok(EntityLock {
                    shared: this.shared.clone(),
                    id: std::mem::take(&mut this.id),
                }))
            }
            Poll::Ready(Some(Completion::Failed(f))) => {
                this.raw = None;
                Poll::Ready(Err(TaskError::InvalidCall(f.to_string())))
            }
            Poll::Ready(None) => Poll::Ready(Err(TaskError::InvalidCall(
                "lock task polled after completion".into(),
            ))),
        }
    }
}

impl Drop for LockTask {
    fn drop(&mut self) {
        // Given up before the lock was granted: release what it asked for.
        if self.raw.is_some() && !self.id.is_empty() {
            lock(&self.shared).exec.unlock_entities(&self.id);
        }
    }
}

impl OrchestrationContext {
    /// Locks `entities` for a critical section. Awaiting it waits until all
    /// are locked and gives the guard that releases them.
    pub fn lock(&self, entities: &[EntityId]) -> LockTask {
        let ids: Vec<String> = entities.iter().map(|e| e.to_string()).collect();
        let mut g = lock(&self.shared);
        let early = |e: TaskError| LockTask {
            raw: None,
            early: Some(e),
            shared: self.shared.clone(),
            id: String::new(),
        };
        if ids.is_empty() {
            return early(TaskError::InvalidCall(
                "lock needs at least one entity".into(),
            ));
        }
        let Some(action) = g.exec.lock_entities(&ids) else {
            return early(TaskError::LockingRulesViolation(
                "this orchestration already holds (or is acquiring) a lock; locks do not nest"
                    .into(),
            ));
        };
        let id = g
            .exec
            .critical_section()
            .map(|cs| cs.id.clone())
            .unwrap_or_default();
        drop(g);
        LockTask {
            raw: Some(RawTask::new(self.shared.clone(), TaskKey::Action(action))),
            early: None,
            shared: self.shared.clone(),
            id,
        }
    }

    /// True while this orchestration is in a critical section.
    pub fn is_locked(&self) -> bool {
        lock(&self.shared).exec.critical_section().is_some()
    }

    /// Why `what` on `target` breaks the locking rules, if it does.
    pub(crate) fn lock_rules(&self, what: LockedCall, target: Option<&str>) -> Option<TaskError> {
        let g = lock(&self.shared);
        let cs = g.exec.critical_section()?;
        let held = |t: &str| cs.lock_set.iter().any(|l| l == t);
        let why = match (what, target) {
            (LockedCall::SubOrchestration, _) => {
                "sub-orchestrations cannot be started inside a critical section".to_string()
            }
            (LockedCall::Call, Some(t)) if !held(t) => {
                format!("only locked entities may be called inside a critical section; `{t}` is not locked")
            }
            (LockedCall::Signal, Some(t)) if held(t) => {
                format!("`{t}` is locked by this critical section and cannot be signalled; call it instead")
            }
            _ => return None,
        };
        Some(TaskError::LockingRulesViolation(why))
    }
}

/// What an orchestration tries to do inside a critical section.
#[derive(Clone, Copy, Debug)]
pub(crate) enum LockedCall {
    Call,
    Signal,
    SubOrchestration,
}
