//! Typed activities and orchestrators: declared once with the attribute
//! macros (or by hand, with state), registered under their own names,
//! called and started with checked types; and, compiled with trybuild,
//! the errors a wrong input, a wrong output type, a misspelled name and a
//! non-async function give.

use perdure::testing::TestEnv;
use perdure::{
    Activity, ActivityContext, Failure, OrchestrationContext, Orchestrator, Registry, RetryPolicy,
    RuntimeStatus,
};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Order {
    pub sku: String,
    pub cents: u64,
}

#[perdure::activity]
async fn charge_card(_ctx: ActivityContext, order: Order) -> Result<String, Failure> {
    Ok(format!("charged {} for {}", order.cents, order.sku))
}

#[perdure::activity(name = "Ship")]
async fn ship_parcel(_ctx: ActivityContext, sku: String) -> Result<u32, Failure> {
    Ok(sku.len() as u32)
}

#[perdure::orchestrator]
async fn checkout(ctx: OrchestrationContext, order: Order) -> Result<(String, u32), Failure> {
    let receipt = ctx.call(ChargeCard, &order).await?;
    let parcel = ctx.call(ShipParcel, &order.sku).await?;
    Ok((receipt, parcel))
}

#[perdure::orchestrator]
async fn two_checkouts(ctx: OrchestrationContext) -> Result<Vec<String>, Failure> {
    let mut out = Vec::new();
    for sku in ["a", "bb"] {
        let order = Order {
            sku: sku.into(),
            cents: 100,
        };
        out.push(ctx.call_sub(Checkout, &order).await?.0);
    }
    Ok(out)
}

/// A typed activity with state, implemented by hand: fails until its
/// counter reaches `succeed_at`.
struct FlakyGateway {
    calls: Arc<AtomicU32>,
    succeed_at: u32,
}

impl Activity for FlakyGateway {
    const NAME: &'static str = "Gateway";
    type Input = u64;
    type Output = String;
    async fn run(&self, _ctx: ActivityContext, cents: u64) -> Result<String, Failure> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n < self.succeed_at {
            return Err(Failure::new("Down", format!("call {n}")));
        }
        Ok(format!("{cents} on call {n}"))
    }
}

#[perdure::orchestrator]
async fn pay(ctx: OrchestrationContext, cents: u64) -> Result<String, Failure> {
    let policy = RetryPolicy::new(Duration::from_secs(1), 5)
        .map_err(|e| Failure::new("Policy", e.to_string()))?;
    Ok(ctx
        .call_with_retry(
            FlakyGateway {
                calls: Arc::default(),
                succeed_at: 0,
            },
            &policy,
            &cents,
        )
        .await?)
}

fn registry(gateway_calls: Arc<AtomicU32>) -> Registry {
    let mut r = Registry::new();
    r.register(ChargeCard)
        .register(ShipParcel)
        .register(Checkout)
        .register(TwoCheckouts)
        .register(Pay)
        .register_activity(FlakyGateway {
            calls: gateway_calls,
            succeed_at: 3,
        });
    r
}

#[test]
fn the_name_comes_from_the_function_or_the_attribute() {
    let r = registry(Arc::default());
    let activities = r.activity_names();
    for name in ["ChargeCard", "Ship", "Gateway"] {
        assert!(activities.contains(&name.to_string()), "{activities:?}");
    }
    let orchestrators = r.orchestrator_names();
    for name in ["Checkout", "TwoCheckouts", "Pay"] {
        assert!(
            orchestrators.contains(&name.to_string()),
            "{orchestrators:?}"
        );
    }
}

#[tokio::test]
async fn a_typed_orchestration_calls_typed_activities() {
    let env = TestEnv::new(registry(Arc::default()));
    let order = Order {
        sku: "kettle".into(),
        cents: 2500,
    };
    let id = env.client().start(Checkout, &order).await.expect("start");
    env.run_until_idle().await.expect("run");
    let out: (String, u32) = env.output(&id).await.expect("output");
    assert_eq!(out, ("charged 2500 for kettle".to_string(), 6));
}

#[tokio::test]
async fn a_typed_sub_orchestration_gives_its_typed_output() {
    let env = TestEnv::new(registry(Arc::default()));
    let id = env.start(TwoCheckouts::NAME, ()).await.expect("start");
    let out: Vec<String> = env.output(&id).await.expect("output");
    assert_eq!(out, vec!["charged 100 for a", "charged 100 for bb"]);
}

