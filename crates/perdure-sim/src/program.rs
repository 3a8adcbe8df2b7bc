//! Random orchestration programs and the code that runs them. A program is
//! a list of steps (activities, retried and failing activities, timers,
//! external events, races, fan-outs, sub-orchestrations, entity calls and
//! signals, critical sections, a lock given up before its grant) run by one
//! orchestrator, `Prog`, optionally again and again through continue-as-new.
//! Its output is the sum of its activities' values, so the simulator knows
//! what a completed instance must return.

use crate::rng::Rng;
use perdure::{EntityContext, EntityId, OrchestrationContext, Registry, RetryPolicy};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One step of a program.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// `Work(v)` returns `v`.
    Activity(u64),
    /// Fails its first attempt; retried by policy.
    Flaky(u64),
    /// Fails its first attempt, not retried: the instance fails (and a
    /// rewind runs it again).
    FailOnce(u64),
    /// A durable timer (ms).
    Timer(u64),
    /// Waits for an external event.
    Event(String),
    /// An event or a timer (ms), whichever comes first.
    EventOrTimer(String, u64),
    /// Activities in parallel.
    All(Vec<u64>),
    /// A sub-orchestration running a program.
    Sub(Vec<Op>),
    /// Adds 1 to counter entity `key` and waits for the answer.
    Count(String),
    /// Signals counter entity `key` (one way).
    Signal(String),
    /// Locks two accounts, moves `amount` from the first to the second.
    Transfer(String, String, u64),
    /// Asks for locks on two accounts but gives up after a timer (ms) if
    /// they are not granted by then.
    LockOrGiveUp(String, String, u64),
}

/// A program's input: its steps, how many executions run them
/// (continue-as-new between them) and which execution this is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Program {
    pub ops: Vec<Op>,
    pub loops: u32,
    #[serde(default)]
    pub iteration: u32,
}

/// What a completed instance of `ops` returns.
pub fn expected(ops: &[Op]) -> u64 {
    ops.iter()
        .map(|op| match op {
            Op::Activity(v) | Op::Flaky(v) | Op::FailOnce(v) => *v,
            Op::All(vs) => vs.iter().sum(),
            Op::Sub(ops) => expected(ops),
            _ => 0,
        })
        .sum()
}

/// The event names a program waits for, with how many times.
pub fn events(ops: &[Op]) -> Vec<String> {
    ops.iter()
        .flat_map(|op| match op {
            Op::Event(n) | Op::EventOrTimer(n, _) => vec![n.clone()],
            _ => Vec::new(),
        })
        .collect()
}

const ACCOUNTS: [&str; 3] = ["a", "b", "c"];
const COUNTERS: [&str; 2] = ["x", "y"];
/// Every account starts with this balance.
pub const OPENING_BALANCE: i64 = 100;

/// A random program of about `size` steps (`depth` bounds nesting).
pub fn random_ops(rng: &mut Rng, size: u64, depth: u32, entities: bool) -> Vec<Op> {
    let n = 1 + rng.below(size);
    (0..n)
        .map(|_| {
            let v = 1 + rng.below(9);
            let kinds = if entities { 12 } else { 8 };
            match rng.below(kinds) {
                0 | 1 => Op::Activity(v),
                2 => Op::Flaky(v),
                3 => Op::FailOnce(v),
                4 => Op::Timer(1 + rng.below(3_000)),
                5 => Op::Event(format!("e{}", rng.below(3))),
                6 => Op::EventOrTimer(format!("e{}", rng.below(3)), 1 + rng.below(2_000)),
                7 if depth > 0 => Op::Sub(random_ops(rng, size / 2 + 1, depth - 1, entities)),
                7 => Op::All((0..1 + rng.below(3)).map(|i| v + i).collect()),
                8 => Op::Count(pick(rng, &COUNTERS)),
                9 => Op::Signal(pick(rng, &COUNTERS)),
                10 => {
                    let (a, b) = two_accounts(rng);
                    Op::Transfer(a, b, 1 + rng.below(20))
                }
                _ => {
                    let (a, b) = two_accounts(rng);
                    Op::LockOrGiveUp(a, b, rng.below(3))
                }
            }
        })
        .collect()
}

fn pick(rng: &mut Rng, from: &[&str]) -> String {
    rng.pick(from).copied().unwrap_or("x").to_string()
}

fn two_accounts(rng: &mut Rng) -> (String, String) {
    let i = rng.below(3) as usize;
    let j = (i + 1 + rng.below(2) as usize) % 3;
    (ACCOUNTS[i].to_string(), ACCOUNTS[j].to_string())
}

/// Shared between the simulation and the code it runs.
#[derive(Default)]
pub struct Effects {
    /// How many times each (instance, task) activity ran.
    pub runs: Mutex<HashMap<(String, i64), u32>>,
    /// Set to change the code under running instances: `Prog` then calls a
    /// differently named activity for its first step.
    pub changed: AtomicBool,
}

impl Effects {
    fn ran(&self, instance: &str, task: i64) -> u32 {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        let n = runs.entry((instance.to_string(), task)).or_default();
        *n += 1;
        *n
    }
}

