//! A monitor built on durable HTTP: `SiteMonitor` checks a URL a number of
//! times on durable timers with `call_http` (each response recorded in
//! history) and reports what it saw.

use perdure::{DurableHttpRequest, Failure, OrchestrationContext, Registry};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;

/// What to check, how often.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SiteCheck {
    pub url: String,
    pub checks: u32,
    pub interval_ms: u64,
}

pub fn register(r: &mut Registry) {
    r.add_orchestrator("SiteMonitor", |ctx: OrchestrationContext| async move {
        let check: SiteCheck = ctx.get_input()?;
        let mut statuses = Vec::new();
        for i in 0..check.checks {
            let request = DurableHttpRequest::get(&check.url).timeout(Duration::from_secs(10));
            let status = match ctx.call_http(request).await {
                Ok(r) => r.status,
                Err(e) => {
                    ctx.log_warn(&format!("check {i} failed: {e}"));
                    0
                }
            };
            statuses.push(status);
            ctx.set_custom_status(json!({ "checked": i + 1 }));
            if i + 1 < check.checks {
                ctx.create_timer_after(Duration::from_millis(check.interval_ms))
                    .await;
            }
        }
        let healthy = statuses.iter().all(|s| (200..300).contains(s));
        Ok::<_, Failure>(json!({ "statuses": statuses, "healthy": healthy }))
    });
}
