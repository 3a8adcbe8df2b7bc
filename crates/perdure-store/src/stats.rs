//! Commit statistics a store keeps about itself: how many durable
//! transactions it committed (each one fsync on SQLite, one WAL flush on
//! PostgreSQL), how many write requests and durable steps they carried, and
//! the time they took, with histograms of both; and what a store can count
//! of its queues (ready and scheduled messages, due timers, activities).
//! Benchmarks read them to report steps per fsync; metrics export them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A snapshot of a store's counters since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Durable transactions committed.
    pub transactions: u64,
    /// Write requests those transactions carried (fetches under lease,
    /// commits, messages, renewals).
    pub writes: u64,
    /// Durable steps among them: orchestration turns and entity batches
    /// committed, activity results recorded.
    pub steps: u64,
    /// Total time spent committing, from the start of a transaction to its
    /// durable end, in microseconds.
    pub commit_micros: u64,
    /// Transactions by the requests they carried: `batch_buckets[i]` counts
    /// those with at most [`BATCH_BOUNDS`]`[i]` (the last: any number).
    pub batch_buckets: [u64; BATCH_BOUNDS.len() + 1],
    /// Transactions by commit time: `latency_buckets[i]` counts those that
    /// took at most [`LATENCY_BOUNDS_SECONDS`]`[i]` (the last: any time).
    pub latency_buckets: [u64; LATENCY_BOUNDS_SECONDS.len() + 1],
}

/// Upper bounds of the commit batch size histogram (requests).
pub const BATCH_BOUNDS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
/// Upper bounds of the commit latency histogram (seconds).
pub const LATENCY_BOUNDS_SECONDS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0,
];

fn bucket(bounds: &[f64], v: f64) -> usize {
    bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len())
}

impl CommitStats {
    /// Durable steps per committed transaction.
    pub fn steps_per_transaction(&self) -> f64 {
        if self.transactions == 0 {
            0.0
        } else {
            self.steps as f64 / self.transactions as f64
        }
    }

    /// The counters accumulated since `earlier`.
    pub fn since(&self, earlier: &CommitStats) -> CommitStats {
        CommitStats {
            transactions: self.transactions.saturating_sub(earlier.transactions),
            writes: self.writes.saturating_sub(earlier.writes),
            steps: self.steps.saturating_sub(earlier.steps),
            commit_micros: self.commit_micros.saturating_sub(earlier.commit_micros),
            batch_buckets: std::array::from_fn(|i| {
                self.batch_buckets[i].saturating_sub(earlier.batch_buckets[i])
            }),
            latency_buckets: std::array::from_fn(|i| {
                self.latency_buckets[i].saturating_sub(earlier.latency_buckets[i])
            }),
        }
    }
}

/// Lock-free counters behind [`CommitStats`], for stores to embed.
#[derive(Debug, Default)]
pub struct CommitCounters {
    transactions: AtomicU64,
    writes: AtomicU64,
    steps: AtomicU64,
    commit_micros: AtomicU64,
    batch_buckets: [AtomicU64; BATCH_BOUNDS.len() + 1],
    latency_buckets: [AtomicU64; LATENCY_BOUNDS_SECONDS.len() + 1],
}

impl CommitCounters {
    /// One transaction carrying `writes` requests became durable in `took`.
    pub fn transaction(&self, writes: usize, took: Duration) {
        self.transactions.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(writes as u64, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.commit_micros.fetch_add(micros, Ordering::Relaxed);
        self.batch_buckets[bucket(&BATCH_BOUNDS, writes as f64)].fetch_add(1, Ordering::Relaxed);
        self.latency_buckets[bucket(&LATENCY_BOUNDS_SECONDS, took.as_secs_f64())]
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A durable step was committed.
    pub fn step(&self) {
        self.steps.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` durable steps (a turn and the activity results it carried in).
    pub fn steps(&self, n: usize) {
        self.steps.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> CommitStats {
        CommitStats {
            transactions: self.transactions.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            steps: self.steps.load(Ordering::Relaxed),
            commit_micros: self.commit_micros.load(Ordering::Relaxed),
            batch_buckets: std::array::from_fn(|i| self.batch_buckets[i].load(Ordering::Relaxed)),
            latency_buckets: std::array::from_fn(|i| {
                self.latency_buckets[i].load(Ordering::Relaxed)
            }),
        }
    }
}

/// Stores that count their commits (the default counts nothing).
#[async_trait::async_trait]
pub trait StoreStats {
    fn commit_stats(&self) -> CommitStats {
        CommitStats::default()
    }

    /// Counts the store's queues now (a few indexed counts: for a metrics
    /// scrape, not for every step).
    async fn queue_depths(&self) -> Result<QueueDepths, crate::StoreError>;
}

/// How much work waits in a store, counted at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueDepths {
    /// Messages to orchestrations and entities visible now, not yet
    /// consumed by a turn (durable timers among them: `timers_due`).
    pub messages_ready: u64,
    /// Messages that become visible later: durable timers, delayed events
    /// and signals.
    pub messages_scheduled: u64,
    /// Durable timers whose time has come but whose turn has not run yet.
    pub timers_due: u64,
    /// Durable timers waiting for their time.
    pub timers_scheduled: u64,
    /// Activities waiting for a worker.
    pub activities_ready: u64,
    /// Activities under a worker's lease (running).
    pub activities_running: u64,
    /// Activities waiting out a retry delay.
    pub activities_delayed: u64,
}
