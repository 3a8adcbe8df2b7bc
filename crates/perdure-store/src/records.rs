//! The records stores exchange with the engine.

use perdure_core::{
    EventKind, FailureDetails, HistoryEvent, Payload, RuntimeStatus, Tags, Timestamp, TraceContext,
};

/// The row that describes an instance.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceRecord {
    pub instance_id: String,
    pub name: String,
    pub version: Option<String>,
    pub status: RuntimeStatus,
    pub execution_id: String,
    pub input: Payload,
    pub output: Payload,
    pub failure: Option<FailureDetails>,
    pub custom_status: Payload,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub parent_instance_id: Option<String>,
    /// Number of events in the current execution's history.
    pub history_len: u64,
    /// The orchestration's tags (from its ExecutionStarted).
    pub tags: Tags,
}

impl InstanceRecord {
    /// A new instance's record as a create writes it: Pending, no history,
    /// created and updated at `now`.
    pub fn pending(id: &str, new: ImplicitInstance, now: Timestamp) -> Self {
        InstanceRecord {
            instance_id: id.to_string(),
            name: new.name,
            version: new.version,
            status: RuntimeStatus::Pending,
            execution_id: new.execution_id,
            input: new.input,
            output: None,
            failure: None,
            custom_status: None,
            created_at: now,
            updated_at: now,
            parent_instance_id: new.parent_instance_id,
            history_len: 0,
            tags: new.tags,
        }
    }
}

/// What [`crate::OrchestrationQueue::create_with_first_turn`] did.
#[derive(Debug)]
pub enum FirstTurn {
    /// The instance and its first turn are stored.
    Created,
    /// Nothing written (the id is taken, or the store does not create
    /// instances this way): the commit back, for the usual create
    /// ([`CreateInstance::from_first_turn`]).
    Declined(Box<OrchestrationCommit>),
}

/// A request to create (or replace a finished) instance.
#[derive(Clone, Debug)]
pub struct CreateInstance {
    pub instance_id: String,
    pub name: String,
    pub version: Option<String>,
    pub input: Payload,
    pub execution_id: String,
    /// The ExecutionStarted event put in the instance's inbox.
    pub start_event: HistoryEvent,
    /// When the start message becomes visible (scheduled start).
    pub visible_at: Timestamp,
}

impl CreateInstance {
    /// The item a fetch would hand out for this instance had it been
    /// created at store time `now_ms` (ms) with its start message `seq`,
    /// leased under `token`: what a worker runs the first turn on before
    /// anything is stored ([`crate::OrchestrationQueue::create_with_first_turn`]).
    pub fn into_item(self, seq: i64, token: String, now_ms: i64) -> OrchestrationItem {
        let created = chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or(self.visible_at);
        let record = InstanceRecord::pending(&self.instance_id, self.row(), created);
        let start = InboxMessage {
            seq,
            execution_id: Some(self.execution_id),
            event: self.start_event,
        };
        OrchestrationItem::new(record, vec![start], token, now_ms)
    }

    /// The start a declined first turn ran on, back from its commit (whose
    /// history holds the ExecutionStarted event), due at the turn's time;
    /// `None` when the commit holds no start.
    pub fn from_first_turn(commit: OrchestrationCommit) -> Option<CreateInstance> {
        let at = commit.now;
        let start_event = commit
            .history
            .into_iter()
            .find(|e| matches!(e.kind, EventKind::ExecutionStarted { .. }))?;
        let EventKind::ExecutionStarted {
            name,
            version,
            input,
            execution_id,
            ..
        } = &start_event.kind
        else {
            return None;
        };
        Some(CreateInstance {
            instance_id: commit.instance_id,
            name: name.clone(),
            version: version.clone(),
            input: input.clone(),
            execution_id: execution_id.clone(),
            start_event,
            visible_at: at,
        })
    }

    /// The instance row it creates (Pending): its fields, with the parent
    /// and tags its ExecutionStarted event carries.
    pub fn row(&self) -> ImplicitInstance {
        let (parent, tags) = match &self.start_event.kind {
            EventKind::ExecutionStarted { parent, tags, .. } => {
                (parent.as_ref().map(|p| p.instance_id.clone()), tags.clone())
            }
            _ => (None, Tags::new()),
        };
        ImplicitInstance {
            name: self.name.clone(),
            version: self.version.clone(),
            execution_id: self.execution_id.clone(),
            input: self.input.clone(),
            parent_instance_id: parent,
            tags,
        }
    }
}

/// Tags as a store keeps them in a text column: a JSON object, or NULL for
/// none.
pub fn tags_text(tags: &Tags) -> Option<String> {
    if tags.is_empty() {
        return None;
    }
    // A map of strings always serializes.
    serde_json::to_string(tags).ok()
}

