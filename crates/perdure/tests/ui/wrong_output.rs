// A typed activity's result read as another type.
use perdure::{ActivityContext, Failure, OrchestrationContext};

#[perdure::activity]
async fn charge_card(_ctx: ActivityContext, cents: u64) -> Result<String, Failure> {
    Ok(format!("charged {cents}"))
}

#[perdure::orchestrator]
async fn checkout(ctx: OrchestrationContext) -> Result<u64, Failure> {
    let receipt: u64 = ctx.call(ChargeCard, &1200).await?;
    Ok(receipt)
}

fn main() {}
