//! The remote engine of a run: the gRPC sidecar's real dispatcher
//! (`perdure_server::grpc::Dispatcher`) in front of the store, and a
//! simulated SDK worker ([`crate::sdk`]) on one stream, holding the work
//! items it was handed until the seed lets it answer. The seed decides when
//! it takes work, which held item it answers and when, when it answers one
//! twice or refuses one, when its stream closes (the dispatcher gives the
//! work back) and when the server dies holding work (the leases run out).
//! It serves orchestrations, activities and entities.

use crate::oracle::{self, Journal};
use crate::rng::Rng;
use crate::sdk;
use perdure::Registry;
use perdure_server::grpc::proto as pb;
use perdure_server::grpc::{DispatchOptions, Dispatcher};
use perdure_store::{NameFilter, Store, WorkFilter};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Semaphore};

pub struct Remote {
    store: Arc<dyn Store>,
    lease: Duration,
    dispatcher: Arc<Dispatcher>,
    _shutdown: watch::Sender<bool>,
    stream: u64,
    held: Vec<pb::WorkItem>,
    slots: Arc<Semaphore>,
    registry: Registry,
    orchestrations: WorkFilter,
    /// Work items answered, by kind.
    pub answered: Answered,
}

/// How many work items of each kind the SDK worker answered.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Answered {
    pub orchestrations: u64,
    pub activities: u64,
    pub entities: u64,
}

fn dispatcher(store: &Arc<dyn Store>, lease: Duration) -> (Arc<Dispatcher>, watch::Sender<bool>) {
    let (tx, rx) = watch::channel(false);
    let options = DispatchOptions {
        lease,
        ..DispatchOptions::default()
    };
    (Dispatcher::new(store.clone(), options, rx), tx)
}

impl Remote {
    pub fn new(store: Arc<dyn Store>, registry: Registry, lease: Duration) -> Self {
        let (d, shutdown) = dispatcher(&store, lease);
        // Orchestrations and entities (`@name`) by name, as the dispatcher
        // reads an SDK worker's filters.
        let orchestrations = WorkFilter::Only(
            registry
                .orchestrator_names()
                .into_iter()
                .chain(registry.entity_instance_names())
                .map(|name| NameFilter {
                    name,
                    versions: Vec::new(),
                })
                .collect(),
        );
        Remote {
            stream: d.new_stream(),
            store,
            lease,
            dispatcher: d,
            _shutdown: shutdown,
            held: Vec::new(),
            slots: Arc::new(Semaphore::new(Semaphore::MAX_PERMITS)),
            registry,
            orchestrations,
            answered: Answered::default(),
        }
    }

    /// Work items in the SDK worker's hands.
    pub fn holding(&self) -> usize {
        self.held.len()
    }

    /// The dispatcher takes one instance (up to `batch` messages) for the
    /// stream; sometimes the server dies right after the fetch.
    pub async fn take_orchestration(
        &mut self,
        rng: &mut Rng,
        batch: usize,
        journal: &Mutex<Journal>,
    ) -> bool {
        let taken = self
            .store
            .fetch_orchestrations(self.lease, batch, 1, &self.orchestrations)
            .await
            .unwrap_or_default();
        let Some(item) = taken.into_iter().next() else {
            return false;
        };
        oracle::lock(journal).fetched(&item);
        if rng.chance(5) {
            self.server_died();
            return true;
        }
        let Ok(permit) = self.slots.clone().acquire_owned().await else {
            return true;
        };
        if let Ok(Some(work)) = self
            .dispatcher
            .offer_orchestration(self.stream, item, permit)
            .await
        {
            self.held.push(work);
        }
        true
    }

    /// The dispatcher takes one activity for the stream.
    pub async fn take_activity(&mut self) -> bool {
        let Ok(Some(item)) = self
            .store
            .fetch_activity(self.lease, &WorkFilter::Any)
            .await
        else {
            return false;
        };
        let Ok(permit) = self.slots.clone().acquire_owned().await else {
            return true;
        };
        let work = self.dispatcher.offer_activity(self.stream, item, permit);
        self.held.push(work);
        true
    }

    /// The SDK worker answers one held item (now and then twice, or
    /// refuses it instead).
    pub async fn answer(&mut self, rng: &mut Rng) -> bool {
        if self.held.is_empty() {
            return false;
        }
        let i = rng.below(self.held.len() as u64) as usize;
        let work = self.held.remove(i);
        let token = work.completion_token.clone();
        if oracle::trace() {
            eprintln!("remote answers {token}");
        }
        let refuse = rng.chance(5);
        let twice = rng.chance(5);
        match work.request {
            Some(pb::work_item::Request::OrchestratorRequest(r)) => {
                if refuse {
                    let _ = self
                        .dispatcher
                        .abandon_token(&token, "an orchestration")
                        .await;
                    return true;
                }
                self.answered.orchestrations += 1;
                let response = sdk::orchestrate(&self.registry, &token, &r);
                if twice {
                    let _ = self
                        .dispatcher
                        .complete_orchestration(response.clone())
                        .await;
                }
                let _ = self.dispatcher.complete_orchestration(response).await;
            }
            Some(pb::work_item::Request::ActivityRequest(r)) => {
                if refuse {
                    let _ = self.dispatcher.abandon_token(&token, "an activity").await;
                    return true;
                }
                self.answered.activities += 1;
                let response = sdk::run_activity(&self.registry, &token, &r).await;
                if twice {
                    let _ = self.dispatcher.complete_activity(response.clone()).await;
                }
                let _ = self.dispatcher.complete_activity(response).await;
            }
            Some(pb::work_item::Request::EntityRequestV2(r)) => {
                if refuse {
                    let _ = self.dispatcher.abandon_token(&token, "an entity").await;
                    return true;
                }
                self.answered.entities += 1;
                let response = sdk::run_entity(&self.registry, &token, &r).await;
                if twice {
                    let _ = self.dispatcher.complete_entity(response.clone()).await;
                }
                let _ = self.dispatcher.complete_entity(response).await;
            }
            _ => {}
        }
        true
    }

    /// Answers everything held (the run is coming to rest).
    pub async fn answer_all(&mut self, rng: &mut Rng) -> bool {
        let mut any = false;
        while self.answer(rng).await {
            any = true;
        }
        any
    }

    /// The SDK worker's stream closes (it restarted, or the network
    /// dropped): the dispatcher gives back what it held at once.
    pub async fn close_stream(&mut self) {
        self.held.clear();
        self.dispatcher.close_stream(self.stream).await;
        self.stream = self.dispatcher.new_stream();
    }

    /// The server dies holding the stream's work: nothing is given back,
    /// and the leases run out.
    pub fn server_died(&mut self) {
        self.held.clear();
        let (d, shutdown) = dispatcher(&self.store, self.lease);
        self.stream = d.new_stream();
        self.dispatcher = d;
        self._shutdown = shutdown;
    }
}
