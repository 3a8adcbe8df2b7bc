//! Commit statistics a store keeps about itself: how many durable
//! transactions it committed (each one fsync on SQLite, one WAL flush on
//! PostgreSQL), how many write requests and durable steps they carried, and
//! the time they took. Benchmarks read them to report steps per fsync;
//! metrics export them.

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
}

impl CommitCounters {
    /// One transaction carrying `writes` requests became durable in `took`.
    pub fn transaction(&self, writes: usize, took: Duration) {
        self.transactions.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(writes as u64, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.commit_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// A durable step was committed.
    pub fn step(&self) {
        self.steps.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> CommitStats {
        CommitStats {
            transactions: self.transactions.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            steps: self.steps.load(Ordering::Relaxed),
            commit_micros: self.commit_micros.load(Ordering::Relaxed),
        }
    }
}

/// Stores that count their commits (the default counts nothing).
pub trait StoreStats {
    fn commit_stats(&self) -> CommitStats {
        CommitStats::default()
    }
}
