//! Conformance checks for the store's clock: a turn's time never runs
//! backwards for an instance, whatever the clock does between operations
//! (a wall clock stepped back, or read just before a concurrent create).
//! Stores whose clock a test can set (memory, SQLite) run these; the
//! PostgreSQL store reads the database's clock, which a test cannot move.

use super::{commit_for, create, fetch_until, raised, LEASE};
use crate::*;
use std::time::Duration;

/// The store was built on `clock`. A turn taken after the clock stepped
/// back is given a time no earlier than the instance's creation, and the
/// next turn no earlier than the last commit.
pub async fn check_turn_time_never_before_last_update<S: Store>(s: &S, clock: &ManualClock) {
    let in_two_hours = chrono::Utc::now().timestamp_millis() + 2 * 3_600_000;
    let ahead = chrono::DateTime::from_timestamp_millis(in_two_hours).expect("a valid time");
    clock.set(ahead);
    s.create_instance(create("t")).await.expect("create");
    let created = s
        .get_instance("t")
        .await
        .expect("get")
        .expect("exists")
        .created_at;
    clock.set(ahead - chrono::Duration::hours(1));
    let item = fetch_until(s, LEASE, Duration::from_secs(5))
        .await
        .expect("the start is visible by the stepped-back clock");
    assert!(
        created >= ahead,
        "an instance's creation time ({created}) is the store's clock ({ahead})"
    );
    assert!(
        item.now >= created,
        "a turn's time ({}) is not before the instance was created ({created})",
        item.now
    );
    let mut k = commit_for(&item, vec![]);
    k.now = item.now + chrono::Duration::minutes(10);
    let committed = k.now;
    s.commit_orchestration(k).await.expect("commit");
    s.send_message(raised("t", "go", Duration::ZERO))
        .await
        .expect("raise");
    let item = fetch_until(s, LEASE, Duration::from_secs(5))
        .await
        .expect("the event is visible");
    assert!(
        item.now >= committed,
        "a turn's time ({}) is not before the instance's last commit ({committed})",
        item.now
    );
}
