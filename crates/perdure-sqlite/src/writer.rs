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
//!
//! Some errors (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM) make SQLite roll
//! the whole transaction back by itself: savepoints then name nothing and
//! later statements would run, and commit, in autocommit mode. The writer
//! checks for that after every request (`is_autocommit`); when it happened,
//! nothing of the group stands and each request runs again in its own
//! transaction, so every answer matches what is on disk.

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
    /// may run more than once (see the module doc): only its last run
    /// counts.
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
        let mut group = run_group(&conn, &mut batch, false);
        if matches!(group, Ok(Group::Failed)) {
            // A request failed: nothing of the group stands; run it again
            // with each request fenced off by a savepoint.
            group = run_group(&conn, &mut batch, true);
        }
        let outs = match group {
            Ok(Group::Ran(outs)) => match conn.execute_batch("COMMIT") {
                Ok(()) => {
                    if durable {
                        counters.transaction(outs.len(), began.elapsed());
                    }
                    outs
                }
                Err(e) => {
                    rollback(&conn);
                    fail_all(batch, &format!("sqlite: commit: {e}"));
                    continue;
                }
            },
            // SQLite threw the group's transaction away: nothing of it
            // stands, and each request runs again on its own.
            Ok(Group::Failed | Group::Lost) => run_alone(&conn, &mut batch, durable, counters),
            Err(msg) => {
                fail_all(batch, &msg);
                continue;
            }
        };
        for (job, out) in batch.into_iter().zip(outs) {
            let _ = job.reply.send(out);
        }
    }
}

fn fail_all(batch: Vec<Job>, msg: &str) {
    for j in batch {
        let _ = j.reply.send(Err(StoreError::Backend(msg.to_string())));
    }
}

/// Rolls back the open transaction, if SQLite has not already done so.
fn rollback(conn: &Connection) {
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
}

/// How one run of a group ended.
enum Group {
    /// Every request ran (fenced: each with its own answer); the
    /// transaction is open for the caller to commit.
    Ran(Vec<Output>),
    /// Unfenced only: a request failed and the transaction was rolled back.
    Failed,
    /// The transaction is gone: SQLite rolled it back by itself, or a
    /// savepoint could not be ended and the writer rolled it back. Nothing
    /// of the group was applied.
    Lost,
}

/// Begins a transaction and runs every request of the group in it, leaving
/// it open for the caller to commit. Without `fenced`, the first failing
/// request rolls the transaction back ([`Group::Failed`]); with it, each
/// request runs in its own savepoint and its failure is its answer. Either
/// way, a transaction that SQLite ended by itself is [`Group::Lost`].
fn run_group(conn: &Connection, batch: &mut [Job], fenced: bool) -> Result<Group, String> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| format!("sqlite: begin: {e}"))?;
    let mut outs = Vec::with_capacity(batch.len());
    for job in batch.iter_mut() {
        if fenced && exec(conn, "SAVEPOINT job").is_err() {
            rollback(conn);
            return Ok(Group::Lost);
        }
        let out = (job.run)(conn);
        if conn.is_autocommit() {
            return Ok(Group::Lost);
        }
        if !fenced {
            if out.is_err() {
                conn.execute_batch("ROLLBACK")
                    .map_err(|e| format!("sqlite: rollback: {e}"))?;
                return Ok(Group::Failed);
            }
            outs.push(out);
            continue;
        }
        let ended = if out.is_err() {
            exec(conn, "ROLLBACK TO job").and_then(|()| exec(conn, "RELEASE job"))
        } else {
            exec(conn, "RELEASE job")
        };
        if ended.is_err() {
            rollback(conn);
            return Ok(Group::Lost);
        }
        outs.push(out);
    }
    Ok(Group::Ran(outs))
}

/// Runs each request in a transaction of its own and commits it, for a
/// group whose shared transaction SQLite threw away.
fn run_alone(
    conn: &Connection,
    batch: &mut [Job],
    durable: bool,
    counters: &CommitCounters,
) -> Vec<Output> {
    batch
        .iter_mut()
        .map(|job| {
            let began = std::time::Instant::now();
            let out = run_one(conn, job);
            if out.is_ok() && durable {
                counters.transaction(1, began.elapsed());
            }
            out
        })
        .collect()
}

