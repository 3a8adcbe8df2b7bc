//! In-process starts. A client that shares its store (the same
//! `Arc<dyn Store>`) with a running [`super::Worker`] of this process that
//! runs the orchestration has that worker run the instance's first turn on
//! the start before anything is stored, and the store creates the instance
//! together with that turn's commit
//! ([`perdure_store::OrchestrationQueue::create_with_first_turn`]): one
//! durable write for the start and the first step, with no start message,
//! no lease and no fetch, and the activities the turn schedules claimed by
//! this worker as any turn's are. The start call returns once that write is
//! durable; should the process die before, nothing was written, as with a
//! create that did not return. The first turn runs on the starting task
//! (orchestrator code is short and deterministic), so a start never waits
//! for a worker slot. A start the worker cannot run this way (a name it
//! does not run, a start scheduled for later, an entity id, a store that
//! does not create instances with a turn, a taken id, a stopped worker)
//! goes the usual way.

use super::orchestrations::{self, Committed};
use super::Shared;
use perdure_store::{CreateInstance, Store, StoreError};
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
/// when it did (the instance and its first turn are stored, and the
/// activities the worker claimed are running), `Ok(Some(req))` when the
/// caller must create it the usual way.
pub(crate) async fn start(
    store: &Arc<dyn Store>,
    req: CreateInstance,
) -> Result<Option<CreateInstance>, StoreError> {
    let Some(shared) = worker_for(store, &req.name) else {
        return Ok(Some(req));
    };
    if shared.orchestration_slots.is_closed() || perdure_core::is_entity_instance(&req.instance_id)
    {
        return Ok(Some(req));
    }
    let Some(store_now) = store.unleased_now() else {
        return Ok(Some(req));
    };
    // Scheduled for later: not this caller's to run now. (Within the
    // millisecond is now: stores keep milliseconds.)
    let now_ms = store_now.timestamp_millis();
    let due = req.visible_at.timestamp_millis();
    if due > now_ms.max(chrono::Utc::now().timestamp_millis()) {
        return Ok(Some(req));
    }
    let item = req.into_item(0, String::new(), now_ms.max(due));
    // Boxed: a turn's future is kilobytes, and the start's own future is
    // moved around by callers that start many at once.
    let claimed = match Box::pin(orchestrations::first_turn(&shared, item)).await? {
        Committed::Applied(claimed) => claimed,
        Committed::Declined(commit) => {
            return CreateInstance::from_first_turn(*commit)
                .map(Some)
                .ok_or_else(|| {
                    StoreError::Backend("a declined first turn carried no start".into())
                })
        }
    };
    for (item, slot) in claimed {
        super::activities::spawn(shared.clone(), item, slot);
    }
    Ok(None)
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
        r.add_orchestrator("AwaitGo", |ctx: OrchestrationContext| async move {
            let go: u32 = ctx.wait_for_external_event("go").await?;
            Ok(go)
        });
        r
    }

    /// Right after a start returns, its instance is as the first turn left
    /// it when a worker of this process ran that turn in the start, and
    /// Pending (its start waiting for a worker) otherwise: data, one case
    /// each.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_start_returns_with_its_first_turn_stored_when_a_worker_here_runs_it() {
        let cases = [
            ("a worker here runs it", true, RuntimeStatus::Running, 3),
            ("no worker here", false, RuntimeStatus::Pending, 0),
        ];
        for (what, with_worker, status, history_len) in cases {
            let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
            let worker = with_worker
                .then(|| Worker::start(store.clone(), registry(), WorkerOptions::default()));
            let client = Client::new(store.clone());
            let id = client
                .start_new("AwaitGo", Some("w"), ())
                .await
                .expect(what);
            let rec = store.get_instance(&id).await.expect("get").expect(what);
            assert_eq!(
                (rec.status, rec.history_len),
                (status, history_len),
                "{what}"
            );
            if let Some(worker) = worker {
                client.raise_event(&id, "go", 7).await.expect("raise");
                let st = client
                    .wait_for_completion(&id, Duration::from_secs(10))
                    .await
                    .expect("completes");
                assert_eq!(st.output.as_deref(), Some("7"), "{what}");
                worker.shutdown().await;
            }
        }
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
