//! Distributed traces, named as the Durable Task SDKs name them:
//! `create_orchestration:{name}` (the client's start), `orchestration:{name}`
//! (an execution, from its start to its end), `activity:{name}` (a client
//! span in the orchestration, from scheduling to result, and a server span
//! around the function), `orchestration:{name}` as a client span for a
//! sub-orchestration, `orchestration:{name}:timer` and
//! `orchestration_event:{name}`, with the SDKs' `durabletask.*` attributes.
//!
//! A trace begins at the start call and is carried in history: the
//! ExecutionStarted event holds the span the execution continues, and each
//! TaskScheduled and SubOrchestrationInstanceCreated holds its client span,
//! whose id derives from instance, execution and task id
//! ([`perdure_core::trace`]). An orchestration's spans are emitted by the
//! turn that sees each step end, after that turn is committed, from the
//! turn's new events only: a replay (a cache miss, another process) rebuilds
//! what is open without emitting anything again.
//!
//! This module owns the span records and the process's exporter slot; the
//! OTLP exporter itself lives in `perdure-server` (or any
//! [`SpanExporter`] an embedding application installs).

use crate::dispatch::{ExecutionInfo, Outcome};
use chrono::{DateTime, Utc};
use perdure_core::trace::{execution_trace_id, orchestration_span_id, task_span_id};
use perdure_core::{Action, EventKind, HistoryEvent, Timestamp, TraceContext};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

/// What a span stands for, as OpenTelemetry's span kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    Internal,
    Server,
    Client,
    Producer,
}

/// An attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Str(String),
    Int(i64),
}

/// A finished span, ready to export.
#[derive(Clone, Debug)]
pub struct SpanRecord {
    pub name: String,
    pub kind: SpanKind,
    pub trace_id: u128,
    pub span_id: u64,
    /// `None` for a trace's root span.
    pub parent_span_id: Option<u64>,
    pub tracestate: Option<String>,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<(&'static str, AttrValue)>,
    /// The span's error description; `None` when it ended well.
    pub error: Option<String>,
}

/// Where finished spans go.
pub trait SpanExporter: Send + Sync + 'static {
    fn export(&self, span: SpanRecord);
}

static EXPORTER: RwLock<Option<Arc<dyn SpanExporter>>> = RwLock::new(None);

/// Sends this process's spans to `exporter` (replacing any before it).
pub fn set_exporter(exporter: Arc<dyn SpanExporter>) {
    if let Ok(mut slot) = EXPORTER.write() {
        *slot = Some(exporter);
    }
}

/// Stops exporting spans.
pub fn clear_exporter() {
    if let Ok(mut slot) = EXPORTER.write() {
        *slot = None;
    }
}

/// Whether an exporter is installed (spans are built only then).
pub fn enabled() -> bool {
    EXPORTER.read().map(|s| s.is_some()).unwrap_or(false)
}

fn export(span: SpanRecord) {
    let exporter = EXPORTER.read().ok().and_then(|s| s.clone());
    if let Some(e) = exporter {
        e.export(span);
    }
}

/// The `durabletask.*` attribute names the SDKs use.
pub mod attr {
    pub const TYPE: &str = "durabletask.type";
    pub const NAME: &str = "durabletask.task.name";
    pub const VERSION: &str = "durabletask.task.version";
    pub const INSTANCE_ID: &str = "durabletask.task.instance_id";
    pub const EXECUTION_ID: &str = "durabletask.task.execution_id";
    pub const TASK_ID: &str = "durabletask.task.task_id";
    pub const STATUS: &str = "durabletask.task.status";
    pub const EVENT_TARGET: &str = "durabletask.event.target_instance_id";
    pub const FIRE_AT: &str = "durabletask.fire_at";
}

fn s(v: impl Into<String>) -> AttrValue {
    AttrValue::Str(v.into())
}

fn random_u64() -> u64 {
    let b = *uuid::Uuid::new_v4().as_bytes();
    let v = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    v.max(1)
}

fn system_time(t: Timestamp) -> SystemTime {
    t.into()
}

fn sampled(flags: u8) -> bool {
    flags & 1 == 1
}

/// A span begun now and ended later (a client's start or raise).
pub(crate) struct OpenSpan {
    record: SpanRecord,
    flags: u8,
}

