//! The replay state machine. It knows the actions an orchestrator has
//! scheduled, matches them against the history being replayed (reporting a
//! [`NonDeterminism`] that names the expected and the actual action when they
//! differ), and resolves durable tasks as completion events arrive. It holds
//! no futures: the `perdure` crate drives orchestrator code on top of it.
//!
//! One turn of an orchestration is recorded as
//! `OrchestratorStarted, <new events>, <events of the new actions>, OrchestratorCompleted`.
//! Replaying delivers the same events in the same order with the same polls
//! in between, so the orchestrator schedules the same actions; every action
//! it scheduled by the end of a turn must appear in that turn's history.

use crate::{
    EventKind, FailureDetails, HistoryEvent, ParentInstance, Payload, Tags, Timestamp, TraceContext,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;

/// Identifies a durable task inside one execution: an action (activity,
/// timer, sub-orchestration) by its sequence id, or an external-event wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskKey {
    Action(i64),
    Waiter(u64),
}

mod action;
use action::describe_action_event;
pub use action::{release_held_locks, Action};

/// The outcome of a durable task.
#[derive(Clone, Debug, PartialEq)]
pub enum Completion {
    Ok(Payload),
    Failed(FailureDetails),
}

/// How the code departs from its history. Each kind has a stable code
/// (`PERDURE-ND-001` and on) that the failures of running instances carry
/// and the README's "Non-determinism codes" explains, with the fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonDeterminismKind {
    /// `PERDURE-ND-001`: the code scheduled an action of another kind than
    /// the history recorded at that step (a timer where an activity was).
    OtherKind,
    /// `PERDURE-ND-002`: an action of the same kind with another name or
    /// target (a renamed activity, another sub-orchestration id), or the
    /// same actions in another order.
    OtherName,
    /// `PERDURE-ND-003`: the history recorded an action the code no longer
    /// schedules.
    MissingAction,
    /// `PERDURE-ND-004`: the code scheduled an action the history does not
    /// have in that turn.
    ExtraAction,
    /// `PERDURE-ND-005`: the code finished while the history goes on.
    CompletedEarly,
}

impl NonDeterminismKind {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            NonDeterminismKind::OtherKind => "PERDURE-ND-001",
            NonDeterminismKind::OtherName => "PERDURE-ND-002",
            NonDeterminismKind::MissingAction => "PERDURE-ND-003",
            NonDeterminismKind::ExtraAction => "PERDURE-ND-004",
            NonDeterminismKind::CompletedEarly => "PERDURE-ND-005",
        }
    }
}

/// The orchestrator's code no longer matches its history.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct NonDeterminism {
    /// How the code departs from the history.
    pub kind: NonDeterminismKind,
    /// The stable code of `kind` (`PERDURE-ND-00N`).
    pub code: &'static str,
    /// The history event at which replay stopped (its `event_id`: the
    /// action's sequence id for an action event, -1 for markers).
    pub event_id: i64,
    /// What the history says happened.
    pub expected: String,
    /// What the orchestrator code did on replay.
    pub actual: String,
}

impl fmt::Display for NonDeterminism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NonDeterminism {} ({:?}) at history event {}: the history expects {} but the orchestrator {}",
            self.code, self.kind, self.event_id, self.expected, self.actual
        )
    }
}

impl NonDeterminism {
    fn new(
        kind: NonDeterminismKind,
        event: &HistoryEvent,
        expected: String,
        actual: String,
    ) -> Self {
        NonDeterminism {
            kind,
            code: kind.code(),
            event_id: event.event_id,
            expected,
            actual,
        }
    }

    /// Failure details recorded when an instance fails on non-determinism.
    pub fn to_failure(&self) -> FailureDetails {
        FailureDetails::new("NonDeterminism", self.to_string()).non_retriable()
    }

    /// The orchestrator finished while the history still had events.
    pub fn completed_early(next: &HistoryEvent) -> Self {
        NonDeterminism::new(
            NonDeterminismKind::CompletedEarly,
            next,
            format!("the orchestration to go on with {}", next.type_name()),
            "completed".into(),
        )
    }
}

