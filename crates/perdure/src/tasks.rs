//! Durable tasks as futures: [`DurableTask`] (activities and
//! sub-orchestrations), [`TimerTask`] and [`EventTask`]. Each is a key into
//! the replay state; polling takes its completion once it has arrived, and
//! dropping an unfinished task cancels it (its late completion is ignored).

use crate::context::Shared;
use crate::error::TaskError;
use perdure_core::{Completion, TaskKey};
use serde::de::DeserializeOwned;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

pub(crate) struct RawTask {
    shared: Arc<Mutex<Shared>>,
    key: Option<TaskKey>,
}

impl RawTask {
    pub(crate) fn new(shared: Arc<Mutex<Shared>>, key: TaskKey) -> Self {
        RawTask {
            shared,
            key: Some(key),
        }
    }

    pub(crate) fn poll_raw(&mut self, cx: &mut Context<'_>) -> Poll<Option<Completion>> {
        let Some(key) = self.key else {
            return Poll::Ready(None);
        };
        let mut g = crate::context::lock(&self.shared);
        match g.exec.take_ready(key) {
            Some(c) => {
                g.wakers.remove(&key);
                self.key = None;
                Poll::Ready(Some(c))
            }
            None => {
                g.wakers.insert(key, cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn cancel(&mut self) {
        if let Some(key) = self.key.take() {
            let mut g = crate::context::lock(&self.shared);
            g.exec.cancel(key);
            g.wakers.remove(&key);
        }
    }
}

impl Drop for RawTask {
    fn drop(&mut self) {
        self.cancel();
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Target {
    Activity(String),
    SubOrchestration { name: String, instance_id: String },
    Entity { entity: String, operation: String },
}

/// An activity, sub-orchestration or entity call. Awaiting it gives its result,
/// deserialized as `T`, or a [`TaskError`].
pub struct DurableTask<T> {
    raw: Option<RawTask>,
    early: Option<TaskError>,
    target: Target,
    _t: PhantomData<fn() -> T>,
}

impl<T> DurableTask<T> {
    pub(crate) fn new(raw: RawTask, target: Target) -> Self {
        DurableTask {
            raw: Some(raw),
            early: None,
            target,
            _t: PhantomData,
        }
    }

    pub(crate) fn failed(err: TaskError, target: Target) -> Self {
        DurableTask {
            raw: None,
            early: Some(err),
            target,
            _t: PhantomData,
        }
    }
}

pub(crate) fn decode<T: DeserializeOwned>(
    payload: Option<&str>,
    what: &str,
) -> Result<T, TaskError> {
    serde_json::from_str(payload.unwrap_or("null")).map_err(|e| TaskError::Serialization {
        what: format!("cannot read the result of {what}"),
        message: e.to_string(),
    })
}

impl<T: DeserializeOwned> Future for DurableTask<T> {
    type Output = Result<T, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(e) = this.early.take() {
            return Poll::Ready(Err(e));
        }
        let Some(raw) = this.raw.as_mut() else {
            return Poll::Ready(Err(TaskError::InvalidCall(
                "task polled after completion".into(),
            )));
        };
        match raw.poll_raw(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(c) => {
                this.raw = None;
                Poll::Ready(match (c, &this.target) {
                    (Some(Completion::Ok(p)), Target::Activity(name)) => {
                        decode(p.as_deref(), &format!("activity `{name}`"))
                    }
                    (Some(Completion::Ok(p)), Target::SubOrchestration { name, .. }) => {
                        decode(p.as_deref(), &format!("sub-orchestration `{name}`"))
                    }
                    (Some(Completion::Ok(p)), Target::Entity { entity, operation }) => decode(
                        p.as_deref(),
                        &format!("operation `{operation}` of entity `{entity}`"),
                    ),
                    (Some(Completion::Failed(f)), Target::Entity { entity, operation }) => {
                        Err(TaskError::EntityOperationFailed {
                            entity: entity.clone(),
                            operation: operation.clone(),
                            failure: f,
                        })
                    }
                    (Some(Completion::Failed(f)), Target::Activity(name)) => {
                        Err(TaskError::ActivityFailed {
                            name: name.clone(),
                            failure: f,
                        })
                    }
                    (
                        Some(Completion::Failed(f)),
                        Target::SubOrchestration { name, instance_id },
                    ) => Err(TaskError::SubOrchestrationFailed {
                        name: name.clone(),
                        instance_id: instance_id.clone(),
                        failure: f,
                    }),
                    (None, _) => Err(TaskError::InvalidCall(
                        "task polled after completion".into(),
                    )),
                })
            }
        }
    }
}

/// A durable timer. Awaiting it returns when it fires; [`TimerTask::cancel`]
/// (or dropping it) cancels it.
pub struct TimerTask {
    raw: RawTask,
}

impl TimerTask {
    pub(crate) fn new(raw: RawTask) -> Self {
        TimerTask { raw }
    }

    /// Cancels the timer: nothing waits for it any more.
    pub fn cancel(mut self) {
        self.raw.cancel();
    }
}

impl Future for TimerTask {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().raw.poll_raw(cx).map(|_| ())
    }
}

/// A wait for an external event. Awaiting it gives the event's data
/// deserialized as `T`.
pub struct EventTask<T> {
    raw: RawTask,
    name: String,
    _t: PhantomData<fn() -> T>,
}

impl<T> EventTask<T> {
    pub(crate) fn new(raw: RawTask, name: String) -> Self {
        EventTask {
            raw,
            name,
            _t: PhantomData,
        }
    }
}

impl<T: DeserializeOwned> Future for EventTask<T> {
    type Output = Result<T, TaskError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.raw.poll_raw(cx).map(|c| match c {
            Some(Completion::Ok(p)) => decode(p.as_deref(), &format!("event `{}`", this.name)),
            Some(Completion::Failed(f)) => Err(TaskError::InvalidCall(f.to_string())),
            None => Err(TaskError::InvalidCall(
                "event task polled after completion".into(),
            )),
        })
    }
}
