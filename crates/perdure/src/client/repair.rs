//! Repair of a stuck instance: a pending step (an activity or
//! sub-orchestration without a result, a timer not yet fired) is settled by
//! hand, with who did it and why. The repair is checked against the
//! instance's history here, then sent to the instance as a message and
//! applied by its next turn like any result (recorded as a `StepRepaired`
//! event, which replay applies as the step's result).

use super::Client;
use crate::error::ClientError;
use chrono::Utc;
use perdure_core::{EventKind, HistoryEvent, Repair, RepairedStep, RuntimeStatus};
use perdure_store::InstanceMessage;

/// A repair to make: which step, how, by whom and why.
#[derive(Clone, Debug, PartialEq)]
pub struct RepairRequest {
    /// The step's id: the `event_id` of its TaskScheduled, TimerCreated or
    /// SubOrchestrationInstanceCreated event.
    pub step_id: i64,
    pub repair: Repair,
    /// Who repairs (recorded).
    pub by: String,
    /// Why (recorded).
    pub reason: String,
}

/// A step of an instance still waiting for its result.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingStep {
    pub step_id: i64,
    pub step: RepairedStep,
    /// The activity's or orchestration's name; `None` for a timer.
    pub name: Option<String>,
    /// When a timer fires.
    pub fire_at: Option<chrono::DateTime<Utc>>,
    /// When the step was scheduled.
    pub scheduled_at: chrono::DateTime<Utc>,
}

/// The steps of `history` still waiting for a result, in order.
pub(crate) fn pending_steps(history: &[HistoryEvent]) -> Vec<PendingStep> {
    let mut open: Vec<PendingStep> = Vec::new();
    for e in history {
        let step = match &e.kind {
            EventKind::TaskScheduled { name, .. } => {
                Some((RepairedStep::Activity, Some(name), None))
            }
            EventKind::SubOrchestrationInstanceCreated { name, .. } => {
                Some((RepairedStep::SubOrchestration, Some(name), None))
            }
            EventKind::TimerCreated { fire_at } => {
                Some((RepairedStep::Timer, None, Some(*fire_at)))
            }
            _ => None,
        };
        if let Some((step, name, fire_at)) = step {
            open.push(PendingStep {
                step_id: e.event_id,
                step,
                name: name.cloned(),
                fire_at,
                scheduled_at: e.timestamp,
            });
        } else if let Some(done) = e.completion_id() {
            open.retain(|s| s.step_id != done);
        }
    }
    open
}

impl Client {
    /// The steps of instance `instance_id` still waiting for a result.
    pub async fn pending_steps(&self, instance_id: &str) -> Result<Vec<PendingStep>, ClientError> {
        let st = self
            .get_status(instance_id, true)
            .await?
            .ok_or_else(|| ClientError::NotFound(instance_id.to_string()))?;
        Ok(pending_steps(&st.history.unwrap_or_default()))
    }

