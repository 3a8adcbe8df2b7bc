//! Pattern 5, human interaction: request approval, then race the
//! ApprovalEvent against a durable timer (72 hours by default); escalate if
//! the timer wins.

use perdure::future::{select, Either};
use perdure::{OrchestrationContext, Registry};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApprovalInput {
    pub request: String,
    /// How long to wait for the approval before escalating (72 hours in the
    /// seed document).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_timeout() -> u64 {
    72 * 3600
}

pub fn register(r: &mut Registry) {
    r.add_activity("RequestApproval", |_ctx, request: String| async move {
        Ok(format!("approval requested for {request}"))
    });
    r.add_activity("ProcessApproval", |_ctx, approved: bool| async move {
        Ok(if approved {
            "approved and processed"
        } else {
            "rejected"
        }
        .to_string())
    });
    r.add_activity("Escalate", |_ctx, request: String| async move {
        Ok(format!("escalated {request} to the manager's manager"))
    });
    r.add_orchestrator("ApprovalWorkflow", |ctx: OrchestrationContext| async move {
        let input: ApprovalInput = ctx.get_input()?;
        ctx.call_activity::<String>("RequestApproval", &input.request)
            .await?;
        // What the instance waits for, for whoever watches its status.
        ctx.set_custom_status(serde_json::json!({ "awaitingApprovalOf": input.request }));
        let timeout = ctx.create_timer_after(Duration::from_secs(input.timeout_secs));
        let approval = ctx.wait_for_external_event::<bool>("ApprovalEvent");
        match select(approval, timeout).await {
            Either::Left((approved, timeout)) => {
                timeout.cancel();
                let result: String = ctx.call_activity("ProcessApproval", approved?).await?;
                Ok(result)
            }
            Either::Right(((), _approval)) => {
                let result: String = ctx.call_activity("Escalate", &input.request).await?;
                Ok(result)
            }
        }
    });
}
