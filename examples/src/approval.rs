//! Pattern 5, human interaction: request approval, then race the
//! ApprovalEvent against a durable timer (72 hours by default); escalate if
//! the timer wins. Declared in the typed form.

use perdure::future::{select, Either};
use perdure::{ActivityContext, Failure, OrchestrationContext, Registry};
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

#[perdure::activity]
pub async fn request_approval(_ctx: ActivityContext, request: String) -> Result<String, Failure> {
    Ok(format!("approval requested for {request}"))
}

#[perdure::activity]
pub async fn process_approval(_ctx: ActivityContext, approved: bool) -> Result<String, Failure> {
    Ok(if approved {
        "approved and processed"
    } else {
        "rejected"
    }
    .to_string())
}

#[perdure::activity]
pub async fn escalate(_ctx: ActivityContext, request: String) -> Result<String, Failure> {
    Ok(format!("escalated {request} to the manager's manager"))
}

/// `ApprovalWorkflow`: asks, then waits for the approver or the timeout.
#[perdure::orchestrator]
pub async fn approval_workflow(
    ctx: OrchestrationContext,
    input: ApprovalInput,
) -> Result<String, Failure> {
    ctx.call(RequestApproval, &input.request).await?;
    // What the instance waits for, for whoever watches its status.
    ctx.set_custom_status(serde_json::json!({ "awaitingApprovalOf": input.request }));
    let timeout = ctx.create_timer_after(Duration::from_secs(input.timeout_secs));
    let approval = ctx.wait_for_external_event::<bool>("ApprovalEvent");
    match select(approval, timeout).await {
        Either::Left((approved, timeout)) => {
            timeout.cancel();
            Ok(ctx.call(ProcessApproval, &approved?).await?)
        }
        Either::Right(((), _approval)) => Ok(ctx.call(Escalate, &input.request).await?),
    }
}

pub fn register(r: &mut Registry) {
    r.register(RequestApproval)
        .register(ProcessApproval)
        .register(Escalate)
        .register(ApprovalWorkflow);
}
