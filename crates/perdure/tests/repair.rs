//! Repair of a stuck instance: an order whose payment gateway can never
//! succeed (every attempt fails, and the retry policy waits an hour
//! between attempts) is settled by hand: its pending charge completed or
//! failed, its retry timer skipped. Each repair is recorded (who, when,
//! why), applied by a normal turn, and replays. Repairs that do not fit
//! are refused with the reason.

use perdure::testing::TestEnv;
use perdure::{
    ClientError, EventKind, Failure, FailureDetails, OrchestrationContext, Registry, Repair,
    RepairRequest, RepairedStep, RetryPolicy, RuntimeStatus,
};
use std::time::Duration;

fn registry() -> Registry {
    let mut r = Registry::new();
    r.add_orchestrator("Order", |ctx: OrchestrationContext| async move {
        let policy = RetryPolicy::new(Duration::from_secs(3600), 100)
            .map_err(|e| Failure::new("Policy", e.to_string()))?;
        match ctx
            .call_activity_with_retry::<String>("Charge", &policy, 42)
            .await
        {
            Ok(receipt) => Ok(format!("paid: {receipt}")),
            Err(e) => Ok(format!("cancelled: {e}")),
        }
    });
    r
}

/// An order stuck on a gateway that always fails; returns the env and id,
/// with the first attempt failed and the instance waiting on its retry
/// timer, or (with `at_charge`) with the first attempt still pending.
async fn stuck(at_charge: bool) -> (TestEnv, String) {
    let mut env = TestEnv::new(registry());
    env.mock_activity::<String, _>("Charge", |_| {
        Err(Failure::new("Gateway", "the gateway is down"))
    });
    if at_charge {
        // The turn that schedules the charge, without running it.
        let id = env
            .client()
            .start_new("Order", None, ())
            .await
            .expect("start");
        let store = env.client().store().clone();
        let engine = perdure::Engine::new(store.clone(), registry(), Default::default());
        let items = perdure_store::OrchestrationQueue::fetch_orchestrations(
            &*store,
            Duration::from_secs(60),
            10,
            1,
            &perdure_store::WorkFilter::Any,
        )
        .await
        .expect("fetch");
        for item in items {
            engine.run_orchestration(item).await.expect("turn");
        }
        return (env, id);
    }
    let id = env.start("Order", ()).await.expect("start");
    (env, id)
}

fn req(step_id: i64, repair: Repair) -> RepairRequest {
    RepairRequest {
        step_id,
        repair,
        by: "ops@example".into(),
        reason: "gateway outage INC-7".into(),
    }
}

async fn only_pending(env: &TestEnv, id: &str) -> perdure::PendingStep {
    let pending = env.client().pending_steps(id).await.expect("pending");
    assert_eq!(pending.len(), 1, "{pending:?}");
    pending.into_iter().next().expect("one step")
}

