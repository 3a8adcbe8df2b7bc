//! Pattern 1, function chaining: HelloCities calls SayHello three times in
//! sequence; also the async HTTP API pattern's long-running `DoWork`.
//! Declared in the typed form: each function is its activity or
//! orchestrator, and every call is checked by the compiler.

use perdure::{ActivityContext, Failure, OrchestrationContext, Registry};
use std::time::Duration;

/// `SayHello`: a greeting for a city.
#[perdure::activity]
pub async fn say_hello(_ctx: ActivityContext, city: String) -> Result<String, Failure> {
    Ok(format!("Hello {city}!"))
}

/// `HelloCities`: three greetings, one after the other.
#[perdure::orchestrator]
pub async fn hello_cities(ctx: OrchestrationContext) -> Result<Vec<String>, Failure> {
    let mut outputs = Vec::new();
    for city in ["Tokyo", "Seattle", "London"] {
        outputs.push(ctx.call(SayHello, &city.to_string()).await?);
    }
    Ok(outputs)
}

/// Pattern 3 (async HTTP APIs): one step of a long-running job a client
/// starts and then polls.
#[perdure::activity]
pub async fn do_work_step(_ctx: ActivityContext, step: u32) -> Result<u32, Failure> {
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(step * 10)
}

/// `DoWork`: `steps` steps, its progress in its custom status.
#[perdure::orchestrator]
pub async fn do_work(ctx: OrchestrationContext, steps: u32) -> Result<u32, Failure> {
    let mut total = 0;
    for step in 1..=steps {
        total += ctx.call(DoWorkStep, &step).await?;
        ctx.set_custom_status(serde_json::json!({ "completedSteps": step, "of": steps }));
    }
    Ok(total)
}

pub fn register(r: &mut Registry) {
    r.register(SayHello)
        .register(HelloCities)
        .register(DoWorkStep)
        .register(DoWork);
}
