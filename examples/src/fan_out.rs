//! Pattern 2, fan-out/fan-in: F1 makes a batch of work, F2 runs on every item
//! in parallel, the results are summed and F3 records the sum.

use perdure::{OrchestrationContext, Registry};

pub fn register(r: &mut Registry) {
    r.add_activity("F1", |_ctx, n: u64| async move {
        Ok((1..=n).collect::<Vec<u64>>())
    });
    r.add_activity("F2", |_ctx, x: u64| async move { Ok(x * x) });
    r.add_activity("F3", |_ctx, sum: u64| async move {
        Ok(format!("stored total {sum}"))
    });
    r.add_orchestrator("FanOutFanIn", |ctx: OrchestrationContext| async move {
        let n: u64 = ctx.get_input()?;
        let batch: Vec<u64> = ctx.call_activity("F1", n).await?;
        let tasks = batch.iter().map(|x| ctx.call_activity::<u64>("F2", x));
        let results = ctx.when_all(tasks).await;
        let mut sum = 0;
        for r in results {
            sum += r?;
        }
        let receipt: String = ctx.call_activity("F3", sum).await?;
        Ok(serde_json::json!({ "sum": sum, "receipt": receipt }))
    });
}

/// The sum FanOutFanIn computes for `n`: 1² + 2² + ... + n².
pub fn expected_sum(n: u64) -> u64 {
    n * (n + 1) * (2 * n + 1) / 6
}
