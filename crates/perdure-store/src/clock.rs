//! The store's clock. Every lease, visibility time and turn time a store
//! hands out comes from one clock, so a worker whose own clock is off never
//! sees a timer early: [`SystemClock`] for real stores, [`ManualClock`] for
//! simulations and tests that move time by hand.

use perdure_core::Timestamp;
use std::sync::atomic::{AtomicI64, Ordering};

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;

    /// The current time in whole milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }
}

/// The machine's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now()
    }
}

/// A clock that moves only when told to (milliseconds since the epoch).
#[derive(Debug)]
pub struct ManualClock {
    ms: AtomicI64,
}

impl ManualClock {
    /// A clock that reads `start` until advanced.
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            ms: AtomicI64::new(start.timestamp_millis()),
        }
    }

    /// Moves the clock forward by `by` (a negative duration is ignored).
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX / 4);
        self.ms.fetch_add(ms.max(0), Ordering::SeqCst);
    }

    /// Sets the clock to `t`, earlier or later: a wall clock stepped by
    /// hand (tests of what a store does when its clock goes back).
    pub fn set(&self, t: Timestamp) {
        self.ms.store(t.timestamp_millis(), Ordering::SeqCst);
    }

    /// Sets the clock to `t` if that is later than its reading.
    pub fn advance_to(&self, t: Timestamp) {
        self.ms.fetch_max(t.timestamp_millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        chrono::DateTime::from_timestamp_millis(self.ms.load(Ordering::SeqCst))
            .unwrap_or_else(chrono::Utc::now)
    }

    fn now_ms(&self) -> i64 {
        self.ms.load(Ordering::SeqCst)
    }
}
