//! Replaying a stored history from scratch against registered code, with
//! no store and no side effects: the check that the code still makes the
//! decisions its history recorded (the simulator's "replay gives the same
//! actions" oracle; a test of a code change against recorded histories),
//! and one turn decided the way a remote SDK worker decides it, from the
//! past events and the new ones of a work item, with nothing cached.

use crate::dispatch::{ExecutionInfo, Outcome};
use crate::executor::{OrchestrationRun, Turn};
use crate::registry::Registry;
use perdure_core::{Action, EventKind, HistoryEvent, NonDeterminism, Payload, RuntimeStatus};

/// Why a history does not replay.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("the history has no ExecutionStarted event")]
    NotStarted,
    #[error("no orchestrator named `{0}` is registered")]
    Unregistered(String),
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
    let Some(orchestrator) = registry.orchestrator(&info.name) else {
        return Err(ReplayError::Unregistered(info.name));
    };
    let now = history
        .first()
        .map_or_else(chrono::Utc::now, |e| e.timestamp);
    let mut run = OrchestrationRun::new(instance_id, Some(orchestrator), now);
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

/// One instance's recorded history checked against the code.
#[derive(Debug)]
pub struct ReplayCheck {
    pub instance_id: String,
    pub name: String,
    pub status: RuntimeStatus,
    /// `Ok` when the code makes the decisions the history recorded.
    pub result: Result<(), ReplayError>,
}

/// Checks every instance `query` selects (all its pages) against the code
/// `registry` holds, as a deploy would run them: each recorded history is
/// replayed from scratch, with no side effects. Instances of orchestrators
/// the registry does not hold are reported as
/// [`ReplayError::Unregistered`]; those that failed on non-determinism
/// before are checked too (a fixed deploy replays them cleanly, and a
/// rewind can take them on).
pub async fn check_instances(
    registry: &Registry,
    client: &crate::Client,
    query: &perdure_store::InstanceQuery,
) -> Result<Vec<ReplayCheck>, crate::ClientError> {
    let mut query = query.clone();
    let mut checks = Vec::new();
    loop {
        let page = client.list_instances(&query, false).await?;
        for st in page.instances {
            let Some(full) = client.get_status(&st.instance_id, true).await? else {
                continue; // purged since the list was read
            };
            let history = full.history.unwrap_or_default();
            // A pending instance has no history yet: nothing to check.
            let result = if history.is_empty() {
                Ok(())
            } else {
                replay_history(registry, &st.instance_id, &history).map(|_| ())
            };
            checks.push(ReplayCheck {
                instance_id: st.instance_id,
                name: st.name,
                status: st.runtime_status,
                result,
            });
        }
        match page.continuation_token {
            Some(token) => query.continuation = Some(token),
            None => return Ok(checks),
        }
    }
}

/// Why a file does not replay.
#[derive(Debug, thiserror::Error)]
pub enum ReplayFileError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Export {
        path: String,
        source: crate::export::ExportError,
    },
    #[error("{path} ({instance_id}): {source}")]
    Replay {
        path: String,
        instance_id: String,
        source: ReplayError,
    },
}

/// The replay checker: recorded histories (exports written by `perdure
/// history ID --json`, or a store's instances) replayed against the code a
/// registry holds, with no side effects, so that a deploy can be checked
/// before it happens. A mismatch names the instance, the history event,
/// what the history holds and what the code did, with its stable code
/// (`PERDURE-ND-001` to `-005`, explained in the README).
///
/// ```
/// use perdure::replay::Replayer;
/// use perdure::{OrchestrationContext, Registry};
/// # use perdure::export::HistoryExport;
/// let mut v2 = Registry::new();
/// v2.add_orchestrator("Checkout", |ctx: OrchestrationContext| async move {
///     Ok(ctx.call_activity::<String>("Charge", ()).await?)
/// });
/// # let recorded = HistoryExport::from_json(r#"{"format":"perdure.history","formatVersion":1,
/// #   "instanceId":"o1","name":"Checkout","runtimeStatus":"Running",
/// #   "createdTime":"2026-12-01T10:00:00Z","lastUpdatedTime":"2026-12-01T10:00:00Z","events":[
/// #   {"event_id":-1,"timestamp":"2026-12-01T10:00:00Z","type":"OrchestratorStarted"},
/// #   {"event_id":-1,"timestamp":"2026-12-01T10:00:00Z","type":"ExecutionStarted","name":"Checkout","execution_id":"e1"},
/// #   {"event_id":0,"timestamp":"2026-12-01T10:00:00Z","type":"TimerCreated","fire_at":"2026-12-02T10:00:00Z"},
/// #   {"event_id":-1,"timestamp":"2026-12-01T10:00:00Z","type":"OrchestratorCompleted"}]}"#).unwrap();
/// // The recorded instance created a timer where this code calls an activity.
/// let err = Replayer::new(v2).replay(&recorded).unwrap_err();
/// assert!(err.to_string().contains("PERDURE-ND-001"), "{err}");
/// ```
pub struct Replayer {
    registry: Registry,
}