fn repaired(history: &[perdure::HistoryEvent]) -> Vec<(i64, String, String)> {
    history
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::StepRepaired {
                step_id,
                by,
                reason,
                ..
            } => Some((*step_id, by.clone(), reason.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_pending_activity_completed_by_hand_gives_the_code_its_result() {
    let (env, id) = stuck(true).await;
    let step = only_pending(&env, &id).await;
    assert_eq!(step.step, RepairedStep::Activity);
    let result = Some(r#""paid by bank transfer""#.to_string());
    env.client()
        .repair(
            &id,
            req(
                step.step_id,
                Repair::Complete {
                    result: result.map(Into::into),
                },
            ),
        )
        .await
        .expect("repair");
    env.run_until_idle().await.expect("run");
    assert_eq!(
        env.output::<String>(&id).await.expect("output"),
        "paid: paid by bank transfer"
    );
    let history = env.history(&id).await.expect("history");
    assert_eq!(
        repaired(&history),
        vec![(
            step.step_id,
            "ops@example".into(),
            "gateway outage INC-7".into()
        )]
    );
}

#[tokio::test]
async fn a_pending_activity_failed_by_hand_is_not_retried() {
    let (env, id) = stuck(true).await;
    let step = only_pending(&env, &id).await;
    let failure = FailureDetails::new("ManualCancel", "customer cancelled").non_retriable();
    env.client()
        .repair(&id, req(step.step_id, Repair::Fail { failure }))
        .await
        .expect("repair");
    env.run_until_idle().await.expect("run");
    let out = env.output::<String>(&id).await.expect("output");
    assert!(
        out.starts_with("cancelled") && out.contains("customer cancelled"),
        "{out}"
    );
    assert!(env.activity_calls("Charge").len() <= 1);
}

#[tokio::test]
async fn a_retry_timer_skipped_by_hand_runs_the_next_attempt_now() {
    let (env, id) = stuck(false).await;
    assert_eq!(env.activity_calls("Charge").len(), 1);
    let step = only_pending(&env, &id).await;
    assert_eq!(step.step, RepairedStep::Timer);
    env.client()
        .repair(&id, req(step.step_id, Repair::SkipTimer))
        .await
        .expect("repair");
    env.run_until_idle().await.expect("run");
    assert_eq!(env.activity_calls("Charge").len(), 2);
    // The second attempt failed too: the instance waits on a new timer.
    let next = only_pending(&env, &id).await;
    assert_eq!(next.step, RepairedStep::Timer);
    assert_ne!(next.step_id, step.step_id);
}

#[tokio::test]
async fn a_repaired_history_replays_and_survives_a_restart() {
    let (mut env, id) = stuck(false).await;
    let step = only_pending(&env, &id).await;
    env.client()
        .repair(&id, req(step.step_id, Repair::SkipTimer))
        .await
        .expect("repair");
    env.run_until_idle().await.expect("run");
    let history = env.history(&id).await.expect("history");
    assert!(perdure::replay::replay_history(&registry(), &id, &history).is_ok());
    // A fresh worker (nothing cached) replays the repair and goes on.
    env.deploy(registry());
    let next = only_pending(&env, &id).await;
    env.client()
        .repair(&id, req(next.step_id, Repair::SkipTimer))
        .await
        .expect("repair");
    env.run_until_idle().await.expect("run");
    assert_eq!(env.activity_calls("Charge").len(), 3);
}

#[tokio::test]
async fn a_repair_that_arrives_after_the_result_is_not_recorded() {
    let (env, id) = stuck(true).await;
    let step = only_pending(&env, &id).await;
    // The charge runs (and fails) before the repair's turn.
    let store = env.client().store().clone();
    let engine = perdure::Engine::new(store.clone(), registry(), Default::default());
    env.client()
        .repair(&id, req(step.step_id, Repair::Complete { result: None }))
        .await
        .expect("repair queued while pending");
    let acts = perdure_store::ActivityQueue::fetch_activities(
        &*store,
        Duration::from_secs(60),
        10,
        &perdure_store::WorkFilter::Any,
    )
    .await
    .expect("fetch");
    for a in acts {
        // The result's commit may take the instance at once: its turn runs.
        if let Some(item) = engine.run_activity(a).await.expect("activity").taken() {
            engine.run_orchestration(item).await.expect("turn");
        }
    }
    env.run_until_idle().await.expect("run");
    let history = env.history(&id).await.expect("history");
    // Both messages reach one turn, the result first or the repair first:
    // exactly one of them settles the step.
    let results = history
        .iter()
        .filter(|e| e.completion_id() == Some(step.step_id))
        .count();
    assert_eq!(results, 1, "{history:#?}");
}

async fn refused(env: &TestEnv, id: &str, r: RepairRequest) -> String {
    match env.client().repair(id, r).await {
        Err(e @ ClientError::InvalidArgument(_)) => e.to_string(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_repair_of_a_step_that_does_not_exist_lists_the_pending_ones() {
    let (env, id) = stuck(false).await;
    let step = only_pending(&env, &id).await;
    let text = refused(&env, &id, req(99, Repair::SkipTimer)).await;
    assert!(
        text.contains("step 99") && text.contains(&format!("{} (timer)", step.step_id)),
        "{text}"
    );
}

#[tokio::test]
async fn a_repair_of_a_step_that_has_its_result_is_refused() {
    let (env, id) = stuck(false).await;
    // Step 0 is the first charge attempt, which failed.
    let text = refused(&env, &id, req(0, Repair::Complete { result: None })).await;
    assert!(text.contains("already has its result"), "{text}");
}

#[tokio::test]
async fn a_timer_can_only_be_skipped() {
    let (env, id) = stuck(false).await;
    let step = only_pending(&env, &id).await;
    let text = refused(
        &env,
        &id,
        req(step.step_id, Repair::Complete { result: None }),
    )
    .await;
    assert!(text.contains("can only be skipped"), "{text}");
}

#[tokio::test]
async fn an_activity_cannot_be_skipped_like_a_timer() {
    let (env, id) = stuck(true).await;
    let step = only_pending(&env, &id).await;
    let text = refused(&env, &id, req(step.step_id, Repair::SkipTimer)).await;
    assert!(text.contains("not a timer"), "{text}");
}

#[tokio::test]
async fn a_repair_result_must_be_json() {
    let (env, id) = stuck(true).await;
    let step = only_pending(&env, &id).await;
    let r = req(
        step.step_id,
        Repair::Complete {
            result: Some("{not json".into()),
        },
    );
    assert!(matches!(
        env.client().repair(&id, r).await,
        Err(ClientError::Serialization(_))
    ));
}

#[tokio::test]
async fn a_repair_names_who_and_why() {
    let (env, id) = stuck(false).await;
    let step = only_pending(&env, &id).await;
    let mut r = req(step.step_id, Repair::SkipTimer);
    r.reason = " ".into();
    let text = refused(&env, &id, r).await;
    assert!(text.contains("who") && text.contains("why"), "{text}");
}

#[tokio::test]
async fn a_finished_instance_has_nothing_to_repair() {
    let (env, id) = stuck(true).await;
    env.client()
        .terminate(&id, "stop")
        .await
        .expect("terminate");
    env.run_until_idle().await.expect("run");
    assert_eq!(
        env.status(&id).await.expect("status").runtime_status,
        RuntimeStatus::Terminated
    );
    let text = refused(&env, &id, req(0, Repair::Complete { result: None })).await;
    assert!(text.contains("Terminated"), "{text}");
}
