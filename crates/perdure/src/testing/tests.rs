//! The test kit's own behaviours: time moves only when told, timers fire
//! in order at their own time, fakes see their attempt, an orchestration
//! that never waits is reported.

use super::{TestEnv, TestError};
use crate::{Failure, OrchestrationContext, Registry, RetryPolicy, RuntimeStatus};
use std::time::Duration;

/// One orchestration `Flow` over `registry`, started with `input`; then
/// each `(advance_secs, expected status)` in turn.
async fn walk(registry: Registry, input: serde_json::Value, steps: &[(u64, RuntimeStatus)]) {
    let env = TestEnv::new(registry);
    let id = env.start("Flow", input).await.expect("start");
    for (i, (secs, want)) in steps.iter().enumerate() {
        env.advance(Duration::from_secs(*secs))
            .await
            .expect("advance");
        let st = env.status(&id).await.expect("status");
        assert_eq!(st.runtime_status, *want, "step {i} (+{secs}s): {st:?}");
    }
}

fn sleeper() -> Registry {
    let mut r = Registry::new();
    r.add_orchestrator("Flow", |ctx: OrchestrationContext| async move {
        let secs: u64 = ctx.get_input()?;
        ctx.create_timer_after(Duration::from_secs(secs)).await;
        Ok(ctx.current_utc_date_time())
    });
    r
}

#[tokio::test]
async fn a_timer_does_not_fire_before_its_time() {
    walk(
        sleeper(),
        serde_json::json!(3600),
        &[(0, RuntimeStatus::Running), (3599, RuntimeStatus::Running)],
    )
    .await;
}

#[tokio::test]
async fn a_timer_fires_when_the_clock_reaches_it() {
    walk(
        sleeper(),
        serde_json::json!(3600),
        &[
            (3599, RuntimeStatus::Running),
            (1, RuntimeStatus::Completed),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_long_advance_fires_a_year_long_timer_at_once() {
    walk(
        sleeper(),
        serde_json::json!(365 * 24 * 3600),
        &[(400 * 24 * 3600, RuntimeStatus::Completed)],
    )
    .await;
}

#[tokio::test]
async fn timers_in_one_span_fire_each_at_its_own_time() {
    let mut r = Registry::new();
    r.add_orchestrator("Flow", |ctx: OrchestrationContext| async move {
        let mut seen = Vec::new();
        for _ in 0..3 {
            ctx.create_timer_after(Duration::from_secs(60)).await;
            seen.push(ctx.current_utc_date_time());
        }
        Ok(seen)
    });
    let env = TestEnv::new(r);
    let start = env.now();
    let id = env.start("Flow", ()).await.expect("start");
    env.advance(Duration::from_secs(3600))
        .await
        .expect("advance");
    let seen: Vec<chrono::DateTime<chrono::Utc>> = env.output(&id).await.expect("output");
    let offsets: Vec<i64> = seen.iter().map(|t| (*t - start).num_seconds()).collect();
    assert_eq!(offsets, vec![60, 120, 180]);
    assert_eq!(env.now() - start, chrono::Duration::seconds(3600));
}

#[tokio::test]
async fn a_fake_sees_its_attempt_and_a_retry_policy_gets_past_failures() {
    let mut r = Registry::new();
    r.add_orchestrator("Flow", |ctx: OrchestrationContext| async move {
        let policy = RetryPolicy::new(Duration::from_secs(10), 5)
            .map_err(|e| Failure::new("Policy", e.to_string()))?;
        Ok(ctx
            .call_activity_with_retry::<String>("Charge", &policy, 42)
            .await?)
    });
    let mut env = TestEnv::new(r);
    env.mock_activity("Charge", |call| {
        let amount: u32 = call.input()?;
        if call.attempt < 3 {
            return Err(Failure::new(
                "Declined",
                format!("attempt {}", call.attempt),
            ));
        }
        Ok(format!("charged {amount} on attempt {}", call.attempt))
    });
    let id = env.start("Flow", ()).await.expect("start");
    assert_eq!(env.activity_calls("Charge").len(), 1);
    env.advance(Duration::from_secs(60)).await.expect("advance");
    assert_eq!(
        env.output::<String>(&id).await.expect("output"),
        "charged 42 on attempt 3"
    );
    let attempts: Vec<u32> = env
        .activity_calls("Charge")
        .iter()
        .map(|c| c.attempt)
        .collect();
    assert_eq!(attempts, vec![1, 2, 3]);
}

#[tokio::test]
async fn output_of_a_failed_instance_names_the_failure() {
    let mut r = Registry::new();
    r.add_orchestrator("Flow", |ctx: OrchestrationContext| async move {
        Ok(ctx.call_activity::<String>("Charge", ()).await?)
    });
    let mut env = TestEnv::new(r);
    env.mock_activity::<String, _>("Charge", |_| Err(Failure::new("Declined", "no funds")));
    let id = env.start("Flow", ()).await.expect("start");
    let err = env.output::<String>(&id).await.expect_err("failed");
    assert!(
        matches!(
            err,
            TestError::NotCompleted {
                status: RuntimeStatus::Failed,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("no funds"), "{err}");
}

#[tokio::test]
async fn an_orchestration_that_never_waits_is_reported() {
    let mut r = Registry::new();
    r.add_orchestrator("Flow", |ctx: OrchestrationContext| async move {
        let n: u64 = ctx.get_input()?;
        ctx.continue_as_new(n + 1);
        Ok(())
    });
    let env = TestEnv::new(r);
    let err = env.start("Flow", 0).await.expect_err("never idle");
    assert!(matches!(err, TestError::NeverIdle(_)), "{err}");
}

#[tokio::test]
async fn an_event_raised_in_a_test_reaches_the_waiting_instance() {
    let mut r = Registry::new();
    r.add_orchestrator("Flow", |ctx: OrchestrationContext| async move {
        let v: u32 = ctx.wait_for_external_event("Go").await?;
        Ok(v * 2)
    });
    let env = TestEnv::new(r);
    let id = env.start("Flow", ()).await.expect("start");
    env.advance(Duration::from_secs(86_400))
        .await
        .expect("advance");
    assert_eq!(
        env.status(&id).await.expect("status").runtime_status,
        RuntimeStatus::Running
    );
    env.raise_event(&id, "Go", 21).await.expect("raise");
    assert_eq!(env.output::<u32>(&id).await.expect("output"), 42);
}
