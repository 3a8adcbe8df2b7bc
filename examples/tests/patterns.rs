//! The seed patterns end to end, on the memory store and on SQLite.

use perdure::{Client, RuntimeStatus, Store, Worker, WorkerOptions};
use perdure_examples::{
    approval::ApprovalInput, error_handling::Transfer, eternal::CleanupState, monitor::MonitorInput,
};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

struct Env {
    client: Client,
    worker: Worker,
    _dir: tempfile::TempDir,
}

async fn stores() -> Vec<(&'static str, Arc<dyn Store>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = perdure::open_store(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .expect("sqlite store");
    let mut out = vec![
        (
            "memory",
            perdure::open_store("memory").await.expect("memory"),
            tempfile::tempdir().expect("tempdir"),
        ),
        ("sqlite", sqlite, dir),
    ];
    if let Some(url) = perdure_store::conformance::postgres_test_url("the patterns") {
        let store = perdure::open_store(&url).await.expect("postgres");
        out.push(("postgres", store, tempfile::tempdir().expect("tempdir")));
    }
    out
}

async fn envs() -> Vec<(&'static str, Env)> {
    stores()
        .await
        .into_iter()
        .map(|(name, store, dir)| {
            let client = Client::new(store.clone());
            let registry = perdure_examples::registry(client.clone());
            let worker = Worker::start(store, registry, WorkerOptions::default());
            (
                name,
                Env {
                    client,
                    worker,
                    _dir: dir,
                },
            )
        })
        .collect()
}