#[tokio::test]
async fn a_typed_activity_with_state_is_retried_by_policy() {
    let calls = Arc::new(AtomicU32::new(0));
    let env = TestEnv::new(registry(calls.clone()));
    let id = env.start("Pay", 700).await.expect("start");
    env.advance(Duration::from_secs(10)).await.expect("advance");
    assert_eq!(
        env.output::<String>(&id).await.expect("output"),
        "700 on call 3"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_typed_orchestrator_names_an_input_of_the_wrong_shape() {
    let env = TestEnv::new(registry(Arc::default()));
    let id = env.start("Checkout", "not an order").await.expect("start");
    let st = env.status(&id).await.expect("status");
    assert_eq!(st.runtime_status, RuntimeStatus::Failed);
    assert_eq!(
        st.failure.map(|f| f.error_type).as_deref(),
        Some("InputDeserialization")
    );
}

#[test]
fn wrong_types_and_names_do_not_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}

// --- Typed entities.

pub struct Tally;

impl perdure::Entity for Tally {
    const NAME: &'static str = "Tally";
    type State = Vec<String>;
}

#[perdure::entity_operation(Tally)]
fn note(items: &mut Vec<String>, item: String) -> Result<usize, Failure> {
    items.push(item);
    Ok(items.len())
}

#[perdure::entity_operation(Tally)]
fn count(items: &mut Vec<String>) -> Result<usize, Failure> {
    Ok(items.len())
}

#[perdure::entity_operation(Tally, name = "clear")]
fn clear_all(ctx: &perdure::EntityContext, _items: &mut Vec<String>) -> Result<(), Failure> {
    ctx.delete_state();
    Ok(())
}

#[perdure::orchestrator]
async fn tally_up(ctx: OrchestrationContext, key: String) -> Result<usize, Failure> {
    ctx.signal_operation(Note, &key, &"first".to_string())?;
    let n = ctx
        .call_operation(Note, &key, &"second".to_string())
        .await?;
    let counted = ctx.call_operation(Count, &key, &()).await?;
    Ok(n * 10 + counted)
}

#[perdure::orchestrator]
async fn call_unknown(ctx: OrchestrationContext) -> Result<String, Failure> {
    let id =
        perdure::EntityId::new("Tally", "t").map_err(|e| Failure::new("Key", e.to_string()))?;
    match ctx.call_entity::<()>(&id, "explode", ()).await {
        Ok(()) => Ok("no error".into()),
        Err(e) => Ok(e.to_string()),
    }
}

fn entity_env() -> TestEnv {
    let mut r = Registry::new();
    r.register(
        perdure::TypedEntity::new(Tally)
            .operation(Note)
            .operation(Count)
            .operation(ClearAll),
    )
    .register(TallyUp)
    .register(CallUnknown);
    TestEnv::new(r)
}

#[tokio::test]
async fn typed_entity_operations_are_signalled_and_called() {
    let env = entity_env();
    let id = env.start("TallyUp", "k").await.expect("start");
    assert_eq!(env.output::<usize>(&id).await.expect("output"), 22);
    let state = env.client().read_entity(Tally, "k").await.expect("read");
    assert_eq!(state, Some(vec!["first".to_string(), "second".to_string()]));
}

#[tokio::test]
async fn a_client_signals_a_typed_operation() {
    let env = entity_env();
    env.client()
        .signal_operation(Note, "c", &"from a client".to_string())
        .await
        .expect("signal");
    env.run_until_idle().await.expect("run");
    let state = env.client().read_entity(Tally, "c").await.expect("read");
    assert_eq!(state, Some(vec!["from a client".to_string()]));
}

#[tokio::test]
async fn a_read_only_operation_creates_no_state() {
    let env = entity_env();
    env.client()
        .signal_operation(Count, "empty", &())
        .await
        .expect("signal");
    env.run_until_idle().await.expect("run");
    assert_eq!(
        env.client()
            .read_entity(Tally, "empty")
            .await
            .expect("read"),
        None
    );
}

#[tokio::test]
async fn an_operation_that_deletes_the_state_leaves_none() {
    let env = entity_env();
    env.client()
        .signal_operation(Note, "d", &"x".to_string())
        .await
        .expect("signal");
    env.client()
        .signal_operation(ClearAll, "d", &())
        .await
        .expect("signal");
    env.run_until_idle().await.expect("run");
    assert_eq!(
        env.client().read_entity(Tally, "d").await.expect("read"),
        None
    );
}

#[tokio::test]
async fn an_unknown_operation_names_the_ones_the_entity_has() {
    let env = entity_env();
    let id = env.start("CallUnknown", ()).await.expect("start");
    let text = env.output::<String>(&id).await.expect("output");
    assert!(
        text.contains("no operation `explode`") && text.contains("it has clear, Count, Note"),
        "{text}"
    );
}

#[tokio::test]
async fn a_typed_call_with_an_invalid_key_fails_the_call() {
    let mut r = Registry::new();
    r.register(perdure::TypedEntity::new(Tally).operation(Count));
    r.add_orchestrator("BadKey", |ctx: OrchestrationContext| async move {
        match ctx.call_operation(Count, "a/b", &()).await {
            Ok(_) => Ok("called".to_string()),
            Err(e) => Ok(e.to_string()),
        }
    });
    let env = TestEnv::new(r);
    let id = env.start("BadKey", ()).await.expect("start");
    let text = env.output::<String>(&id).await.expect("output");
    assert!(text.contains("a/b"), "{text}");
}