/// What applying one event did.
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    /// ExecutionStarted: the driver starts the orchestrator.
    Started,
    /// A durable task is now ready: the driver wakes it and polls.
    Resolved(TaskKey),
    /// An external event arrived before anyone waited for it.
    Buffered,
    /// Bookkeeping (turn markers, a matched action).
    Recorded,
    /// A duplicate or stale completion: it must not be appended to history.
    Ignored,
    /// ExecutionTerminated, with its reason.
    Terminated(Payload),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpenKind {
    Task,
    Timer,
    SubOrchestration,
    EntityCall,
    Lock,
}

/// A continue-as-new request made by the orchestrator.
#[derive(Clone, Debug, PartialEq)]
pub struct ContinueAsNew {
    pub input: Payload,
    pub preserve_unprocessed_events: bool,
}

/// The replayed state of one execution of an orchestration.
#[derive(Debug)]
pub struct ExecutionState {
    pub instance_id: String,
    pub execution_id: String,
    pub name: String,
    pub version: Option<String>,
    pub input: Payload,
    pub parent: Option<ParentInstance>,
    /// The span this execution continues (from its ExecutionStarted).
    pub trace_context: Option<TraceContext>,
    /// The orchestration's tags (from its ExecutionStarted).
    pub tags: Tags,
    current_time: Timestamp,
    replaying: bool,
    next_action_id: i64,
    unmatched: VecDeque<Action>,
    open: HashMap<i64, OpenKind>,
    ready: HashMap<TaskKey, Completion>,
    waiters: BTreeMap<u64, String>,
    next_waiter: u64,
    buffered: VecDeque<(String, Payload)>,
    custom_status: Payload,
    continue_as_new: Option<ContinueAsNew>,
    guid_counter: u64,
    /// Entity calls awaiting an answer: request id -> action id.
    entity_requests: HashMap<String, i64>,
    /// The critical section this execution is in (from the lock request
    /// until its release).
    critical_section: Option<CriticalSection>,
    /// Changes whose new branch this execution takes (markers in its
    /// history, and those recorded since).
    patches: std::collections::BTreeSet<String>,
    /// Markers recorded in the current turn, not yet in history.
    new_patches: Vec<String>,
}

/// A critical section: its id, the entities it locks, and its lock action.
#[derive(Clone, Debug, PartialEq)]
pub struct CriticalSection {
    pub id: String,
    pub lock_set: Vec<String>,
    pub action_id: i64,
}

impl ExecutionState {
    pub fn new(instance_id: impl Into<String>, now: Timestamp) -> Self {
        ExecutionState {
            instance_id: instance_id.into(),
            execution_id: String::new(),
            name: String::new(),
            version: None,
            input: None,
            parent: None,
            trace_context: None,
            tags: Tags::new(),
            current_time: now,
            replaying: false,
            next_action_id: 0,
            unmatched: VecDeque::new(),
            open: HashMap::new(),
            ready: HashMap::new(),
            waiters: BTreeMap::new(),
            next_waiter: 0,
            buffered: VecDeque::new(),
            custom_status: None,
            continue_as_new: None,
            guid_counter: 0,
            entity_requests: HashMap::new(),
            critical_section: None,
            patches: Default::default(),
            new_patches: Vec::new(),
        }
    }

    /// The timestamp of the current turn's OrchestratorStarted event.
    pub fn current_time(&self) -> Timestamp {
        self.current_time
    }

    pub fn is_replaying(&self) -> bool {
        self.replaying
    }

    pub fn set_replaying(&mut self, replaying: bool) {
        self.replaying = replaying;
    }

    fn push_action(&mut self, make: impl FnOnce(i64) -> Action, open: Option<OpenKind>) -> i64 {
        let id = self.next_action_id;
        self.next_action_id += 1;
        self.unmatched.push_back(make(id));
        if let Some(kind) = open {
            self.open.insert(id, kind);
        }
        id
    }

    /// Schedules an activity; returns its action id.
    pub fn schedule_task(&mut self, name: &str, version: Option<String>, input: Payload) -> i64 {
        let name = name.to_string();
        self.push_action(
            |id| Action::ScheduleTask {
                trace_context: None,
                tags: Default::default(),
                id,
                name,
                version,
                input,
            },
            Some(OpenKind::Task),
        )
    }

