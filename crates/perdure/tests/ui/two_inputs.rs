// An activity with two inputs: several values travel as a tuple or struct.
use perdure::{ActivityContext, Failure};

#[perdure::activity]
async fn charge_card(_ctx: ActivityContext, cents: u64, currency: String) -> Result<String, Failure> {
    Ok(format!("charged {cents} {currency}"))
}

fn main() {}
