//! `perdure::testing`: a test environment for orchestrations that runs in
//! milliseconds whatever durations they wait. A [`TestEnv`] holds a memory
//! store on a virtual clock and the worker's own turn and activity code
//! (an [`Engine`]) driven step by step: [`TestEnv::start`] and
//! [`TestEnv::raise_event`] run every turn and activity that follows until
//! nothing is left to do now, and [`TestEnv::advance`] moves the clock,
//! firing each timer due in that span in order. Activities can be replaced
//! by fakes ([`TestEnv::mock_activity`]) that see which attempt they are,
//! so retry and compensation paths are tested without a flaky service.
//!
//! ```
//! use perdure::testing::TestEnv;
//! use perdure::{OrchestrationContext, Registry, RuntimeStatus};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), perdure::testing::TestError> {
//! let mut registry = Registry::new();
//! registry.add_orchestrator("Reminder", |ctx: OrchestrationContext| async move {
//!     ctx.create_timer_after(Duration::from_secs(3 * 24 * 3600)).await;
//!     Ok(ctx.call_activity::<String>("Notify", "wake up").await?)
//! });
//! let mut env = TestEnv::new(registry);
//! env.mock_activity("Notify", |call| Ok(format!("sent: {}", call.input::<String>()?)));
//! let id = env.start("Reminder", ()).await?;
//! assert_eq!(env.status(&id).await?.runtime_status, RuntimeStatus::Running);
//! env.advance(Duration::from_secs(3 * 24 * 3600)).await?; // three days, at once
//! assert_eq!(env.output::<String>(&id).await?, "sent: wake up");
//! assert_eq!(env.activity_calls("Notify").len(), 1);
//! # Ok(()) }
//! ```

pub use crate::replay::{ReplayError, ReplayFileError, Replayer};

use crate::activity::ActivityContext;
use crate::client::{Client, OrchestrationStatus};
use crate::error::{ClientError, Failure};
use crate::payload::IntoPayload;
use crate::registry::{ActivityFn, Registry};
use crate::worker::{AfterActivity, Engine, WorkerOptions};
use futures::FutureExt;
use perdure_core::{FailureDetails, HistoryEvent, Payload, RuntimeStatus, Timestamp};
use perdure_store::{ActivityItem, ManualClock, MemoryStore, StoreError, WorkFilter};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a test environment refuses or finds.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("instance `{0}` was not found")]
    NotFound(String),
    #[error("instance `{id}` is {status}, not Completed{}", failure.as_ref().map(|f| format!(": {}: {}", f.error_type, f.message)).unwrap_or_default())]
    NotCompleted {
        id: String,
        status: RuntimeStatus,
        failure: Option<FailureDetails>,
    },
    #[error("instance `{id}` has no {what} of that type: {message}")]
    WrongType {
        id: String,
        what: &'static str,
        message: String,
    },
    #[error("still busy after {0} turns and activities: an orchestration that never waits (a loop without a timer or an event?)")]
    NeverIdle(usize),
}

/// One call of a faked activity, as the fake sees it.
#[derive(Clone, Debug)]
pub struct MockCall {
    /// The instance that called.
    pub instance_id: String,
    /// The activity's name.
    pub name: String,
    /// The call's task id in the caller's history.
    pub task_id: i64,
    /// Which call of this activity by this instance this is (1 the first
    /// time; a retry policy's second attempt is 2, and so on).
    pub attempt: u32,
    /// The input as JSON text (`None`: no input).
    pub raw_input: Payload,
}

impl MockCall {
    /// The input, read as `T`. The error is a non-retriable failure, so a
    /// fake whose input is not what it expects fails the call at once.
    pub fn input<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        serde_json::from_str(self.raw_input.as_deref().unwrap_or("null")).map_err(|e| {
            Failure::new(
                "InputDeserialization",
                format!("fake of `{}` cannot read its input: {e}", self.name),
            )
            .non_retriable()
        })
    }
}

type MockFn = Arc<dyn Fn(&MockCall) -> Result<Payload, Failure> + Send + Sync>;

/// The longest chain of turns and activities one `run_until_idle` takes
/// before it calls the environment busy for good.
const MAX_STEPS: usize = 20_000;

/// The lease work is taken under: long, since nothing here crashes.
const LEASE: Duration = Duration::from_secs(3600);

/// A test environment: a memory store on a virtual clock, and the worker's
/// code run step by step. See the [module documentation](self).
pub struct TestEnv {
    clock: Arc<ManualClock>,
    store: Arc<MemoryStore>,
    client: Client,
    registry: Registry,
    engine: Engine,
    options: WorkerOptions,
    calls: Arc<Mutex<Vec<MockCall>>>,
    /// The fakes, put back over each deployed registry.
    mocks: Vec<(String, ActivityFn)>,
}

/// The virtual clock's start: 2030-01-01T00:00:00Z, the same in every run.
pub fn default_start() -> Timestamp {
    chrono::DateTime::from_timestamp(1_893_456_000, 0).unwrap_or_default()
}

