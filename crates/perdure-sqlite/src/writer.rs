//! The group-commit writer: one thread owns the write connection, takes
//! every request waiting on its channel, runs them in one `BEGIN IMMEDIATE
//! ... COMMIT` and answers each one only after the commit is durable.
//!
//! Requests run back to back without savepoints (a savepoint copies every
//! page a request touches into a sub-journal, a quarter of the writer's
//! time in profiles). When one of them fails, the whole transaction is
//! rolled back and the group runs again with each request in its own
//! savepoint, so a failed request changes nothing and fails nothing else:
//! requests are re-runnable closures over borrowed inputs.

use crate::backend;
use perdure_store::stats::CommitCounters;
use perdure_store::StoreError;
use rusqlite::Connection;
use std::any::Any;
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

type Output = Result<Box<dyn Any + Send>, StoreError>;
type JobFn = Box<dyn FnMut(&Connection) -> Output + Send>;

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

    /// Runs `f` in the next group commit; returns once it is durable. `f`
    /// may run twice (see the module doc): only its last run counts.
    pub async fn write<R: Send + 'static>(
        &self,
        f: impl FnMut(&Connection) -> Result<R, StoreError> + Send + 'static,
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
        f: impl FnMut(&Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.submit(f, false).await
    }

    async fn submit<R: Send + 'static>(
        &self,
        mut f: impl FnMut(&Connection) -> Result<R, StoreError> + Send + 'static,
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
                fail_all(batch, &format!("sqlite: {pragma}: {e}"));
                continue;
            }
            synced = durable;
        }
        let outs = match run_group(&conn, &mut batch, false) {
            Ok(Some(outs)) => Ok(outs),
            // A request failed: nothing of the group stands; run it again
            // with each request fenced off by a savepoint.
            Ok(None) => run_group(&conn, &mut batch, true).map(Option::unwrap_or_default),
            Err(e) => Err(e),
        };
        let outs = outs.and_then(|outs| match conn.execute_batch("COMMIT") {
            Ok(()) => Ok(outs),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(format!("sqlite: commit: {e}"))
            }
        });
        match outs {
            Ok(outs) => {
                if durable {
                    counters.transaction(outs.len(), began.elapsed());
                }
                for (job, out) in batch.into_iter().zip(outs) {
                    let _ = job.reply.send(out);
                }
            }
            Err(msg) => fail_all(batch, &msg),
        }
    }
}

fn fail_all(batch: Vec<Job>, msg: &str) {
    for j in batch {
        let _ = j.reply.send(Err(StoreError::Backend(msg.to_string())));
    }
}

/// Begins a transaction and runs every request of the group in it, leaving
/// it open for the caller to commit. Without `fenced`, the first failing
/// request rolls the transaction back and `None` is returned; with it, each
/// request runs in its own savepoint and its failure is its answer.
fn run_group(
    conn: &Connection,
    batch: &mut [Job],
    fenced: bool,
) -> Result<Option<Vec<Output>>, String> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| format!("sqlite: begin: {e}"))?;
    let mut outs = Vec::with_capacity(batch.len());
    for job in batch.iter_mut() {
        if !fenced {
            let out = (job.run)(conn);
            if out.is_err() {
                conn.execute_batch("ROLLBACK")
                    .map_err(|e| format!("sqlite: rollback: {e}"))?;
                return Ok(None);
            }
            outs.push(out);
            continue;
        }
        let out = match exec(conn, "SAVEPOINT job") {
            Ok(()) => {
                let out = (job.run)(conn);
                let ended = if out.is_err() {
                    exec(conn, "ROLLBACK TO job").and_then(|()| exec(conn, "RELEASE job"))
                } else {
                    exec(conn, "RELEASE job")
                };
                match ended {
                    Ok(()) => out,
                    Err(e) => Err(backend("savepoint", e)),
                }
            }
            Err(e) => Err(backend("savepoint", e)),
        };
        outs.push(out);
    }
    Ok(Some(outs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn count(conn: &Connection, v: &str) -> i64 {
        conn.query_row("SELECT count(*) FROM t WHERE v = ?1", [v], |r| r.get(0))
            .unwrap_or(-1)
    }

    /// A request that fails after writing leaves nothing behind and fails
    /// none of the requests committed in the same group.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_request_in_a_group_changes_nothing_and_fails_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (v TEXT)")
            .expect("schema");
        let writer = Arc::new(Writer::start(conn).expect("writer"));
        // Hold the writer so the next requests queue up into one group.
        let hold = {
            let w = writer.clone();
            tokio::spawn(async move {
                w.write(|_| {
                    std::thread::sleep(Duration::from_millis(200));
                    Ok(())
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut handles = Vec::new();
        for i in 0..6 {
            let w = writer.clone();
            handles.push(tokio::spawn(async move {
                w.write(move |c| {
                    c.execute("INSERT INTO t (v) VALUES (?1)", [format!("row-{i}")])
                        .map_err(|e| backend("insert", e))?;
                    if i == 3 {
                        return Err(StoreError::Backend("request 3 fails".into()));
                    }
                    Ok(i)
                })
                .await
            }));
        }
        hold.await.expect("join").expect("hold");
        for (i, h) in handles.into_iter().enumerate() {
            let r = h.await.expect("join");
            if i == 3 {
                assert!(r.is_err(), "request 3 must fail");
            } else {
                assert_eq!(r.expect("request"), i);
            }
        }
        let groups = writer.counters.snapshot().transactions;
        drop(writer);
        let conn = Connection::open(&path).expect("reopen");
        for i in 0..6 {
            let want = i64::from(i != 3);
            assert_eq!(count(&conn, &format!("row-{i}")), want, "row-{i}");
        }
        assert_eq!(groups, 2, "the six requests shared one group");
    }
}
