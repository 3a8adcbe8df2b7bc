//! Crash safety with real processes: `perdure worker` processes run many
//! orchestrations (chains, fan-outs, sub-orchestrations, timers, events,
//! continue-as-new) and are killed with SIGKILL at random moments, several
//! times: one worker on a SQLite file, and three workers sharing one
//! PostgreSQL task hub. After restarts every instance must complete with the
//! right output, with no step twice in its history, and every durable timer
//! must have fired at or after its time. Another kills `perdure serve` while
//! the starts it takes over HTTP run their first turn in it. A last test
//! drops the workers' PostgreSQL connections under load and checks that
//! they recover.

mod support;

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
    let mut completed_requests = HashSet::new();
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
            EventKind::EntityOperationCompleted { request_id, .. }
            | EventKind::EntityOperationFailed { request_id, .. } => {
                assert!(
                    completed_requests.insert(request_id.clone()),
                    "{id}: entity request {request_id} answered twice"
                )
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

const BANK_ACCOUNTS: u64 = 6;

/// Entity operations took effect exactly once: no money lost or made.
async fn assert_money_conserved(client: &Client) {
    let mut total = 0;
    for a in 0..BANK_ACCOUNTS {
        let e = perdure::EntityId::new("Account", &format!("acct-{a}")).unwrap();
        let balance: i64 = client.read_entity_state(&e).await.unwrap().unwrap_or(0);
        assert!(balance >= 0, "acct-{a} went negative: {balance}");
        total += balance;
    }
    assert_eq!(
        total,
        100 * BANK_ACCOUNTS as i64,
        "money was lost or created"
    );
}

fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7)
}