impl TestEnv {
    /// An environment running `registry`'s code, its clock at
    /// [`default_start`].
    pub fn new(registry: Registry) -> TestEnv {
        Self::with(|_| registry)
    }

    /// An environment whose registry needs its client (activities that
    /// raise events or start instances as an outside party would).
    pub fn with(make: impl FnOnce(Client) -> Registry) -> TestEnv {
        let clock = Arc::new(ManualClock::new(default_start()));
        let store = Arc::new(MemoryStore::with_clock(clock.clone()));
        let client = Client::new(store.clone());
        let registry = make(client.clone());
        let options = WorkerOptions {
            lease: LEASE,
            ..WorkerOptions::default()
        };
        let engine = Engine::new(store.clone(), registry.clone(), options.clone());
        TestEnv {
            clock,
            store,
            client,
            registry,
            engine,
            options,
            calls: Arc::default(),
            mocks: Vec::new(),
        }
    }

    /// The client of the environment's store, for what the helpers here
    /// do not cover (terminate, suspend, entities...). Call
    /// [`TestEnv::run_until_idle`] after using it.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The virtual time.
    pub fn now(&self) -> Timestamp {
        use perdure_store::Clock;
        self.clock.now()
    }

    /// Replaces activity `name` (registered or not) by `fake`, which gets
    /// each call and returns the output or a [`Failure`]. Every call is
    /// recorded ([`TestEnv::activity_calls`]).
    pub fn mock_activity<O, F>(&mut self, name: &str, fake: F) -> &mut Self
    where
        O: Serialize + 'static,
        F: Fn(&MockCall) -> Result<O, Failure> + Send + Sync + 'static,
    {
        let label = name.to_string();
        let fake: MockFn = Arc::new(move |call| {
            let out = fake(call)?;
            serde_json::to_string(&out)
                .map(|t| Some(t.into()))
                .map_err(|e| {
                    Failure::new(
                        "Serialization",
                        format!("cannot serialize the fake output of `{label}`: {e}"),
                    )
                })
        });
        let calls = self.calls.clone();
        let erased: ActivityFn = Arc::new(move |ctx: ActivityContext, input: Payload| {
            let fake = fake.clone();
            let calls = calls.clone();
            async move {
                let call = {
                    let mut g = calls
                        .lock()
                        .map_err(|_| Failure::new("Poisoned", "the call record"))?;
                    let attempt = g
                        .iter()
                        .filter(|c| {
                            c.instance_id == ctx.instance_id()
                                && c.name.eq_ignore_ascii_case(ctx.name())
                        })
                        .count()
                        + 1;
                    let call = MockCall {
                        instance_id: ctx.instance_id().to_string(),
                        name: ctx.name().to_string(),
                        task_id: ctx.task_id(),
                        attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                        raw_input: input,
                    };
                    g.push(call.clone());
                    call
                };
                fake(&call)
            }
            .boxed()
        });
        self.mocks.push((name.to_string(), erased));
        self.deploy(self.registry.clone());
        self
    }

    /// Puts new code in front of the instances in the store, as a deploy
    /// does: the worker restarts (nothing cached) with `registry`, the
    /// fakes still in place. Instances started under the old code replay
    /// their histories through the new one: a change that does not guard
    /// itself with [`crate::OrchestrationContext::is_patched`] fails them
    /// with a `NonDeterminism` failure.
    ///
    /// ```
    /// use perdure::testing::TestEnv;
    /// use perdure::{OrchestrationContext, Registry};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), perdure::testing::TestError> {
    /// let release = |extra_step: bool| {
    ///     let mut r = Registry::new();
    ///     r.add_orchestrator("Order", move |ctx: OrchestrationContext| async move {
    ///         if extra_step && ctx.is_patched("extra-step") {
    ///             ctx.create_timer_after(std::time::Duration::from_secs(1)).await;
    ///         }
    ///         ctx.wait_for_external_event::<()>("Ship").await?;
    ///         Ok("shipped")
    ///     });
    ///     r
    /// };
    /// let mut env = TestEnv::new(release(false));
    /// env.start_with_id("Order", "o1", ()).await?;
    /// env.deploy(release(true)); // o1 keeps the path it recorded
    /// env.raise_event("o1", "Ship", ()).await?;
    /// assert_eq!(env.output::<String>("o1").await?, "shipped");
    /// # Ok(()) }
    /// ```
    pub fn deploy(&mut self, registry: Registry) {
        let mut registry = registry;
        for (name, fake) in &self.mocks {
            registry.add_raw_activity(name, fake.clone());
        }
        self.engine = Engine::new(self.store.clone(), registry.clone(), self.options.clone());
        self.registry = registry;
    }

