//! `perdure-sqlite` is the embedded store, Perdure's default: one SQLite file
//! in WAL mode with `synchronous=FULL`. One writer thread owns the write
//! connection and group-commits every waiting request in one transaction
//! (one fsync for many steps, each request in its own savepoint so one
//! failure rolls back only itself); reads use their own connections.
//!
//! Module map: `schema` (tables and versioned migrations), `writer` (the
//! group-commit thread), `ops` (the SQL of each store operation), and this
//! file (the Store trait impls and in-process wake-ups).
//!
//! Architecture invariant: every store operation that changes rows is one
//! writer request, so it is applied whole or not at all.

mod ops;
mod schema;
mod writer;

use async_trait::async_trait;
use perdure_core::HistoryEvent;
use perdure_store::wake::WakeHub;
use perdure_store::*;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(crate) fn backend(context: &str, e: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("sqlite: {context}: {e}"))
}

pub(crate) fn dur_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// Opens a connection with Perdure's settings.
pub(crate) fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| backend("open", e))?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(|e| backend("busy_timeout", e))?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;",
    )
    .map_err(|e| backend("pragmas", e))?;
    Ok(conn)
}

pub(crate) use perdure_store::wake::Visible as Woken;

/// The SQLite store (`sqlite://path`).
pub struct SqliteStore {
    path: PathBuf,
    writer: writer::Writer,
    readers: Arc<Mutex<Vec<Connection>>>,
    /// One permit per reader connection: a read waits for a pooled
    /// connection rather than opening (and then closing) one of its own.
    reader_slots: Arc<tokio::sync::Semaphore>,
    wake: WakeHub,
    /// The store's time: leases, visibility and turn times are read from
    /// it (the system clock, or a test's virtual one).
    clock: Arc<dyn Clock>,
}

/// Reader connections kept open (reads run concurrently with the writer
/// and with each other in WAL mode).
const READERS: usize = 8;

impl SqliteStore {
    /// Opens (creating if needed) the store in the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with_clock(path, Arc::new(SystemClock))
    }

    /// Like [`SqliteStore::open`], on `clock`'s time (a simulation's
    /// virtual clock, say).
    pub fn open_with_clock(
        path: impl AsRef<Path>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Backend(format!("creating {}: {e}", dir.display())))?;
        }
        let mut conn = connect(&path)?;
        schema::migrate(&mut conn)?;
        let pending = ops::pending_times(&conn, clock.now_ms())?;
        let store = SqliteStore {
            writer: writer::Writer::start(conn)?,
            readers: Arc::new(Mutex::new(Vec::new())),
            reader_slots: Arc::new(tokio::sync::Semaphore::new(READERS)),
            wake: WakeHub::default(),
            path,
            clock,
        };
        store.wake.notify(WorkKind::Orchestration);
        store.wake.notify(WorkKind::Activity);
        store.signal(pending);
        Ok(store)
    }

    /// Opens `sqlite://path`.
    pub fn open_url(url: &str) -> Result<Self, StoreError> {
        match url.strip_prefix("sqlite://") {
            Some(p) if !p.is_empty() => Self::open(p),
            _ => Err(StoreError::BadUrl(
                url.into(),
                "expected sqlite://PATH".into(),
            )),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn signal(&self, w: Woken) {
        self.wake.signal(w);
    }

    async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let readers = self.readers.clone();
        let path = self.path.clone();
        let slot = self
            .reader_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Backend("reader pool closed".into()))?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let conn = readers
                .lock()
                .map_err(|_| StoreError::Backend("reader pool poisoned".into()))?
                .pop();
            let conn = match conn {
                Some(c) => c,
                None => connect(&path)?,
            };
            let r = f(&conn);
            if let Ok(mut pool) = readers.lock() {
                pool.push(conn);
            }
            r
        })
        .await
        .map_err(|e| StoreError::Backend(format!("reader task: {e}")))?
    }
}

#[async_trait]
impl InstanceStore for SqliteStore {
    async fn create_instance(&self, req: CreateInstance) -> Result<(), StoreError> {
        let clock = self.clock.clone();
        let w = self
            .writer
            .write(move |c| ops::create_instance(c, &req, clock.now_ms()))
            .await?;
        self.signal(w);
        Ok(())
    }

    async fn get_instance(&self, instance_id: &str) -> Result<Option<InstanceRecord>, StoreError> {
        let id = instance_id.to_string();
        self.read(move |c| ops::get_instance(c, &id)).await
    }

