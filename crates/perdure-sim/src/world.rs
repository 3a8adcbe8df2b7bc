//! One simulated run: a memory store on a virtual clock behind a fault
//! plan, two engines (the in-process worker's real turn and activity code)
//! and a remote one (the gRPC sidecar's dispatcher with a simulated SDK
//! worker, see [`crate::remote`]) that act only when the seed says so, a
//! client that starts, raises,
//! terminates, suspends, resumes, rewinds, restarts and purges at random
//! moments, results delivered twice,
//! crashes before and after commits, lease expiries and code changed under
//! running instances. Client operations are for the started programs and,
//! now and then, for their sub-orchestrations. At the end every instance is
//! driven to rest and the oracles are checked.

use crate::oracle::{self, Journal};
use crate::program::{self, Effects, Program};
use crate::remote::Remote;
use crate::rng::Rng;
use perdure::{Client, Engine, WorkerOptions};
use perdure_core::{EventKind, RuntimeStatus};
use perdure_store::faulty::{FaultPoint, FaultyStore};
use perdure_store::{ManualClock, MemoryStore, Store, WorkFilter};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The store a run drives.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SimStore {
    Memory,
    /// A SQLite file in a temporary directory (slower: fewer seeds).
    Sqlite,
}

/// What a run explores.
#[derive(Clone, Debug)]
pub struct SimOptions {
    pub store: SimStore,
    /// Steps of random interleaving before the run is driven to rest.
    pub steps: u32,
    /// Programs started at the beginning.
    pub instances: u64,
    /// Entity calls, signals and critical sections in programs.
    pub entities: bool,
    /// Injected commit failures (before and after the commit).
    pub faults: bool,
    /// Code changed under running instances (non-determinism).
    pub code_changes: bool,
    /// A remote engine (the gRPC sidecar and a simulated SDK worker)
    /// beside the two in-process ones.
    pub remote: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            store: SimStore::Memory,
            steps: 400,
            instances: 4,
            entities: true,
            faults: true,
            code_changes: true,
            remote: true,
        }
    }
}

/// What a run found.
#[derive(Debug)]
pub struct RunReport {
    pub seed: u64,
    /// Each broken oracle, in words.
    pub violations: Vec<String>,
    /// The programs the run started (id, program).
    pub programs: Vec<(String, Program)>,
    /// What the remote engine's SDK worker answered.
    pub remote_answered: crate::remote::Answered,
}

const LEASE: Duration = Duration::from_secs(30);

/// The simulation's epoch: far from the machine's clock, so that nothing
/// can depend on real time without it showing.
fn epoch() -> perdure_core::Timestamp {
    chrono::DateTime::from_timestamp(4_102_444_800, 0).unwrap_or_else(chrono::Utc::now)
}

struct World {
    rng: Rng,
    clock: Arc<ManualClock>,
    store: Arc<dyn Store>,
    client: Client,
    effects: Arc<Effects>,
    engines: Vec<(Engine, Vec<perdure_store::ActivityItem>)>,
    remote: Option<Remote>,
    journal: Arc<Mutex<Journal>>,
    programs: Vec<(String, Program)>,
    /// How many messages a fetch takes, for the whole run (rest included:
    /// an instance stuck behind more messages than a batch stays stuck).
    batch: usize,
}

impl World {
    fn engine(&self) -> Engine {
        Engine::new(
            self.store.clone(),
            program::registry(self.effects.clone()),
            WorkerOptions {
                lease: LEASE,
                ..WorkerOptions::default()
            },
        )
    }

    fn crash(&mut self, i: usize) {
        let fresh = self.engine();
        if let Some(slot) = self.engines.get_mut(i) {
            *slot = (fresh, Vec::new());
        }
    }

    fn record(&self, item: &perdure_store::OrchestrationItem) {
        oracle::lock(&self.journal).fetched(item);
    }

    async fn turn(&mut self, i: usize, item: perdure_store::OrchestrationItem) {
        self.record(&item);
        if oracle::trace() {
            eprintln!("engine {i} runs {}", item.lock_token);
        }
        let result = self.engines[i].0.run_orchestration(item).await;
        match result {
            Ok(claimed) => self.engines[i].1.extend(claimed),
            // An injected failure: the process died around its commit.
            Err(_) => self.crash(i),
        }
    }

