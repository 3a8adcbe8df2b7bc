//! Runtime status of an orchestration instance, numbered as in Durable Task.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The runtime status of an orchestration instance. The numeric values are
/// Durable Task's `OrchestrationStatus` numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RuntimeStatus {
    Running = 0,
    Completed = 1,
    ContinuedAsNew = 2,
    Failed = 3,
    Canceled = 4,
    Terminated = 5,
    Pending = 6,
    Suspended = 7,
}

impl RuntimeStatus {
    /// All statuses, in Durable Task's numeric order.
    pub const ALL: [RuntimeStatus; 8] = [
        RuntimeStatus::Running,
        RuntimeStatus::Completed,
        RuntimeStatus::ContinuedAsNew,
        RuntimeStatus::Failed,
        RuntimeStatus::Canceled,
        RuntimeStatus::Terminated,
        RuntimeStatus::Pending,
        RuntimeStatus::Suspended,
    ];

    /// Durable Task's numeric code for this status.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The status with Durable Task's numeric `code`, if any.
    pub fn from_code(code: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    /// Completed, Failed, Canceled and Terminated instances do no more work.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RuntimeStatus::Completed
                | RuntimeStatus::Failed
                | RuntimeStatus::Canceled
                | RuntimeStatus::Terminated
        )
    }

    /// The name used in JSON and on the command line (`Running`, `Completed`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeStatus::Running => "Running",
            RuntimeStatus::Completed => "Completed",
            RuntimeStatus::ContinuedAsNew => "ContinuedAsNew",
            RuntimeStatus::Failed => "Failed",
            RuntimeStatus::Canceled => "Canceled",
            RuntimeStatus::Terminated => "Terminated",
            RuntimeStatus::Pending => "Pending",
            RuntimeStatus::Suspended => "Suspended",
        }
    }
}

impl fmt::Display for RuntimeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is not one of the eight runtime statuses.
#[derive(Debug, thiserror::Error)]
#[error("unknown runtime status `{0}` (expected one of Running, Completed, ContinuedAsNew, Failed, Canceled, Terminated, Pending, Suspended)")]
pub struct UnknownStatus(pub String);

impl FromStr for RuntimeStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_terminality() {
        for s in RuntimeStatus::ALL {
            assert_eq!(RuntimeStatus::from_code(s.code()), Some(s));
            assert_eq!(s.as_str().parse::<RuntimeStatus>().unwrap(), s);
        }
        assert_eq!(RuntimeStatus::Pending.code(), 6);
        assert!(RuntimeStatus::Terminated.is_terminal());
        assert!(!RuntimeStatus::ContinuedAsNew.is_terminal());
        assert!("bogus".parse::<RuntimeStatus>().is_err());
    }
}
