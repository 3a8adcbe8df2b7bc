//! Exported histories: one instance's status and the history of its
//! current execution as one JSON document (`perdure history ID --json`),
//! read back by `perdure import FILE` and by the replay checker, so that
//! a production history can be replayed against a branch on a laptop.
//! The format is documented in `docs/history-format.md`.
//!
//! ```
//! use perdure::export::HistoryExport;
//! let text = r#"{"format":"perdure.history","formatVersion":1,"instanceId":"order-1",
//!   "name":"Checkout","runtimeStatus":"Running","createdTime":"2026-12-01T10:00:00Z",
//!   "lastUpdatedTime":"2026-12-01T10:00:01Z","events":[
//!   {"event_id":-1,"timestamp":"2026-12-01T10:00:00Z","type":"OrchestratorStarted"},
//!   {"event_id":-1,"timestamp":"2026-12-01T10:00:00Z","type":"ExecutionStarted",
//!    "name":"Checkout","input":"{\"sku\":\"A1\"}","execution_id":"e1"}]}"#;
//! let export = HistoryExport::from_json(text).unwrap();
//! assert_eq!(export.name, "Checkout");
//! assert_eq!(export.events.len(), 2);
//! assert!(HistoryExport::from_json(r#"{"format":"other"}"#).is_err());
//! ```

use crate::client::OrchestrationStatus;
use chrono::{DateTime, Utc};
use perdure_core::{FailureDetails, HistoryEvent, Payload, RuntimeStatus, Tags};
use serde::{Deserialize, Serialize};

/// The `format` field of every export.
pub const FORMAT: &str = "perdure.history";
/// The version of the format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Why a document is not an export this build reads.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("not a Perdure history export: {0}")]
    Malformed(String),
    #[error("a Perdure history export of format version {found}; this build reads version {FORMAT_VERSION}")]
    Version { found: u32 },
    #[error("the export of `{0}` holds no ExecutionStarted event")]
    NotStarted(String),
}

/// One instance's exported status and history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryExport {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`] when written by this build.
    pub format_version: u32,
    pub instance_id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub runtime_status: RuntimeStatus,
    pub created_time: DateTime<Utc>,
    pub last_updated_time: DateTime<Utc>,
    /// Payloads are JSON text, kept as they were stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Payload,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Payload,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_status: Payload,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureDetails>,
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
    /// The current execution's history, in order, in the stored event
    /// encoding (see `docs/history-format.md`).
    pub events: Vec<HistoryEvent>,
}

impl HistoryExport {
    /// The export of a status read with its history.
    pub fn from_status(st: &OrchestrationStatus) -> HistoryExport {
        HistoryExport {
            format: FORMAT.to_string(),
            format_version: FORMAT_VERSION,
            instance_id: st.instance_id.clone(),
            name: st.name.clone(),
            version: st.version.clone(),
            runtime_status: st.runtime_status,
            created_time: st.created_time,
            last_updated_time: st.last_updated_time,
            input: st.input.clone(),
            output: st.output.clone(),
            custom_status: st.custom_status.clone(),
            failure: st.failure.clone(),
            tags: st.tags.clone(),
            events: st.history.clone().unwrap_or_default(),
        }
    }

    /// The document as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        // A struct of strings, numbers and maps always serializes.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads a document, checking its format and version.
    pub fn from_json(text: &str) -> Result<HistoryExport, ExportError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Head {
            format: Option<String>,
            format_version: Option<u32>,
        }
        let head: Head =
            serde_json::from_str(text).map_err(|e| ExportError::Malformed(e.to_string()))?;
        if head.format.as_deref() != Some(FORMAT) {
            return Err(ExportError::Malformed(format!(
                "its \"format\" is {:?}, not \"{FORMAT}\"",
                head.format
            )));
        }
        match head.format_version {
            Some(FORMAT_VERSION) => {}
            Some(found) => return Err(ExportError::Version { found }),
            None => return Err(ExportError::Malformed("no \"formatVersion\"".into())),
        }
        let export: HistoryExport =
            serde_json::from_str(text).map_err(|e| ExportError::Malformed(e.to_string()))?;
        if !export
            .events
            .iter()
            .any(|e| matches!(e.kind, perdure_core::EventKind::ExecutionStarted { .. }))
        {
            return Err(ExportError::NotStarted(export.instance_id));
        }
        Ok(export)
    }
}