fn run_one(conn: &Connection, job: &mut Job) -> Output {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| backend("begin", e))?;
    let out = (job.run)(conn);
    if conn.is_autocommit() {
        // SQLite rolled the transaction back by itself.
        return Err(out.err().unwrap_or_else(|| {
            StoreError::Backend("sqlite: the transaction was rolled back by SQLite".into())
        }));
    }
    match out {
        Ok(v) => match conn.execute_batch("COMMIT") {
            Ok(()) => Ok(v),
            Err(e) => {
                rollback(conn);
                Err(backend("commit", e))
            }
        },
        Err(e) => {
            rollback(conn);
            Err(e)
        }
    }
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

    /// Polls `f` once, so that a write request is on the writer's channel
    /// before the test goes on.
    async fn submitted<F: std::future::Future + Unpin>(f: &mut F) {
        std::future::poll_fn(|cx| {
            let _ = std::pin::Pin::new(&mut *f).poll(cx);
            std::task::Poll::Ready(())
        })
        .await;
    }

    /// SQLITE_FULL on a one-row insert (no statement journal) makes SQLite
    /// roll the whole transaction back by itself, so the savepoints of a
    /// fenced rerun name nothing and later statements run in autocommit
    /// mode. Every answer must still match the file: a request answered Ok
    /// is on disk, a failed one left nothing, and the others still succeed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_match_the_file_when_sqlite_rolls_a_group_back_by_itself() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("full.db");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (v TEXT, pad BLOB)")
            .expect("schema");
        // Room for small rows in the table's page, none for a 1 MiB blob.
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .expect("page_count");
        conn.execute_batch(&format!("PRAGMA max_page_count = {}", pages + 4))
            .expect("max_page_count");
        let writer = Writer::start(conn).expect("writer");

        // Hold the writer until every request is queued: one group.
        let (release, held) = mpsc::channel::<()>();
        let mut hold = Box::pin(writer.write(move |_| {
            let _ = held.recv();
            Ok(usize::MAX)
        }));
        submitted(&mut hold).await;
        let mut requests = Vec::new();
        for i in 0..6usize {
            let mut f = Box::pin(writer.write(move |c| {
                // Request 1 fails on its own (so the group reruns fenced);
                // request 3 fills the database.
                let pad = if i == 3 { 1 << 20 } else { 0 };
                c.execute(
                    "INSERT INTO t (v, pad) VALUES (?1, zeroblob(?2))",
                    rusqlite::params![format!("row-{i}"), pad],
                )
                .map_err(|e| backend("insert", e))?;
                if i == 1 {
                    return Err(StoreError::Backend("request 1 fails".into()));
                }
                Ok(i)
            }));
            submitted(&mut f).await;
            requests.push(f);
        }
        drop(release);
        let held = hold.await;
        let mut answers = Vec::new();
        for f in requests {
            answers.push(f.await);
        }
        drop(writer);

        let conn = Connection::open(&path).expect("reopen");
        for (i, answer) in answers.iter().enumerate() {
            let on_disk = count(&conn, &format!("row-{i}")) == 1;
            assert_eq!(
                answer.is_ok(),
                on_disk,
                "request {i} answered {answer:?} but is {} the file",
                if on_disk { "in" } else { "not in" }
            );
        }
        assert_eq!(held.ok(), Some(usize::MAX), "the holding request succeeds");
        for (i, answer) in answers.iter().enumerate() {
            match i {
                1 => assert!(answer.is_err(), "request 1 fails"),
                3 => assert!(
                    matches!(answer, Err(StoreError::Backend(m)) if m.contains("full")),
                    "request 3 fails as the database is full: {answer:?}"
                ),
                _ => assert_eq!(answer.as_ref().ok(), Some(&i), "request {i} succeeds"),
            }
        }
    }
}