/// Starts the workload; returns each instance with its expected output.
async fn start_workload(client: &Client, scale: u64) -> Vec<(String, Value)> {
    let mut expected: Vec<(String, Value)> = Vec::new();
    for i in 0..40 * scale {
        let id = client
            .start_new("HelloCities", Some(&format!("chain-{i}")), ())
            .await
            .unwrap();
        expected.push((
            id,
            json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"]),
        ));
    }
    for i in 0..8 * scale {
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
    for i in 0..4 * scale {
        let id = client
            .start_new("ProvisionNewDevices", Some(&format!("devices-{i}")), 4)
            .await
            .unwrap();
        let out: Vec<String> = (1..=4)
            .map(|d| format!("device-{d:03} provisioned"))
            .collect();
        expected.push((id, json!(out)));
    }
    for i in 0..6 * scale {
        // Half escalate on their timer; half are approved by an event.
        let approve = i % 2 == 0;
        let timeout_secs = if approve { 3600 } else { 1 + i % 3 };
        let input = ApprovalInput {
            request: format!("req-{i}"),
            timeout_secs,
        };
        let id = client
            .start_new("ApprovalWorkflow", Some(&format!("approval-{i}")), &input)
            .await
            .unwrap();
        if approve {
            client
                .raise_event(&id, "ApprovalEvent", true)
                .await
                .unwrap();
            expected.push((id, json!("approved and processed")));
        } else {
            expected.push((
                id,
                json!(format!("escalated req-{i} to the manager's manager")),
            ));
        }
    }
    for i in 0..3 * scale {
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
    // Bank transfers in critical sections over six accounts of 100 each
    // (whether each goes through depends on the order they run in: `null`
    // accepts any output; the money is checked after).
    for a in 0..BANK_ACCOUNTS {
        let e = perdure::EntityId::new("Account", &format!("acct-{a}")).unwrap();
        client.signal_entity(&e, "deposit", 100).await.unwrap();
    }
    for i in 0..16 * scale {
        let t = perdure_examples::bank::Transfer {
            from: format!("acct-{}", i % BANK_ACCOUNTS),
            to: format!("acct-{}", (i * 5 + 1) % BANK_ACCOUNTS),
            amount: 25 + (i as i64 % 4) * 25,
        };
        if t.from == t.to {
            continue;
        }
        let id = client
            .start_new("BankTransfer", Some(&format!("bank-{i}")), &t)
            .await
            .unwrap();
        expected.push((id, Value::Null));
    }
    // Slow chains (50 ms per step) keep work in flight across every kill.
    for i in 0..24 * scale {
        let id = client
            .start_new("DoWork", Some(&format!("slow-{i}")), 12)
            .await
            .unwrap();
        expected.push((id, json!(780)));
    }
    expected
}

async fn finished(client: &Client, expected: &[(String, Value)]) -> usize {
    let mut done = 0;
    for (id, _) in expected {
        if let Ok(Some(st)) = client.get_status(id, false).await {
            done += usize::from(st.runtime_status.is_terminal());
        }
    }
    done
}

async fn verify(client: &Client, expected: &[(String, Value)], workers: &mut [Child]) {
    let deadline = Instant::now() + Duration::from_secs(180);
    for (id, want) in expected {
        let left = deadline.saturating_duration_since(Instant::now());
        let st = match client.wait_for_completion(id, left).await {
            Ok(st) => st,
            Err(e) => {
                for w in workers.iter_mut() {
                    let _ = w.kill();
                }
                panic!("{id} did not complete after the crashes: {e}");
            }
        };
        assert_eq!(
            st.runtime_status,
            RuntimeStatus::Completed,
            "{id}: {:?}",
            st.failure
        );
        if !want.is_null() {
            assert_eq!(&st.output_as::<Value>().unwrap(), want, "{id}");
        }
        let full = client.get_status(id, true).await.unwrap().unwrap();
        check_history(id, full.history.as_deref().unwrap_or_default());
    }
}

/// Runs `workers` worker processes on `url`, killing one at random moments
/// `rounds` times (and starting it again), then lets them finish.
async fn crash_and_verify(url: &str, workers: usize, rounds: usize, scale: u64) {
    let client = Client::new(perdure::open_store(url).await.expect("store"));
    let expected = start_workload(&client, scale).await;
    let seed = seed();
    println!("kill schedule seed: {seed}");
    let mut rng = Lcg(seed);
    let mut procs: Vec<Child> = (0..workers).map(|_| spawn_worker(url)).collect();
    for round in 0..rounds {
        let alive = rng.next(50, 700);
        tokio::time::sleep(Duration::from_millis(alive)).await;
        let victim = rng.next(0, workers as u64) as usize;
        procs[victim].kill().expect("SIGKILL a worker");
        let _ = procs[victim].wait();
        let done = finished(&client, &expected).await;
        println!(
            "round {round}: killed worker {victim} after {alive} ms; {done}/{} instances finished",
            expected.len()
        );
        procs[victim] = spawn_worker(url);
    }
    verify(&client, &expected, &mut procs).await;
    assert_money_conserved(&client).await;
    for mut p in procs {
        let _ = p.kill();
        let _ = p.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_worker_killed_at_random_moments_loses_nothing() {
    let _one_at_a_time = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("crash.db").display());
    crash_and_verify(&url, 1, 8, 2).await;
}

/// The crash tests run one at a time: each starts several processes, and the
/// machine has two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn postgres_hub(what: &str) -> Option<String> {
    perdure_store::conformance::postgres_test_url(what)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_workers_killed_at_random_moments_lose_nothing() {
    let Some(url) = postgres_hub("the multi-process crash test") else {
        return;
    };
    let _one_at_a_time = SERIAL.lock().await;
    crash_and_verify(&url, 3, 10, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_workers_recover_from_dropped_connections() {
    let Some(url) = postgres_hub("the dropped-connection test") else {
        return;
    };
    let _one_at_a_time = SERIAL.lock().await;
    let client = Client::new(perdure::open_store(&url).await.expect("store"));
    // Only this hub's connections are dropped (they are named perdure:<hub>).
    let app = format!("perdure:{}", url.rsplit("hub=").next().unwrap_or_default());
    let expected = start_workload(&client, 1).await;
    let mut procs: Vec<Child> = (0..2).map(|_| spawn_worker(&url)).collect();
    let (admin, conn) = tokio_postgres::connect(
        &std::env::var("PERDURE_TEST_POSTGRES").unwrap_or_default(),
        tokio_postgres::NoTls,
    )
    .await
    .expect("admin connection");
    tokio::spawn(conn);
    for round in 0..4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let dropped = admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()",
                &[&app],
            )
            .await
            .expect("terminate backends");
        println!("round {round}: dropped {dropped} connections");
    }
    // This process's own pool lost its connections too; it must recover as well.
    verify(&client, &expected, &mut procs).await;
    assert_money_conserved(&client).await;
    for mut p in procs {
        let _ = p.kill();
        let _ = p.wait();
    }
}

/// `perdure serve --samples` on `url` (leases of 1.5 s): the process and
/// its HTTP base URL.
fn spawn_serve(url: &str) -> (Child, String) {
    support::spawn_serve(url, &["--samples", "--lease-ms", "1500"])
}

/// Starts that run their first turn in the process that takes them: `perdure
/// serve --samples` on SQLite, started over HTTP while it is killed with
/// SIGKILL at random moments. Every start it acknowledged, and every other
/// that got stored, completes with its output once a server runs again,
/// with no step twice in its history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_killed_while_starts_run_their_first_turn_loses_nothing() {
    let _one_at_a_time = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("starts.db").display());
    let seed = seed();
    println!("kill schedule seed: {seed}");
    let mut rng = Lcg(seed);
    let http = reqwest::Client::new();
    let mut tried: Vec<(String, Value)> = Vec::new();
    let mut acknowledged = 0;
    for round in 0..5 {
        let (mut server, base) = spawn_serve(&url);
        let alive = Duration::from_millis(rng.next(100, 600));
        let until = Instant::now() + alive;
        let mut i = 0;
        while Instant::now() < until {
            let (name, input, want) = if i % 2 == 0 {
                ("DoWork", json!(12), json!(780))
            } else {
                (
                    "HelloCities",
                    Value::Null,
                    json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"]),
                )
            };
            let id = format!("start-{round}-{i}");
            i += 1;
            let sent = http
                .post(format!(
                    "{base}/runtime/webhooks/durabletask/orchestrators/{name}/{id}"
                ))
                .json(&input)
                .send()
                .await;
            if sent.is_ok_and(|r| r.status() == reqwest::StatusCode::ACCEPTED) {
                acknowledged += 1;
            }
            tried.push((id, want));
        }
        server.kill().expect("SIGKILL perdure serve");
        let _ = server.wait();
        println!("round {round}: killed serve after {alive:?}; {i} starts sent");
    }
    assert!(acknowledged > 0, "no start was acknowledged");
    let (mut server, _) = spawn_serve(&url);
    let client = Client::new(perdure::open_store(&url).await.expect("store"));
    let mut stored = Vec::new();
    for (id, want) in tried {
        if client
            .get_status(&id, false)
            .await
            .expect("status")
            .is_some()
        {
            stored.push((id, want));
        }
    }
    assert!(
        stored.len() >= acknowledged,
        "{} stored, {acknowledged} acknowledged: an acknowledged start was lost",
        stored.len()
    );
    let mut none: [Child; 0] = [];
    verify(&client, &stored, &mut none).await;
    let _ = server.kill();
    let _ = server.wait();
}
