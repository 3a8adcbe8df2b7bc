//! A durable entity: `Counter` (`add` n, `get`, `reset`), and `CountTo`, an
//! orchestration that signals it and then reads it with a call.

use perdure::{EntityContext, EntityId, Failure, OrchestrationContext, Registry};

async fn counter(ctx: EntityContext) -> Result<i64, Failure> {
    let n: i64 = ctx.get_state_or_default()?;
    match ctx.operation().to_ascii_lowercase().as_str() {
        "add" => {
            let by: i64 = ctx.get_input()?;
            ctx.set_state(n + by)?;
            Ok(n + by)
        }
        "get" => Ok(n),
        "reset" => {
            ctx.delete_state();
            Ok(0)
        }
        other => Err(Failure::new(
            "UnknownOperation",
            format!("Counter has no operation `{other}`"),
        )),
    }
}

pub fn register(r: &mut Registry) {
    r.add_entity("Counter", counter);
    r.add_orchestrator("CountTo", |ctx: OrchestrationContext| async move {
        let (key, n): (String, i64) = ctx.get_input()?;
        let id =
            EntityId::new("Counter", &key).map_err(|e| Failure::new("BadKey", e.to_string()))?;
        for _ in 0..n {
            ctx.signal_entity(&id, "add", 1)?;
        }
        // Signals and calls from one orchestration arrive in order.
        let total: i64 = ctx.call_entity(&id, "get", ()).await?;
        Ok(total)
    });
}