    /// Creates a durable timer; returns its action id.
    pub fn create_timer(&mut self, fire_at: Timestamp) -> i64 {
        let fire_at = crate::time::clamp(fire_at);
        self.push_action(
            |id| Action::CreateTimer { id, fire_at },
            Some(OpenKind::Timer),
        )
    }

    /// Starts a sub-orchestration. Without an explicit id the child's id is
    /// derived from this instance's id and the action id.
    pub fn create_sub_orchestration(
        &mut self,
        name: &str,
        version: Option<String>,
        instance_id: Option<String>,
        input: Payload,
    ) -> (i64, String) {
        let id = self.next_action_id;
        let child = instance_id.unwrap_or_else(|| {
            let derived = format!("{}:{:04x}", self.instance_id, id);
            if derived.chars().count() <= crate::instance_id::MAX_INSTANCE_ID_CHARS {
                derived
            } else {
                self.new_guid().replace('-', "")
            }
        });
        let name = name.to_string();
        let child2 = child.clone();
        let id = self.push_action(
            |id| Action::CreateSubOrchestration {
                trace_context: None,
                tags: Default::default(),
                id,
                name,
                version,
                instance_id: child2,
                input,
            },
            Some(OpenKind::SubOrchestration),
        );
        (id, child)
    }

    /// Sends an event to another instance (fire and forget).
    pub fn send_event(&mut self, instance_id: &str, name: &str, input: Payload) -> i64 {
        let (instance_id, name) = (instance_id.to_string(), name.to_string());
        self.push_action(
            |id| Action::SendEvent {
                id,
                instance_id,
                name,
                input,
            },
            None,
        )
    }

    /// Calls an entity operation (two-way); returns its action id. The
    /// request id is a deterministic GUID, the same on every replay.
    pub fn call_entity(&mut self, target: &str, operation: &str, input: Payload) -> i64 {
        let request_id = self.new_guid();
        let (target, operation) = (target.to_string(), operation.to_string());
        let (parent_instance_id, parent_execution_id) =
            (self.instance_id.clone(), self.execution_id.clone());
        let rid = request_id.clone();
        let id = self.push_action(
            |id| Action::CallEntity {
                id,
                request_id: rid,
                target,
                operation,
                input,
                parent_instance_id,
                parent_execution_id,
            },
            Some(OpenKind::EntityCall),
        );
        self.entity_requests.insert(request_id, id);
        id
    }

    /// Requests locks on `entities` (instance ids) for a critical section;
    /// returns the lock action's id. They are locked in sorted order, each
    /// once. Refused (`None`) while already in a critical section.
    pub fn lock_entities(&mut self, entities: &[String]) -> Option<i64> {
        if self.critical_section.is_some() {
            return None;
        }
        let mut lock_set = entities.to_vec();
        lock_set.sort();
        lock_set.dedup();
        let critical_section_id = self.new_guid();
        let parent_instance_id = self.instance_id.clone();
        let (csid, set) = (critical_section_id.clone(), lock_set.clone());
        let id = self.push_action(
            |id| Action::LockEntities {
                id,
                critical_section_id: csid,
                lock_set: set,
                parent_instance_id,
            },
            Some(OpenKind::Lock),
        );
        self.entity_requests.insert(critical_section_id.clone(), id);
        self.critical_section = Some(CriticalSection {
            id: critical_section_id,
            lock_set,
            action_id: id,
        });
        Some(id)
    }

    /// The critical section this execution is in, if any.
    pub fn critical_section(&self) -> Option<&CriticalSection> {
        self.critical_section.as_ref()
    }

    /// Ends the critical section `id` (if it is the current one): every
    /// entity of its set is sent an unlock.
    pub fn unlock_entities(&mut self, id: &str) {
        let Some(cs) = self.critical_section.take_if(|cs| cs.id == id) else {
            return;
        };
        self.open.remove(&cs.action_id);
        self.entity_requests.remove(&cs.id);
        for target in cs.lock_set {
            let (csid, parent_instance_id) = (cs.id.clone(), self.instance_id.clone());
            self.push_action(
                |id| Action::UnlockEntity {
                    id,
                    critical_section_id: csid,
                    target,
                    parent_instance_id,
                },
                None,
            );
        }
    }