fn failure(msg: &str) -> perdure::Failure {
    perdure::Failure::new("SimFailure", msg)
}

/// The activities, entities and orchestrator of the simulated workloads.
pub fn registry(effects: Arc<Effects>) -> Registry {
    let mut r = Registry::new();
    for name in ["Work", "WorkChanged"] {
        let e = effects.clone();
        r.add_activity(name, move |ctx, v: u64| {
            let e = e.clone();
            async move {
                e.ran(ctx.instance_id(), ctx.task_id());
                Ok(v)
            }
        });
    }
    for name in ["Flaky", "FailOnce"] {
        let e = effects.clone();
        r.add_activity(name, move |ctx, v: u64| {
            let e = e.clone();
            async move {
                // Fails the first run of each attempt's task.
                if e.ran(ctx.instance_id(), ctx.task_id()) == 1 {
                    return Err(failure("first attempt fails"));
                }
                Ok(v)
            }
        });
    }
    r.add_entity("counter", |ctx: EntityContext| async move {
        let n: i64 = ctx.get_state_or_default()?;
        ctx.set_state(n + 1)?;
        Ok(n + 1)
    });
    r.add_entity("acct", |ctx: EntityContext| async move {
        let balance: i64 = ctx.get_state()?.unwrap_or(OPENING_BALANCE);
        match ctx.operation() {
            "add" => {
                let by: i64 = ctx.get_input()?;
                ctx.set_state(balance + by)?;
                Ok(balance + by)
            }
            _ => Ok(balance),
        }
    });
    let e = effects;
    r.add_orchestrator("Prog", move |ctx: OrchestrationContext| {
        let e = e.clone();
        async move {
            let p: Program = ctx.get_input()?;
            let changed = e.changed.load(Ordering::SeqCst);
            let mut total = 0u64;
            for (i, op) in p.ops.iter().enumerate() {
                total += run_op(&ctx, op, i == 0 && changed).await?;
            }
            if p.iteration + 1 < p.loops {
                ctx.continue_as_new(Program {
                    iteration: p.iteration + 1,
                    ..p
                });
            }
            Ok(total)
        }
    });
    r
}

fn entity(name: &str, key: &str) -> perdure::Result<EntityId> {
    EntityId::new(name, key).map_err(|e| failure(&e.to_string()))
}

async fn run_op(ctx: &OrchestrationContext, op: &Op, changed: bool) -> perdure::Result<u64> {
    let retry =
        RetryPolicy::new(Duration::from_millis(100), 3).map_err(|e| failure(&e.to_string()))?;
    Ok(match op {
        Op::Activity(v) => {
            let name = if changed { "WorkChanged" } else { "Work" };
            ctx.call_activity::<u64>(name, *v).await?
        }
        Op::Flaky(v) => {
            ctx.call_activity_with_retry::<u64>("Flaky", &retry, *v)
                .await?
        }
        Op::FailOnce(v) => ctx.call_activity::<u64>("FailOnce", *v).await?,
        Op::Timer(ms) => {
            ctx.create_timer_after(Duration::from_millis(*ms)).await;
            0
        }
        Op::Event(name) => {
            let _: serde_json::Value = ctx.wait_for_external_event(name).await?;
            0
        }
        Op::EventOrTimer(name, ms) => {
            let event = ctx.wait_for_external_event::<serde_json::Value>(name);
            let timer = ctx.create_timer_after(Duration::from_millis(*ms));
            let _ = perdure::future::select(event, timer).await;
            0
        }
        Op::All(vs) => {
            let tasks: Vec<_> = vs
                .iter()
                .map(|v| ctx.call_activity::<u64>("Work", *v))
                .collect();
            let mut sum = 0;
            for r in ctx.when_all(tasks).await {
                sum += r?;
            }
            sum
        }
        Op::Sub(ops) => {
            let program = Program {
                ops: ops.clone(),
                loops: 1,
                iteration: 0,
            };
            ctx.call_sub_orchestrator::<u64>("Prog", program).await?
        }
        Op::Count(key) => {
            let _: i64 = ctx.call_entity(&entity("counter", key)?, "add", ()).await?;
            0
        }
        Op::Signal(key) => {
            ctx.signal_entity(&entity("counter", key)?, "add", ())?;
            0
        }
        Op::Transfer(from, to, amount) => {
            let _held = ctx
                .lock(&[entity("acct", from)?, entity("acct", to)?])
                .await?;
            let balance: i64 = ctx.call_entity(&entity("acct", from)?, "get", ()).await?;
            let amount = *amount as i64;
            if balance >= amount {
                let _: i64 = ctx
                    .call_entity(&entity("acct", from)?, "add", -amount)
                    .await?;
                let _: i64 = ctx.call_entity(&entity("acct", to)?, "add", amount).await?;
            }
            0
        }
        Op::LockOrGiveUp(a, b, ms) => {
            let lock = ctx.lock(&[entity("acct", a)?, entity("acct", b)?]);
            let timer = ctx.create_timer_after(Duration::from_millis(*ms));
            if let perdure::future::Either::Left((held, _)) =
                perdure::future::select(lock, timer).await
            {
                drop(held?);
            }
            0
        }
    })
}
