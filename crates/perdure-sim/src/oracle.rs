//! The oracles: what must hold in every run. Some are checked at each
//! commit (an accepted terminate or suspend is reflected by the turn that
//! consumes it; a terminated or nondeterministic execution commits nothing
//! of its code; an event consumed by a running execution is recorded or
//! handed on; the code never sees a timer fire before its time, nor time
//! run backwards), the rest once the run is at rest (nothing stuck; no
//! history holds a step twice; completed programs return what they compute;
//! no entity stays locked; every history replays from scratch; money is
//! conserved across the accounts unless a transfer was cut short by a
//! terminate or a nondeterministic failure).

use crate::program::{self, Effects, Program};
use perdure_core::{EventKind, HistoryEvent, RuntimeStatus};
use perdure_store::{InboxMessage, OrchestrationCommit, OrchestrationItem, Store};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

/// What the run has seen so far.
#[derive(Default)]
pub struct Journal {
    pub entities: bool,
    /// Set once faults stop and the run is driven to rest.
    pub resting: bool,
    pub violations: Vec<String>,
    /// Items handed to engines, by lock token: the instance's status when
    /// taken and its messages.
    fetched: HashMap<String, (RuntimeStatus, Vec<InboxMessage>)>,
    terminated: HashSet<String>,
    /// Per instance: the time of its last turn, and whether it is inside a
    /// critical section that has moved money (an `add` call).
    turns: HashMap<String, (perdure_core::Timestamp, Section)>,
    /// A transfer was cut short (terminated or failed nondeterministically
    /// between its two `add`s): the accounts' total may differ.
    pub money_unsure: bool,
    /// Instances a client restarted: a new start of a finished one was
    /// asked for.
    restarted: HashSet<String>,
    /// Lock sets asked for, by critical section.
    lock_sets: HashMap<String, Vec<String>>,
    /// Sections unlocked (so a late grant for one is not a hold).
    unlocked: HashSet<String>,
    /// Who holds each entity, by the orchestrations' histories: (instance,
    /// critical section).
    holders: HashMap<String, (String, String)>,
}

/// Where an orchestration is with respect to its critical section.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
enum Section {
    #[default]
    Outside,
    Held,
    MovedMoney,
}

pub fn lock(j: &Mutex<Journal>) -> MutexGuard<'_, Journal> {
    j.lock().unwrap_or_else(|p| p.into_inner())
}

fn allowed_after_end(e: &HistoryEvent) -> bool {
    matches!(
        e.kind,
        EventKind::EntityUnlockSent { .. }
            | EventKind::SubOrchestrationInstanceFailed { .. }
            | EventKind::SubOrchestrationInstanceCompleted { .. }
    )
}

impl Journal {
    pub fn fetched(&mut self, item: &OrchestrationItem) {
        if trace() {
            let what: Vec<String> = item
                .messages
                .iter()
                .map(|m| format!("{}:{}", m.seq, describe(&m.event)))
                .collect();
            eprintln!(
                "fetch {} ({}) token {}: {}",
                item.instance.instance_id,
                item.instance.status,
                item.lock_token,
                what.join(" ")
            );
        }
        if perdure_core::is_entity_instance(&item.instance.instance_id) {
            return;
        }
        self.fetched.insert(
            item.lock_token.clone(),
            (item.instance.status, item.messages.clone()),
        );
    }

    pub fn terminated(&mut self, id: &str) {
        self.terminated.insert(id.to_string());
    }

    pub fn restarted(&mut self, id: &str) {
        self.restarted.insert(id.to_string());
    }

