//! A durable entity: `Counter` (`add` n, `get`, `reset`), and `CountTo`, an
//! orchestration that signals it and then reads it with a call. Declared
//! in the typed form: the entity with its state type, each operation a
//! plain fn of that state; callers in other languages name the operations
//! as they like (`add`, `Add`).

use perdure::{Entity, EntityContext, Failure, OrchestrationContext, Registry, TypedEntity};

/// `Counter`: a number.
pub struct Counter;

impl Entity for Counter {
    const NAME: &'static str = "Counter";
    type State = i64;
}

/// `add`: adds `by`; returns the new count.
#[perdure::entity_operation(Counter, name = "add")]
pub fn add(count: &mut i64, by: i64) -> Result<i64, Failure> {
    *count += by;
    Ok(*count)
}

/// `get`: the count (an entity that has none counts 0, and is not created).
#[perdure::entity_operation(Counter, name = "get")]
pub fn get(count: &mut i64) -> Result<i64, Failure> {
    Ok(*count)
}

/// `reset`: deletes the entity's state.
#[perdure::entity_operation(Counter, name = "reset")]
pub fn reset(ctx: &EntityContext, _count: &mut i64) -> Result<i64, Failure> {
    ctx.delete_state();
    Ok(0)
}

/// `CountTo`: signals `add` `n` times, then reads the count with a call.
#[perdure::orchestrator]
pub async fn count_to(ctx: OrchestrationContext, (key, n): (String, i64)) -> Result<i64, Failure> {
    for _ in 0..n {
        ctx.signal_operation(Add, &key, &1)?;
    }
    // Signals and calls from one orchestration arrive in order.
    Ok(ctx.call_operation(Get, &key, &()).await?)
}

pub fn register(r: &mut Registry) {
    r.register(
        TypedEntity::new(Counter)
            .operation(Add)
            .operation(Get)
            .operation(Reset),
    )
    .register(CountTo);
}
