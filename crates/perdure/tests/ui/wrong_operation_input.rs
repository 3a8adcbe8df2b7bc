// A typed entity operation called with an input of another type.
use perdure::{Entity, Failure, OrchestrationContext};

pub struct Counter;
impl Entity for Counter {
    const NAME: &'static str = "Counter";
    type State = i64;
}

#[perdure::entity_operation(Counter)]
fn add(count: &mut i64, by: i64) -> Result<i64, Failure> {
    *count += by;
    Ok(*count)
}

#[perdure::orchestrator]
async fn bump(ctx: OrchestrationContext) -> Result<i64, Failure> {
    Ok(ctx.call_operation(Add, "k", &"one").await?)
}

fn main() {}