/// Reads what [`tags_text`] wrote.
pub fn parse_tags(text: Option<&str>) -> Result<Tags, crate::StoreError> {
    match text {
        None => Ok(Tags::new()),
        Some(t) => serde_json::from_str(t)
            .map_err(|e| crate::StoreError::Corrupt(format!("stored tags are not valid: {e}"))),
    }
}

/// A message for an orchestration instance's inbox.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceMessage {
    pub instance_id: String,
    /// The execution the message is for; `None` for any (external events).
    /// A worker drops messages meant for another execution.
    pub execution_id: Option<String>,
    pub event: HistoryEvent,
    /// Not delivered before this time (durable timers).
    pub visible_at: Timestamp,
}

/// A message taken from an inbox, with its store-assigned sequence number.
#[derive(Clone, Debug, PartialEq)]
pub struct InboxMessage {
    pub seq: i64,
    pub execution_id: Option<String>,
    pub event: HistoryEvent,
}

/// Locked orchestration work: one instance and its visible messages in order.
/// While the instance has no execution (a start not yet run, or after a
/// continue-as-new), the messages of the execution it is about to start
/// (its ExecutionStarted, then the events carried to it) come first.
#[derive(Clone, Debug)]
pub struct OrchestrationItem {
    pub instance: InstanceRecord,
    pub messages: Vec<InboxMessage>,
    pub lock_token: String,
    /// The store's time when the item was taken: the turn's time. One clock
    /// decides both when a timer is visible and what the orchestration sees
    /// as now, so a worker whose clock is behind never sees a timer early.
    pub now: Timestamp,
    /// Activity results the worker that ran them carries into this turn
    /// instead of recording them first (see
    /// [`crate::ActivityQueue::take_for_result`]): applied after
    /// `messages`, their tasks completed by the turn's commit.
    pub carried: Vec<CarriedResult>,
}

/// An activity result held in memory by the worker that ran the activity,
/// for the turn that consumes it: its task stays leased under `task_token`
/// until that turn's commit deletes it (a crash before then lets the task
/// run again when the lease ends, as at-least-once allows).
#[derive(Clone, Debug, PartialEq)]
pub struct CarriedResult {
    pub task_token: String,
    pub execution_id: Option<String>,
    pub event: HistoryEvent,
}

impl OrchestrationItem {
    /// An item taken at store time `now_ms`. The turn's time is never
    /// earlier than the instance's last update: a clock read just before a
    /// concurrent create or commit, or a wall clock stepped back, must not
    /// give a turn a time before the instance was created or last changed.
    pub fn new(
        instance: InstanceRecord,
        messages: Vec<InboxMessage>,
        lock_token: String,
        now_ms: i64,
    ) -> Self {
        let floor = instance.updated_at.max(instance.created_at);
        let now = chrono::DateTime::from_timestamp_millis(now_ms)
            .unwrap_or(floor)
            .max(floor);
        OrchestrationItem {
            instance,
            messages,
            lock_token,
            now,
            carried: Vec::new(),
        }
    }
}

/// The order in which a taken instance's messages are handed out: by
/// sequence, except that while the instance has no running execution
/// (`history_len` 0) the messages tagged with the execution it is about to
/// start come first (continue-as-new queues the new start behind whatever
/// the old execution left unconsumed).
pub fn start_first(instance: &InstanceRecord, execution_id: Option<&str>) -> bool {
    instance.history_len == 0 && execution_id == Some(instance.execution_id.as_str())
}

/// True for a queued message that runs a finished instance again: a
/// rewind asked for by a client or by a parent's rewind (untagged; the
/// marker a rewind queues for its own next turn, tagged with the
/// execution, asks for nothing), or the start of a new execution (a parent
/// creating its child again): anything but the void start of
/// `execution_id`, the instance's own (terminated before it ran). An
/// instance with one waiting is not finished: purging or replacing it
/// would lose the message, and leave a parent waiting for a child that is
/// gone. `tag` is the message's execution id.
pub fn revives(event: &HistoryEvent, tag: Option<&str>, execution_id: &str) -> bool {
    match &event.kind {
        EventKind::ExecutionRewound { .. } => tag.is_none(),
        EventKind::ExecutionStarted {
            execution_id: new, ..
        } => new != execution_id,
        _ => false,
    }
}

/// An activity to run.
#[derive(Clone, Debug, PartialEq)]
pub struct NewActivity {
    pub instance_id: String,
    pub execution_id: String,
    pub task_id: i64,
    pub name: String,
    pub version: Option<String>,
    pub input: Payload,
    /// The orchestration's client span for this task, which the
    /// activity's execution continues.
    pub trace_context: Option<TraceContext>,
}

/// Locked activity work.
#[derive(Clone, Debug)]
pub struct ActivityItem {
    pub activity: NewActivity,
    pub lock_token: String,
    /// How many times this task has been handed out, this time included.
    pub dequeue_count: u32,
}

