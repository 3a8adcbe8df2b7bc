//! Retry arithmetic for `call_activity_with_retry` and
//! `call_sub_orchestrator_with_retry`, with Durable Functions' options.

use std::time::Duration;

/// Durable Functions' retry options. The waits between attempts are durable
/// timers scheduled by the orchestration, so they survive restarts.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryOptions {
    first_retry_interval: Duration,
    max_number_of_attempts: u32,
    backoff_coefficient: f64,
    max_retry_interval: Option<Duration>,
    retry_timeout: Option<Duration>,
}

/// Retry options that cannot work.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RetryOptionsError {
    #[error("first retry interval must be greater than zero")]
    ZeroFirstInterval,
    #[error("max number of attempts must be at least 1")]
    ZeroAttempts,
    #[error("backoff coefficient must be a finite number >= 1.0, got {0}")]
    BadBackoff(f64),
}

impl RetryOptions {
    /// `first_retry_interval` (> 0) before the second attempt, at most
    /// `max_number_of_attempts` attempts in all (>= 1). Backoff coefficient 1.
    pub fn new(
        first_retry_interval: Duration,
        max_number_of_attempts: u32,
    ) -> Result<Self, RetryOptionsError> {
        if first_retry_interval.is_zero() {
            return Err(RetryOptionsError::ZeroFirstInterval);
        }
        if max_number_of_attempts == 0 {
            return Err(RetryOptionsError::ZeroAttempts);
        }
        Ok(RetryOptions {
            first_retry_interval,
            max_number_of_attempts,
            backoff_coefficient: 1.0,
            max_retry_interval: None,
            retry_timeout: None,
        })
    }

    /// Each wait is the previous one times `coefficient` (>= 1.0).
    pub fn with_backoff_coefficient(mut self, coefficient: f64) -> Result<Self, RetryOptionsError> {
        if !coefficient.is_finite() || coefficient < 1.0 {
            return Err(RetryOptionsError::BadBackoff(coefficient));
        }
        self.backoff_coefficient = coefficient;
        Ok(self)
    }

    /// No wait is longer than `max`.
    pub fn with_max_retry_interval(mut self, max: Duration) -> Self {
        self.max_retry_interval = Some(max);
        self
    }

    /// No retry starts later than `timeout` after the first attempt started.
    pub fn with_retry_timeout(mut self, timeout: Duration) -> Self {
        self.retry_timeout = Some(timeout);
        self
    }

    pub fn first_retry_interval(&self) -> Duration {
        self.first_retry_interval
    }
    pub fn max_number_of_attempts(&self) -> u32 {
        self.max_number_of_attempts
    }
    pub fn backoff_coefficient(&self) -> f64 {
        self.backoff_coefficient
    }
    pub fn max_retry_interval(&self) -> Option<Duration> {
        self.max_retry_interval
    }
    pub fn retry_timeout(&self) -> Option<Duration> {
        self.retry_timeout
    }

    /// The wait before the next attempt, after attempt number `attempt`
    /// (1-based) failed at `elapsed` since the first attempt started; `None`
    /// when no attempt is left or the retry timeout would be passed.
    pub fn next_delay(&self, attempt: u32, elapsed: Duration) -> Option<Duration> {
        if attempt >= self.max_number_of_attempts {
            return None;
        }
        let exp = attempt.saturating_sub(1).min(1024) as i32;
        let secs = self.first_retry_interval.as_secs_f64() * self.backoff_coefficient.powi(exp);
        let mut delay = if secs.is_finite() && secs < 1.0e12 {
            Duration::from_secs_f64(secs)
        } else {
            Duration::from_secs(1_000_000_000_000)
        };
        if let Some(max) = self.max_retry_interval {
            delay = delay.min(max);
        }
        if let Some(timeout) = self.retry_timeout {
            if elapsed + delay > timeout {
                return None;
            }
        }
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_caps_and_timeouts() {
        assert_eq!(
            RetryOptions::new(Duration::ZERO, 3),
            Err(RetryOptionsError::ZeroFirstInterval)
        );
        assert_eq!(
            RetryOptions::new(Duration::from_secs(1), 0),
            Err(RetryOptionsError::ZeroAttempts)
        );
        let r = RetryOptions::new(Duration::from_secs(1), 5)
            .unwrap()
            .with_backoff_coefficient(2.0)
            .unwrap()
            .with_max_retry_interval(Duration::from_secs(5));
        let d: Vec<_> = (1..=5).map(|a| r.next_delay(a, Duration::ZERO)).collect();
        assert_eq!(
            d,
            vec![
                Some(Duration::from_secs(1)),
                Some(Duration::from_secs(2)),
                Some(Duration::from_secs(4)),
                Some(Duration::from_secs(5)),
                None
            ]
        );
        let t = r.clone().with_retry_timeout(Duration::from_secs(3));
        assert_eq!(
            t.next_delay(1, Duration::from_secs(1)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(t.next_delay(2, Duration::from_secs(2)), None);
        assert!(r.with_backoff_coefficient(0.5).is_err());
    }
}
