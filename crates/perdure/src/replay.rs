//! Replaying a stored history from scratch against registered code, with
//! no store and no side effects: the check that the code still makes the
//! decisions its history recorded (the simulator's "replay gives the same
//! actions" oracle; a test of a code change against recorded histories).

use crate::dispatch::{ExecutionInfo, Outcome};
use crate::executor::OrchestrationRun;
use crate::registry::Registry;
use perdure_core::{EventKind, HistoryEvent, NonDeterminism, RuntimeStatus};

/// Why a history does not replay.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("the history has no ExecutionStarted event")]
    NotStarted,
    #[error(transparent)]
    NonDeterministic(#[from] NonDeterminism),
    #[error("the history ends {recorded}, but the code ends {replayed}")]
    DifferentEnd { recorded: String, replayed: String },
}

/// Replays `history` (one execution of `instance_id`) through the code
/// `registry` holds for its orchestration. Returns how the execution ended,
/// or `None` if the history leaves it running. A mismatch between what the
/// code does and what the history recorded is an error, and so is an end
/// other than the recorded one (another status, or another output).
pub fn replay_history(
    registry: &Registry,
    instance_id: &str,
    history: &[HistoryEvent],
) -> Result<Option<Outcome>, ReplayError> {
    let info = ExecutionInfo::from_history(history).ok_or(ReplayError::NotStarted)?;
    let now = history
        .first()
        .map_or_else(chrono::Utc::now, |e| e.timestamp);
    let mut run = OrchestrationRun::new(instance_id, registry.orchestrator(&info.name), now);
    run.replay_to_end(history)?;
    let recorded = history.iter().find_map(|e| match &e.kind {
        EventKind::ExecutionCompleted { status, result, .. } => Some((*status, result.clone())),
        EventKind::ExecutionTerminated { .. } => Some((RuntimeStatus::Terminated, None)),
        _ => None,
    });
    let replayed = run.outcome.as_ref().map(|o| match o {
        Outcome::Completed(output) => (RuntimeStatus::Completed, output.clone()),
        Outcome::Failed(_) => (RuntimeStatus::Failed, None),
        Outcome::Terminated(_) => (RuntimeStatus::Terminated, None),
        Outcome::ContinuedAsNew { .. } => (RuntimeStatus::ContinuedAsNew, None),
    });
    let same = match (&recorded, &replayed) {
        (None, None) => true,
        (Some((a, x)), Some((b, y))) => a == b && (*a != RuntimeStatus::Completed || x == y),
        _ => false,
    };
    if !same {
        let describe = |end: &Option<(RuntimeStatus, perdure_core::Payload)>| match end {
            None => "still running".to_string(),
            Some((status, output)) => format!("{status} ({})", output.as_deref().unwrap_or("")),
        };
        return Err(ReplayError::DifferentEnd {
            recorded: describe(&recorded),
            replayed: describe(&replayed),
        });
    }
    Ok(run.outcome)
}