/// The instance row after a turn.
#[derive(Clone, Debug)]
pub struct InstanceUpdate {
    pub name: String,
    pub version: Option<String>,
    pub status: RuntimeStatus,
    pub execution_id: String,
    pub input: Payload,
    pub output: Payload,
    pub failure: Option<FailureDetails>,
    pub custom_status: Payload,
    pub parent_instance_id: Option<String>,
    pub tags: Tags,
}

/// One orchestration turn, committed atomically by
/// [`crate::OrchestrationQueue::commit_orchestration`].
#[derive(Clone, Debug)]
pub struct OrchestrationCommit {
    pub instance_id: String,
    pub lock_token: String,
    /// Drop the stored history first (a new execution replaces the old one).
    pub replace_history: bool,
    /// The history length the turn was computed from (after a replace: 0).
    pub expected_history_len: u64,
    pub history: Vec<HistoryEvent>,
    pub update: InstanceUpdate,
    /// Inbox messages this turn consumed (by sequence number).
    pub consumed: Vec<i64>,
    pub activities: Vec<NewActivity>,
    /// Messages to this and other instances. A start message
    /// (ExecutionStarted) for an unknown instance creates it as Pending; any
    /// other message for an unknown instance is dropped.
    pub messages: Vec<InstanceMessage>,
    pub now: Timestamp,
    /// Activities the committing worker runs itself, stored already leased
    /// to it so that it need not fetch them.
    pub claims: ActivityClaims,
    /// Lock tokens of tasks whose results this turn carried in
    /// ([`OrchestrationItem::carried`]): deleted with the commit. A task no
    /// longer held under its token is left alone (its result, if it comes
    /// again, is a duplicate the next turn drops).
    pub completed_tasks: Vec<String>,
}

impl OrchestrationCommit {
    /// A first turn's commit as a store applies it to the instance it
    /// creates ([`crate::OrchestrationQueue::create_with_first_turn`]):
    /// under a fresh lock token the store creates the row with, on an empty
    /// history, consuming no stored message.
    pub fn into_first_turn(mut self) -> Self {
        self.lock_token = crate::new_lock_token();
        self.consumed.clear();
        self.expected_history_len = 0;
        self
    }
}

/// The first `tokens.len()` activities of a commit are stored leased for
/// `lease`, activity `i` under `tokens[i]`, as if fetched once (dequeue
/// count 1). When the lease runs out they become visible like any other.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActivityClaims {
    pub tokens: Vec<String>,
    pub lease: std::time::Duration,
}

impl ActivityClaims {
    /// The lock token and expiry (ms) of activity `i`, if it is claimed.
    pub fn lock(&self, i: usize, now_ms: i64) -> (Option<&str>, i64) {
        match self.tokens.get(i) {
            Some(t) => (
                Some(t.as_str()),
                now_ms
                    .saturating_add(i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX / 4)),
            ),
            None => (None, 0),
        }
    }
}

/// A filter over instances for [`crate::InstanceStore::list_instances`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InstanceQuery {
    /// Any of these statuses (all when empty).
    pub statuses: Vec<RuntimeStatus>,
    /// Created at or after.
    pub created_from: Option<Timestamp>,
    /// Created at or before.
    pub created_to: Option<Timestamp>,
    /// Instance ids starting with this.
    pub instance_id_prefix: Option<String>,
    /// Only instances of this orchestrator (exact name).
    pub name: Option<String>,
    /// Only sub-orchestrations of this instance.
    pub parent_instance_id: Option<String>,
    /// Most instances in one page (at least 1).
    pub page_size: usize,
    /// Where the previous page stopped.
    pub continuation: Option<String>,
}

/// One page of instances.
#[derive(Clone, Debug, PartialEq)]
pub struct InstancePage {
    pub instances: Vec<InstanceRecord>,
    /// Present when more instances may follow.
    pub continuation: Option<String>,
}

/// Continuation tokens are `created_at_millis:instance_id`.
pub fn encode_continuation(r: &InstanceRecord) -> String {
    format!("{}:{}", r.created_at.timestamp_millis(), r.instance_id)
}

/// Parses a token from [`encode_continuation`].
pub fn decode_continuation(token: &str) -> Result<(i64, String), crate::StoreError> {
    let bad = || crate::StoreError::BadContinuation(token.to_string());
    let (ms, id) = token.split_once(':').ok_or_else(bad)?;
    Ok((ms.parse().map_err(|_| bad())?, id.to_string()))
}

