//! The group-commit writer: one thread owns the write connection, takes
//! every request waiting on its channel, runs them in one `BEGIN IMMEDIATE
//! ... COMMIT` (each inside its own savepoint) and answers each one only
//! after the commit is durable.

use crate::backend;
use perdure_store::stats::CommitCounters;
use perdure_store::StoreError;
use rusqlite::Connection;
use std::any::Any;
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

type Output = Result<Box<dyn Any + Send>, StoreError>;
type JobFn = Box<dyn FnOnce(&Connection) -> Output + Send>;

struct Job {
    run: JobFn,
    reply: oneshot::Sender<Output>,
    /// False for lease-only writes (taking and renewing work): a lease lost
    /// to a power cut is one that ended early, which leases allow for.
    durable: bool,
}

/// Most requests in one transaction.
const MAX_BATCH: usize = 512;

pub(crate) struct Writer {
    pub counters: Arc<CommitCounters>,
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    pub fn start(conn: Connection) -> Result<Self, StoreError> {
        // Savepoint journals in memory (not a temporary file per
        // transaction), and a page cache large enough for the hot tables.
        conn.execute_batch("PRAGMA temp_store=MEMORY; PRAGMA cache_size=-65536;")
            .map_err(|e| backend("writer pragmas", e))?;
        let (tx, rx) = mpsc::channel::<Job>();
        let counters = Arc::new(CommitCounters::default());
        let c = counters.clone();
        let thread = std::thread::Builder::new()
            .name("perdure-sqlite-writer".into())
            .spawn(move || run(conn, rx, &c))
            .map_err(|e| StoreError::Backend(format!("starting the writer thread: {e}")))?;
        Ok(Writer {
            counters,
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Runs `f` in the next group commit; returns once it is durable.
    pub async fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.submit(f, true).await
    }

    /// Runs a write that only takes or renews leases. It is committed (so
    /// other processes see the lease at once) but, when every request in
    /// its group is of this kind, without waiting for the fsync: a power
    /// cut may undo the lease, which then simply ended early. A later
    /// durable commit makes it durable too (the WAL is written in order).
    pub async fn lease<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.submit(f, false).await
    }

    async fn submit<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
        durable: bool,
    ) -> Result<R, StoreError> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            run: Box::new(move |c| f(c).map(|r| Box::new(r) as Box<dyn Any + Send>)),
            reply,
            durable,
        };
        self.tx
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(job)
            .map_err(|_| StoreError::Closed)?;
        let out = rx.await.map_err(|_| StoreError::Closed)??;
        out.downcast::<R>()
            .map(|b| *b)
            .map_err(|_| StoreError::Backend("writer returned an unexpected type".into()))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs a statement from the connection's statement cache (savepoints run
/// twice per request: parsing them each time shows in profiles).
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn run(conn: Connection, rx: mpsc::Receiver<Job>, counters: &CommitCounters) {
    let mut synced = true;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let began = std::time::Instant::now();
        let durable = batch.iter().any(|j| j.durable);
        if durable != synced {
            let pragma = if durable {
                "PRAGMA synchronous=FULL"
            } else {
                "PRAGMA synchronous=OFF"
            };
            if let Err(e) = conn.execute_batch(pragma) {
                let msg = format!("sqlite: {pragma}: {e}");
                for j in batch {
                    let _ = j.reply.send(Err(StoreError::Backend(msg.clone())));
                }
                continue;
            }
            synced = durable;
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let msg = format!("sqlite: begin: {e}");
            for j in batch {
                let _ = j.reply.send(Err(StoreError::Backend(msg.clone())));
            }
            continue;
        }
        let mut results = Vec::with_capacity(batch.len());
        for job in batch {
            let out = match exec(&conn, "SAVEPOINT job") {
                Ok(()) => {
                    let out = (job.run)(&conn);
                    let ended = if out.is_err() {
                        exec(&conn, "ROLLBACK TO job").and_then(|()| exec(&conn, "RELEASE job"))
                    } else {
                        exec(&conn, "RELEASE job")
                    };
                    match ended {
                        Ok(()) => out,
                        Err(e) => Err(backend("savepoint", e)),
                    }
                }
                Err(e) => Err(backend("savepoint", e)),
            };
            results.push((job.reply, out));
        }
        match conn.execute_batch("COMMIT") {
            Ok(()) => {
                if durable {
                    counters.transaction(results.len(), began.elapsed());
                }
                for (reply, out) in results {
                    let _ = reply.send(out);
                }
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                let msg = format!("sqlite: commit: {e}");
                for (reply, _) in results {
                    let _ = reply.send(Err(StoreError::Backend(msg.clone())));
                }
            }
        }
    }
}
