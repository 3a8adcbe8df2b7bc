// The attribute on a function that is not async.
use perdure::{ActivityContext, Failure};

#[perdure::activity]
fn charge_card(_ctx: ActivityContext, cents: u64) -> Result<String, Failure> {
    Ok(format!("charged {cents}"))
}

fn main() {}