    async fn send_message(&self, msg: InstanceMessage) -> Result<(), StoreError> {
        let clock = self.clock.clone();
        let w = self
            .writer
            .write(move |c| ops::send_message(c, &msg, clock.now_ms()))
            .await?;
        self.signal(w);
        Ok(())
    }

    async fn list_instances(&self, query: &InstanceQuery) -> Result<InstancePage, StoreError> {
        let q = query.clone();
        self.read(move |c| ops::list_instances(c, &q)).await
    }

    async fn purge_instance(&self, instance_id: &str) -> Result<bool, StoreError> {
        let id = instance_id.to_string();
        self.writer
            .write(move |c| ops::purge_instance(c, &id))
            .await
    }
}

#[async_trait]
impl HistoryStore for SqliteStore {
    async fn read_history(&self, instance_id: &str) -> Result<Vec<HistoryEvent>, StoreError> {
        let id = instance_id.to_string();
        self.read(move |c| ops::read_history(c, &id)).await
    }
}

#[async_trait]
impl OrchestrationQueue for SqliteStore {
    async fn fetch_orchestrations(
        &self,
        lease: Duration,
        max_messages: usize,
        max_items: usize,
        filter: &WorkFilter,
    ) -> Result<Vec<OrchestrationItem>, StoreError> {
        let clock = self.clock.clone();
        let filter = filter.clone();
        let items = self
            .writer
            .lease(move |c| {
                let now = clock.now_ms();
                ops::fetch_orchestrations(
                    c,
                    dur_ms(lease),
                    max_messages.max(1),
                    max_items,
                    &filter,
                    now,
                )
            })
            .await?;
        if !items.is_empty() {
            // Wake whoever should take them should this worker die.
            if let Some(t) =
                chrono::DateTime::from_timestamp_millis(self.clock.now_ms() + dur_ms(lease))
            {
                self.wake.schedule(WorkKind::Orchestration, t);
            }
        }
        Ok(items)
    }

    async fn commit_orchestration(&self, commit: OrchestrationCommit) -> Result<(), StoreError> {
        self.commit_turn(commit, None).await.map(|_| ())
    }

    async fn commit_unleased(
        &self,
        commit: OrchestrationCommit,
        last_update: perdure_core::Timestamp,
    ) -> Result<bool, StoreError> {
        self.commit_turn(commit, Some(last_update.timestamp_millis()))
            .await
    }

    async fn create_with_first_turn(
        &self,
        commit: OrchestrationCommit,
    ) -> Result<FirstTurn, StoreError> {
        let clock = self.clock.clone();
        let (id, status) = (commit.instance_id.clone(), commit.update.status);
        let encoded = Arc::new(ops::EncodedCommit::new(commit.into_first_turn()));
        let held = encoded.clone();
        let w = self
            .writer
            .write(move |c| ops::create_with_first_turn(c, &held, clock.now_ms()))
            .await?;
        let Some(w) = w else {
            // The id is taken (rare): the commit back, for the usual create.
            let commit = Arc::try_unwrap(encoded)
                .map(|e| e.commit)
                .unwrap_or_else(|e| e.commit.clone());
            return Ok(FirstTurn::Declined(Box::new(commit)));
        };
        self.writer.counters.steps(1);
        self.wake.instance_changed(&id, status);
        self.signal(w);
        Ok(FirstTurn::Created)
    }

    fn unleased_now(&self) -> Option<perdure_core::Timestamp> {
        Some(self.clock.now())
    }

    async fn renew_orchestration_lock(
        &self,
        instance_id: &str,
        lock_token: &str,
        lease: Duration,
    ) -> Result<(), StoreError> {
        let clock = self.clock.clone();
        let (id, tok) = (instance_id.to_string(), lock_token.to_string());
        self.writer
            .lease(move |c| ops::renew_orchestration(c, &id, &tok, dur_ms(lease), clock.now_ms()))
            .await
    }

    async fn abandon_orchestration(
        &self,
        instance_id: &str,
        lock_token: &str,
        retry_after: Duration,
    ) -> Result<(), StoreError> {
        let clock = self.clock.clone();
        let (id, tok) = (instance_id.to_string(), lock_token.to_string());
        let w = self
            .writer
            .write(move |c| {
                ops::abandon_orchestration(c, &id, &tok, dur_ms(retry_after), clock.now_ms())
            })
            .await?;
        self.signal(w);
        Ok(())
    }
}

