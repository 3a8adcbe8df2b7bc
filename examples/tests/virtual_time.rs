//! The samples that wait for hours and days, tested in milliseconds with
//! `perdure::testing`: the 72-hour approval (approved in time, and
//! escalated when the timer wins), the job monitor (done, and expired),
//! and the transfer's retry policy and compensation, with faked
//! activities that fail the attempts a test chooses.

use perdure::testing::TestEnv;
use perdure::{Failure, RuntimeStatus};
use perdure_examples::error_handling::Transfer;
use serde_json::{json, Value};
use std::time::Duration;

const HOUR: u64 = 3600;

fn env() -> TestEnv {
    TestEnv::with(perdure_examples::registry)
}

fn hours(h: u64) -> Duration {
    Duration::from_secs(h * HOUR)
}

#[tokio::test]
async fn approval_waits_for_the_approver_and_says_whom_it_waits_for() {
    let env = env();
    let id = env
        .start("ApprovalWorkflow", json!({ "request": "laptop" }))
        .await
        .expect("start");
    env.advance(hours(71)).await.expect("advance");
    let st = env.status(&id).await.expect("status");
    assert_eq!(st.runtime_status, RuntimeStatus::Running);
    let custom: Value = env.custom_status(&id).await.expect("custom status");
    assert_eq!(custom, json!({ "awaitingApprovalOf": "laptop" }));
}

#[tokio::test]
async fn approval_given_within_72_hours_is_processed() {
    let env = env();
    let id = env
        .start("ApprovalWorkflow", json!({ "request": "laptop" }))
        .await
        .expect("start");
    env.advance(hours(71)).await.expect("advance");
    env.raise_event(&id, "ApprovalEvent", true)
        .await
        .expect("raise");
    assert_eq!(
        env.output::<String>(&id).await.expect("output"),
        "approved and processed"
    );
    let scheduled = env.scheduled_activities(&id).await.expect("history");
    assert_eq!(scheduled, vec!["RequestApproval", "ProcessApproval"]);
}

#[tokio::test]
async fn approval_not_given_in_72_hours_escalates() {
    let env = env();
    let id = env
        .start("ApprovalWorkflow", json!({ "request": "laptop" }))
        .await
        .expect("start");
    env.advance(hours(72)).await.expect("advance");
    assert_eq!(
        env.output::<String>(&id).await.expect("output"),
        "escalated laptop to the manager's manager"
    );
    // An approval that comes after the escalation changes nothing.
    assert!(env.raise_event(&id, "ApprovalEvent", true).await.is_err());
}

#[tokio::test]
async fn monitor_alerts_once_the_job_completes() {
    let mut env = env();
    env.mock_activity("GetJobStatus", |call| {
        Ok(if call.attempt >= 5 {
            "Completed"
        } else {
            "Running"
        })
    });
    let input = json!({ "job_id": "j1", "polling_interval_secs": HOUR,
                        "expiry_secs": 24 * HOUR, "completes_after_checks": 0 });
    let id = env.start("JobMonitor", input).await.expect("start");
    env.advance(hours(3)).await.expect("advance");
    let custom: Value = env.custom_status(&id).await.expect("custom status");
    assert_eq!(custom, json!({ "checks": 4, "lastStatus": "Running" }));
    env.advance(hours(1)).await.expect("advance");
    let out: Value = env.output(&id).await.expect("output");
    assert_eq!(
        out,
        json!({ "outcome": "alert sent: job j1 completed", "checks": 5 })
    );
}

#[tokio::test]
async fn monitor_expires_when_the_job_never_completes() {
    let mut env = env();
    env.mock_activity("GetJobStatus", |_| Ok("Running"));
    let input = json!({ "job_id": "j2", "polling_interval_secs": HOUR,
                        "expiry_secs": 6 * HOUR, "completes_after_checks": 0 });
    let id = env.start("JobMonitor", input).await.expect("start");
    env.advance(hours(7)).await.expect("advance");
    let out: Value = env.output(&id).await.expect("output");
    assert_eq!(out, json!({ "outcome": "expired", "checks": 6 }));
    assert!(env.activity_calls("SendAlert").is_empty());
}

fn transfer(max_attempts: u32) -> Transfer {
    Transfer {
        transfer_id: "t1".into(),
        from: "alice".into(),
        to: "bob".into(),
        amount: 100,
        credit_failures: 0,
        max_attempts,
    }
}

/// The credit fails with `BankUnavailable` on the attempts `failing`.
fn flaky_bank(env: &mut TestEnv, failing: &'static [u32]) {
    env.mock_activity("CreditAccount", move |call| {
        let t: Transfer = call.input()?;
        if failing.contains(&call.attempt) {
            return Err(Failure::new(
                "BankUnavailable",
                format!("attempt {}", call.attempt),
            ));
        }
        Ok(format!("credited {} to {}", t.amount, t.to))
    });
    env.mock_activity("RefundAccount", |call| {
        let (account, amount): (String, u64) = call.input()?;
        Ok(format!("refunded {amount} to {account}"))
    });
}

#[tokio::test]
async fn transfer_retries_the_credit_past_two_failures() {
    let mut env = env();
    flaky_bank(&mut env, &[1, 2]);
    let id = env
        .start("TransferFunds", transfer(3))
        .await
        .expect("start");
    env.advance(Duration::from_secs(5)).await.expect("advance");
    let out: Value = env.output(&id).await.expect("output");
    assert_eq!(out["status"], "transferred");
    assert_eq!(env.activity_calls("CreditAccount").len(), 3);
    assert!(env.activity_calls("RefundAccount").is_empty());
}

#[tokio::test]
async fn transfer_refunds_the_debit_when_every_attempt_fails() {
    let mut env = env();
    flaky_bank(&mut env, &[1, 2, 3]);
    let id = env
        .start("TransferFunds", transfer(3))
        .await
        .expect("start");
    env.advance(Duration::from_secs(5)).await.expect("advance");
    let out: Value = env.output(&id).await.expect("output");
    assert_eq!(out["status"], "compensated");
    assert_eq!(out["refund"], "refunded 100 to alice");
    assert_eq!(env.activity_calls("RefundAccount").len(), 1);
}

#[tokio::test]
async fn transfer_waits_out_its_backoff_before_retrying() {
    let mut env = env();
    flaky_bank(&mut env, &[1]);
    let id = env
        .start("TransferFunds", transfer(3))
        .await
        .expect("start");
    // The first retry waits 200 ms: not yet after 199.
    env.advance(Duration::from_millis(199))
        .await
        .expect("advance");
    assert_eq!(env.activity_calls("CreditAccount").len(), 1);
    env.advance(Duration::from_millis(1))
        .await
        .expect("advance");
    assert_eq!(env.activity_calls("CreditAccount").len(), 2);
    let out: Value = env.output(&id).await.expect("output");
    assert_eq!(out["status"], "transferred");
}