    pub fn committed(&mut self, c: &OrchestrationCommit, applied: bool) {
        if trace() {
            let sent: Vec<String> = c
                .messages
                .iter()
                .map(|m| format!("{}<-{}", m.instance_id, describe(&m.event)))
                .collect();
            eprintln!(
                "commit {} token {} applied {applied}: {} consumed {:?} sent {}",
                c.instance_id,
                c.lock_token,
                c.update.status,
                c.consumed,
                sent.join(" ")
            );
        }
        if applied {
            // Entities' commits too: they send the grants.
            self.check_locks(c);
        }
        let Some((status, messages)) = self.fetched.get(&c.lock_token).cloned() else {
            return;
        };
        if !applied {
            return;
        }
        let id = &c.instance_id;
        let consumed: HashSet<i64> = c.consumed.iter().copied().collect();
        let mut expect_terminated = false;
        let mut suspended = status == RuntimeStatus::Suspended;
        let mut suspends_seen = false;
        for m in messages.iter().filter(|m| consumed.contains(&m.seq)) {
            match m.event.kind {
                EventKind::ExecutionTerminated { .. } => expect_terminated = true,
                EventKind::ExecutionSuspended { .. } => {
                    suspended = true;
                    suspends_seen = true
                }
                EventKind::ExecutionResumed { .. } => suspended = false,
                _ => {}
            }
        }
        let got = c.update.status;
        self.check_time_and_sections(c);
        // A finished instance starts again only when asked: a restart, or
        // a parent's rewind creating its child again.
        if status.is_terminal() {
            for m in messages.iter().filter(|m| consumed.contains(&m.seq)) {
                if let EventKind::ExecutionStarted {
                    execution_id,
                    parent,
                    ..
                } = &m.event.kind
                {
                    let began = c.history.iter().any(|e| {
                        matches!(&e.kind, EventKind::ExecutionStarted { execution_id: x, .. } if x == execution_id)
                    });
                    if began && parent.is_none() && !self.restarted.contains(id) {
                        self.violations.push(format!(
                            "{id}: finished {status}, it was started again by nobody's request"
                        ));
                    }
                }
            }
        }
        if !status.is_terminal() {
            if expect_terminated && got != RuntimeStatus::Terminated {
                self.violations.push(format!(
                    "{id}: a turn consumed an accepted terminate and left the instance {got}"
                ));
            }
            if !expect_terminated
                && suspends_seen
                && suspended
                && got != RuntimeStatus::Suspended
                && !got.is_terminal()
            {
                self.violations.push(format!(
                    "{id}: a turn consumed a suspend and left the instance {got}"
                ));
            }
        }
        let nondeterministic = c
            .update
            .failure
            .as_ref()
            .is_some_and(|f| f.error_type == "NonDeterminism");
        if got == RuntimeStatus::Terminated || nondeterministic {
            let what = if nondeterministic {
                "a nondeterministic replay"
            } else {
                "a terminated execution"
            };
            if !c.activities.is_empty() {
                self.violations.push(format!(
                    "{id}: {what} scheduled {} activities",
                    c.activities.len()
                ));
            }
            if let Some(m) = c
                .messages
                .iter()
                .find(|m| !allowed_after_end(&m.event) && m.instance_id != *id)
            {
                self.violations.push(format!(
                    "{id}: {what} sent {} to `{}`",
                    m.event.type_name(),
                    m.instance_id
                ));
            }
        }
        // An event consumed by an execution that goes on is in its history.
        if matches!(got, RuntimeStatus::Running | RuntimeStatus::Suspended) && !c.replace_history {
            for m in messages.iter().filter(|m| consumed.contains(&m.seq)) {
                if let EventKind::EventRaised { name, input, .. } = &m.event.kind {
                    let stale = m
                        .execution_id
                        .as_ref()
                        .is_some_and(|e| *e != c.update.execution_id);
                    let recorded = c.history.iter().any(|e| {
                        matches!(&e.kind, EventKind::EventRaised { name: n, input: i, .. } if n == name && i == input)
                    });
                    if !stale && !recorded {
                        self.violations.push(format!(
                            "{id}: event `{name}` was consumed but neither recorded nor handed on"
                        ));
                    }
                }
            }
        }
    }
}

impl Journal {
    /// No two orchestrations hold a lock on one entity at once: from the
    /// grant the last entity of a set sends until the holder sends its
    /// unlocks (the messages are what the entities act on), nobody else is
    /// granted any entity of the set.
    fn check_locks(&mut self, c: &OrchestrationCommit) {
        for m in &c.messages {
            match &m.event.kind {
                EventKind::EntityLockRequested {
                    critical_section_id,
                    lock_set,
                    ..
                } => {
                    self.lock_sets
                        .insert(critical_section_id.clone(), lock_set.clone());
                }
                EventKind::EntityLockGranted {
                    critical_section_id: cs,
                } if !self.unlocked.contains(cs) => {
                    let holder = &m.instance_id;
                    for entity in self.lock_sets.get(cs).cloned().unwrap_or_default() {
                        if let Some((other, _)) = self.holders.get(&entity).filter(|(_, s)| s != cs)
                        {
                            self.violations.push(format!(
                                "{holder}: granted `{entity}` while `{other}` holds it"
                            ));
                        }
                        self.holders.insert(entity, (holder.clone(), cs.clone()));
                    }
                }
                EventKind::EntityUnlockSent {
                    critical_section_id: cs,
                    ..
                } => {
                    self.unlocked.insert(cs.clone());
                    if self
                        .holders
                        .get(&m.instance_id)
                        .is_some_and(|(_, s)| s == cs)
                    {
                        self.holders.remove(&m.instance_id);
                    }
                }
                _ => {}
            }
        }
    }