    /// Signals an entity operation (one-way), now or at `scheduled_time`.
    pub fn signal_entity(
        &mut self,
        target: &str,
        operation: &str,
        input: Payload,
        scheduled_time: Option<Timestamp>,
    ) -> i64 {
        let request_id = self.new_guid();
        let (target, operation) = (target.to_string(), operation.to_string());
        self.push_action(
            |id| Action::SignalEntity {
                id,
                request_id,
                target,
                operation,
                input,
                scheduled_time,
            },
            None,
        )
    }

    /// Waits for an external event named `name` (case-insensitive). An event
    /// that arrived earlier is taken from the buffer at once.
    pub fn wait_for_event(&mut self, name: &str) -> TaskKey {
        let key = TaskKey::Waiter(self.next_waiter);
        self.next_waiter += 1;
        if let Some(pos) = self
            .buffered
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            if let Some((_, payload)) = self.buffered.remove(pos) {
                self.ready.insert(key, Completion::Ok(payload));
            }
        } else if let TaskKey::Waiter(n) = key {
            self.waiters.insert(n, name.to_ascii_lowercase());
        }
        key
    }

    /// Takes the result of a ready task, once.
    pub fn take_ready(&mut self, key: TaskKey) -> Option<Completion> {
        self.ready.remove(&key)
    }

    /// Forgets a task nobody awaits any more (a dropped or cancelled future).
    pub fn cancel(&mut self, key: TaskKey) {
        self.ready.remove(&key);
        match key {
            TaskKey::Action(id) => {
                self.open.remove(&id);
            }
            TaskKey::Waiter(n) => {
                self.waiters.remove(&n);
            }
        }
    }

    pub fn set_custom_status(&mut self, status: Payload) {
        self.custom_status = status;
    }

    pub fn custom_status(&self) -> &Payload {
        &self.custom_status
    }

    pub fn request_continue_as_new(&mut self, input: Payload, preserve_unprocessed_events: bool) {
        self.continue_as_new = Some(ContinueAsNew {
            input,
            preserve_unprocessed_events,
        });
    }

    pub fn continue_as_new(&self) -> Option<&ContinueAsNew> {
        self.continue_as_new.as_ref()
    }

    /// External events received but not taken by any wait, in arrival order.
    pub fn unprocessed_events(&self) -> impl Iterator<Item = &(String, Payload)> {
        self.buffered.iter()
    }

    /// A deterministic GUID: the same instance, execution and call order give
    /// the same value on every replay.
    pub fn new_guid(&mut self) -> String {
        self.guid_counter += 1;
        let seed = format!(
            "{}\u{1f}{}\u{1f}{}",
            self.instance_id, self.execution_id, self.guid_counter
        );
        let a = fnv1a64(seed.as_bytes(), 0xcbf2_9ce4_8422_2325);
        let b = fnv1a64(seed.as_bytes(), 0x6c62_272e_07bb_0142);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&a.to_be_bytes());
        bytes[8..].copy_from_slice(&b.to_be_bytes());
        bytes[6] = (bytes[6] & 0x0f) | 0x50; // name-based version
        bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
        let hex = crate::generated_instance_id(bytes);
        format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    }

    /// Learns the patch markers of `history` (the execution's past, read
    /// before it is replayed: a marker is recorded at the end of the turn
    /// in which the code first asked, after the events the code reacted to).
    pub fn know_patches(&mut self, history: &[HistoryEvent]) {
        for e in history {
            if let EventKind::PatchMarker { change_id } = &e.kind {
                self.patches.insert(change_id.clone());
            }
        }
    }

    /// True when the execution takes the new branch of change `change_id`:
    /// its history holds the marker, or the code is running live (not
    /// replaying), in which case the marker is recorded. False only while
    /// replaying a history without the marker: an instance that ran this
    /// point before the change, which must take the old branch again.
    pub fn is_patched(&mut self, change_id: &str) -> bool {
        if self.patches.contains(change_id) {
            return true;
        }
        if self.replaying {
            return false;
        }
        self.patches.insert(change_id.to_string());
        self.new_patches.push(change_id.to_string());
        true
    }

    /// Records the marker of change `change_id` when running live, and
    /// never asks for it: for code whose old branch is gone, so that
    /// histories with or without the marker replay alike, and workers
    /// still on `is_patched` code take the new branch of this one's
    /// instances.
    pub fn deprecate_patch(&mut self, change_id: &str) {
        if !self.replaying && self.patches.insert(change_id.to_string()) {
            self.new_patches.push(change_id.to_string());
        }
    }

    /// The patch markers recorded since the last call, to be appended to
    /// the turn's history.
    pub fn take_new_patches(&mut self) -> Vec<String> {
        std::mem::take(&mut self.new_patches)
    }

    /// Actions scheduled since the last history event that recorded one;
    /// at the end of a live turn these are the turn's new actions.
    pub fn take_new_actions(&mut self) -> Vec<Action> {
        self.unmatched.drain(..).collect()
    }

    /// True if action `id` is the only thing this execution has open (no
    /// other activity, timer, child, entity call or external event awaited):
    /// its result is then the only event that can move it on, and the
    /// worker holding it may run the turn without taking the instance.
    pub fn waits_only_on(&self, id: i64) -> bool {
        self.open.len() == 1 && self.open.contains_key(&id) && self.waiters.is_empty()
    }

    /// True if an action is still awaited or an external event is awaited.
    pub fn has_open_tasks(&self) -> bool {
        !self.open.is_empty() || !self.waiters.is_empty()
    }

    /// Applies one history event (past or new).
    pub fn apply(&mut self, event: &HistoryEvent) -> Result<Applied, NonDeterminism> {
        match &event.kind {
            EventKind::OrchestratorStarted => {
                self.current_time = event.timestamp;
                Ok(Applied::Recorded)
            }
            EventKind::ExecutionStarted {
                name,
                version,
                input,
                execution_id,
                parent,
                trace_context,
                tags,
            } => {
                self.trace_context = trace_context.clone();
                self.tags = tags.clone();
                self.name = name.clone();
                self.version = version.clone();
                self.input = input.clone();
                self.execution_id = execution_id.clone();
                self.parent = parent.clone();
                Ok(Applied::Started)
            }
            EventKind::TaskScheduled { .. }
            | EventKind::TimerCreated { .. }
            | EventKind::SubOrchestrationInstanceCreated { .. }
            | EventKind::EventSent { .. }
            | EventKind::EntityOperationCalled { .. }
            | EventKind::EntityOperationSignaled { .. }
            | EventKind::EntityLockRequested { .. }
            | EventKind::EntityUnlockSent { .. } => match self.unmatched.front() {
                None => Err(NonDeterminism::new(
                    NonDeterminismKind::MissingAction,
                    event,
                    describe_action_event(event),
                    "scheduled nothing".into(),
                )),
                Some(action) if !action.matches(event) => Err(NonDeterminism::new(
                    if action.event_type() == event.type_name() {
                        NonDeterminismKind::OtherName
                    } else {
                        NonDeterminismKind::OtherKind
                    },
                    event,
                    describe_action_event(event),
                    format!("scheduled {}", action.describe()),
                )),
                Some(_) => {
                    self.unmatched.pop_front();
                    Ok(Applied::Recorded)
                }
            },
            EventKind::OrchestratorCompleted => match self.unmatched.front() {
                Some(action) if self.replaying => Err(NonDeterminism::new(
                    NonDeterminismKind::ExtraAction,
                    event,
                    "no further action in this turn".into(),
                    format!("scheduled {}", action.describe()),
                )),
                _ => Ok(Applied::Recorded),
            },
            EventKind::TaskCompleted {
                task_scheduled_id,
                result,
            } => Ok(self.resolve(
                *task_scheduled_id,
                OpenKind::Task,
                Completion::Ok(result.clone()),
            )),
            EventKind::TaskFailed {
                task_scheduled_id,
                failure,
            } => Ok(self.resolve(
                *task_scheduled_id,
                OpenKind::Task,
                Completion::Failed(failure.clone()),
            )),
            EventKind::SubOrchestrationInstanceCompleted {
                task_scheduled_id,
                result,
            } => Ok(self.resolve(
                *task_scheduled_id,
                OpenKind::SubOrchestration,
                Completion::Ok(result.clone()),
            )),
            EventKind::SubOrchestrationInstanceFailed {
                task_scheduled_id,
                failure,
            } => Ok(self.resolve(
                *task_scheduled_id,
                OpenKind::SubOrchestration,
                Completion::Failed(failure.clone()),
            )),
            EventKind::TimerFired { timer_id, .. } => {
                Ok(self.resolve(*timer_id, OpenKind::Timer, Completion::Ok(None)))
            }
            EventKind::EntityOperationCompleted { request_id, output } => {
                Ok(self.answer(request_id, Completion::Ok(output.clone())))
            }
            EventKind::EntityOperationFailed {
                request_id,
                failure,
            } => Ok(self.answer(request_id, Completion::Failed(failure.clone()))),
            EventKind::EntityLockGranted {
                critical_section_id,
            } => Ok(match self.entity_requests.remove(critical_section_id) {
                Some(id) => self.resolve(id, OpenKind::Lock, Completion::Ok(None)),
                None => Applied::Ignored,
            }),
            EventKind::EventRaised { name, input, .. } => {
                let waiter = self
                    .waiters
                    .iter()
                    .find(|(_, n)| n.eq_ignore_ascii_case(name))
                    .map(|(k, _)| *k);
                match waiter {
                    Some(k) => {
                        self.waiters.remove(&k);
                        let key = TaskKey::Waiter(k);
                        self.ready.insert(key, Completion::Ok(input.clone()));
                        Ok(Applied::Resolved(key))
                    }
                    None => {
                        self.buffered.push_back((name.clone(), input.clone()));
                        Ok(Applied::Buffered)
                    }
                }
            }
            EventKind::ExecutionTerminated { reason } => Ok(Applied::Terminated(reason.clone())),
            EventKind::ExecutionCompleted { .. }
            | EventKind::ContinueAsNew { .. }
            | EventKind::ExecutionSuspended { .. }
            | EventKind::ExecutionResumed { .. }
            | EventKind::ExecutionRewound { .. }
            | EventKind::PatchMarker { .. } => Ok(Applied::Recorded),
            EventKind::StepRepaired {
                step_id,
                step,
                repair,
                ..
            } => Ok(self.repair(*step_id, *step, repair)),
            // Installed by the dispatcher, never given to code.
            EventKind::HistoryImported { .. } => Ok(Applied::Ignored),
        }
    }

    /// A repair settles the step it names when that step is open and of
    /// the kind the repair says; otherwise it is not recorded.
    fn repair(&mut self, id: i64, step: crate::RepairedStep, repair: &crate::Repair) -> Applied {
        use crate::{Repair, RepairedStep};
        let kind = match step {
            RepairedStep::Activity => OpenKind::Task,
            RepairedStep::SubOrchestration => OpenKind::SubOrchestration,
            RepairedStep::Timer => OpenKind::Timer,
        };
        let completion = match (kind, repair) {
            (OpenKind::Timer, Repair::SkipTimer) => Completion::Ok(None),
            (OpenKind::Timer, _) | (_, Repair::SkipTimer) => return Applied::Ignored,
            (_, Repair::Complete { result }) => Completion::Ok(result.clone()),
            (_, Repair::Fail { failure }) => Completion::Failed(failure.clone()),
        };
        self.resolve(id, kind, completion)
    }

    fn answer(&mut self, request_id: &str, completion: Completion) -> Applied {
        match self.entity_requests.remove(request_id) {
            Some(id) => self.resolve(id, OpenKind::EntityCall, completion),
            None => Applied::Ignored,
        }
    }

    fn resolve(&mut self, id: i64, kind: OpenKind, completion: Completion) -> Applied {
        match self.open.get(&id) {
            Some(k) if *k == kind => {
                self.open.remove(&id);
                let key = TaskKey::Action(id);
                self.ready.insert(key, completion);
                Applied::Resolved(key)
            }
            _ => Applied::Ignored,
        }
    }
}

fn fnv1a64(bytes: &[u8], offset: u64) -> u64 {
    let mut h = offset;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests;