impl OpenSpan {
    /// Begins a span under `parent` (a new trace without one); `None` when
    /// no exporter is installed.
    fn begin(name: String, kind: SpanKind, parent: Option<&TraceContext>) -> Option<Self> {
        if !enabled() {
            return None;
        }
        let parent = parent.and_then(|p| p.parse().map(|pp| (pp, p.tracestate.clone())));
        let (trace_id, parent_span_id, flags, tracestate) = match parent {
            Some((p, state)) => (p.trace_id, Some(p.span_id), p.flags, state),
            None => {
                let hi = u128::from(random_u64());
                (hi << 64 | u128::from(random_u64()), None, 1, None)
            }
        };
        let now = SystemTime::now();
        Some(OpenSpan {
            record: SpanRecord {
                name,
                kind,
                trace_id,
                span_id: random_u64(),
                parent_span_id,
                tracestate,
                start: now,
                end: now,
                attributes: Vec::new(),
                error: None,
            },
            flags,
        })
    }

    /// The context a continuation of this span carries.
    pub(crate) fn context(&self) -> TraceContext {
        TraceContext::new(
            self.record.trace_id,
            self.record.span_id,
            self.flags,
            self.record.tracestate.clone(),
        )
    }

    fn attr(mut self, key: &'static str, value: AttrValue) -> Self {
        self.record.attributes.push((key, value));
        self
    }

    /// Ends the span now and exports it (when its trace is sampled).
    pub(crate) fn end(mut self, error: Option<String>) {
        self.record.end = SystemTime::now();
        self.record.error = error;
        if sampled(self.flags) {
            export(self.record);
        }
    }
}

/// The producer span of a client's start call.
pub(crate) fn begin_create(
    name: &str,
    version: Option<&str>,
    instance_id: &str,
    execution_id: &str,
    parent: Option<&TraceContext>,
) -> Option<OpenSpan> {
    let mut span = OpenSpan::begin(
        format!("create_orchestration:{name}"),
        SpanKind::Producer,
        parent,
    )?
    .attr(attr::TYPE, s("orchestration"))
    .attr(attr::NAME, s(name))
    .attr(attr::INSTANCE_ID, s(instance_id))
    .attr(attr::EXECUTION_ID, s(execution_id));
    if let Some(v) = version {
        span = span.attr(attr::VERSION, s(v));
    }
    Some(span)
}

/// The producer span of a client's raise of an event.
pub(crate) fn begin_raise(
    name: &str,
    target: &str,
    parent: Option<&TraceContext>,
) -> Option<OpenSpan> {
    Some(
        OpenSpan::begin(
            format!("orchestration_event:{name}"),
            SpanKind::Producer,
            parent,
        )?
        .attr(attr::TYPE, s("event"))
        .attr(attr::NAME, s(name))
        .attr(attr::EVENT_TARGET, s(target)),
    )
}

/// The context of an execution's own span: under the span it continues,
/// or (started without trace context, with spans on) the root of a trace
/// of its own. `None` when it has no trace.
pub fn orchestration_context(
    instance_id: &str,
    execution_id: &str,
    started: Option<&TraceContext>,
) -> Option<TraceContext> {
    let span_id = orchestration_span_id(instance_id, execution_id);
    match started {
        Some(tc) => tc.child(span_id),
        None if enabled() => Some(TraceContext::new(
            execution_trace_id(instance_id, execution_id),
            span_id,
            1,
            None,
        )),
        None => None,
    }
}

/// Gives the turn's new activities and sub-orchestrations their client
/// spans' contexts (an SDK worker may have chosen its own; those stay).
pub fn assign_task_contexts(instance_id: &str, exec: &ExecutionInfo, actions: &mut [Action]) {
    let Some(orch) =
        orchestration_context(instance_id, &exec.execution_id, exec.trace_context.as_ref())
    else {
        return;
    };
    for a in actions {
        if let Action::ScheduleTask {
            id, trace_context, ..
        }
        | Action::CreateSubOrchestration {
            id, trace_context, ..
        } = a
        {
            if trace_context.is_none() {
                *trace_context = orch.child(task_span_id(instance_id, &exec.execution_id, *id));
            }
        }
    }
}

