// A call to an activity that was never declared (a typo in its name).
use perdure::{ActivityContext, Failure, OrchestrationContext};

#[perdure::activity]
async fn charge_card(_ctx: ActivityContext, cents: u64) -> Result<String, Failure> {
    Ok(format!("charged {cents}"))
}

#[perdure::orchestrator]
async fn checkout(ctx: OrchestrationContext) -> Result<String, Failure> {
    Ok(ctx.call(ChargeCrad, &1200).await?)
}

fn main() {}
