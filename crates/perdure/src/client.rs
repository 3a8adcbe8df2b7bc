//! The client: start instances, read their status and history, wait for
//! them, raise events and terminate them. Works against any store, in the
//! worker's process or another one.

use crate::error::ClientError;
use crate::payload::IntoPayload;
pub use crate::payload::MAX_PAYLOAD_BYTES;

mod entities;
mod history;
mod repair;
use chrono::{DateTime, Utc};
pub use entities::{CleanEntityStorageResult, EntityMetadata, EntityPage, EntityQuery};
use perdure_core::{
    generated_instance_id, validate_instance_id, validate_name, EventKind, FailureDetails,
    HistoryEvent, NameKind, Payload, RuntimeStatus, Tags, TraceContext,
};
use perdure_store::{CreateInstance, InstanceMessage, InstanceQuery, InstanceRecord, Store};
pub use repair::{PendingStep, RepairRequest};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An instance's status, as `get_status` reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct OrchestrationStatus {
    pub name: String,
    /// The orchestration's version, when it was started with one.
    pub version: Option<String>,
    pub instance_id: String,
    pub runtime_status: RuntimeStatus,
    /// The input, as JSON text.
    pub input: Payload,
    /// The output (or a termination reason), as JSON text.
    pub output: Payload,
    /// Why the instance failed, when it did.
    pub failure: Option<FailureDetails>,
    pub custom_status: Payload,
    pub created_time: DateTime<Utc>,
    pub last_updated_time: DateTime<Utc>,
    /// The history, when asked for.
    pub history: Option<Vec<HistoryEvent>>,
    /// The tags it was started with.
    pub tags: Tags,
}

/// How [`Client::start_new_with`] starts an instance.
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    /// The instance id; a 32-hex-character id is generated without one.
    pub instance_id: Option<String>,
    /// Not started before this time.
    pub start_at: Option<DateTime<Utc>>,
    /// The orchestration's version.
    pub version: Option<String>,
    /// The trace context the new execution continues, taken as it is: the
    /// caller has recorded its own start span (an SDK client does). Without
    /// it, the client records a `create_orchestration:{name}` span when
    /// spans are exported, under [`Client::with_trace_parent`] if given.
    pub trace_context: Option<TraceContext>,
    /// Tags for the orchestration: kept with the instance, returned by
    /// `get_status` and carried to each new execution (continue-as-new).
    pub tags: Tags,
}

fn parse<T: DeserializeOwned>(p: &Payload) -> Result<T, ClientError> {
    serde_json::from_str(p.as_deref().unwrap_or("null"))
        .map_err(|e| ClientError::Serialization(e.to_string()))
}

impl OrchestrationStatus {
    fn from_record(r: InstanceRecord, history: Option<Vec<HistoryEvent>>) -> Self {
        OrchestrationStatus {
            name: r.name,
            version: r.version,
            instance_id: r.instance_id,
            runtime_status: r.status,
            input: r.input,
            output: r.output,
            failure: r.failure,
            custom_status: r.custom_status,
            created_time: r.created_at,
            last_updated_time: r.updated_at,
            history,
            tags: r.tags,
        }
    }

    /// The output deserialized as `T`.
    pub fn output_as<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        parse(&self.output)
    }

    /// The input deserialized as `T`.
    pub fn input_as<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        parse(&self.input)
    }

    /// The custom status deserialized as `T`.
    pub fn custom_status_as<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        parse(&self.custom_status)
    }
}

/// A page of `list_instances`.
#[derive(Clone, Debug, PartialEq)]
pub struct InstancePage {
    pub instances: Vec<OrchestrationStatus>,
    /// Pass back in [`InstanceQuery::continuation`] for the next page.
    pub continuation_token: Option<String>,
}

/// Which finished instances `purge_instances` deletes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PurgeFilter {
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    /// Any of these (finished) statuses; all finished statuses when empty.
    pub statuses: Vec<RuntimeStatus>,
}

/// Starts and manages orchestration instances.
#[derive(Clone)]
pub struct Client {
    store: Arc<dyn Store>,
    /// The span this client's starts and raises continue (a W3C
    /// `traceparent` the caller received), when tracing.
    trace_parent: Option<TraceContext>,
    /// Whether raises record their `orchestration_event` producer span
    /// (not when an SDK client, which records its own, made the call).
    raise_spans: bool,
}

