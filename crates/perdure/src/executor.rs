//! Drives orchestrator code over the replay state: applies history events one
//! at a time, waking the futures they complete and polling the orchestrator
//! after each, so that a replay sees exactly what the first run saw. A run
//! stays alive between turns (in the worker's cache), so a new event costs
//! work for the new events only.

use crate::context::{lock, OrchestrationContext};
use crate::error::Failure;
use crate::registry::OrchestratorFn;
use futures::future::BoxFuture;
use perdure_core::{
    Action, Applied, ExecutionState, FailureDetails, HistoryEvent, NonDeterminism, Payload,
};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// Polls in a row while the orchestrator keeps waking itself, before it is
/// declared stuck in a busy loop.
const MAX_SELF_WAKES: u32 = 100_000;

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

pub(crate) use crate::dispatch::Outcome;

/// What a live turn produced.
pub(crate) struct Turn {
    /// The new events to append (duplicates and stale completions left out).
    pub accepted: Vec<HistoryEvent>,
    pub actions: Vec<Action>,
    /// New events not applied because the execution ended first. External
    /// events among them go to the next execution after a continue-as-new.
    pub leftover: Vec<HistoryEvent>,
}

pub(crate) struct OrchestrationRun {
    pub ctx: OrchestrationContext,
    orchestrator: Option<OrchestratorFn>,
    future: Option<BoxFuture<'static, Result<Payload, Failure>>>,
    flag: Arc<Flag>,
    waker: Waker,
    pub outcome: Option<Outcome>,
    /// Events in the stored history this run has seen.
    pub history_len: u64,
    /// The time of the last commit this run made (the instance row's
    /// `updated_at` while no one else has committed since).
    pub committed_at: Option<perdure_core::Timestamp>,
    /// What the execution has open, for the spans later turns emit.
    pub steps: crate::telemetry::OpenSteps,
    /// Set when replay found the code changed: the unlocks of the critical
    /// sections the history holds, the only actions the failing turn sends.
    nondeterministic: Option<Vec<Action>>,
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

pub(crate) fn panic_failure(p: &(dyn std::any::Any + Send)) -> FailureDetails {
    FailureDetails::new("panic", panic_message(p))
}

impl OrchestrationRun {
    /// A run of `orchestrator`; `None` when no orchestrator of the started
    /// name is registered (the execution then fails when it starts).
    pub fn new(
        instance_id: &str,
        orchestrator: Option<OrchestratorFn>,
        now: perdure_core::Timestamp,
    ) -> Self {
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        OrchestrationRun {
            ctx: OrchestrationContext::new(ExecutionState::new(instance_id, now)),
            orchestrator,
            future: None,
            waker: Waker::from(flag.clone()),
            flag,
            outcome: None,
            history_len: 0,
            committed_at: None,
            steps: Default::default(),
            nondeterministic: None,
        }
    }

    pub fn execution_id(&self) -> String {
        self.ctx.execution_id()
    }

    /// The instance row as this run's last commit left it, when that commit
    /// was at `committed_at` (for a turn run without taking the instance).
    pub fn as_record(
        &self,
        committed_at: perdure_core::Timestamp,
    ) -> perdure_store::InstanceRecord {
        let g = lock(&self.ctx.shared);
        let e = &g.exec;
        perdure_store::InstanceRecord {
            instance_id: e.instance_id.clone(),
            name: e.name.clone(),
            version: e.version.clone(),
            status: perdure_core::RuntimeStatus::Running,
            execution_id: e.execution_id.clone(),
            input: e.input.clone(),
            output: None,
            failure: None,
            custom_status: e.custom_status().clone(),
            created_at: committed_at,
            updated_at: committed_at,
            parent_instance_id: e.parent.as_ref().map(|p| p.instance_id.clone()),
            history_len: self.history_len,
            tags: e.tags.clone(),
        }
    }

    /// True when this run waits on activity `task_id` of execution
    /// `execution_id` and on nothing else.
    pub fn waits_only_on(&self, execution_id: &str, task_id: i64) -> bool {
        let g = lock(&self.ctx.shared);
        g.exec.execution_id == execution_id && g.exec.waits_only_on(task_id)
    }

    /// Replays stored history. A mismatch between code and history is a
    /// [`NonDeterminism`] error.
    pub fn replay(&mut self, history: &[HistoryEvent]) -> Result<(), NonDeterminism> {
        lock(&self.ctx.shared).exec.know_patches(history);
        for (i, event) in history.iter().enumerate() {
            self.apply(event, true)?;
            if self.outcome.is_some() {
                if let Some(next) = history.get(i + 1) {
                    return Err(NonDeterminism::completed_early(next));
                }
            }
        }
        self.history_len = history.len() as u64;
        Ok(())
    }

    /// Replays a whole history, its end included: the events of the turn
    /// in which the code finished are matched against what it did. A
    /// terminate ends the replay: what follows it (the unlocks of the
    /// critical sections it held) is the engine's doing, not the code's,
    /// and so is what the dropped code asked for as it went.
    pub fn replay_to_end(&mut self, history: &[HistoryEvent]) -> Result<(), NonDeterminism> {
        lock(&self.ctx.shared).exec.know_patches(history);
        for event in history {
            self.apply(event, true)?;
            if matches!(self.outcome, Some(Outcome::Terminated(_))) {
                break;
            }
        }
        self.history_len = history.len() as u64;
        Ok(())
    }

