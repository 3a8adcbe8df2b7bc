//! Group commit for PostgreSQL: the single-statement hot paths (a turn
//! without messages, an activity result) of concurrent workers in this
//! process are gathered and run together in one transaction, their
//! statements pipelined on one connection, so that one WAL flush makes many
//! steps durable. Each statement is guarded by its own lease check, so one
//! stale step changes nothing and fails nothing else; if the transaction as
//! a whole fails, every step in it is run again on its own.

use crate::fast::{self, Take};
use crate::{backend, Woken};
use deadpool_postgres::Pool;
use perdure_store::stats::CommitCounters;
use perdure_store::{
    CreateInstance, InstanceMessage, OrchestrationCommit, OrchestrationItem, StoreError,
};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Mutex};

/// Most steps in one transaction.
const MAX_BATCH: usize = 64;
/// Transactions in flight at once (each on its own connection).
const COMMITTERS: usize = 4;

enum Op {
    Turn {
        commit: OrchestrationCommit,
        /// The instance's last update (ms) for a turn without a lease.
        unleased: Option<i64>,
        reply: oneshot::Sender<Result<TurnDone, StoreError>>,
    },
    Result {
        token: String,
        result: InstanceMessage,
        reply: oneshot::Sender<Result<Woken, StoreError>>,
    },
    /// A new instance and its start message (a client's start).
    Create {
        req: CreateInstance,
        reply: oneshot::Sender<Result<Created, StoreError>>,
    },
    /// A new instance with its first turn (no messages to instances).
    First {
        commit: OrchestrationCommit,
        reply: oneshot::Sender<Result<FirstDone, StoreError>>,
    },
    /// A lease-only take for a carried result: pipelined with the steps
    /// rather than a round trip and a transaction of its own.
    Take {
        token: String,
        instance_id: String,
        take: Take,
        reply: oneshot::Sender<Result<Option<OrchestrationItem>, StoreError>>,
    },
}

/// A start: what it woke; or, when the id was taken (nothing written), the
/// request back for the slower path.
pub(crate) type Created = Result<Woken, Box<CreateInstance>>;

/// A first turn: what it woke and the database time; or, when the id was
/// taken (nothing written), the commit back.
pub(crate) type FirstDone = Result<(Woken, i64), Box<OrchestrationCommit>>;

/// A turn's statement ran: whether its check held, what it woke, and the
/// database's time (ms).
pub(crate) type TurnDone = (bool, Woken, i64);

enum Done {
    Turn(Result<TurnDone, StoreError>),
    Result(Result<Woken, StoreError>),
    Take(Result<Option<Box<OrchestrationItem>>, StoreError>),
    Create(Result<(bool, Woken), StoreError>),
}

impl Op {
    async fn run<C: deadpool_postgres::GenericClient + Sync>(&self, c: &C) -> Done {
        match self {
            Op::Turn {
                commit, unleased, ..
            } => {
                let mut w = Woken::default();
                Done::Turn(
                    fast::commit_turn(c, commit, &mut w, *unleased)
                        .await
                        .map(|(held, now)| (held, w, now)),
                )
            }
            Op::Result { token, result, .. } => {
                Done::Result(fast::complete_activity(c, token, result).await)
            }
            Op::Create { req, .. } => {
                let mut w = Woken::default();
                Done::Create(
                    fast::create_instance(c, req, &mut w)
                        .await
                        .map(|created| (created, w)),
                )
            }
            Op::First { commit, .. } => {
                let mut w = Woken::default();
                Done::Turn(
                    fast::commit_guarded(c, commit, &mut w, fast::Guard::New)
                        .await
                        .map(|(held, now)| (held, w, now)),
                )
            }
            Op::Take {
                token,
                instance_id,
                take,
                ..
            } => Done::Take(
                fast::take_for_result(c, token, instance_id, take)
                    .await
                    .map(|i| i.map(Box::new)),
            ),
        }
    }

    fn answer(self, done: Done) {
        match (self, done) {
            (Op::Turn { reply, .. }, Done::Turn(r)) => {
                let _ = reply.send(r);
            }
            (Op::Result { reply, .. }, Done::Result(r)) => {
                let _ = reply.send(r);
            }
            (Op::Create { req, reply, .. }, Done::Create(r)) => {
                let _ = reply.send(r.map(|(created, w)| match created {
                    true => Ok(w),
                    false => Err(Box::new(req)),
                }));
            }
            (Op::First { commit, reply }, Done::Turn(r)) => {
                let _ = reply.send(r.map(|(created, w, now)| match created {
                    true => Ok((w, now)),
                    false => Err(Box::new(commit)),
                }));
            }
            (Op::Take { reply, .. }, Done::Take(r)) => {
                let _ = reply.send(r.map(|i| i.map(|b| *b)));
            }
            (op, _) => op.fail(StoreError::Backend(
                "group commit mixed up its answers".into(),
            )),
        }
    }