impl Client {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Client {
            store,
            trace_parent: None,
            raise_spans: true,
        }
    }

    /// This client, its starts and raises continuing `parent` (the W3C
    /// trace context of the request being served, say): their
    /// `create_orchestration` and `orchestration_event` spans are its
    /// children, and so is everything the started instance does.
    pub fn with_trace_parent(&self, parent: TraceContext) -> Client {
        Client {
            store: self.store.clone(),
            trace_parent: Some(parent),
            raise_spans: self.raise_spans,
        }
    }

    /// This client for calls an SDK client made: its raises record no
    /// `orchestration_event` span, since the SDK records its own.
    pub fn for_sdk_clients(&self) -> Client {
        Client {
            raise_spans: false,
            ..self.clone()
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The trace context this client's requests continue, if any.
    pub fn trace_parent(&self) -> Option<&TraceContext> {
        self.trace_parent.as_ref()
    }

    /// Starts a new instance of orchestrator `name` with `input`. Without an
    /// `instance_id` a 32-hex-character id is generated. Starting an id whose
    /// instance is still Pending, Running or Suspended is refused; a finished
    /// one is replaced. Returns the instance id.
    pub async fn start_new(
        &self,
        name: &str,
        instance_id: Option<&str>,
        input: impl IntoPayload,
    ) -> Result<String, ClientError> {
        self.start_new_at(name, instance_id, input, None).await
    }

    /// Like [`Client::start_new`], not starting before `start_at` when given.
    pub async fn start_new_at(
        &self,
        name: &str,
        instance_id: Option<&str>,
        input: impl IntoPayload,
        start_at: Option<DateTime<Utc>>,
    ) -> Result<String, ClientError> {
        let options = StartOptions {
            instance_id: instance_id.map(str::to_string),
            start_at,
            ..Default::default()
        };
        self.start_new_with(name, input, options).await
    }

    /// Starts a new instance with every option: instance id, scheduled
    /// start, and the orchestration version (recorded in its ExecutionStarted
    /// event, where workers and work-item filters read it).
    pub async fn start_new_with(
        &self,
        name: &str,
        input: impl IntoPayload,
        options: StartOptions,
    ) -> Result<String, ClientError> {
        validate_name(NameKind::Orchestration, name)?;
        let StartOptions {
            instance_id,
            start_at,
            version,
            trace_context,
            tags,
        } = options;
        let instance_id = instance_id.as_deref();
        if name.trim().is_empty() {
            return Err(ClientError::InvalidArgument(
                "orchestration name must not be empty".into(),
            ));
        }
        let id = match instance_id {
            Some(id) => {
                validate_instance_id(id)?;
                id.to_string()
            }
            None => generated_instance_id(*uuid::Uuid::new_v4().as_bytes()),
        };
        let input = input.into_payload()?;
        let now = Utc::now();
        let execution_id = uuid::Uuid::new_v4().simple().to_string();
        let span = match trace_context {
            Some(_) => None,
            None => crate::telemetry::begin_create(
                name,
                version.as_deref(),
                &id,
                &execution_id,
                self.trace_parent.as_ref(),
            ),
        };
        // Without spans exported here, the caller's context is kept as it
        // is, so a worker process that exports still continues its trace.
        let trace_context = trace_context
            .or_else(|| span.as_ref().map(|s| s.context()))
            .or_else(|| self.trace_parent.clone());
        let start_event = HistoryEvent::new(
            now,
            EventKind::ExecutionStarted {
                trace_context,
                name: name.to_string(),
                version: version.clone(),
                input: input.clone(),
                execution_id: execution_id.clone(),
                parent: None,
                tags,
            },
        );
        let req = CreateInstance {
            instance_id: id.clone(),
            name: name.to_string(),
            version,
            input,
            execution_id,
            start_event,
            visible_at: perdure_core::time::clamp(start_at.unwrap_or(now).max(now)),
        };
        // A worker of this process on the same store runs the first turn
        // at once when it can; otherwise the instance waits for any worker.
        let created = match crate::worker::local::start(&self.store, req).await {
            Ok(Some(req)) => self.store.create_instance(req).await,
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Some(span) = span {
            span.end(created.as_ref().err().map(|e| e.to_string()));
        }
        created?;
        tracing::debug!(instance_id = %id, name, "instance started");
        Ok(id)
    }

    /// The instance's status (with its history when `show_history`), or
    /// `None` if there is no such instance.
    pub async fn get_status(
        &self,
        instance_id: &str,
        show_history: bool,
    ) -> Result<Option<OrchestrationStatus>, ClientError> {
        let Some(rec) = self.store.get_instance(instance_id).await? else {
            return Ok(None);
        };
        let history = if show_history {
            Some(self.store.read_history(instance_id).await?)
        } else {
            None
        };
        Ok(Some(OrchestrationStatus::from_record(rec, history)))
    }

    /// Waits until the instance is Completed, Failed, Canceled or Terminated,
    /// at most `timeout`.
    pub async fn wait_for_completion(
        &self,
        instance_id: &str,
        timeout: Duration,
    ) -> Result<OrchestrationStatus, ClientError> {
        self.wait_until(instance_id, Some(timeout), RuntimeStatus::is_terminal)
            .await?
            .ok_or_else(|| ClientError::NotFound(instance_id.to_string()))
    }

    /// Waits until the instance's status satisfies `done`, at most
    /// `timeout` (`None`: until the caller drops the future), and answers
    /// its status (`None` if there is no such instance). The store's watch
    /// wakes the wait when this process commits to the instance, and, on
    /// PostgreSQL, when another process finishes it; a poll that backs off
    /// to one second covers other processes' other commits (a predicate
    /// on a status that is not final), so an idle wait costs one read a
    /// second, not one every few milliseconds.
    pub async fn wait_until(
        &self,
        instance_id: &str,
        timeout: Option<Duration>,
        done: impl Fn(RuntimeStatus) -> bool,
    ) -> Result<Option<OrchestrationStatus>, ClientError> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut pause = Duration::from_millis(2);
        let mut watch = self.store.watch_instance(instance_id);
        loop {
            let Some(rec) = self.store.get_instance(instance_id).await? else {
                return Ok(None);
            };
            if done(rec.status) {
                return Ok(Some(OrchestrationStatus::from_record(rec, None)));
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(ClientError::Timeout(
                    timeout.unwrap_or_default(),
                    instance_id.to_string(),
                ));
            }
            let until = deadline.map_or(now + pause, |d| (now + pause).min(d));
            match watch.as_mut() {
                Some(w) => loop {
                    match tokio::time::timeout_at(until.into(), w.changed()).await {
                        Ok(Ok(())) if w.borrow_and_update().is_some_and(&done) => break,
                        Ok(Ok(())) => continue,
                        Ok(Err(_)) => {
                            watch = None;
                            break;
                        }
                        Err(_) => break,
                    }
                },
                None => tokio::time::sleep_until(until.into()).await,
            }
            // With a watch, this process's commits wake the wait at once,
            // so the poll only looks for other processes' commits.
            let cap = if watch.is_some() { 1000 } else { 100 };
            pause = (pause * 2).min(Duration::from_millis(cap));
        }
    }

    async fn running(&self, instance_id: &str) -> Result<InstanceRecord, ClientError> {
        validate_instance_id(instance_id)?;
        let rec = self
            .store
            .get_instance(instance_id)
            .await?
            .ok_or_else(|| ClientError::NotFound(instance_id.to_string()))?;
        if rec.status.is_terminal() {
            return Err(ClientError::AlreadyFinished {
                id: instance_id.to_string(),
                status: rec.status,
            });
        }
        Ok(rec)
    }

    async fn send(&self, instance_id: &str, kind: EventKind) -> Result<(), ClientError> {
        let now = Utc::now();
        self.store
            .send_message(InstanceMessage {
                instance_id: instance_id.to_string(),
                execution_id: None,
                event: HistoryEvent::new(now, kind),
                visible_at: now,
            })
            .await?;
        Ok(())
    }

    /// Sends external event `event_name` with `data` to a running instance.
    /// Events that arrive before the orchestration waits are kept for it.
    pub async fn raise_event(
        &self,
        instance_id: &str,
        event_name: &str,
        data: impl IntoPayload,
    ) -> Result<(), ClientError> {
        validate_name(NameKind::Event, event_name)?;
        self.running(instance_id).await?;
        let input = data.into_payload()?;
        let span = if self.raise_spans {
            crate::telemetry::begin_raise(event_name, instance_id, self.trace_parent.as_ref())
        } else {
            None
        };
        let sent = self
            .send(
                instance_id,
                EventKind::EventRaised {
                    name: event_name.to_string(),
                    input,
                    trace_context: span
                        .as_ref()
                        .map(|s| s.context())
                        .or_else(|| self.trace_parent.clone()),
                },
            )
            .await;
        if let Some(span) = span {
            span.end(sent.as_ref().err().map(|e| e.to_string()));
        }
        sent
    }

    /// Terminates a running instance with `reason`.
    pub async fn terminate(
        &self,
        instance_id: &str,
        reason: impl IntoPayload,
    ) -> Result<(), ClientError> {
        self.terminate_with_options(instance_id, reason, false)
            .await
    }

    /// Terminates a running instance; with `recursive`, its running
    /// sub-orchestrations (and theirs) too.
    pub async fn terminate_with_options(
        &self,
        instance_id: &str,
        reason: impl IntoPayload,
        recursive: bool,
    ) -> Result<(), ClientError> {
        self.running(instance_id).await?;
        let reason = reason.into_payload()?;
        self.send(
            instance_id,
            EventKind::ExecutionTerminated {
                reason: reason.clone(),
            },
        )
        .await?;
        if recursive {
            let mut stack = vec![instance_id.to_string()];
            while let Some(parent) = stack.pop() {
                for child in self.children(&parent).await? {
                    if !child.status.is_terminal() {
                        let kind = EventKind::ExecutionTerminated {
                            reason: reason.clone(),
                        };
                        match self.send(&child.instance_id, kind).await {
                            Ok(()) | Err(ClientError::NotFound(_)) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    stack.push(child.instance_id);
                }
            }
        }
        Ok(())
    }

    async fn children(&self, parent: &str) -> Result<Vec<InstanceRecord>, ClientError> {
        let mut out = Vec::new();
        let mut q = InstanceQuery {
            parent_instance_id: Some(parent.to_string()),
            page_size: 500,
            ..InstanceQuery::default()
        };
        loop {
            let page = self.store.list_instances(&q).await?;
            out.extend(page.instances);
            match page.continuation {
                Some(c) => q.continuation = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// Suspends a running instance: it takes no new events (they are kept)
    /// until [`Client::resume`].
    pub async fn suspend(
        &self,
        instance_id: &str,
        reason: impl IntoPayload,
    ) -> Result<(), ClientError> {
        self.running(instance_id).await?;
        let reason = reason.into_payload()?;
        self.send(instance_id, EventKind::ExecutionSuspended { reason })
            .await
    }

    /// Resumes a suspended instance.
    pub async fn resume(
        &self,
        instance_id: &str,
        reason: impl IntoPayload,
    ) -> Result<(), ClientError> {
        self.running(instance_id).await?;
        let reason = reason.into_payload()?;
        self.send(instance_id, EventKind::ExecutionResumed { reason })
            .await
    }

    async fn existing(&self, instance_id: &str) -> Result<InstanceRecord, ClientError> {
        validate_instance_id(instance_id)?;
        self.store
            .get_instance(instance_id)
            .await?
            .ok_or_else(|| ClientError::NotFound(instance_id.to_string()))
    }

    /// Rewinds a Failed instance: its failed steps run again, completed
    /// ones are not re-run, and it goes on from there. Returns once the
    /// rewind is queued; the instance leaves Failed when a worker applies it
    /// (its history then shows ExecutionRewound).
    pub async fn rewind(
        &self,
        instance_id: &str,
        reason: impl IntoPayload,
    ) -> Result<(), ClientError> {
        let rec = self.existing(instance_id).await?;
        if rec.status != RuntimeStatus::Failed {
            return Err(ClientError::NotFailed {
                id: instance_id.to_string(),
                status: rec.status,
            });
        }
        let reason = reason.into_payload()?;
        self.send(instance_id, EventKind::ExecutionRewound { reason })
            .await
    }

    /// Starts an instance again with its original input: under the same id
    /// (it must have finished, and is replaced) or, with `new_instance_id`,
    /// under a new id (the original may still be running). Returns the id.
    pub async fn restart(
        &self,
        instance_id: &str,
        new_instance_id: bool,
    ) -> Result<String, ClientError> {
        let rec = self.existing(instance_id).await?;
        // Only a restart under the same id replaces the instance, so only
        // that one waits for it to finish.
        if !new_instance_id && !rec.status.is_terminal() {
            return Err(ClientError::StillRunning {
                id: instance_id.to_string(),
                status: rec.status,
            });
        }
        // The input as it is stored, not parsed and written again.
        let input = crate::payload::RawJson::stored(rec.input.clone());
        let options = StartOptions {
            instance_id: (!new_instance_id).then(|| instance_id.to_string()),
            start_at: None,
            version: rec.version.clone(),
            trace_context: None,
            tags: rec.tags.clone(),
        };
        self.start_new_with(&rec.name, input, options).await
    }

    /// Deletes a finished instance and its history. Returns how many
    /// instances were deleted (0 if there was none).
    pub async fn purge_instance_history(&self, instance_id: &str) -> Result<u64, ClientError> {
        self.purge_instance_history_with_options(instance_id, false)
            .await
    }

    /// Like [`Client::purge_instance_history`]; with `recursive`, its
    /// finished sub-orchestrations (and theirs) are deleted too.
    pub async fn purge_instance_history_with_options(
        &self,
        instance_id: &str,
        recursive: bool,
    ) -> Result<u64, ClientError> {
        validate_instance_id(instance_id)?;
        let mut deleted = 0;
        let mut order = vec![instance_id.to_string()];
        if recursive {
            let mut i = 0;
            while i < order.len() {
                for child in self.children(&order[i]).await? {
                    order.push(child.instance_id);
                }
                i += 1;
            }
        }
        // The instance itself first: it refuses while running.
        for id in order {
            match self.store.purge_instance(&id).await {
                Ok(true) => deleted += 1,
                Ok(false) => {}
                Err(perdure_store::StoreError::NotFinished { .. }) if id != instance_id => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(deleted)
    }

    /// Deletes every finished instance that matches `filter`. Returns how
    /// many were deleted.
    pub async fn purge_instances(&self, filter: &PurgeFilter) -> Result<u64, ClientError> {
        let wanted = |s: &RuntimeStatus| {
            s.is_terminal() && (filter.statuses.is_empty() || filter.statuses.contains(s))
        };
        let statuses: Vec<RuntimeStatus> = RuntimeStatus::ALL.into_iter().filter(wanted).collect();
        if statuses.is_empty() {
            return Ok(0);
        }
        let mut q = InstanceQuery {
            statuses,
            created_from: filter.created_from,
            created_to: filter.created_to,
            page_size: 500,
            ..InstanceQuery::default()
        };
        let mut deleted = 0;
        loop {
            let page = self.store.list_instances(&q).await?;
            for r in &page.instances {
                match self.store.purge_instance(&r.instance_id).await {
                    Ok(true) => deleted += 1,
                    Ok(false) | Err(perdure_store::StoreError::NotFinished { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            match page.continuation {
                Some(c) => q.continuation = Some(c),
                None => return Ok(deleted),
            }
        }
    }

    /// Instances matching `query` (statuses, created-time range, id prefix),
    /// a page at a time; with `show_input` false, inputs are left out.
    pub async fn list_instances(
        &self,
        query: &InstanceQuery,
        show_input: bool,
    ) -> Result<InstancePage, ClientError> {
        let page = self.store.list_instances(query).await?;
        Ok(InstancePage {
            instances: page
                .instances
                .into_iter()
                .map(|mut r| {
                    if !show_input {
                        r.input = None;
                    }
                    OrchestrationStatus::from_record(r, None)
                })
                .collect(),
            continuation_token: page.continuation,
        })
    }
}
