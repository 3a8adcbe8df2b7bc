//! The activity backlog: tasks a worker's own turns claimed while every
//! activity slot was busy, waiting here for a slot instead of going back
//! through the store. On a store of one process it holds one task per
//! slot. On a store shared by several processes (a PostgreSQL hub), where
//! a task that goes back through the store costs a take there and a take
//! of its instance by whichever worker runs it, its room follows how long
//! activities take: a slot that frees at once needs no backlog, and a task
//! that would wait longer than the backlog's wait is better left in the
//! store for an idle worker.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The longest a claimed task waits in the backlog for a slot before it is
/// given back to the store for any worker (a write): the backlog keeps a
/// worker's next tasks at hand, not away from idle workers.
pub(crate) const BACKLOG_WAIT: Duration = Duration::from_secs(1);

/// Most tasks waiting per slot, however short the activities.
const MOST_PER_SLOT: u64 = 16;

/// Activities shorter than this free their slot at once: a backlog would
/// only hold their tasks in memory (one waiting task per slot).
const INSTANT: Duration = Duration::from_millis(1);

/// The claimed tasks waiting for a slot, at most [`Backlog::room`].
pub(crate) struct Backlog {
    waiting: Arc<AtomicUsize>,
    slots: usize,
    /// How long a task may wait here ([`BACKLOG_WAIT`], at most a quarter
    /// of the lease).
    wait: Duration,
    /// Whether the room follows how long activities take (a store shared
    /// by processes), or stays one task per slot.
    grows: bool,
    /// A moving average of how long activities take, in microseconds (0:
    /// none has run yet).
    mean_us: AtomicU64,
}

/// A place in the backlog, given back when dropped.
pub(crate) struct BacklogPlace(Arc<AtomicUsize>);

impl Drop for BacklogPlace {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Backlog {
    pub(crate) fn new(slots: usize, lease: Duration, grows: bool) -> Self {
        Backlog {
            waiting: Arc::new(AtomicUsize::new(0)),
            slots: slots.max(1),
            wait: BACKLOG_WAIT.min(lease / 4),
            grows,
            mean_us: AtomicU64::new(0),
        }
    }

    /// How long a task may wait for a slot before it is given back.
    pub(crate) fn wait(&self) -> Duration {
        self.wait
    }

    /// Records how long an activity took.
    pub(crate) fn observe(&self, took: Duration) {
        let x = u64::try_from(took.as_micros())
            .unwrap_or(u64::MAX / 2)
            .max(1);
        // An exponential average over about the last eight activities; a
        // lost update between racing workers only delays it by one.
        let m = self.mean_us.load(Ordering::Relaxed);
        let next = if m == 0 { x } else { m - m / 8 + x / 8 };
        self.mean_us.store(next.max(1), Ordering::Relaxed);
    }

    /// How many tasks may wait: one per slot, or, on a shared store when
    /// activities take a while, as many as the slots start on average
    /// within a quarter of the wait (at most [`MOST_PER_SLOT`] per slot).
    /// A task then waits a fraction of what would send it back, and a
    /// worker whose turns schedule the next call of a short-I/O workflow
    /// runs it itself, without a take through the store and a take of the
    /// instance for its result.
    pub(crate) fn room(&self) -> usize {
        if !self.grows {
            return self.slots;
        }
        let mean = self.mean_us.load(Ordering::Relaxed);
        let instant = u64::try_from(INSTANT.as_micros()).unwrap_or(1000);
        let per_slot = if mean < instant {
            1
        } else {
            let quarter = u64::try_from((self.wait / 4).as_micros()).unwrap_or(u64::MAX);
            (quarter / mean).clamp(1, MOST_PER_SLOT)
        };
        self.slots
            .saturating_mul(usize::try_from(per_slot).unwrap_or(1))
    }

    /// A place, if there is room.
    pub(crate) fn enter(&self) -> Option<BacklogPlace> {
        let room = self.room();
        self.waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < room).then_some(n + 1)
            })
            .ok()
            .map(|_| BacklogPlace(self.waiting.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::Backlog;
    use std::time::Duration;

    const LEASE: Duration = Duration::from_secs(30);

    fn after(slots: usize, took: &[u64]) -> usize {
        let b = Backlog::new(slots, LEASE, true);
        for ms in took {
            b.observe(Duration::from_millis(*ms));
        }
        b.room()
    }

    #[test]
    fn the_backlog_holds_as_many_as_its_room_and_frees_a_place_when_dropped() {
        let backlog = Backlog::new(2, LEASE, true);
        let first = backlog.enter();
        let second = backlog.enter();
        assert!(first.is_some() && second.is_some());
        assert!(backlog.enter().is_none(), "full");
        drop(first);
        assert!(
            backlog.enter().is_some(),
            "a place given back is free again"
        );
    }

    #[test]
    fn room_follows_how_long_activities_take() {
        let cases: &[(&str, &[u64], usize)] = &[
            ("before any activity ran: one per slot", &[], 16),
            ("instant activities: one per slot", &[0, 0, 0], 16),
            (
                "20 ms calls: 12 per slot (250 ms / 20 ms)",
                &[20; 40],
                16 * 12,
            ),
            ("5 ms calls: capped at 16 per slot", &[5; 40], 16 * 16),
            ("100 ms calls: 2 per slot", &[100; 40], 16 * 2),
            ("activities of a second: one per slot", &[1000; 40], 16),
        ];
        for (name, took, room) in cases {
            assert_eq!(after(16, took), *room, "{name}");
        }
    }

    #[test]
    fn on_a_store_of_one_process_the_room_is_one_task_per_slot() {
        let b = Backlog::new(16, LEASE, false);
        for _ in 0..40 {
            b.observe(Duration::from_millis(20));
        }
        assert_eq!(b.room(), 16, "20 ms calls, one process: one per slot");
    }

    #[test]
    fn the_average_follows_a_change_in_how_long_activities_take() {
        let b = Backlog::new(4, LEASE, true);
        for _ in 0..40 {
            b.observe(Duration::from_millis(1000));
        }
        assert_eq!(b.room(), 4, "long activities: one per slot");
        for _ in 0..60 {
            b.observe(Duration::from_millis(20));
        }
        assert_eq!(b.room(), 4 * 12, "then short ones: the room grows");
    }

    #[test]
    fn a_short_lease_shortens_the_wait_and_the_room() {
        let b = Backlog::new(16, Duration::from_millis(400), true);
        assert_eq!(b.wait(), Duration::from_millis(100));
        for _ in 0..40 {
            b.observe(Duration::from_millis(20));
        }
        assert_eq!(b.room(), 16, "25 ms of a quarter wait: one per slot");
    }
}