    async fn orchestration_step(&mut self, i: usize, batch: usize) -> bool {
        let taken = self
            .store
            .fetch_orchestrations(LEASE, batch, 1, &WorkFilter::Any)
            .await
            .unwrap_or_default();
        let Some(item) = taken.into_iter().next() else {
            return false;
        };
        if self.rng.chance(2) {
            // Died after taking the work: its lease runs out.
            self.record(&item);
            self.crash(i);
            return true;
        }
        self.turn(i, item).await;
        true
    }

    async fn activity_step(&mut self, i: usize) -> bool {
        let claimed = std::mem::take(&mut self.engines[i].1);
        let (item, rest) = match claimed.split_first() {
            Some((first, rest)) => (Some(first.clone()), rest.to_vec()),
            None => (
                self.store
                    .fetch_activity(LEASE, &WorkFilter::Any)
                    .await
                    .ok()
                    .flatten(),
                Vec::new(),
            ),
        };
        self.engines[i].1 = rest;
        let Some(item) = item else { return false };
        match self.engines[i].0.run_activity(item).await {
            Ok(perdure::AfterActivity::Taken(next)) => self.turn(i, *next).await,
            Ok(perdure::AfterActivity::TurnRan(claimed)) => self.engines[i].1.extend(claimed),
            Ok(perdure::AfterActivity::Recorded) => {}
            Err(_) => self.crash(i),
        }
        true
    }

    /// The remote engine's turn to act: take orchestration work.
    async fn remote_orchestration_step(&mut self, batch: usize) -> bool {
        match self.remote.as_mut() {
            Some(r) => {
                r.take_orchestration(&mut self.rng, batch, &self.journal)
                    .await
            }
            None => false,
        }
    }

    /// The remote engine's turn to act: answer a held item, or take an
    /// activity.
    async fn remote_activity_step(&mut self) -> bool {
        let Some(r) = self.remote.as_mut() else {
            return false;
        };
        if r.holding() > 0 && self.rng.chance(60) {
            r.answer(&mut self.rng).await
        } else {
            r.take_activity().await
        }
    }

    /// The remote engine crashes: its SDK worker's stream closes, or the
    /// server dies holding the stream's work.
    async fn remote_crash(&mut self) {
        let Some(r) = self.remote.as_mut() else {
            return;
        };
        if self.rng.chance(50) {
            r.close_stream().await;
        } else {
            r.server_died();
        }
    }

    async fn client_step(&mut self, batch_size: usize) {
        let Some((mut id, p)) = self.rng.pick(&self.programs).cloned() else {
            return;
        };
        if self.rng.chance(4) {
            // Now and then the operation is for one of its children.
            let q = perdure::InstanceQuery {
                parent_instance_id: Some(id.clone()),
                page_size: 10,
                ..Default::default()
            };
            if let Ok(page) = self.store.list_instances(&q).await {
                if let Some(child) = self.rng.pick(&page.instances) {
                    id = child.instance_id.clone();
                }
            }
        }
        let c = &self.client;
        match self.rng.below(22) {
            0..=8 => {
                let names = program::events(&p.ops);
                let name = self
                    .rng
                    .pick(&names)
                    .cloned()
                    .unwrap_or_else(|| "e0".into());
                let _ = c.raise_event(&id, &name, self.rng.below(100)).await;
            }
            9 => {
                // A burst, more than one batch holds.
                for n in 0..batch_size as u64 * 2 + 1 {
                    let _ = c.raise_event(&id, "tick", n).await;
                }
            }
            10 => {
                if c.terminate(&id, "sim").await.is_ok() {
                    oracle::lock(&self.journal).terminated(&id);
                }
            }
            11 | 12 => {
                let _ = c.suspend(&id, "sim").await;
            }
            13 | 14 => {
                let _ = c.resume(&id, "sim").await;
            }
            15 | 16 => {
                let _ = c.rewind(&id, "sim").await;
            }
            17 => {
                // Purge a failed child, so that its parent's rewind must
                // create it again.
                let q = perdure::InstanceQuery {
                    parent_instance_id: Some(id.clone()),
                    statuses: vec![RuntimeStatus::Failed],
                    page_size: 10,
                    ..Default::default()
                };
                if let Ok(page) = self.store.list_instances(&q).await {
                    for child in page.instances {
                        let _ = c.purge_instance_history(&child.instance_id).await;
                    }
                }
            }
            18 => {
                if c.restart(&id, false).await.is_ok() {
                    oracle::lock(&self.journal).restarted(&id);
                }
            }
            19 => self.deliver_again(&id).await,
            _ => {
                let n = self.programs.len();
                self.start(n).await;
            }
        }
    }

