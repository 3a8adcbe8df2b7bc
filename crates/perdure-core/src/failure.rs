//! Failure details: what is recorded when an activity, a sub-orchestration or
//! an orchestration fails.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The recorded description of a failure: the error's type, its message and,
/// when known, a stack trace and the failure that caused it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureDetails {
    /// The error's type name, e.g. `InsufficientFunds` or `panic`.
    pub error_type: String,
    /// The error's message.
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_trace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner: Option<Box<FailureDetails>>,
    /// A failure that retry policies must not retry.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub non_retriable: bool,
}

impl FailureDetails {
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        FailureDetails {
            error_type: error_type.into(),
            message: message.into(),
            stack_trace: None,
            inner: None,
            non_retriable: false,
        }
    }

    /// Marks this failure as not worth retrying.
    pub fn non_retriable(mut self) -> Self {
        self.non_retriable = true;
        self
    }

    /// Attaches the failure that caused this one.
    pub fn caused_by(mut self, inner: FailureDetails) -> Self {
        self.inner = Some(Box::new(inner));
        self
    }

    /// True if this failure or one of its causes has the given error type.
    pub fn is_caused_by(&self, error_type: &str) -> bool {
        let mut cur = Some(self);
        while let Some(f) = cur {
            if f.error_type == error_type {
                return true;
            }
            cur = f.inner.as_deref();
        }
        false
    }
}

impl fmt::Display for FailureDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)?;
        if let Some(inner) = &self.inner {
            write!(f, " (caused by {inner})")?;
        }
        Ok(())
    }
}
