//! Wake-ups: how idle dispatchers learn that work became visible, without
//! polling. In one process a commit notifies waiting dispatchers at once;
//! work that becomes visible later (durable timers, retries, expiring
//! leases) wakes them when it is due.

use async_trait::async_trait;
use std::time::Duration;

/// The two kinds of work a worker dispatches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkKind {
    Orchestration,
    Activity,
}

#[async_trait]
pub trait WakeSignal {
    /// Returns when work of `kind` may be available: at once if some was
    /// enqueued since the last call, when the earliest known future work
    /// becomes due, or after `max_wait` at the latest (the safety net).
    async fn wait_for_work(&self, kind: WorkKind, max_wait: Duration);

    /// A receiver that sees the instance's status after each commit this
    /// process makes to its row (a turn, a status change), so that a waiting
    /// client need not poll; `None` when the store cannot tell (callers then
    /// poll). Of commits made by other processes, a store shared between
    /// processes (PostgreSQL) announces those that finish an instance;
    /// others are not seen, so callers keep a polling safety net.
    fn watch_instance(&self, _instance_id: &str) -> Option<InstanceWatch> {
        None
    }
}

/// See [`WakeSignal::watch_instance`].
pub type InstanceWatch = tokio::sync::watch::Receiver<Option<RuntimeStatus>>;

use perdure_core::{RuntimeStatus, Timestamp};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use tokio::sync::Notify;

struct KindState {
    notify: Notify,
    pending: AtomicBool,
    due: Mutex<BinaryHeap<Reverse<i64>>>,
}

impl KindState {
    fn new() -> Self {
        KindState {
            notify: Notify::new(),
            pending: AtomicBool::new(false),
            due: Mutex::new(BinaryHeap::new()),
        }
    }
}

/// In-process wake-ups shared by the memory and SQLite stores: a flag and a
/// [`Notify`] per kind of work for work visible now, and a heap of due times
/// for work visible later.
pub struct WakeHub {
    kinds: [KindState; 2],
    watchers: Mutex<Watchers>,
}

/// Instances someone waits on, each with a counter bumped on every commit.
#[derive(Default)]
struct Watchers {
    by_id: std::collections::HashMap<String, tokio::sync::watch::Sender<Option<RuntimeStatus>>>,
    /// Size at which entries nobody listens to any more are dropped.
    sweep_at: usize,
}

impl Default for WakeHub {
    fn default() -> Self {
        WakeHub {
            kinds: [KindState::new(), KindState::new()],
            watchers: Mutex::new(Watchers::default()),
        }
    }
}

fn idx(kind: WorkKind) -> usize {
    match kind {
        WorkKind::Orchestration => 0,
        WorkKind::Activity => 1,
    }
}

impl WakeHub {
    /// Work of `kind` is visible now.
    pub fn notify(&self, kind: WorkKind) {
        let k = &self.kinds[idx(kind)];
        k.pending.store(true, Ordering::Release);
        k.notify.notify_waiters();
    }

    /// Work of `kind` becomes visible at `at`.
    pub fn schedule(&self, kind: WorkKind, at: Timestamp) {
        let k = &self.kinds[idx(kind)];
        if let Ok(mut heap) = k.due.lock() {
            heap.push(Reverse(crate::ceil_millis(at)));
        }
        // Sleeping waiters recompute their deadline.
        k.notify.notify_waiters();
    }

    /// See [`WakeSignal::watch_instance`].
    pub fn watch_instance(&self, instance_id: &str) -> Option<InstanceWatch> {
        let mut w = self.watchers.lock().ok()?;
        if w.by_id.len() >= w.sweep_at {
            w.by_id.retain(|_, s| s.receiver_count() > 0);
            w.sweep_at = (w.by_id.len() * 2).max(64);
        }
        Some(
            w.by_id
                .entry(instance_id.to_string())
                .or_insert_with(|| tokio::sync::watch::channel(None).0)
                .subscribe(),
        )
    }

    /// A commit left the instance with `status`: wake whoever watches it.
    pub fn instance_changed(&self, instance_id: &str, status: RuntimeStatus) {
        let Ok(mut w) = self.watchers.lock() else {
            return;
        };
        if let Some(s) = w.by_id.get(instance_id) {
            if s.receiver_count() == 0 {
                w.by_id.remove(instance_id);
            } else {
                s.send_replace(Some(status));
            }
        }
    }

    /// See [`WakeSignal::wait_for_work`].
    pub async fn wait(&self, kind: WorkKind, max_wait: Duration) {
        let k = &self.kinds[idx(kind)];
        let notified = k.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if k.pending.swap(false, Ordering::AcqRel) {
            return;
        }
        let now = chrono::Utc::now().timestamp_millis();
        let mut wait = max_wait;
        if let Ok(mut heap) = k.due.lock() {
            let mut fired = false;
            while let Some(Reverse(t)) = heap.peek().copied() {
                if t <= now {
                    heap.pop();
                    fired = true;
                } else {
                    wait = wait.min(Duration::from_millis((t - now) as u64));
                    break;
                }
            }
            if fired {
                return;
            }
        }
        let _ = tokio::time::timeout(wait, notified).await;
    }
}

/// What a write made visible, as whole milliseconds for later work: the
/// SQLite and PostgreSQL stores build one per write and hand it to
/// [`WakeHub::signal`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Visible {
    pub orchestrations_now: bool,
    pub orchestrations_later: Vec<i64>,
    pub activities_now: bool,
    pub activities_later: Vec<i64>,
}

impl Visible {
    /// A message to an instance became visible at `visible` (ms): now, or
    /// later.
    pub fn orchestration_message(&mut self, visible: i64, now: i64) {
        if visible <= now {
            self.orchestrations_now = true;
        } else {
            self.orchestrations_later.push(visible);
        }
    }
}

impl WakeHub {
    /// Wakes dispatchers for work visible now and schedules the rest.
    pub fn signal(&self, v: Visible) {
        if v.orchestrations_now {
            self.notify(WorkKind::Orchestration);
        }
        if v.activities_now {
            self.notify(WorkKind::Activity);
        }
        for (kind, times) in [
            (WorkKind::Orchestration, v.orchestrations_later),
            (WorkKind::Activity, v.activities_later),
        ] {
            for t in times {
                if let Some(at) = chrono::DateTime::from_timestamp_millis(t) {
                    self.schedule(kind, at);
                }
            }
        }
    }
}