async fn run(env: &Env, name: &str, input: Value) -> perdure::OrchestrationStatus {
    let id = env
        .client
        .start_new(name, None, input)
        .await
        .expect("start");
    env.client
        .wait_for_completion(&id, WAIT)
        .await
        .expect("completes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_chaining_hello_cities() {
    for (store, env) in envs().await {
        let st = run(&env, "HelloCities", Value::Null).await;
        assert_eq!(
            st.runtime_status,
            RuntimeStatus::Completed,
            "{store}: {st:?}"
        );
        let out: Vec<String> = st.output_as().unwrap();
        assert_eq!(
            out,
            ["Hello Tokyo!", "Hello Seattle!", "Hello London!"],
            "{store}"
        );
        let full = env
            .client
            .get_status(&st.instance_id, true)
            .await
            .unwrap()
            .unwrap();
        let kinds: Vec<&str> = full
            .history
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| e.type_name())
            .collect();
        assert_eq!(
            kinds,
            [
                "OrchestratorStarted",
                "ExecutionStarted",
                "TaskScheduled",
                "OrchestratorCompleted",
                "OrchestratorStarted",
                "TaskCompleted",
                "TaskScheduled",
                "OrchestratorCompleted",
                "OrchestratorStarted",
                "TaskCompleted",
                "TaskScheduled",
                "OrchestratorCompleted",
                "OrchestratorStarted",
                "TaskCompleted",
                "OrchestratorCompleted",
                "ExecutionCompleted",
            ],
            "{store}"
        );
        env.worker.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_fan_in_aggregates() {
    for (store, env) in envs().await {
        let st = run(&env, "FanOutFanIn", json!(100)).await;
        assert_eq!(
            st.runtime_status,
            RuntimeStatus::Completed,
            "{store}: {st:?}"
        );
        let out: Value = st.output_as().unwrap();
        assert_eq!(
            out["sum"],
            json!(perdure_examples::fan_out::expected_sum(100)),
            "{store}"
        );
        env.worker.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_http_api_start_then_poll() {
    for (store, env) in envs().await {
        let id = env.client.start_new("DoWork", None, 4).await.unwrap();
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let st = env
                .client
                .get_status(&id, false)
                .await
                .unwrap()
                .expect("exists");
            if seen.last() != Some(&st.runtime_status) {
                seen.push(st.runtime_status);
            }
            if st.runtime_status.is_terminal() {
                assert_eq!(st.output_as::<u32>().unwrap(), 100, "{store}");
                let cs: Value = st.custom_status_as().unwrap();
                assert_eq!(cs["completedSteps"], json!(4));
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{store}: DoWork did not finish"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            seen.last(),
            Some(&RuntimeStatus::Completed),
            "{store}: {seen:?}"
        );
        env.worker.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_polls_on_timers_and_alerts() {
    for (store, env) in envs().await {
        let input = MonitorInput {
            job_id: format!("job-{store}"),
            polling_interval_secs: 1,
            expiry_secs: 60,
            completes_after_checks: 3,
        };
        let st = run(&env, "JobMonitor", serde_json::to_value(&input).unwrap()).await;
        assert_eq!(
            st.runtime_status,
            RuntimeStatus::Completed,
            "{store}: {st:?}"
        );
        let out: Value = st.output_as().unwrap();
        assert_eq!(out["checks"], json!(3), "{store}");
        let full = env
            .client
            .get_status(&st.instance_id, true)
            .await
            .unwrap()
            .unwrap();
        let timers = full
            .history
            .unwrap()
            .iter()
            .filter(|e| e.type_name() == "TimerFired")
            .count();
        assert_eq!(timers, 2, "{store}");
        // Expiry: a job that never completes within the window.
        let input = MonitorInput {
            job_id: format!("slow-{store}"),
            polling_interval_secs: 1,
            expiry_secs: 2,
            completes_after_checks: 100,
        };
        let st = run(&env, "JobMonitor", serde_json::to_value(&input).unwrap()).await;
        let out: Value = st.output_as().unwrap();
        assert_eq!(out["outcome"], json!("expired"), "{store}");
        env.worker.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn human_interaction_approval_and_escalation() {
    for (store, env) in envs().await {
        // Approved: the event beats the 72-hour timer, which is cancelled.
        let input = ApprovalInput {
            request: "expense-1".into(),
            timeout_secs: 72 * 3600,
        };
        let id = env
            .client
            .start_new("ApprovalWorkflow", None, &input)
            .await
            .unwrap();
        env.client
            .raise_event(&id, "approvalevent", true)
            .await
            .unwrap();
        let st = env.client.wait_for_completion(&id, WAIT).await.unwrap();
        assert_eq!(
            st.output_as::<String>().unwrap(),
            "approved and processed",
            "{store}: {st:?}"
        );
        let full = env.client.get_status(&id, true).await.unwrap().unwrap();
        let history = full.history.unwrap();
        let timer = history
            .iter()
            .find(|e| e.type_name() == "TimerCreated")
            .expect("timer");
        if let perdure::EventKind::TimerCreated { fire_at } = &timer.kind {
            assert!(
                *fire_at - st.created_time >= chrono::Duration::hours(71),
                "{store}: 72h timer"
            );
        }
        // Not approved in time: the (shortened) timer wins and escalates.
        let input = ApprovalInput {
            request: "expense-2".into(),
            timeout_secs: 1,
        };
        let st = run(
            &env,
            "ApprovalWorkflow",
            serde_json::to_value(&input).unwrap(),
        )
        .await;
        assert_eq!(
            st.output_as::<String>().unwrap(),
            "escalated expense-2 to the manager's manager",
            "{store}"
        );
        env.worker.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_orchestrations_provision_devices_in_parallel() {
    for (store, env) in envs().await {
        let st = run(&env, "ProvisionNewDevices", json!(8)).await;
        assert_eq!(
            st.runtime_status,
            RuntimeStatus::Completed,
            "{store}: {st:?}"
        );
        let out: Vec<String> = st.output_as().unwrap();
        assert_eq!(out.len(), 8);
        assert_eq!(out[0], "device-001 provisioned");
        let child = env
            .client
            .get_status(&format!("{}-device-003", st.instance_id), false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(child.runtime_status, RuntimeStatus::Completed, "{store}");
        env.worker.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_handling_retry_then_compensation() {
    for (store, env) in envs().await {
        let t = Transfer {
            transfer_id: format!("t1-{store}"),
            from: "A".into(),
            to: "B".into(),
            amount: 10,
            credit_failures: 2,
            max_attempts: 4,
        };
        let st = run(&env, "TransferFunds", serde_json::to_value(&t).unwrap()).await;
        let out: Value = st.output_as().unwrap();
        assert_eq!(out["status"], json!("transferred"), "{store}: {st:?}");
        assert_eq!(out["receipt"], json!("credited 10 to B on attempt 3"));
        let full = env
            .client
            .get_status(&st.instance_id, true)
            .await
            .unwrap()
            .unwrap();
        let h = full.history.unwrap();
        assert_eq!(
            h.iter().filter(|e| e.type_name() == "TaskFailed").count(),
            2
        );
        assert_eq!(
            h.iter().filter(|e| e.type_name() == "TimerCreated").count(),
            2,
            "retry waits are durable timers"
        );

        let t = Transfer {
            transfer_id: format!("t2-{store}"),
            from: "A".into(),
            to: "B".into(),
            amount: 5,
            credit_failures: 10,
            max_attempts: 2,
        };
        let st = run(&env, "TransferFunds", serde_json::to_value(&t).unwrap()).await;
        let out: Value = st.output_as().unwrap();
        assert_eq!(out["status"], json!("compensated"), "{store}: {st:?}");
        assert_eq!(out["refund"], json!("refunded 5 to A"));
        env.worker.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eternal_orchestration_continues_as_new() {
    for (store, env) in envs().await {
        let s = CleanupState {
            round: 0,
            rounds: 4,
            interval_ms: 10,
            cleaned: 0,
        };
        let st = run(&env, "PeriodicCleanup", serde_json::to_value(&s).unwrap()).await;
        assert_eq!(
            st.runtime_status,
            RuntimeStatus::Completed,
            "{store}: {st:?}"
        );
        let out: CleanupState = st.output_as().unwrap();
        assert_eq!((out.round, out.cleaned), (4, 18), "{store}");
        let full = env
            .client
            .get_status(&st.instance_id, true)
            .await
            .unwrap()
            .unwrap();
        // Only the last execution's history is kept.
        let h = full.history.unwrap();
        assert_eq!(
            h.iter()
                .filter(|e| e.type_name() == "ExecutionStarted")
                .count(),
            1,
            "{store}"
        );
        env.worker.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_transfers_in_critical_sections_never_lose_or_create_money() {
    use perdure::EntityId;
    use perdure_examples::bank::Transfer;
    for (name, env) in envs().await {
        let accounts = ["a", "b", "c", "d"];
        for key in accounts {
            let e = EntityId::new("Account", key).unwrap();
            env.client.signal_entity(&e, "deposit", 100).await.unwrap();
        }
        // Many transfers at once over overlapping pairs, in both directions
        // (the fixed lock order is what keeps them from deadlocking).
        let mut ids = Vec::new();
        for i in 0..24usize {
            let (from, to) = (accounts[i % 4], accounts[(i * 3 + 1) % 4]);
            if from == to {
                continue;
            }
            let t = Transfer {
                from: from.into(),
                to: to.into(),
                amount: 30 + (i as i64 % 5) * 20,
            };
            ids.push(
                env.client
                    .start_new("BankTransfer", None, &t)
                    .await
                    .unwrap(),
            );
        }
        let mut moved = 0;
        for id in &ids {
            let st = env.client.wait_for_completion(id, WAIT).await.unwrap();
            assert_eq!(
                st.runtime_status,
                RuntimeStatus::Completed,
                "{name}: {st:?}"
            );
            moved += usize::from(st.output_as::<bool>().unwrap());
        }
        assert!(moved > 0, "{name}: some transfers went through");
        let mut total = 0;
        for key in accounts {
            let e = EntityId::new("Account", key).unwrap();
            let balance: i64 = env.client.read_entity_state(&e).await.unwrap().unwrap_or(0);
            assert!(balance >= 0, "{name}: {key} went negative: {balance}");
            total += balance;
        }
        assert_eq!(total, 400, "{name}: money was lost or created");
        env.worker.shutdown().await;
    }
}
