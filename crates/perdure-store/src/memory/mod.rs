//! The in-memory store: every Store trait over maps behind one mutex. For
//! tests and experiments; it is not durable.

use crate::wake::WakeHub;
use crate::*;
use async_trait::async_trait;
use perdure_core::{EventKind, HistoryEvent, RuntimeStatus, Timestamp};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

mod queues;

struct Inst {
    rec: InstanceRecord,
    history: Vec<HistoryEvent>,
    lock: Option<(String, i64)>,
}

struct Msg {
    instance_id: String,
    execution_id: Option<String>,
    event: HistoryEvent,
    visible_at: i64,
}

struct Task {
    activity: NewActivity,
    visible_at: i64,
    lock: Option<(String, i64)>,
    dequeue_count: u32,
}

#[derive(Default)]
struct Inner {
    instances: HashMap<String, Inst>,
    inbox: BTreeMap<i64, Msg>,
    tasks: BTreeMap<i64, Task>,
    next_seq: i64,
}

/// A store kept in memory (`memory`), on the wall clock or on a clock of
/// the caller's ([`MemoryStore::with_clock`]: simulations and tests).
pub struct MemoryStore {
    inner: Mutex<Inner>,
    wake: WakeHub,
    clock: std::sync::Arc<dyn Clock>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_clock(std::sync::Arc::new(SystemClock))
    }
}

fn ms(t: Timestamp) -> i64 {
    crate::ceil_millis(t)
}

fn lease_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

