//! Retry policies: Durable Functions' retry options plus an optional
//! predicate that decides, from the failure, whether to retry at all.

use perdure_core::{FailureDetails, RetryOptions, RetryOptionsError};
use std::sync::Arc;
use std::time::Duration;

type Predicate = Arc<dyn Fn(&FailureDetails) -> bool + Send + Sync>;

/// How `call_activity_with_retry` and `call_sub_orchestrator_with_retry`
/// retry. The waits between attempts are durable timers.
#[derive(Clone)]
pub struct RetryPolicy {
    pub(crate) options: RetryOptions,
    pub(crate) handle: Option<Predicate>,
}

impl std::fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("options", &self.options)
            .field("has_predicate", &self.handle.is_some())
            .finish()
    }
}

impl RetryPolicy {
    /// Waits `first_retry_interval` (> 0) before the second attempt; at most
    /// `max_number_of_attempts` attempts.
    pub fn new(
        first_retry_interval: Duration,
        max_number_of_attempts: u32,
    ) -> Result<Self, RetryOptionsError> {
        Ok(RetryPolicy {
            options: RetryOptions::new(first_retry_interval, max_number_of_attempts)?,
            handle: None,
        })
    }

    pub fn with_backoff_coefficient(mut self, c: f64) -> Result<Self, RetryOptionsError> {
        self.options = self.options.with_backoff_coefficient(c)?;
        Ok(self)
    }

    pub fn with_max_retry_interval(mut self, max: Duration) -> Self {
        self.options = self.options.with_max_retry_interval(max);
        self
    }

    pub fn with_retry_timeout(mut self, timeout: Duration) -> Self {
        self.options = self.options.with_retry_timeout(timeout);
        self
    }

    /// Retries only failures for which `handle` returns true.
    pub fn with_handle(
        mut self,
        handle: impl Fn(&FailureDetails) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.handle = Some(Arc::new(handle));
        self
    }

    pub fn options(&self) -> &RetryOptions {
        &self.options
    }

    pub(crate) fn should_retry(&self, f: &FailureDetails) -> bool {
        !f.non_retriable && self.handle.as_ref().is_none_or(|h| h(f))
    }
}