    /// Settles a pending step of a running (or suspended) instance by
    /// hand: fails it with the given failure (mark it non-retriable, as
    /// `perdure repair` and the HTTP API do, so that a retry policy does
    /// not run the step again), completes it with a given result, or fires
    /// a timer now. The
    /// repair is refused, with the reason, when the step does not exist,
    /// already has its result, or is of another kind; otherwise it is
    /// queued for the instance's next turn, which records it (who, when,
    /// why) and hands the code the result. A suspended instance applies it
    /// once resumed. An activity still running keeps running; its result,
    /// when it comes, is ignored.
    ///
    /// ```
    /// use perdure::testing::TestEnv;
    /// use perdure::{OrchestrationContext, Registry, Repair, RepairRequest};
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), perdure::testing::TestError> {
    /// let mut r = Registry::new();
    /// r.add_orchestrator("Reminder", |ctx: OrchestrationContext| async move {
    ///     ctx.create_timer_after(Duration::from_secs(30 * 24 * 3600)).await; // set far too long
    ///     Ok("reminded")
    /// });
    /// let env = TestEnv::new(r);
    /// let id = env.start("Reminder", ()).await?;
    /// let timer = env.client().pending_steps(&id).await?.remove(0);
    /// env.client()
    ///     .repair(&id, RepairRequest {
    ///         step_id: timer.step_id,
    ///         repair: Repair::SkipTimer,
    ///         by: "alice".into(),
    ///         reason: "the timer was set to 30 days by mistake".into(),
    ///     })
    ///     .await?;
    /// env.run_until_idle().await?;
    /// assert_eq!(env.output::<String>(&id).await?, "reminded");
    /// # Ok(()) }
    /// ```
    pub async fn repair(&self, instance_id: &str, req: RepairRequest) -> Result<(), ClientError> {
        let st = self
            .get_status(instance_id, true)
            .await?
            .ok_or_else(|| ClientError::NotFound(instance_id.to_string()))?;
        if !matches!(
            st.runtime_status,
            RuntimeStatus::Running | RuntimeStatus::Suspended
        ) {
            return Err(ClientError::InvalidArgument(format!(
                "instance `{instance_id}` is {}; only a running or suspended instance has steps to repair",
                st.runtime_status
            )));
        }
        let history = st.history.unwrap_or_default();
        let pending = pending_steps(&history);
        let Some(step) = pending.iter().find(|s| s.step_id == req.step_id) else {
            let listed: Vec<String> = pending
                .iter()
                .map(|s| match &s.name {
                    Some(n) => format!("{} ({} {n})", s.step_id, s.step.as_str()),
                    None => format!("{} (timer)", s.step_id),
                })
                .collect();
            let scheduled = history.iter().any(|e| {
                e.event_id == req.step_id
                    && matches!(
                        e.kind,
                        EventKind::TaskScheduled { .. }
                            | EventKind::TimerCreated { .. }
                            | EventKind::SubOrchestrationInstanceCreated { .. }
                    )
            });
            let why = if scheduled {
                "already has its result"
            } else {
                "is not an activity, sub-orchestration or timer of its current execution"
            };
            return Err(ClientError::InvalidArgument(format!(
                "step {} of instance `{instance_id}` {why}; its pending steps: {}",
                req.step_id,
                if listed.is_empty() {
                    "none".to_string()
                } else {
                    listed.join(", ")
                }
            )));
        };
        match (step.step, &req.repair) {
            (RepairedStep::Timer, Repair::SkipTimer) => {}
            (RepairedStep::Timer, _) => {
                return Err(ClientError::InvalidArgument(format!(
                    "step {} is a timer: it can only be skipped (fired now)",
                    req.step_id
                )))
            }
            (_, Repair::SkipTimer) => {
                return Err(ClientError::InvalidArgument(format!(
                    "step {} is a {}, not a timer: complete it or fail it",
                    req.step_id,
                    step.step.as_str()
                )))
            }
            _ => {}
        }
        if let Repair::Complete { result: Some(text) } = &req.repair {
            crate::payload::RawJson::parse(text.clone())?;
        }
        if req.by.trim().is_empty() || req.reason.trim().is_empty() {
            return Err(ClientError::InvalidArgument(
                "a repair names who makes it and why (both are recorded)".into(),
            ));
        }
        let now = Utc::now();
        self.store
            .send_message(InstanceMessage {
                instance_id: instance_id.to_string(),
                execution_id: Some(
                    crate::dispatch::ExecutionInfo::from_history(&history)
                        .map(|e| e.execution_id)
                        .unwrap_or_default(),
                ),
                event: HistoryEvent::new(
                    now,
                    EventKind::StepRepaired {
                        step_id: req.step_id,
                        step: step.step,
                        repair: req.repair,
                        by: req.by,
                        reason: req.reason,
                    },
                ),
                visible_at: now,
            })
            .await?;
        tracing::info!(instance_id, step_id = step.step_id, "repair queued");
        Ok(())
    }
}