fn live(lock: &Option<(String, i64)>, now: i64) -> bool {
    matches!(lock, Some((_, exp)) if *exp > now)
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store whose leases, visibility times and turn times follow `clock`.
    pub fn with_clock(clock: std::sync::Arc<dyn Clock>) -> Self {
        MemoryStore {
            inner: Mutex::new(Inner::default()),
            wake: WakeHub::default(),
            clock,
        }
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The earliest moment after now at which an inbox message (a durable
    /// timer, a scheduled start, a delayed signal) or an activity (a retry
    /// after an abandon) becomes visible; `None` when nothing waits on time.
    /// A test on a [`ManualClock`] moves the clock there to fire it.
    pub fn next_due(&self) -> Option<Timestamp> {
        let now = self.now_ms();
        let g = self.inner.lock().ok()?;
        let messages = g.inbox.values().map(|m| m.visible_at);
        let tasks = g
            .tasks
            .values()
            .filter(|t| t.lock.is_none())
            .map(|t| t.visible_at);
        let due = messages.chain(tasks).filter(|t| *t > now).min()?;
        chrono::DateTime::from_timestamp_millis(due)
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::Backend("memory store mutex poisoned".into()))
    }

    fn signal_message(&self, visible_at: i64, now: i64) {
        if visible_at <= now {
            self.wake.notify(WorkKind::Orchestration);
        } else if let Some(t) = chrono::DateTime::from_timestamp_millis(visible_at) {
            self.wake.schedule(WorkKind::Orchestration, t);
        }
    }
}

impl Inner {
    fn push_msg(&mut self, m: InstanceMessage) {
        self.next_seq += 1;
        let seq = self.next_seq;
        self.inbox.insert(
            seq,
            Msg {
                instance_id: m.instance_id,
                execution_id: m.execution_id,
                event: m.event,
                visible_at: ms(m.visible_at),
            },
        );
    }

    fn drop_instance_work(&mut self, id: &str) {
        self.inbox.retain(|_, m| m.instance_id != id);
        self.tasks.retain(|_, t| t.activity.instance_id != id);
    }
}

#[async_trait]
impl InstanceStore for MemoryStore {
    async fn create_instance(&self, req: CreateInstance) -> Result<(), StoreError> {
        let mut g = self.lock()?;
        if let Some(existing) = g.instances.get(&req.instance_id) {
            // Finished, but about to run again (a rewind or a parent's new
            // start waits): not replaced.
            let revived = g.inbox.values().any(|m| {
                m.instance_id == req.instance_id
                    && revives(
                        &m.event,
                        m.execution_id.as_deref(),
                        &existing.rec.execution_id,
                    )
            });
            if !existing.rec.status.is_terminal() || revived {
                return Err(StoreError::AlreadyExists {
                    id: req.instance_id,
                    status: if revived {
                        RuntimeStatus::Running
                    } else {
                        existing.rec.status
                    },
                });
            }
            g.drop_instance_work(&req.instance_id);
        }
        // The store's clock, like every other time it hands out.
        let now = self.clock.now();
        let rec = InstanceRecord::pending(&req.instance_id, req.row(), now);
        g.instances.insert(
            req.instance_id.clone(),
            Inst {
                rec,
                history: Vec::new(),
                lock: None,
            },
        );
        let visible = ms(req.visible_at);
        g.push_msg(InstanceMessage {
            instance_id: req.instance_id,
            execution_id: Some(req.execution_id),
            event: req.start_event,
            visible_at: req.visible_at,
        });
        drop(g);
        self.signal_message(visible, ms(now));
        Ok(())
    }

    async fn get_instance(&self, instance_id: &str) -> Result<Option<InstanceRecord>, StoreError> {
        Ok(self
            .lock()?
            .instances
            .get(instance_id)
            .map(|i| i.rec.clone()))
    }

    async fn list_instances(&self, q: &InstanceQuery) -> Result<InstancePage, StoreError> {
        let after = q
            .continuation
            .as_deref()
            .map(decode_continuation)
            .transpose()?;
        let g = self.lock()?;
        let mut all: Vec<&InstanceRecord> = g
            .instances
            .values()
            .map(|i| &i.rec)
            .filter(|r| query_matches(q, r))
            .filter(|r| {
                after.as_ref().is_none_or(|(ms, id)| {
                    (r.created_at.timestamp_millis(), r.instance_id.as_str()) > (*ms, id.as_str())
                })
            })
            .collect();
        all.sort_by_key(|r| (r.created_at.timestamp_millis(), r.instance_id.clone()));
        let size = q.page_size.max(1);
        let more = all.len() > size;
        let instances: Vec<InstanceRecord> = all.into_iter().take(size).cloned().collect();
        let continuation = if more {
            instances.last().map(encode_continuation)
        } else {
            None
        };
        Ok(InstancePage {
            instances,
            continuation,
        })
    }

    async fn purge_instance(&self, instance_id: &str) -> Result<bool, StoreError> {
        let mut g = self.lock()?;
        let Some(inst) = g.instances.get(instance_id) else {
            return Ok(false);
        };
        let entity = perdure_core::is_entity_instance(instance_id);
        let waiting = g.inbox.values().any(|m| {
            m.instance_id == instance_id
                && (entity || revives(&m.event, m.execution_id.as_deref(), &inst.rec.execution_id))
        });
        if !inst.rec.status.is_terminal() || waiting {
            return Err(StoreError::NotFinished {
                id: instance_id.to_string(),
                status: if waiting {
                    RuntimeStatus::Running
                } else {
                    inst.rec.status
                },
            });
        }
        g.instances.remove(instance_id);
        g.drop_instance_work(instance_id);
        Ok(true)
    }

    async fn send_message(&self, msg: InstanceMessage) -> Result<(), StoreError> {
        let mut g = self.lock()?;
        if !g.instances.contains_key(&msg.instance_id) {
            let Some(new) = implicit_instance(&msg) else {
                return Err(StoreError::NotFound(msg.instance_id));
            };
            let rec = InstanceRecord::pending(&msg.instance_id, new, self.clock.now());
            g.instances.insert(
                msg.instance_id.clone(),
                Inst {
                    rec,
                    history: Vec::new(),
                    lock: None,
                },
            );
        }
        let visible = ms(msg.visible_at);
        g.push_msg(msg);
        drop(g);
        self.signal_message(visible, self.now_ms());
        Ok(())
    }
}

#[async_trait]
impl HistoryStore for MemoryStore {
    async fn read_history(&self, instance_id: &str) -> Result<Vec<HistoryEvent>, StoreError> {
        Ok(self
            .lock()?
            .instances
            .get(instance_id)
            .map(|i| i.history.clone())
            .unwrap_or_default())
    }
}

#[async_trait]
impl WakeSignal for MemoryStore {
    async fn wait_for_work(&self, kind: WorkKind, max_wait: Duration) {
        self.wake.wait(kind, max_wait).await
    }

    fn watch_instance(&self, instance_id: &str) -> Option<crate::InstanceWatch> {
        self.wake.watch_instance(instance_id)
    }
}

#[async_trait]
impl crate::StoreStats for MemoryStore {
    async fn queue_depths(&self) -> Result<crate::QueueDepths, StoreError> {
        let g = self.lock()?;
        let now = self.now_ms();
        let mut d = crate::QueueDepths::default();
        for m in g.inbox.values() {
            let timer = matches!(m.event.kind, EventKind::TimerFired { .. });
            if m.visible_at <= now {
                d.messages_ready += 1;
                d.timers_due += u64::from(timer);
            } else {
                d.messages_scheduled += 1;
                // Scheduled while its execution may still take it: not one
                // of an ended instance or an earlier execution.
                let open = g.instances.get(&m.instance_id).is_some_and(|i| {
                    !i.rec.status.is_terminal()
                        && i.rec.status != RuntimeStatus::ContinuedAsNew
                        && m.execution_id
                            .as_ref()
                            .is_none_or(|e| *e == i.rec.execution_id)
                });
                d.timers_scheduled += u64::from(timer && open);
            }
        }
        for t in g.tasks.values() {
            if live(&t.lock, now) {
                d.activities_running += 1;
            } else if t.visible_at > now {
                d.activities_delayed += 1;
            } else {
                d.activities_ready += 1;
            }
        }
        Ok(d)
    }
}
