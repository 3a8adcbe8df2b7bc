//! `perdure history ID --json` (the export document), `perdure import
//! FILE` and `perdure repair ID`: on a store, or through a running server
//! (its `/export`, `/import` and `/repair` routes).

use crate::backend::{enc, Backend};
use anyhow::{anyhow, bail, Context, Result};
use perdure::export::HistoryExport;
use perdure::{FailureDetails, Repair, RepairRequest};
use serde_json::{json, Value};

/// What `perdure repair` does to the step.
pub enum RepairAction {
    /// Complete it with this result (JSON text).
    Complete(String),
    /// Fail it with this message and error type.
    Fail {
        message: String,
        error_type: String,
    },
    SkipTimer,
}

impl Backend {
    /// The instance's export document.
    pub async fn export(&self, id: &str) -> Result<HistoryExport> {
        match self {
            Backend::Local(c) => Ok(c.export_history(id).await?),
            Backend::Remote { .. } => {
                let path = format!("/instances/{}/export", enc(id));
                let (_, _, body) = self.send(self.http()?.get(self.url(&path))).await?;
                HistoryExport::from_json(&body.to_string())
                    .context("the server's export is not a history export")
            }
        }
    }

    /// Imports an export document; returns the new instance's id.
    pub async fn import(&self, export: &HistoryExport, as_id: Option<&str>) -> Result<String> {
        match self {
            Backend::Local(c) => Ok(c.import_history(export, as_id).await?),
            Backend::Remote { .. } => {
                let path = match as_id {
                    Some(id) => format!("/import?instanceId={}", enc(id)),
                    None => "/import".to_string(),
                };
                let (_, _, body) = self
                    .send(self.http()?.post(self.url(&path)).json(export))
                    .await?;
                body["id"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| anyhow!("the server's answer has no id"))
            }
        }
    }

    /// The steps instance `id` still waits on, as the server lists them.
    pub async fn pending(&self, id: &str) -> Result<Vec<Value>> {
        match self {
            Backend::Local(c) => Ok(c
                .pending_steps(id)
                .await?
                .iter()
                .map(|s| {
                    json!({ "stepId": s.step_id, "kind": s.step.as_str(), "name": s.name,
                            "fireAt": s.fire_at, "scheduledAt": s.scheduled_at })
                })
                .collect()),
            Backend::Remote { .. } => {
                let path = format!("/instances/{}/steps", enc(id));
                let (_, _, body) = self.send(self.http()?.get(self.url(&path))).await?;
                Ok(body["steps"].as_array().cloned().unwrap_or_default())
            }
        }
    }

    /// Queues a repair of step `step_id` of instance `id`.
    pub async fn repair(
        &self,
        id: &str,
        step_id: i64,
        action: RepairAction,
        by: &str,
        reason: &str,
    ) -> Result<()> {
        match self {
            Backend::Local(c) => {
                let repair = match action {
                    RepairAction::Complete(text) => {
                        serde_json::from_str::<Value>(&text)
                            .with_context(|| format!("--complete is not valid JSON: {text}"))?;
                        Repair::Complete {
                            result: Some(text.into()),
                        }
                    }
                    RepairAction::Fail {
                        message,
                        error_type,
                    } => Repair::Fail {
                        failure: FailureDetails::new(error_type, message).non_retriable(),
                    },
                    RepairAction::SkipTimer => Repair::SkipTimer,
                };
                let req = RepairRequest {
                    step_id,
                    repair,
                    by: by.to_string(),
                    reason: reason.to_string(),
                };
                Ok(c.repair(id, req).await?)
            }
            Backend::Remote { .. } => {
                let mut body = json!({ "stepId": step_id, "by": by, "reason": reason });
                match action {
                    RepairAction::Complete(text) => {
                        body["action"] = json!("complete");
                        body["result"] = serde_json::from_str(&text)
                            .with_context(|| format!("--complete is not valid JSON: {text}"))?;
                    }
                    RepairAction::Fail {
                        message,
                        error_type,
                    } => {
                        body["action"] = json!("fail");
                        body["errorType"] = json!(error_type);
                        body["errorMessage"] = json!(message);
                    }
                    RepairAction::SkipTimer => body["action"] = json!("skipTimer"),
                }
                let path = format!("/instances/{}/repair", enc(id));
                self.send(self.http()?.post(self.url(&path)).json(&body))
                    .await
                    .map(|_| ())
            }
        }
    }
}

/// The pending steps as lines of text, with how to repair each.
pub fn pending_text(id: &str, steps: &[Value]) -> String {
    if steps.is_empty() {
        return format!("{id} waits on no activity, sub-orchestration or timer\n");
    }
    let mut out = format!("{id} waits on:\n");
    for s in steps {
        let step = &s["stepId"];
        let line = match s["kind"].as_str() {
            Some("timer") => format!(
                "  step {step}: timer due {} (--skip-timer)",
                s["fireAt"].as_str().unwrap_or("?")
            ),
            kind => format!(
                "  step {step}: {} {} since {} (--complete JSON | --fail MESSAGE)",
                kind.unwrap_or("?"),
                s["name"].as_str().unwrap_or("?"),
                s["scheduledAt"].as_str().unwrap_or("?")
            ),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Reads an export file (`-` for standard input).
pub fn read_export(file: &str) -> Result<HistoryExport> {
    let text = if file == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading standard input")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?
    };
    HistoryExport::from_json(&text).with_context(|| format!("{file} is not a history export"))
}

/// `perdure replay --file F...`: each export replayed against this build's
/// orchestrations (the samples); exits 1 on any mismatch.
pub fn replay_files(files: &[String]) -> Result<()> {
    // The samples' registry wants a client; nothing is started through it.
    let client = perdure::Client::new(std::sync::Arc::new(perdure_store::MemoryStore::new()));
    let replayer = perdure::replay::Replayer::new(perdure_examples::registry(client));
    let mut bad = 0;
    for f in files {
        match replayer.replay_file(f) {
            Ok(()) => println!("{f}: replays cleanly"),
            Err(e) => {
                bad += 1;
                println!("{e}");
            }
        }
    }
    if bad > 0 {
        bail!(
            "{bad} of {} histories do not replay against this build",
            files.len()
        );
    }
    Ok(())
}