/// True if `r` passes the query's filters (paging aside).
pub fn query_matches(q: &InstanceQuery, r: &InstanceRecord) -> bool {
    (q.statuses.is_empty() || q.statuses.contains(&r.status))
        && q.created_from.is_none_or(|t| r.created_at >= t)
        && q.created_to.is_none_or(|t| r.created_at <= t)
        && q.instance_id_prefix
            .as_deref()
            .is_none_or(|p| r.instance_id.starts_with(p))
        && q.parent_instance_id
            .as_deref()
            .is_none_or(|p| r.parent_instance_id.as_deref() == Some(p))
        && q.name.as_deref().is_none_or(|n| r.name == n)
}

/// Messages a Suspended instance still takes: resume and terminate. Every
/// other message waits in the inbox until the instance is resumed.
pub fn is_control(event: &perdure_core::HistoryEvent) -> bool {
    matches!(
        event.kind,
        perdure_core::EventKind::ExecutionResumed { .. }
            | perdure_core::EventKind::ExecutionTerminated { .. }
    )
}

/// A name (and, optionally, versions) a fetcher accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameFilter {
    pub name: String,
    /// Accepted versions; empty accepts every version. An item with no
    /// version matches the empty string.
    pub versions: Vec<String>,
}

/// Which work a fetch may take, by orchestration or activity name: workers
/// that serve different names can share one task hub. Names compare
/// ignoring ASCII case, as registries look them up; versions exactly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum WorkFilter {
    /// Any work.
    #[default]
    Any,
    /// Only work whose name (and version) one of these accepts; an empty
    /// list takes nothing.
    Only(Vec<NameFilter>),
    /// Work of any name but these.
    Except(Vec<String>),
}

impl WorkFilter {
    /// Only these names, any version.
    pub fn names<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Self {
        WorkFilter::Only(
            names
                .into_iter()
                .map(|n| NameFilter {
                    name: n.into(),
                    versions: Vec::new(),
                })
                .collect(),
        )
    }

    /// True if work named `name` with `version` passes.
    pub fn matches(&self, name: &str, version: Option<&str>) -> bool {
        match self {
            WorkFilter::Any => true,
            WorkFilter::Except(names) => !names.iter().any(|n| n.eq_ignore_ascii_case(name)),
            WorkFilter::Only(filters) => filters.iter().any(|f| {
                f.name.eq_ignore_ascii_case(name)
                    && (f.versions.is_empty()
                        || f.versions.iter().any(|v| v == version.unwrap_or("")))
            }),
        }
    }

    /// The filter as a mode (0 any, 1 only, 2 except) and a JSON array
    /// (`[{"n": name, "v": [versions]}]`), the form SQL stores match on.
    pub fn to_sql(&self) -> (i32, String) {
        let entries = |items: Vec<serde_json::Value>| serde_json::Value::Array(items).to_string();
        match self {
            WorkFilter::Any => (0, "[]".to_string()),
            WorkFilter::Only(filters) => (
                1,
                entries(
                    filters
                        .iter()
                        .map(|f| serde_json::json!({"n": f.name, "v": f.versions}))
                        .collect(),
                ),
            ),
            WorkFilter::Except(names) => (
                2,
                entries(
                    names
                        .iter()
                        .map(|n| serde_json::json!({"n": n, "v": []}))
                        .collect(),
                ),
            ),
        }
    }
}

/// The instance row a message brings into being when its target does not
/// exist yet.
#[derive(Clone, Debug, PartialEq)]
pub struct ImplicitInstance {
    pub name: String,
    pub version: Option<String>,
    pub execution_id: String,
    pub input: Payload,
    pub parent_instance_id: Option<String>,
    pub tags: Tags,
}

/// A start message (ExecutionStarted) creates its orchestration instance
/// (Pending); any message to an entity id (`@name@key`) creates the entity.
/// `None`: a message to an unknown instance that is dropped.
pub fn implicit_instance(m: &InstanceMessage) -> Option<ImplicitInstance> {
    if let perdure_core::EventKind::ExecutionStarted {
        trace_context: _,
        name,
        version,
        input,
        execution_id,
        parent,
        tags,
    } = &m.event.kind
    {
        return Some(ImplicitInstance {
            name: name.clone(),
            version: version.clone(),
            execution_id: execution_id.clone(),
            input: input.clone(),
            parent_instance_id: parent.as_ref().map(|p| p.instance_id.clone()),
            tags: tags.clone(),
        });
    }
    let entity = perdure_core::EntityId::parse(&m.instance_id).ok()?;
    Some(ImplicitInstance {
        name: entity.instance_name(),
        version: None,
        execution_id: String::new(),
        input: None,
        parent_instance_id: None,
        tags: Tags::new(),
    })
}

/// A task's trace context as stores keep it (a JSON text column).
pub fn encode_trace(trace: &Option<TraceContext>) -> Option<String> {
    trace.as_ref().and_then(|t| serde_json::to_string(t).ok())
}

/// The stored trace column read back; an unreadable value reads as none
/// (trace context never decides what runs).
pub fn decode_trace(text: Option<String>) -> Option<TraceContext> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}
