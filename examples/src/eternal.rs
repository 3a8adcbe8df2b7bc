//! Eternal orchestrations: PeriodicCleanup does a round of work, sleeps on a
//! durable timer and continues as new, so its history never grows. It stops
//! after `rounds` so the demo ends; without a limit it runs forever.

use perdure::{OrchestrationContext, Registry};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CleanupState {
    pub round: u32,
    pub rounds: u32,
    pub interval_ms: u64,
    pub cleaned: u64,
}

pub fn register(r: &mut Registry) {
    r.add_activity("Cleanup", |_ctx, round: u32| async move {
        Ok(u64::from(round) * 3)
    });
    r.add_orchestrator("PeriodicCleanup", |ctx: OrchestrationContext| async move {
        let mut s: CleanupState = ctx.get_input()?;
        s.cleaned += ctx.call_activity::<u64>("Cleanup", s.round).await?;
        s.round += 1;
        ctx.set_custom_status(&s);
        if s.round >= s.rounds {
            return Ok(s);
        }
        ctx.create_timer_after(Duration::from_millis(s.interval_ms))
            .await;
        ctx.continue_as_new(&s);
        Ok(s)
    });
}
