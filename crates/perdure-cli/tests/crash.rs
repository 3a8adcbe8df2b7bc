//! Crash safety with real processes: a `perdure worker` process runs many
//! orchestrations (chains, fan-outs, timers, continue-as-new) on a SQLite
//! file and is killed with SIGKILL at random moments, several times. After a
//! final restart every instance must complete with the right output, with no
//! step twice in its history, and every durable timer must have fired at or
//! after its time.

use perdure::{Client, EventKind, HistoryEvent, RuntimeStatus};
use perdure_examples::{approval::ApprovalInput, eternal::CleanupState, fan_out::expected_sum};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Lcg(u64);

impl Lcg {
    fn next(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        lo + (self.0 >> 33) % (hi - lo)
    }
}

fn spawn_worker(url: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_perdure"))
        .args(["worker", "--store", url, "--lease-ms", "1500"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn perdure worker")
}

fn check_history(id: &str, h: &[HistoryEvent]) {
    let mut scheduled = HashSet::new();
    let mut completed = HashSet::new();
    let mut fired = HashSet::new();
    let mut turn_time = None;
    for e in h {
        match &e.kind {
            EventKind::TaskScheduled { .. }
            | EventKind::TimerCreated { .. }
            | EventKind::SubOrchestrationInstanceCreated { .. } => {
                assert!(
                    scheduled.insert(e.event_id),
                    "{id}: action {} recorded twice",
                    e.event_id
                )
            }
            EventKind::TaskCompleted {
                task_scheduled_id, ..
            }
            | EventKind::TaskFailed {
                task_scheduled_id, ..
            } => {
                assert!(
                    completed.insert(*task_scheduled_id),
                    "{id}: task {task_scheduled_id} completed twice"
                )
            }
            EventKind::TimerFired { timer_id, fire_at } => {
                assert!(
                    fired.insert(*timer_id),
                    "{id}: timer {timer_id} fired twice"
                );
                let turn: chrono::DateTime<chrono::Utc> =
                    turn_time.expect("timer fired inside a turn");
                assert!(
                    turn >= *fire_at,
                    "{id}: timer {timer_id} due {fire_at} fired early at {turn}"
                );
            }
            EventKind::OrchestratorStarted => turn_time = Some(e.timestamp),
            _ => {}
        }
    }
    let starts = h
        .iter()
        .filter(|e| e.type_name() == "ExecutionStarted")
        .count();
    let ends = h
        .iter()
        .filter(|e| e.type_name() == "ExecutionCompleted")
        .count();
    assert_eq!((starts, ends), (1, 1), "{id}: one start and one end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("crash.db").display());
    let client = Client::new(perdure::open_store(&url).await.expect("store"));
    let mut expected: Vec<(String, Value)> = Vec::new();
    for i in 0..120 {
        let id = client
            .start_new("HelloCities", Some(&format!("chain-{i}")), ())
            .await
            .unwrap();
        expected.push((
            id,
            json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"]),
        ));
    }
    for i in 0..20 {
        let n = 30 + i;
        let id = client
            .start_new("FanOutFanIn", Some(&format!("fan-{i}")), n)
            .await
            .unwrap();
        let sum = expected_sum(n);
        expected.push((
            id,
            json!({ "sum": sum, "receipt": format!("stored total {sum}") }),
        ));
    }
    for i in 0..10 {
        let input = ApprovalInput {
            request: format!("req-{i}"),
            timeout_secs: 1 + i % 3,
        };
        let id = client
            .start_new("ApprovalWorkflow", Some(&format!("timer-{i}")), &input)
            .await
            .unwrap();
        expected.push((
            id,
            json!(format!("escalated req-{i} to the manager's manager")),
        ));
    }
    for i in 0..6 {
        let s = CleanupState {
            round: 0,
            rounds: 8,
            interval_ms: 300,
            cleaned: 0,
        };
        let id = client
            .start_new("PeriodicCleanup", Some(&format!("eternal-{i}")), &s)
            .await
            .unwrap();
        expected.push((
            id,
            json!({ "round": 8, "rounds": 8, "interval_ms": 300, "cleaned": 84 }),
        ));
    }
    // Slow chains (50 ms per step) keep work in flight across every kill.
    for i in 0..48 {
        let id = client
            .start_new("DoWork", Some(&format!("slow-{i}")), 12)
            .await
            .unwrap();
        expected.push((id, json!(780)));
    }

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7);
    println!("kill schedule seed: {seed}");
    let mut rng = Lcg(seed);
    for round in 0..8 {
        let mut child = spawn_worker(&url);
        let alive = rng.next(50, 700);
        tokio::time::sleep(Duration::from_millis(alive)).await;
        child.kill().expect("SIGKILL the worker");
        let _ = child.wait();
        let mut done = 0;
        for (id, _) in &expected {
            if let Ok(Some(st)) = client.get_status(id, false).await {
                done += usize::from(st.runtime_status.is_terminal());
            }
        }
        println!(
            "round {round}: killed the worker after {alive} ms; {done}/{} instances finished",
            expected.len()
        );
    }

    let mut child = spawn_worker(&url);
    let deadline = Instant::now() + Duration::from_secs(180);
    for (id, want) in &expected {
        let left = deadline.saturating_duration_since(Instant::now());
        let st = match client.wait_for_completion(id, left).await {
            Ok(st) => st,
            Err(e) => {
                let _ = child.kill();
                panic!("{id} did not complete after the crashes: {e}");
            }
        };
        assert_eq!(
            st.runtime_status,
            RuntimeStatus::Completed,
            "{id}: {:?}",
            st.failure
        );
        assert_eq!(&st.output_as::<Value>().unwrap(), want, "{id}");
        let full = client.get_status(id, true).await.unwrap().unwrap();
        check_history(id, full.history.as_deref().unwrap_or_default());
    }
    let _ = child.kill();
    let _ = child.wait();
}