    /// Ends the execution Failed because its code no longer matches
    /// `history`. The next turn then commits nothing the changed code asked
    /// for (no activities, children, events or entity calls): only the
    /// failure, and the unlocks of the critical sections `history` holds.
    pub fn fail_nondeterministic(&mut self, nd: NonDeterminism, history: &[HistoryEvent]) {
        self.finish(Outcome::Failed(nd.to_failure()));
        self.nondeterministic = Some(perdure_core::release_held_locks(history));
    }

    /// Applies a live turn's new events. A non-determinism found here ends
    /// the execution Failed.
    pub fn run_turn(&mut self, events: Vec<HistoryEvent>) -> Turn {
        if let Some(release) = self.nondeterministic.take() {
            // Discard what the changed code scheduled while replaying.
            {
                let mut g = lock(&self.ctx.shared);
                drop(g.exec.take_new_actions());
                drop(g.exec.take_new_patches());
            }
            let started = events
                .into_iter()
                .filter(|e| matches!(e.kind, perdure_core::EventKind::OrchestratorStarted))
                .collect();
            return Turn {
                accepted: started,
                actions: release,
                leftover: Vec::new(),
            };
        }
        let mut accepted = Vec::with_capacity(events.len());
        let mut leftover = Vec::new();
        for event in events {
            if self.outcome.is_some()
                && !matches!(event.kind, perdure_core::EventKind::OrchestratorStarted)
            {
                leftover.push(event);
                continue;
            }
            match self.apply(&event, false) {
                Ok(true) => accepted.push(event),
                Ok(false) => {}
                Err(nd) => {
                    accepted.push(event);
                    self.finish(Outcome::Failed(nd.to_failure()));
                }
            }
        }
        let (actions, patches) = {
            let mut g = lock(&self.ctx.shared);
            (g.exec.take_new_actions(), g.exec.take_new_patches())
        };
        // Patch markers go after the events the code reacted to, before
        // the events of the actions it took.
        let now = lock(&self.ctx.shared).exec.current_time();
        accepted.extend(patches.into_iter().map(|change_id| {
            HistoryEvent::new(now, perdure_core::EventKind::PatchMarker { change_id })
        }));
        Turn {
            accepted,
            actions,
            leftover,
        }
    }

    /// Applies one event; `Ok(false)` when it is a duplicate or stale and
    /// must not be recorded.
    fn apply(&mut self, event: &HistoryEvent, replaying: bool) -> Result<bool, NonDeterminism> {
        let applied = {
            let mut g = lock(&self.ctx.shared);
            g.exec.set_replaying(replaying);
            g.exec.apply(event)?
        };
        match applied {
            Applied::Started => self.start(),
            Applied::Resolved(key) => {
                let waker = lock(&self.ctx.shared).wakers.remove(&key);
                if let Some(w) = waker {
                    w.wake();
                }
                if self.flag.0.load(Ordering::Acquire) {
                    self.poll();
                }
            }
            Applied::Terminated(reason) => self.finish(Outcome::Terminated(reason)),
            Applied::Ignored => return Ok(false),
            Applied::Buffered | Applied::Recorded => {}
        }
        Ok(true)
    }

    fn start(&mut self) {
        match self.orchestrator.clone() {
            Some(f) => {
                let ctx = self.ctx.clone();
                match catch_unwind(AssertUnwindSafe(|| f(ctx))) {
                    Ok(fut) => {
                        self.future = Some(fut);
                        self.poll();
                    }
                    Err(p) => self.finish(Outcome::Failed(panic_failure(p.as_ref()))),
                }
            }
            None => {
                let name = self.ctx.name();
                self.finish(Outcome::Failed(
                    FailureDetails::new(
                        "OrchestratorNotFound",
                        format!("no orchestrator named `{name}` is registered with this worker"),
                    )
                    .non_retriable(),
                ));
            }
        }
    }

    fn finish(&mut self, outcome: Outcome) {
        self.outcome = Some(outcome);
        // Drop the orchestrator's future now: its tasks cancel themselves.
        self.future = None;
    }

    fn poll(&mut self) {
        let mut spins = 0;
        loop {
            let Some(fut) = self.future.as_mut() else {
                return;
            };
            self.flag.0.store(false, Ordering::Release);
            let mut cx = Context::from_waker(&self.waker);
            match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(&mut cx))) {
                Ok(Poll::Pending) => {
                    if !self.flag.0.load(Ordering::Acquire) {
                        return;
                    }
                    spins += 1;
                    if spins > MAX_SELF_WAKES {
                        self.finish(Outcome::Failed(FailureDetails::new(
                            "BusyLoop",
                            "the orchestrator kept waking itself without waiting on a durable task",
                        )));
                        return;
                    }
                }
                Ok(Poll::Ready(result)) => {
                    let outcome = match result {
                        Ok(output) => {
                            let g = lock(&self.ctx.shared);
                            match g.exec.continue_as_new() {
                                Some(can) => Outcome::ContinuedAsNew {
                                    input: can.input.clone(),
                                    carried: if can.preserve_unprocessed_events {
                                        g.exec.unprocessed_events().cloned().collect()
                                    } else {
                                        Vec::new()
                                    },
                                },
                                None => Outcome::Completed(output),
                            }
                        }
                        Err(failure) => Outcome::Failed(failure.into_details()),
                    };
                    self.finish(outcome);
                    return;
                }
                Err(p) => {
                    self.finish(Outcome::Failed(panic_failure(p.as_ref())));
                    return;
                }
            }
        }
    }
}
