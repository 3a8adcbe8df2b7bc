//! In-process starts. A client that shares its store (the same
//! `Arc<dyn Store>`) with a running [`super::Worker`] of this process hands
//! a new instance straight to that worker: the store creates the instance
//! already leased to it ([`perdure_store::InstanceStore::create_leased`]),
//! in the same durable write a start always was, and the worker runs the
//! first turn at once, without a fetch (one write and one round trip fewer
//! per orchestration). Should the process die before that turn commits,
//! the lease ends and any worker takes the instance, as after any crash
//! mid-turn. A start the worker cannot take now (no free slot, a name it
//! does not run, a start scheduled for later, a taken id) goes the usual
//! way.

use super::{orchestrations, Shared};
use perdure_store::{CreateInstance, LeasedCreate, Store, StoreError};
use std::sync::{Arc, Mutex, Weak};

/// The running workers of this process, by the address of their store.
static WORKERS: Mutex<Vec<(usize, Weak<Shared>)>> = Mutex::new(Vec::new());

fn key(store: &Arc<dyn Store>) -> usize {
    Arc::as_ptr(store) as *const () as usize
}

/// Makes `shared`'s worker the taker of new instances started through its
/// store in this process (until it is dropped).
pub(super) fn register(shared: &Arc<Shared>) {
    if let Ok(mut all) = WORKERS.lock() {
        all.retain(|(_, w)| w.strong_count() > 0);
        all.push((key(&shared.store), Arc::downgrade(shared)));
    }
}

/// A live worker of this process on `store` that runs `name`.
fn worker_for(store: &Arc<dyn Store>, name: &str) -> Option<Arc<Shared>> {
    let k = key(store);
    let all = WORKERS.lock().ok()?;
    all.iter()
        .filter(|(at, _)| *at == k)
        .filter_map(|(_, w)| w.upgrade())
        .find(|s| s.registry.orchestrator(name).is_some())
}

/// Starts `req` on a worker of this process if one takes it: `Ok(None)`
/// when it did (the instance is created and its first turn is running),
/// `Ok(Some(req))` when the caller must create it the usual way.
pub(crate) async fn start(
    store: &Arc<dyn Store>,
    req: CreateInstance,
) -> Result<Option<CreateInstance>, StoreError> {
    let Some(shared) = worker_for(store, &req.name) else {
        return Ok(Some(req));
    };
    let Ok(permit) = shared.orchestration_slots.clone().try_acquire_owned() else {
        return Ok(Some(req));
    };
    match store.create_leased(req, shared.options.lease).await? {
        LeasedCreate::Taken(item) => {
            orchestrations::spawn(shared, *item, permit);
            Ok(None)
        }
        LeasedCreate::Declined(req) => Ok(Some(*req)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Client, OrchestrationContext, Registry, Worker, WorkerOptions};
    use perdure_core::{EventKind, HistoryEvent, RuntimeStatus};
    use perdure_store::MemoryStore;
    use std::time::Duration;

    fn req(id: &str, name: &str) -> CreateInstance {
        let now = chrono::Utc::now();
        CreateInstance {
            instance_id: id.into(),
            name: name.into(),
            version: None,
            input: Some("2".into()),
            execution_id: format!("{id}-e"),
            start_event: HistoryEvent::new(
                now,
                EventKind::ExecutionStarted {
                    name: name.into(),
                    version: None,
                    input: Some("2".into()),
                    execution_id: format!("{id}-e"),
                    parent: None,
                    trace_context: None,
                    tags: Default::default(),
                },
            ),
            visible_at: now,
        }
    }

    fn registry() -> Registry {
        let mut r = Registry::new();
        r.add_orchestrator("Double", |ctx: OrchestrationContext| async move {
            let n: u32 = ctx.get_input()?;
            Ok(n * 2)
        });
        r
    }

    enum Expect {
        Taken,
        Declined,
    }

    /// Which starts a worker of this process takes: data, one case each.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_takes_the_starts_it_can_run_at_once() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let other: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let worker = Worker::start(store.clone(), registry(), WorkerOptions::default());
        let mut later = req("later", "Double");
        later.visible_at = chrono::Utc::now() + chrono::Duration::hours(1);
        let cases = [
            (
                "a name it runs, on its store",
                &store,
                req("a", "Double"),
                Expect::Taken,
            ),
            (
                "a name it does not run",
                &store,
                req("b", "Other"),
                Expect::Declined,
            ),
            (
                "another store",
                &other,
                req("c", "Double"),
                Expect::Declined,
            ),
            (
                "a start scheduled for later",
                &store,
                later,
                Expect::Declined,
            ),
            ("a taken id", &store, req("a", "Double"), Expect::Declined),
        ];
        for (what, on, r, expect) in cases {
            let got = start(on, r).await.expect(what);
            match expect {
                Expect::Taken => assert!(got.is_none(), "{what}: taken"),
                Expect::Declined => assert!(got.is_some(), "{what}: declined"),
            }
        }
        let st = Client::new(store.clone())
            .wait_for_completion("a", Duration::from_secs(10))
            .await
            .expect("completes");
        assert_eq!(st.runtime_status, RuntimeStatus::Completed);
        assert_eq!(st.output.as_deref(), Some("4"));
        assert!(store.get_instance("b").await.expect("get").is_none());
        worker.shutdown().await;
        assert!(
            start(&store, req("d", "Double"))
                .await
                .expect("after")
                .is_some(),
            "a stopped worker takes nothing"
        );
    }
}