    /// Delivers a result the instance already has once more (a duplicate
    /// from the network, or from an activity run twice): it must change
    /// nothing.
    async fn deliver_again(&mut self, id: &str) {
        let Ok(Some(rec)) = self.store.get_instance(id).await else {
            return;
        };
        let history = self.store.read_history(id).await.unwrap_or_default();
        let answers: Vec<_> = history
            .into_iter()
            .filter(|e| {
                e.completion_id().is_some()
                    || matches!(e.kind, EventKind::EntityOperationCompleted { .. })
            })
            .collect();
        if let Some(e) = self.rng.pick(&answers) {
            let now = perdure_store::Clock::now(self.clock.as_ref());
            let _ = self
                .store
                .send_message(perdure_store::InstanceMessage {
                    instance_id: id.to_string(),
                    execution_id: Some(rec.execution_id),
                    event: perdure_core::HistoryEvent::new(now, e.kind.clone()),
                    visible_at: now,
                })
                .await;
        }
    }

    async fn start(&mut self, n: usize) {
        let entities = oracle::lock(&self.journal).entities;
        let id = format!("p{n}");
        let program = if n == 0 {
            // An eternal orchestration: one event per execution.
            Program {
                ops: vec![program::Op::Event("tick".into())],
                loops: 2 + self.rng.below(6) as u32,
                iteration: 0,
            }
        } else {
            Program {
                ops: program::random_ops(&mut self.rng, 5, 1, entities),
                loops: if self.rng.chance(20) { 2 } else { 1 },
                iteration: 0,
            }
        };
        if self
            .client
            .start_new("Prog", Some(&id), program.clone())
            .await
            .is_ok()
        {
            self.programs.push((id, program));
        }
    }

    /// One step of engine `i` while coming to rest (the remote engine is
    /// the last): what it can take, it runs.
    async fn rest_step(&mut self, i: usize) -> bool {
        if i < self.engines.len() {
            return self.orchestration_step(i, self.batch).await | self.activity_step(i).await;
        }
        let batch = self.batch;
        let Some(r) = self.remote.as_mut() else {
            return false;
        };
        let took = r
            .take_orchestration(&mut self.rng, batch, &self.journal)
            .await
            | r.take_activity().await;
        r.answer_all(&mut self.rng).await | took
    }

    /// Drives everything to rest: resumes what is suspended, raises what
    /// is awaited, runs all visible work and lets time run on.
    async fn drain(&mut self) {
        // Work leased by a crashed engine (an entity's batch, say) shows
        // only once its lease has run out: rest needs two idle rounds with
        // more than a lease of time between them.
        let mut idle = 0;
        for _ in 0..200 {
            let mut busy = false;
            let n = self.engines.len() + usize::from(self.remote.is_some());
            for _ in 0..500 {
                let i = self.rng.below(n as u64) as usize;
                let mut did = self.rest_step(i).await;
                if !did {
                    // Idle only when no engine has work (the remote one
                    // takes no entity work).
                    for j in 0..n {
                        did |= self.rest_step(j).await;
                    }
                }
                busy |= did;
                if !did {
                    break;
                }
            }
            let q = perdure::InstanceQuery {
                statuses: vec![
                    RuntimeStatus::Running,
                    RuntimeStatus::Pending,
                    RuntimeStatus::Suspended,
                    RuntimeStatus::ContinuedAsNew,
                ],
                page_size: 1000,
                ..Default::default()
            };
            let open = match self.store.list_instances(&q).await {
                Ok(page) => page.instances,
                Err(_) => Vec::new(),
            };
            let open: Vec<_> = open
                .into_iter()
                .filter(|r| !perdure_core::is_entity_instance(&r.instance_id))
                .collect();
            if open.is_empty() && !busy {
                idle += 1;
                if idle == 2 {
                    return;
                }
            } else {
                idle = 0;
            }
            for r in open {
                if r.status == RuntimeStatus::Suspended {
                    let _ = self.client.resume(&r.instance_id, "drain").await;
                }
                for name in ["e0", "e1", "e2", "tick"] {
                    let _ = self.client.raise_event(&r.instance_id, name, 0).await;
                }
            }
            self.clock.advance(Duration::from_secs(31));
        }
    }
}

fn failed_to_start(seed: u64, why: String) -> RunReport {
    RunReport {
        seed,
        violations: vec![why],
        programs: Vec::new(),
        remote_answered: Default::default(),
    }
}

/// Runs seed `seed` with `opts` and reports every broken oracle.
pub fn run_seed(seed: u64, opts: &SimOptions) -> RunReport {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return failed_to_start(seed, format!("no runtime: {e}")),
    };
    rt.block_on(run(seed, opts))
}

