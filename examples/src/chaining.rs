//! Pattern 1, function chaining: HelloCities calls SayHello three times in
//! sequence; also the async HTTP API pattern's long-running `DoWork`.

use perdure::{OrchestrationContext, Registry};
use std::time::Duration;

pub fn register(r: &mut Registry) {
    r.add_activity("SayHello", |_ctx, city: String| async move {
        Ok(format!("Hello {city}!"))
    });
    r.add_orchestrator("HelloCities", |ctx: OrchestrationContext| async move {
        let mut outputs = Vec::new();
        for city in ["Tokyo", "Seattle", "London"] {
            outputs.push(ctx.call_activity::<String>("SayHello", city).await?);
        }
        Ok(outputs)
    });
    // Pattern 3 (async HTTP APIs): a long-running job a client starts and
    // then polls. It reports progress through its custom status.
    r.add_activity("DoWorkStep", |_ctx, step: u32| async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(step * 10)
    });
    r.add_orchestrator("DoWork", |ctx: OrchestrationContext| async move {
        let steps: u32 = ctx.get_input()?;
        let mut total = 0;
        for step in 1..=steps {
            total += ctx.call_activity::<u32>("DoWorkStep", step).await?;
            ctx.set_custom_status(serde_json::json!({ "completedSteps": step, "of": steps }));
        }
        Ok(total)
    });
}