    /// The turn's time (its OrchestratorStarted) is never before a timer it
    /// fires, nor before the instance's previous turn; and a terminate or a
    /// nondeterministic failure that ends an execution in the middle of a
    /// transfer is noted.
    fn check_time_and_sections(&mut self, c: &OrchestrationCommit) {
        let id = &c.instance_id;
        let entry = self.turns.entry(id.clone()).or_default();
        if c.replace_history {
            entry.1 = Section::Outside;
        }
        // A failed replay commits the unlocks of what it held: a transfer
        // it was in the middle of stays half done.
        let nondeterministic = c
            .update
            .failure
            .as_ref()
            .is_some_and(|f| f.error_type == "NonDeterminism");
        if nondeterministic && entry.1 == Section::MovedMoney {
            self.money_unsure = true;
        }
        let mut turn_time = None;
        for e in &c.history {
            match &e.kind {
                // A replaced history (a rewind's) holds old turns again.
                EventKind::OrchestratorStarted if c.replace_history => {
                    turn_time = Some(e.timestamp)
                }
                EventKind::OrchestratorStarted => {
                    if e.timestamp < entry.0 {
                        self.violations.push(format!(
                            "{id}: a turn's time {} is before the previous turn's {}",
                            e.timestamp, entry.0
                        ));
                    }
                    entry.0 = e.timestamp;
                    turn_time = Some(e.timestamp);
                }
                EventKind::TimerFired { fire_at, timer_id }
                    if turn_time.is_some_and(|t| t < *fire_at) =>
                {
                    self.violations.push(format!(
                        "{id}: timer {timer_id} due at {fire_at} fired in a turn whose time is {}",
                        turn_time.unwrap_or(*fire_at)
                    ));
                }
                EventKind::EntityLockGranted { .. } => entry.1 = Section::Held,
                EventKind::EntityOperationCalled { operation, .. }
                    if operation == "add" && entry.1 == Section::Held =>
                {
                    entry.1 = Section::MovedMoney
                }
                EventKind::ExecutionTerminated { .. } if entry.1 == Section::MovedMoney => {
                    self.money_unsure = true
                }
                EventKind::EntityUnlockSent { .. } => entry.1 = Section::Outside,
                _ => {}
            }
        }
    }
}

/// The oracles checked once the run is at rest.
pub async fn at_rest(
    store: &dyn Store,
    programs: &[(String, Program)],
    journal: &Mutex<Journal>,
    effects: &Arc<Effects>,
) -> Vec<String> {
    let mut out = Vec::new();
    let q = perdure::InstanceQuery {
        page_size: 100_000,
        ..Default::default()
    };
    let all = match store.list_instances(&q).await {
        Ok(page) => page.instances,
        Err(e) => return vec![format!("listing instances: {e}")],
    };
    let terminated = lock(journal).terminated.clone();
    for r in &all {
        let id = &r.instance_id;
        if perdure_core::is_entity_instance(id) {
            if let Some((cs, owner)) = perdure::dispatch::entity_lock_holder(&r.custom_status) {
                let holder = store.get_instance(&owner).await.ok().flatten();
                let history = store.read_history(&owner).await.unwrap_or_default();
                out.push(format!(
                    "{id}: still locked by `{owner}` ({}; critical section {cs}) at rest; its history: {}",
                    holder.map_or("gone".to_string(), |h| h.status.to_string()),
                    summary(&history)
                ));
            }
            continue;
        }
        let history = store.read_history(id).await.unwrap_or_default();
        if !r.status.is_terminal() {
            out.push(format!(
                "{id}: stuck {} at rest; history: {}",
                r.status,
                summary(&history)
            ));
        }
        out.extend(duplicate_steps(id, &history));
        out.extend(unrun_results(id, &history, effects));
        let nondeterministic = r
            .failure
            .as_ref()
            .is_some_and(|f| f.error_type == "NonDeterminism");
        // An execution terminated before it started has no history.
        if !nondeterministic && !history.is_empty() {
            out.extend(replays(id, &history, effects));
        }
    }
    if !lock(journal).money_unsure {
        out.extend(money(&all));
    }
    for (id, p) in programs {
        let Some(r) = all.iter().find(|r| r.instance_id == *id) else {
            continue;
        };
        if r.status == RuntimeStatus::Completed {
            let want = program::expected(&p.ops).to_string();
            if r.output.as_deref() != Some(want.as_str()) && !terminated.contains(id) {
                out.push(format!(
                    "{id}: completed with {:?}, its program computes {want}",
                    r.output
                ));
            }
        }
    }
    out
}