#[async_trait]
impl ActivityQueue for SqliteStore {
    async fn fetch_activities(
        &self,
        lease: Duration,
        max_items: usize,
        filter: &WorkFilter,
    ) -> Result<Vec<ActivityItem>, StoreError> {
        let clock = self.clock.clone();
        let filter = filter.clone();
        self.writer
            .lease(move |c| {
                ops::fetch_activities(c, dur_ms(lease), max_items, &filter, clock.now_ms())
            })
            .await
    }

    async fn pending_tasks(
        &self,
        instance_id: &str,
        execution_id: &str,
    ) -> Result<Vec<i64>, StoreError> {
        let (id, exec) = (instance_id.to_string(), execution_id.to_string());
        self.read(move |c| ops::pending_tasks(c, &id, &exec)).await
    }

    async fn complete_activity(
        &self,
        lock_token: &str,
        result: InstanceMessage,
    ) -> Result<(), StoreError> {
        let clock = self.clock.clone();
        let tok = lock_token.to_string();
        let event = perdure_core::encode_event(&result.event);
        let w = self
            .writer
            .write(move |c| ops::complete_activity(c, &tok, &result, &event, clock.now_ms()))
            .await?;
        self.writer.counters.step();
        self.signal(w);
        Ok(())
    }

    async fn take_for_result(
        &self,
        lock_token: &str,
        instance_id: &str,
        lease: Duration,
        max_messages: usize,
        filter: &WorkFilter,
    ) -> Result<Option<OrchestrationItem>, StoreError> {
        let clock = self.clock.clone();
        let (tok, id, filter) = (
            lock_token.to_string(),
            instance_id.to_string(),
            filter.clone(),
        );
        let item = self
            .writer
            .lease(move |c| {
                let now = clock.now_ms();
                ops::take_for_result(
                    c,
                    &tok,
                    &id,
                    dur_ms(lease),
                    max_messages.max(1),
                    &filter,
                    now,
                )
            })
            .await?;
        if item.is_some() {
            // Wake whoever should take it should this worker die.
            if let Some(t) =
                chrono::DateTime::from_timestamp_millis(self.clock.now_ms() + dur_ms(lease))
            {
                self.wake.schedule(WorkKind::Orchestration, t);
            }
        }
        Ok(item)
    }

    async fn renew_activity_lock(
        &self,
        lock_token: &str,
        lease: Duration,
    ) -> Result<(), StoreError> {
        let clock = self.clock.clone();
        let tok = lock_token.to_string();
        self.writer
            .lease(move |c| ops::renew_activity(c, &tok, dur_ms(lease), clock.now_ms()))
            .await
    }

    async fn abandon_activity(
        &self,
        lock_token: &str,
        retry_after: Duration,
    ) -> Result<(), StoreError> {
        let clock = self.clock.clone();
        let tok = lock_token.to_string();
        let w = self
            .writer
            .write(move |c| ops::abandon_activity(c, &tok, dur_ms(retry_after), clock.now_ms()))
            .await?;
        self.signal(w);
        Ok(())
    }
}

impl SqliteStore {
    /// A turn's commit, leased or not (see [`ops::commit_orchestration`]);
    /// false when an unleased one was not applied.
    async fn commit_turn(
        &self,
        commit: OrchestrationCommit,
        unleased: Option<i64>,
    ) -> Result<bool, StoreError> {
        let clock = self.clock.clone();
        let (id, status) = (commit.instance_id.clone(), commit.update.status);
        let carried = commit.completed_tasks.len();
        let commit = ops::EncodedCommit::new(commit);
        let w = self
            .writer
            .write(move |c| ops::commit_orchestration(c, &commit, clock.now_ms(), unleased))
            .await?;
        let Some(w) = w else { return Ok(false) };
        // The turn, and each activity result it carried in.
        self.writer.counters.steps(1 + carried);
        self.wake.instance_changed(&id, status);
        self.signal(w);
        Ok(true)
    }
}

#[async_trait]
impl WakeSignal for SqliteStore {
    async fn wait_for_work(&self, kind: WorkKind, max_wait: Duration) {
        self.wake.wait(kind, max_wait).await
    }

    fn watch_instance(&self, instance_id: &str) -> Option<InstanceWatch> {
        self.wake.watch_instance(instance_id)
    }
}

#[async_trait]
impl StoreStats for SqliteStore {
    fn commit_stats(&self) -> CommitStats {
        self.writer.counters.snapshot()
    }

    async fn queue_depths(&self) -> Result<perdure_store::QueueDepths, StoreError> {
        let clock = self.clock.clone();
        self.read(move |c| ops::queue_depths(c, clock.now_ms()))
            .await
    }
}