    fn fail(self, e: StoreError) {
        match self {
            Op::Turn { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            Op::Result { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            Op::Take { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            Op::Create { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            Op::First { reply, .. } => {
                let _ = reply.send(Err(e));
            }
        }
    }
}

pub(crate) struct Batcher {
    tx: mpsc::UnboundedSender<Op>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Batcher {
    pub fn start(pool: Pool, counters: Arc<CommitCounters>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(Mutex::new(rx));
        let tasks = (0..COMMITTERS)
            .map(|_| tokio::spawn(committer(pool.clone(), rx.clone(), counters.clone())))
            .collect();
        Batcher { tx, tasks }
    }

    /// Commits a turn without messages; false when its lease or history
    /// check (unleased: its state check) failed (nothing was changed).
    pub async fn turn(
        &self,
        commit: OrchestrationCommit,
        unleased: Option<i64>,
    ) -> Result<TurnDone, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::Turn {
                commit,
                unleased,
                reply,
            })
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Records an activity result.
    pub async fn result(&self, token: &str, result: InstanceMessage) -> Result<Woken, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::Result {
                token: token.to_string(),
                result,
                reply,
            })
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

impl Batcher {
    /// Creates a new instance (see [`fast::create_instance`]); the request
    /// back when the id is taken, and nothing was written.
    pub async fn create(&self, req: CreateInstance) -> Result<Created, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::Create { req, reply })
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Creates a new instance with its first turn (see
    /// [`fast::Guard::New`]); the commit back when the id is taken, and
    /// nothing was written.
    pub async fn first(&self, commit: OrchestrationCommit) -> Result<FirstDone, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::First { commit, reply })
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Takes an instance for a carried result (see
    /// [`fast::take_for_result`]).
    pub async fn take(
        &self,
        token: &str,
        instance_id: &str,
        take: Take,
    ) -> Result<Option<OrchestrationItem>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::Take {
                token: token.to_string(),
                instance_id: instance_id.to_string(),
                take,
                reply,
            })
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn committer(
    pool: Pool,
    rx: Arc<Mutex<mpsc::UnboundedReceiver<Op>>>,
    counters: Arc<CommitCounters>,
) {
    loop {
        let mut ops = Vec::new();
        {
            let mut rx = rx.lock().await;
            match rx.recv().await {
                Some(op) => ops.push(op),
                None => return,
            }
            while ops.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(op) => ops.push(op),
                    Err(_) => break,
                }
            }
        }
        run_batch(&pool, ops, &counters).await;
    }
}

async fn run_batch(pool: &Pool, ops: Vec<Op>, counters: &CommitCounters) {
    let began = std::time::Instant::now();
    let mut client = match pool.get().await {
        Ok(c) => c,
        Err(e) => {
            let e = crate::connecting(e);
            for op in ops {
                op.fail(match &e {
                    StoreError::Tls(failure) => StoreError::Tls(failure.clone()),
                    other => StoreError::Backend(other.to_string()),
                });
            }
            return;
        }
    };
    if ops.len() == 1 {
        // One step alone: its one statement is its own transaction (the
        // server commits it, durably, as it ends), without the two
        // statements of an explicit transaction around it.
        for op in ops {
            let d = op.run(&client).await;
            counters.transaction(1, began.elapsed());
            op.answer(d);
        }
        return;
    }
    let together = async {
        let tx = client
            .transaction()
            .await
            .map_err(|e| backend("begin", e))?;
        let done = futures::future::join_all(ops.iter().map(|op| op.run(&tx))).await;
        let failed = done.iter().any(|d| match d {
            Done::Turn(r) => r.is_err(),
            Done::Result(r) => r
                .as_ref()
                .is_err_and(|e| !matches!(e, StoreError::LockLost(_))),
            Done::Take(r) => r
                .as_ref()
                .is_err_and(|e| !matches!(e, StoreError::LockLost(_))),
            Done::Create(r) => r.is_err(),
        });
        if failed {
            return Ok(None); // rolled back when `tx` drops
        }
        tx.commit().await.map_err(|e| backend("commit", e))?;
        Ok::<_, StoreError>(Some(done))
    }
    .await;
    match together {
        Ok(Some(done)) => {
            counters.transaction(ops.len(), began.elapsed());
            for (op, d) in ops.into_iter().zip(done) {
                op.answer(d);
            }
        }
        // One step failed (or the transaction did): run each on its own so
        // that only the failing one fails.
        _ => {
            for op in ops {
                let began = std::time::Instant::now();
                let d = op.run(&client).await;
                counters.transaction(1, began.elapsed());
                op.answer(d);
            }
        }
    }
}