/// The history replays from scratch, with no store, under the code it
/// ran with (before or after the run's code change), and ends as recorded.
fn replays(id: &str, history: &[HistoryEvent], effects: &Arc<Effects>) -> Option<String> {
    let registry = program::registry(effects.clone());
    let was = effects.changed.load(Ordering::SeqCst);
    let mut why = None;
    for changed in [was, !was] {
        effects.changed.store(changed, Ordering::SeqCst);
        match perdure::replay::replay_history(&registry, id, history) {
            Ok(_) => {
                why = None;
                break;
            }
            Err(e) => {
                let code = if changed { "changed" } else { "original" };
                let prev = why.map(|w| format!("{w}; ")).unwrap_or_default();
                why = Some(format!("{prev}with the {code} code: {e}"));
            }
        }
    }
    effects.changed.store(was, Ordering::SeqCst);
    why.map(|why| {
        format!(
            "{id}: its history does not replay from scratch: {why}; history: {}",
            summary(history)
        )
    })
}

/// Every activity result in a history comes from a run of that activity.
fn unrun_results(id: &str, history: &[HistoryEvent], effects: &Effects) -> Option<String> {
    let runs = effects.runs.lock().unwrap_or_else(|p| p.into_inner());
    history.iter().find_map(|e| match e.kind {
        EventKind::TaskCompleted {
            task_scheduled_id, ..
        } if !runs.contains_key(&(id.to_string(), task_scheduled_id)) => Some(format!(
            "{id}: task {task_scheduled_id} has a result but never ran"
        )),
        _ => None,
    })
}

/// The accounts hold, together, what they opened with.
fn money(all: &[perdure_store::InstanceRecord]) -> Option<String> {
    let mut total = 0;
    for key in ["a", "b", "c"] {
        let id = format!("@acct@{key}");
        let balance = all
            .iter()
            .find(|r| r.instance_id == id)
            .and_then(|r| r.output.as_deref())
            .and_then(|o| serde_json::from_str::<i64>(o).ok())
            .unwrap_or(program::OPENING_BALANCE);
        total += balance;
    }
    let want = 3 * program::OPENING_BALANCE;
    (total != want).then(|| format!("the accounts hold {total} together, they opened with {want}"))
}

/// A step scheduled twice, or answered twice, in one history.
fn duplicate_steps(id: &str, history: &[HistoryEvent]) -> Vec<String> {
    let mut scheduled = HashSet::new();
    let mut answered = HashSet::new();
    let mut out = Vec::new();
    for e in history {
        match e.kind {
            EventKind::TaskScheduled { .. }
            | EventKind::TimerCreated { .. }
            | EventKind::SubOrchestrationInstanceCreated { .. } => {
                if !scheduled.insert(e.event_id) {
                    out.push(format!("{id}: step {} scheduled twice", e.event_id));
                }
            }
            _ => {
                if let Some(done) = e.completion_id() {
                    if !answered.insert(done) {
                        out.push(format!("{id}: step {done} answered twice"));
                    }
                }
            }
        }
    }
    out
}

/// Set `PERDURE_SIM_TRACE=1` to print every fetch and commit.
/// Whether `PERDURE_SIM_TRACE` asks for every fetch and commit.
pub fn trace() -> bool {
    std::env::var_os("PERDURE_SIM_TRACE").is_some()
}

/// An event in a word, with the critical section it belongs to, if any.
fn describe(e: &HistoryEvent) -> String {
    let cs = match &e.kind {
        EventKind::EntityLockRequested {
            critical_section_id,
            position,
            ..
        } => format!(
            "[{}@{position}]",
            &critical_section_id[..8.min(critical_section_id.len())]
        ),
        EventKind::EntityUnlockSent {
            critical_section_id,
            ..
        }
        | EventKind::EntityLockGranted {
            critical_section_id,
        } => format!(
            "[{}]",
            &critical_section_id[..8.min(critical_section_id.len())]
        ),
        EventKind::EntityOperationCalled {
            operation,
            input,
            request_id,
            ..
        } => format!(
            "[{operation}({}) {}]",
            input.as_deref().unwrap_or(""),
            &request_id[..8.min(request_id.len())]
        ),
        EventKind::EntityOperationCompleted { request_id, .. } => {
            format!("[{}]", &request_id[..8.min(request_id.len())])
        }
        EventKind::ExecutionStarted {
            execution_id,
            parent,
            ..
        } => format!(
            "[{}{}]",
            &execution_id[..8.min(execution_id.len())],
            parent.as_ref().map_or(String::new(), |p| format!(
                " of {}/{}",
                p.instance_id,
                &p.execution_id[..8.min(p.execution_id.len())]
            ))
        ),
        _ => String::new(),
    };
    format!("{}{cs}", e.type_name())
}

/// A history in a line: each event's type and id.
pub fn summary(history: &[HistoryEvent]) -> String {
    history
        .iter()
        .map(|e| match e.completion_id() {
            Some(id) => format!("{}({id})", e.type_name()),
            None if e.event_id >= 0 => format!("{}#{}", e.type_name(), e.event_id),
            None => e.type_name().to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}
