// A typed activity called with an input of another type.
use perdure::{ActivityContext, Failure, OrchestrationContext};

#[perdure::activity]
async fn charge_card(_ctx: ActivityContext, cents: u64) -> Result<String, Failure> {
    Ok(format!("charged {cents}"))
}

#[perdure::orchestrator]
async fn checkout(ctx: OrchestrationContext) -> Result<String, Failure> {
    Ok(ctx.call(ChargeCard, &"twelve dollars").await?)
}

fn main() {}