impl Replayer {
    /// A checker of `registry`'s orchestrations.
    pub fn new(registry: Registry) -> Replayer {
        Replayer { registry }
    }

    /// Replays one exported history.
    pub fn replay(&self, export: &crate::export::HistoryExport) -> Result<(), ReplayError> {
        replay_history(&self.registry, &export.instance_id, &export.events).map(|_| ())
    }

    /// Reads and replays an export file.
    pub fn replay_file(&self, path: impl AsRef<std::path::Path>) -> Result<(), ReplayFileError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ReplayFileError::Io {
            path: shown.clone(),
            source,
        })?;
        let export = crate::export::HistoryExport::from_json(&text).map_err(|source| {
            ReplayFileError::Export {
                path: shown.clone(),
                source,
            }
        })?;
        self.replay(&export)
            .map_err(|source| ReplayFileError::Replay {
                path: shown,
                instance_id: export.instance_id.clone(),
                source,
            })
    }

    /// Replays every instance `query` selects in `client`'s store (see
    /// [`check_instances`]).
    pub async fn replay_store(
        &self,
        client: &crate::Client,
        query: &perdure_store::InstanceQuery,
    ) -> Result<Vec<ReplayCheck>, crate::ClientError> {
        check_instances(&self.registry, client, query).await
    }
}

/// What orchestrator code decided in one turn.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The new actions, in the order the code took them.
    pub actions: Vec<Action>,
    /// How the execution ended in this turn, if it did.
    pub outcome: Option<Outcome>,
    pub custom_status: Payload,
    /// New events the code never saw because the execution ended first
    /// (external events among them belong to the next execution after a
    /// continue-as-new).
    pub leftover: Vec<HistoryEvent>,
}

/// Decides one turn of `instance_id` from scratch: replays `past` (the
/// committed history of the execution; empty for its first turn), then
/// applies `new` (the turn's events, `OrchestratorStarted` first) as a live
/// turn, as an SDK worker does with a work item. A replay that finds the
/// code changed ends the execution Failed with a `NonDeterminism` failure
/// and no actions but the unlocks of the critical sections `past` holds.
pub fn decide_turn(
    registry: &Registry,
    instance_id: &str,
    past: &[HistoryEvent],
    new: Vec<HistoryEvent>,
) -> Decision {
    let name = ExecutionInfo::from_history(past)
        .or_else(|| new.iter().find_map(ExecutionInfo::from_start))
        .map(|info| info.name);
    let now = new
        .iter()
        .chain(past)
        .map(|e| e.timestamp)
        .next()
        .unwrap_or_else(chrono::Utc::now);
    let orchestrator = name.and_then(|n| registry.orchestrator(&n));
    let mut run = OrchestrationRun::new(instance_id, orchestrator, now);
    if let Err(nd) = run.replay(past) {
        run.fail_nondeterministic(nd, past);
    }
    let Turn {
        actions, leftover, ..
    } = run.run_turn(new);
    let custom_status = crate::context::lock(&run.ctx.shared)
        .exec
        .custom_status()
        .clone();
    Decision {
        actions,
        outcome: run.outcome,
        custom_status,
        leftover,
    }
}
