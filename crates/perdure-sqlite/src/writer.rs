//! The group-commit writer: one thread owns the write connection, takes
//! every request waiting on its channel, runs them in one `BEGIN IMMEDIATE
//! ... COMMIT` (each inside its own savepoint) and answers each one only
//! after the commit is durable.

use crate::backend;
use perdure_store::StoreError;
use rusqlite::Connection;
use std::any::Any;
use std::sync::mpsc;
use tokio::sync::oneshot;

type Output = Result<Box<dyn Any + Send>, StoreError>;
type JobFn = Box<dyn FnOnce(&Connection) -> Output + Send>;

struct Job {
    run: JobFn,
    reply: oneshot::Sender<Output>,
}

/// Most requests in one transaction.
const MAX_BATCH: usize = 512;

pub(crate) struct Writer {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    pub fn start(conn: Connection) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("perdure-sqlite-writer".into())
            .spawn(move || run(conn, rx))
            .map_err(|e| StoreError::Backend(format!("starting the writer thread: {e}")))?;
        Ok(Writer {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Runs `f` in the next group commit; returns once it is durable.
    pub async fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            run: Box::new(move |c| f(c).map(|r| Box::new(r) as Box<dyn Any + Send>)),
            reply,
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

fn run(conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
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
            let out = match conn.execute_batch("SAVEPOINT job") {
                Ok(()) => {
                    let out = (job.run)(&conn);
                    let end = if out.is_err() {
                        "ROLLBACK TO job; RELEASE job"
                    } else {
                        "RELEASE job"
                    };
                    match conn.execute_batch(end) {
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
