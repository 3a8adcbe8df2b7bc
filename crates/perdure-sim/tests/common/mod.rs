//! The test rig shared by the simulator's tests: the real engine driven
//! step by step over the memory store on a virtual clock.

#![allow(dead_code)]

use perdure::{Client, Engine, WorkerOptions};
use perdure_core::RuntimeStatus;
use perdure_sim::program::{self, Effects, Op, Program};
use perdure_store::{ManualClock, MemoryStore, Store, WorkFilter};
use std::sync::Arc;
use std::time::Duration;

pub struct Rig {
    pub clock: Arc<ManualClock>,
    pub store: Arc<dyn Store>,
    pub client: Client,
    pub effects: Arc<Effects>,
    pub engine: Engine,
}

pub fn rig() -> Rig {
    let start = chrono::DateTime::from_timestamp(4_102_444_800, 0).expect("epoch");
    let clock = Arc::new(ManualClock::new(start));
    let store: Arc<dyn Store> = Arc::new(MemoryStore::with_clock(clock.clone()));
    let effects = Arc::new(Effects::default());
    let engine = engine(&store, &effects);
    Rig {
        client: Client::new(store.clone()),
        clock,
        store,
        effects,
        engine,
    }
}

pub fn engine(store: &Arc<dyn Store>, effects: &Arc<Effects>) -> Engine {
    Engine::new(
        store.clone(),
        program::registry(effects.clone()),
        WorkerOptions::default(),
    )
}

impl Rig {
    pub async fn start(&self, id: &str, ops: Vec<Op>, loops: u32) {
        let p = Program {
            ops,
            loops,
            iteration: 0,
        };
        self.client
            .start_new("Prog", Some(id), p)
            .await
            .expect("start");
    }

    /// One orchestration turn taking at most `batch` messages.
    pub async fn turn(&self, batch: usize) -> bool {
        let items = self
            .store
            .fetch_orchestrations(Duration::from_secs(30), batch, 1, &WorkFilter::Any)
            .await
            .expect("fetch");
        let Some(item) = items.into_iter().next() else {
            return false;
        };
        let claimed = self.engine.run_orchestration(item).await.expect("turn");
        for a in claimed {
            self.activity(a).await;
        }
        true
    }

    /// Runs an activity, and the turn that takes its result at once.
    pub async fn activity(&self, a: perdure_store::ActivityItem) {
        let claimed = match self.engine.run_activity(a).await.expect("activity") {
            perdure::AfterActivity::Taken(next) => {
                self.engine.run_orchestration(*next).await.expect("turn")
            }
            perdure::AfterActivity::TurnRan(claimed) => claimed,
            perdure::AfterActivity::Recorded => Vec::new(),
        };
        for a in claimed {
            Box::pin(self.activity(a)).await;
        }
    }

    /// Everything visible, `batch` messages a turn, time moving on.
    pub async fn settle(&self, batch: usize) {
        for _ in 0..1000 {
            let mut busy = self.turn(batch).await;
            if let Some(a) = self
                .store
                .fetch_activity(Duration::from_secs(30), &WorkFilter::Any)
                .await
                .expect("fetch activity")
            {
                busy = true;
                self.activity(a).await;
            }
            if !busy {
                self.clock.advance(Duration::from_secs(5));
                if !self.turn(batch).await {
                    return;
                }
            }
        }
    }

    pub async fn status(&self, id: &str) -> RuntimeStatus {
        self.store
            .get_instance(id)
            .await
            .expect("get")
            .expect("instance")
            .status
    }
}
