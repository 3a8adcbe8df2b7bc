//! Pattern 4, monitor: poll a job's status on durable timers until it
//! completes or the monitor expires, then alert.

use perdure::{OrchestrationContext, Registry};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MonitorInput {
    pub job_id: String,
    pub polling_interval_secs: u64,
    pub expiry_secs: u64,
    /// The simulated job reports Completed at this check (1-based).
    pub completes_after_checks: u32,
}

pub fn register(r: &mut Registry) {
    // A stand-in for an outside job service: it answers "Running" until the
    // job has been checked `completes_after_checks` times.
    let checks: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    r.add_activity(
        "GetJobStatus",
        move |_ctx, (job_id, done_at): (String, u32)| {
            let checks = checks.clone();
            async move {
                let mut g = checks
                    .lock()
                    .map_err(|_| perdure::Failure::new("Poisoned", "job table"))?;
                let n = g.entry(job_id).or_insert(0);
                *n += 1;
                Ok(if *n >= done_at {
                    "Completed"
                } else {
                    "Running"
                }
                .to_string())
            }
        },
    );
    r.add_activity("SendAlert", |_ctx, job_id: String| async move {
        Ok(format!("alert sent: job {job_id} completed"))
    });
    r.add_orchestrator("JobMonitor", |ctx: OrchestrationContext| async move {
        let input: MonitorInput = ctx.get_input()?;
        let expiry =
            ctx.current_utc_date_time() + chrono::Duration::seconds(input.expiry_secs as i64);
        let mut checks = 0;
        while ctx.current_utc_date_time() < expiry {
            checks += 1;
            let status: String = ctx
                .call_activity(
                    "GetJobStatus",
                    (&input.job_id, input.completes_after_checks),
                )
                .await?;
            ctx.set_custom_status(serde_json::json!({ "checks": checks, "lastStatus": status }));
            if status == "Completed" {
                let alert: String = ctx.call_activity("SendAlert", &input.job_id).await?;
                return Ok(serde_json::json!({ "outcome": alert, "checks": checks }));
            }
            ctx.log_info(&format!(
                "job {} still running; next check in {}s",
                input.job_id, input.polling_interval_secs
            ));
            ctx.create_timer_after(Duration::from_secs(input.polling_interval_secs))
                .await;
        }
        Ok(serde_json::json!({ "outcome": "expired", "checks": checks }))
    });
}