async fn run(seed: u64, opts: &SimOptions) -> RunReport {
    let mut rng = Rng::new(seed);
    let clock = Arc::new(ManualClock::new(epoch()));
    let fault_rng = Arc::new(Mutex::new(Rng::new(seed.wrapping_mul(31).wrapping_add(7))));
    let faults = opts.faults;
    let mut j = Journal::default();
    j.entities = opts.entities;
    let journal = Arc::new(Mutex::new(j));
    let observer = journal.clone();
    let planner = journal.clone();
    let plan: perdure_store::faulty::FaultPlan = Box::new(move || {
        if !faults || oracle::lock(&planner).resting {
            return None;
        }
        let mut r = fault_rng.lock().unwrap_or_else(|p| p.into_inner());
        match r.below(100) {
            0 | 1 => Some(FaultPoint::BeforeCommit),
            2 | 3 => Some(FaultPoint::AfterCommit),
            _ => None,
        }
    });
    let observe: perdure_store::faulty::CommitObserver =
        Box::new(move |commit, applied| oracle::lock(&observer).committed(commit, applied));
    // The SQLite file lives as long as the run.
    let dir = tempfile::tempdir();
    let store: Arc<dyn Store> = match (opts.store, &dir) {
        (SimStore::Memory, _) => Arc::new(
            FaultyStore::with_plan(MemoryStore::with_clock(clock.clone()), plan).observed(observe),
        ),
        (SimStore::Sqlite, Ok(dir)) => {
            match perdure_sqlite::SqliteStore::open_with_clock(
                dir.path().join("sim.db"),
                clock.clone(),
            ) {
                Ok(sqlite) => Arc::new(FaultyStore::with_plan(sqlite, plan).observed(observe)),
                Err(e) => return failed_to_start(seed, format!("opening SQLite: {e}")),
            }
        }
        (SimStore::Sqlite, Err(e)) => {
            return failed_to_start(seed, format!("a temporary directory: {e}"))
        }
    };
    let effects = Arc::new(Effects::default());
    let batch = 1 + rng.below(3) as usize;
    let mut world = World {
        rng,
        clock,
        client: Client::new(store.clone()),
        store,
        effects,
        engines: Vec::new(),
        remote: None,
        journal: journal.clone(),
        programs: Vec::new(),
        batch,
    };
    for _ in 0..2 {
        let e = world.engine();
        world.engines.push((e, Vec::new()));
    }
    if opts.remote {
        let registry = program::registry(world.effects.clone());
        world.remote = Some(Remote::new(world.store.clone(), registry, LEASE));
    }
    let engines = if opts.remote { 3 } else { 2 };
    for n in 0..opts.instances as usize {
        world.start(n).await;
    }
    for _ in 0..opts.steps {
        let i = world.rng.below(engines) as usize;
        let remote = i == 2;
        match world.rng.below(100) {
            0..=39 if remote => {
                world.remote_orchestration_step(batch).await;
            }
            0..=39 => {
                world.orchestration_step(i, batch).await;
            }
            40..=64 if remote => {
                world.remote_activity_step().await;
            }
            40..=64 => {
                world.activity_step(i).await;
            }
            65..=79 => world.client_step(batch).await,
            80..=95 => {
                let ms = world.rng.below(1_500);
                world.clock.advance(Duration::from_millis(ms));
            }
            96 => world.clock.advance(LEASE + Duration::from_secs(1)),
            97 | 98 if remote => world.remote_crash().await,
            97 | 98 => world.crash(i),
            _ if opts.code_changes && world.rng.chance(30) => {
                world.effects.changed.fetch_xor(true, Ordering::SeqCst);
                world.crash(0);
                world.crash(1);
                // The SDK worker restarts with the new code.
                if let Some(r) = world.remote.as_mut() {
                    r.close_stream().await;
                }
            }
            _ => {}
        }
    }
    // Rest: no more faults, everything runs to its end.
    oracle::lock(&journal).resting = true;
    world.drain().await;
    let mut violations = oracle::lock(&journal).violations.clone();
    violations.extend(
        oracle::at_rest(
            world.store.as_ref(),
            &world.programs,
            &journal,
            &world.effects,
        )
        .await,
    );
    RunReport {
        seed,
        violations,
        remote_answered: world
            .remote
            .as_ref()
            .map(|r| r.answered)
            .unwrap_or_default(),
        programs: world.programs,
    }
}
