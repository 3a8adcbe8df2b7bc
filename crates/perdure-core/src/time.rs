//! Durable times: every time the engine records (a timer's fire time, a
//! retry's wait, a scheduled start) lies at or before [`latest`],
//! 9999-12-31T23:59:59.999Z, the last instant every store, JSON time and
//! protobuf `Timestamp` can hold. Times past it, and delays whose sum
//! overflows, are clamped there, never a panic: a timer that far away
//! never fires, which is what its caller asked for.

use crate::Timestamp;
use chrono::TimeZone;
use std::time::Duration;

/// The latest time the engine records.
pub fn latest() -> Timestamp {
    chrono::Utc
        .with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
        .single()
        .map(|t| t + chrono::Duration::milliseconds(999))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

/// `t`, or [`latest`] if it is later.
pub fn clamp(t: Timestamp) -> Timestamp {
    t.min(latest())
}

/// `delay` after `t`, clamped to [`latest`] (also when the sum overflows).
pub fn after(t: Timestamp, delay: Duration) -> Timestamp {
    chrono::Duration::from_std(delay)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .map_or_else(latest, clamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_delays_clamp_to_the_latest_time() {
        let now = chrono::Utc
            .with_ymd_and_hms(2026, 12, 4, 0, 0, 0)
            .single()
            .unwrap();
        for (delay, expected) in [
            (Duration::ZERO, now),
            (Duration::from_secs(60), now + chrono::Duration::seconds(60)),
            (Duration::MAX, latest()),
            (Duration::from_secs(u64::MAX / 2), latest()),
            (Duration::from_secs(400_000 * 365 * 86_400), latest()),
            (Duration::from_secs(8_000 * 365 * 86_400), latest()),
        ] {
            assert_eq!(after(now, delay), expected, "{delay:?}");
        }
        assert_eq!(clamp(chrono::DateTime::<chrono::Utc>::MAX_UTC), latest());
        assert_eq!(latest().to_rfc3339(), "9999-12-31T23:59:59.999+00:00");
    }
}