    /// Every call made to faked activity `name` so far, in order.
    pub fn activity_calls(&self, name: &str) -> Vec<MockCall> {
        self.calls
            .lock()
            .map(|g| {
                g.iter()
                    .filter(|c| c.name.eq_ignore_ascii_case(name))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Starts orchestration `name` with `input` and runs until idle.
    /// Returns the instance id.
    pub async fn start(&self, name: &str, input: impl IntoPayload) -> Result<String, TestError> {
        let id = self.client.start_new(name, None, input).await?;
        self.run_until_idle().await?;
        Ok(id)
    }

    /// Starts orchestration `name` as instance `id` and runs until idle.
    pub async fn start_with_id(
        &self,
        name: &str,
        id: &str,
        input: impl IntoPayload,
    ) -> Result<(), TestError> {
        self.client.start_new(name, Some(id), input).await?;
        self.run_until_idle().await?;
        Ok(())
    }

    /// Raises external event `event` on instance `id` and runs until idle.
    pub async fn raise_event(
        &self,
        id: &str,
        event: &str,
        data: impl IntoPayload,
    ) -> Result<(), TestError> {
        self.client.raise_event(id, event, data).await?;
        self.run_until_idle().await?;
        Ok(())
    }

    /// Moves the virtual clock forward by `by`: each timer (and scheduled
    /// start, delayed signal, retry) due in that span fires at its own time,
    /// in order, with everything that follows it run until idle.
    pub async fn advance(&self, by: Duration) -> Result<(), TestError> {
        let target = perdure_core::time::after(self.now(), by);
        self.run_until_idle().await?;
        while let Some(due) = self.store.next_due().filter(|t| *t <= target) {
            self.clock.advance_to(due);
            self.run_until_idle().await?;
        }
        self.clock.advance_to(target);
        self.run_until_idle().await?;
        Ok(())
    }

    /// Runs every orchestration turn and activity that can run at the
    /// current virtual time, and what they lead to, until nothing is left.
    /// Returns how many turns and activities ran.
    pub async fn run_until_idle(&self) -> Result<usize, TestError> {
        let mut steps = 0;
        let mut claimed: Vec<ActivityItem> = Vec::new();
        loop {
            let mut busy = false;
            let items = perdure_store::OrchestrationQueue::fetch_orchestrations(
                &*self.store,
                LEASE,
                self.options.max_batch,
                64,
                &WorkFilter::Any,
            )
            .await?;
            for item in items {
                busy = true;
                steps += 1;
                claimed.extend(self.engine.run_orchestration(item).await?);
            }
            let fetched = perdure_store::ActivityQueue::fetch_activities(
                &*self.store,
                LEASE,
                64,
                &WorkFilter::Any,
            )
            .await?;
            claimed.extend(fetched);
            while let Some(activity) = claimed.pop() {
                busy = true;
                steps += 1;
                match self.engine.run_activity(activity).await? {
                    AfterActivity::Taken(next) => {
                        steps += 1;
                        claimed.extend(self.engine.run_orchestration(*next).await?);
                    }
                    AfterActivity::TurnRan(more) => {
                        steps += 1;
                        claimed.extend(more);
                    }
                    AfterActivity::Recorded => {}
                }
            }
            if !busy {
                return Ok(steps);
            }
            if steps > MAX_STEPS {
                return Err(TestError::NeverIdle(steps));
            }
        }
    }

    /// The instance's status, with its history.
    pub async fn status(&self, id: &str) -> Result<OrchestrationStatus, TestError> {
        self.client
            .get_status(id, true)
            .await?
            .ok_or_else(|| TestError::NotFound(id.to_string()))
    }

    /// The output of a Completed instance, read as `T`; an error names the
    /// status (and the failure) of an instance that did not complete.
    pub async fn output<T: DeserializeOwned>(&self, id: &str) -> Result<T, TestError> {
        let st = self.status(id).await?;
        if st.runtime_status != RuntimeStatus::Completed {
            return Err(TestError::NotCompleted {
                id: id.to_string(),
                status: st.runtime_status,
                failure: st.failure,
            });
        }
        st.output_as().map_err(|e| TestError::WrongType {
            id: id.to_string(),
            what: "output",
            message: e.to_string(),
        })
    }

    /// The instance's custom status, read as `T`.
    pub async fn custom_status<T: DeserializeOwned>(&self, id: &str) -> Result<T, TestError> {
        self.status(id)
            .await?
            .custom_status_as()
            .map_err(|e| TestError::WrongType {
                id: id.to_string(),
                what: "custom status",
                message: e.to_string(),
            })
    }

    /// The instance's history (its current execution).
    pub async fn history(&self, id: &str) -> Result<Vec<HistoryEvent>, TestError> {
        Ok(self.status(id).await?.history.unwrap_or_default())
    }

    /// The names of the activities instance `id` scheduled, in order.
    pub async fn scheduled_activities(&self, id: &str) -> Result<Vec<String>, TestError> {
        Ok(self
            .history(id)
            .await?
            .iter()
            .filter_map(|e| match &e.kind {
                perdure_core::EventKind::TaskScheduled { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests;