/// The server span around an activity function run in this process.
pub(crate) fn activity_span(
    activity: &perdure_store::NewActivity,
    start: SystemTime,
    outcome: Result<(), String>,
) {
    if !enabled() {
        return;
    }
    let Some(parent) = activity.trace_context.as_ref().and_then(|t| t.parse()) else {
        return;
    };
    if !sampled(parent.flags) {
        return;
    }
    let mut attributes = vec![
        (attr::TYPE, s("activity")),
        (attr::NAME, s(activity.name.clone())),
        (attr::INSTANCE_ID, s(activity.instance_id.clone())),
        (attr::TASK_ID, AttrValue::Int(activity.task_id)),
        (
            attr::STATUS,
            s(if outcome.is_ok() {
                "Completed"
            } else {
                "Failed"
            }),
        ),
    ];
    if let Some(v) = &activity.version {
        attributes.push((attr::VERSION, s(v.clone())));
    }
    export(SpanRecord {
        name: format!("activity:{}", activity.name),
        kind: SpanKind::Server,
        trace_id: parent.trace_id,
        span_id: random_u64(),
        parent_span_id: Some(parent.span_id),
        tracestate: activity
            .trace_context
            .as_ref()
            .and_then(|t| t.tracestate.clone()),
        start,
        end: SystemTime::now(),
        attributes,
        error: outcome.err(),
    });
}

#[derive(Clone, Debug)]
enum Step {
    /// An activity (`"activity"`) or a sub-orchestration
    /// (`"orchestration"`), by name.
    Task(&'static str, String),
    Timer,
}

/// What an execution has open, for the spans its later turns emit: when it
/// started, and each scheduled activity, sub-orchestration and timer with
/// the time it was scheduled. Kept with the cached run and rebuilt from
/// history on a replay.
#[derive(Clone, Debug, Default)]
pub(crate) struct OpenSteps {
    started: Option<Timestamp>,
    steps: HashMap<i64, (Step, Timestamp)>,
}

impl OpenSteps {
    /// Takes in a stored or new event; returns the step an end event closes.
    fn observe(&mut self, e: &HistoryEvent) -> Option<(i64, Step, Timestamp)> {
        match &e.kind {
            EventKind::ExecutionStarted { .. } => {
                *self = OpenSteps {
                    started: Some(e.timestamp),
                    steps: HashMap::new(),
                };
                None
            }
            EventKind::TaskScheduled { name, .. } => {
                let step = Step::Task("activity", name.clone());
                self.steps.insert(e.event_id, (step, e.timestamp));
                None
            }
            EventKind::SubOrchestrationInstanceCreated { name, .. } => {
                let step = Step::Task("orchestration", name.clone());
                self.steps.insert(e.event_id, (step, e.timestamp));
                None
            }
            EventKind::TimerCreated { .. } => {
                self.steps.insert(e.event_id, (Step::Timer, e.timestamp));
                None
            }
            _ => {
                let id = e.completion_id()?;
                let (step, at) = self.steps.remove(&id)?;
                Some((id, step, at))
            }
        }
    }

    /// Rebuilds the open steps from stored history (a replay): emits nothing.
    pub(crate) fn replay(&mut self, history: &[HistoryEvent]) {
        for e in history {
            self.observe(e);
        }
    }

