//! The client's history transfer: export an instance's status and history
//! as one document, and import such a document as an instance of this
//! store (installed by the instance's first turn; see
//! `dispatch::import`).

use super::Client;
use crate::error::ClientError;
use crate::export::HistoryExport;
use chrono::Utc;
use perdure_core::{validate_instance_id, EventKind, HistoryEvent};
use perdure_store::CreateInstance;

impl Client {
    /// The export of instance `instance_id`: its status and the history of
    /// its current execution ([`HistoryExport::to_json`] writes the
    /// document `perdure history ID --json` prints).
    pub async fn export_history(&self, instance_id: &str) -> Result<HistoryExport, ClientError> {
        let st = self
            .get_status(instance_id, true)
            .await?
            .ok_or_else(|| ClientError::NotFound(instance_id.to_string()))?;
        Ok(HistoryExport::from_status(&st))
    }

    /// Imports `export` as instance `as_id` (the exported id when `None`),
    /// which must not exist in this store. The instance's first turn
    /// records the history as exported, takes the exported status, and,
    /// when the instance is still open, queues its activities and timers
    /// without a result again, so that the code of this build runs it on
    /// from there. Returns the instance id.
    ///
    /// ```
    /// use perdure::testing::TestEnv;
    /// use perdure::{OrchestrationContext, Registry};
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), perdure::testing::TestError> {
    /// let code = || {
    ///     let mut r = Registry::new();
    ///     r.add_orchestrator("Nightly", |ctx: OrchestrationContext| async move {
    ///         ctx.create_timer_after(Duration::from_secs(8 * 3600)).await;
    ///         Ok("done")
    ///     });
    ///     r
    /// };
    /// let production = TestEnv::new(code());
    /// let id = production.start("Nightly", ()).await?;
    /// let export = production.client().export_history(&id).await?; // waiting on its timer
    ///
    /// let laptop = TestEnv::new(code());
    /// laptop.client().import_history(&export, Some("copy")).await?;
    /// laptop.advance(Duration::from_secs(8 * 3600)).await?; // the timer was queued again
    /// assert_eq!(laptop.output::<String>("copy").await?, "done");
    /// # Ok(()) }
    /// ```
    pub async fn import_history(
        &self,
        export: &HistoryExport,
        as_id: Option<&str>,
    ) -> Result<String, ClientError> {
        let id = as_id.unwrap_or(&export.instance_id).to_string();
        validate_instance_id(&id)?;
        let Some(exec) = crate::dispatch::ExecutionInfo::from_history(&export.events) else {
            return Err(ClientError::InvalidArgument(format!(
                "the export of `{}` holds no ExecutionStarted event",
                export.instance_id
            )));
        };
        if export.events.iter().any(|e| {
            matches!(
                e.kind,
                EventKind::HistoryImported { .. } | EventKind::ExecutionStarted { .. }
            ) && !matches!(&e.kind, EventKind::ExecutionStarted { execution_id, .. } if *execution_id == exec.execution_id)
        }) {
            return Err(ClientError::InvalidArgument(format!(
                "the export of `{}` holds more than one execution",
                export.instance_id
            )));
        }
        if self.store.get_instance(&id).await?.is_some() {
            return Err(ClientError::InvalidArgument(format!(
                "instance `{id}` already exists in this store; import it under another id"
            )));
        }
        let now = Utc::now();
        let start_event = HistoryEvent::new(
            now,
            EventKind::HistoryImported {
                status: export.runtime_status,
                output: export.output.clone(),
                failure: export.failure.clone(),
                custom_status: export.custom_status.clone(),
                events: export.events.clone(),
            },
        );
        self.store
            .create_instance(CreateInstance {
                instance_id: id.clone(),
                name: exec.name.clone(),
                version: exec.version.clone(),
                input: exec.input.clone(),
                execution_id: exec.execution_id.clone(),
                start_event,
                visible_at: now,
            })
            .await?;
        Ok(id)
    }
}
