// An operation of one entity registered on another.
use perdure::{Entity, Failure, Registry, TypedEntity};

pub struct Counter;
impl Entity for Counter {
    const NAME: &'static str = "Counter";
    type State = i64;
}

pub struct Names;
impl Entity for Names {
    const NAME: &'static str = "Names";
    type State = Vec<String>;
}

#[perdure::entity_operation(Counter)]
fn add(count: &mut i64, by: i64) -> Result<i64, Failure> {
    *count += by;
    Ok(*count)
}

fn main() {
    let mut registry = Registry::new();
    registry.register(TypedEntity::new(Names).operation(Add));
}
