//! What activity code gets: which instance called it and which attempt this is.

/// Context handed to an activity function.
#[derive(Clone, Debug)]
pub struct ActivityContext {
    pub(crate) instance_id: String,
    pub(crate) name: String,
    pub(crate) task_id: i64,
    pub(crate) dequeue_count: u32,
}

impl ActivityContext {
    /// The context of attempt `delivery_count` (1 the first time) of the
    /// call `task_id` of instance `instance_id` to activity `name`: what a
    /// worker that takes the call from elsewhere (a remote work item) hands
    /// to [`crate::Registry::invoke_activity`].
    pub fn new(instance_id: &str, name: &str, task_id: i64, delivery_count: u32) -> Self {
        ActivityContext {
            instance_id: instance_id.to_string(),
            name: name.to_string(),
            task_id,
            dequeue_count: delivery_count,
        }
    }

    /// The orchestration instance that scheduled this activity.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// The activity's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The scheduling event's id in the orchestration's history. With the
    /// instance id it identifies this call uniquely: use it as an idempotency
    /// key, since activities run at least once.
    pub fn task_id(&self) -> i64 {
        self.task_id
    }

    /// How many times this call has been handed to a worker (1 the first
    /// time; more after a worker died mid-call).
    pub fn delivery_count(&self) -> u32 {
        self.dequeue_count
    }
}