    /// The spans a turn ends: steps its new events complete, events it
    /// sends, and the execution itself when it ends. Call before the
    /// commit; export with [`export_turn`] once it is durable.
    pub(crate) fn turn(&mut self, t: TurnSpans<'_>) -> Vec<SpanRecord> {
        let mut out = Vec::new();
        let Some(orch) = orchestration_context(
            t.instance_id,
            &t.exec.execution_id,
            t.exec.trace_context.as_ref(),
        ) else {
            return out;
        };
        let Some(p) = orch.parse() else {
            return out;
        };
        if !sampled(p.flags) {
            // Keep the open steps true; emit nothing for an unsampled trace.
            for e in t.accepted {
                self.observe(e);
            }
            return out;
        }
        let name = &t.exec.name;
        let span = |name: String, kind, span_id, start: Timestamp, end: Timestamp| SpanRecord {
            name,
            kind,
            trace_id: p.trace_id,
            span_id,
            parent_span_id: Some(p.span_id),
            tracestate: orch.tracestate.clone(),
            start: system_time(start),
            end: system_time(end),
            attributes: vec![(attr::INSTANCE_ID, s(t.instance_id))],
            error: None,
        };
        for e in t.accepted {
            let Some((id, step, at)) = self.observe(e) else {
                continue;
            };
            let failure = match &e.kind {
                EventKind::TaskFailed { failure, .. }
                | EventKind::SubOrchestrationInstanceFailed { failure, .. } => {
                    Some(failure.to_string())
                }
                _ => None,
            };
            let task_span = task_span_id(t.instance_id, &t.exec.execution_id, id);
            let mut rec = match step {
                Step::Task(kind, n) => {
                    let mut r = span(
                        format!("{kind}:{n}"),
                        SpanKind::Client,
                        task_span,
                        at,
                        e.timestamp,
                    );
                    r.attributes.push((attr::TYPE, s(kind)));
                    r.attributes.push((attr::NAME, s(n)));
                    r
                }
                Step::Timer => {
                    let fire_at = match &e.kind {
                        EventKind::TimerFired { fire_at, .. } => *fire_at,
                        _ => e.timestamp,
                    };
                    let mut r = span(
                        format!("orchestration:{name}:timer"),
                        SpanKind::Internal,
                        random_u64(),
                        at,
                        t.now,
                    );
                    r.attributes.push((attr::TYPE, s("timer")));
                    r.attributes.push((attr::NAME, s(name.clone())));
                    r.attributes.push((attr::FIRE_AT, s(fire_at.to_rfc3339())));
                    r
                }
            };
            rec.attributes.push((attr::TASK_ID, AttrValue::Int(id)));
            rec.attributes.push((
                attr::STATUS,
                s(if failure.is_some() {
                    "Failed"
                } else {
                    "Completed"
                }),
            ));
            rec.error = failure;
            out.push(rec);
        }
        for a in t.actions {
            let at = t.now;
            match a {
                Action::ScheduleTask { id, name, .. } => {
                    self.steps
                        .insert(*id, (Step::Task("activity", name.clone()), at));
                }
                Action::CreateSubOrchestration { id, name, .. } => {
                    self.steps
                        .insert(*id, (Step::Task("orchestration", name.clone()), at));
                }
                Action::CreateTimer { id, .. } => {
                    self.steps.insert(*id, (Step::Timer, at));
                }
                Action::SendEvent {
                    instance_id,
                    name: event,
                    ..
                } => {
                    let mut r = span(
                        format!("orchestration_event:{event}"),
                        SpanKind::Producer,
                        random_u64(),
                        at,
                        at,
                    );
                    r.attributes.push((attr::TYPE, s("event")));
                    r.attributes.push((attr::NAME, s(event.clone())));
                    r.attributes
                        .push((attr::EVENT_TARGET, s(instance_id.clone())));
                    out.push(r);
                }
                _ => {}
            }
        }
        if let Some(outcome) = t.outcome {
            let (status, error) = match outcome {
                Outcome::Completed(_) => ("Completed", None),
                Outcome::Failed(f) => ("Failed", Some(f.to_string())),
                Outcome::Terminated(_) => ("Terminated", None),
                Outcome::ContinuedAsNew { .. } => ("ContinuedAsNew", None),
            };
            let start = self.started.unwrap_or(t.now);
            let parent = t.exec.trace_context.as_ref().and_then(|c| c.parse());
            let mut attributes = vec![
                (attr::TYPE, s("orchestration")),
                (attr::NAME, s(name.clone())),
                (attr::INSTANCE_ID, s(t.instance_id)),
                (attr::EXECUTION_ID, s(t.exec.execution_id.clone())),
                (attr::STATUS, s(status)),
            ];
            if let Some(v) = &t.exec.version {
                attributes.push((attr::VERSION, s(v.clone())));
            }
            out.push(SpanRecord {
                name: format!("orchestration:{name}"),
                kind: SpanKind::Server,
                trace_id: p.trace_id,
                span_id: p.span_id,
                parent_span_id: parent.map(|pp| pp.span_id),
                tracestate: orch.tracestate.clone(),
                start: system_time(start),
                end: system_time(t.now),
                attributes,
                error,
            });
        }
        out
    }
}

/// One turn as [`OpenSteps::turn`] reads it.
pub(crate) struct TurnSpans<'a> {
    pub instance_id: &'a str,
    pub exec: &'a ExecutionInfo,
    pub now: DateTime<Utc>,
    /// The turn's new events, in the order they were applied.
    pub accepted: &'a [HistoryEvent],
    pub actions: &'a [Action],
    pub outcome: Option<&'a Outcome>,
}

/// Exports a committed turn's spans.
pub(crate) fn export_turn(spans: Vec<SpanRecord>) {
    for s in spans {
        export(s);
    }
}
