//! Durable entities end to end on every store: operations one at a time and
//! in order, state from the first write, failed operations rolled back,
//! calls and signals from orchestrations, signals, reads and lists from the
//! client, delayed signals.

mod common;
use common::stores;

use perdure::{
    Client, EntityContext, EntityId, EntityQuery, Failure, OrchestrationContext, Registry,
    RuntimeStatus, TaskError, Worker, WorkerOptions,
};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

async fn counter(ctx: EntityContext) -> Result<Value, Failure> {
    let n: i64 = ctx.get_state_or_default()?;
    match ctx.operation() {
        "add" => {
            let by: i64 = ctx.get_input()?;
            ctx.set_state(n + by)?;
            Ok(json!(n + by))
        }
        "get" => Ok(json!(n)),
        "reset" => {
            ctx.delete_state();
            Ok(Value::Null)
        }
        "fail" => {
            // The write is rolled back with the failure.
            ctx.set_state(-1_000)?;
            Err(Failure::new("Refused", "this operation always fails"))
        }
        "panic" => {
            ctx.set_state(-2_000)?;
            panic!("entity exploded")
        }
        other => Err(Failure::new(
            "UnknownOperation",
            format!("counter has no `{other}`"),
        )),
    }
}

async fn journal(ctx: EntityContext) -> Result<Value, Failure> {
    let mut items: Vec<i64> = ctx.get_state_or_default()?;
    items.push(ctx.get_input()?);
    ctx.set_state(&items)?;
    Ok(Value::Null)
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.add_entity("Counter", counter);
    r.add_entity("Journal", journal);
    r.add_orchestrator("UseCounter", |ctx: OrchestrationContext| async move {
        let key: String = ctx.get_input()?;
        let c = EntityId::new("counter", &key).map_err(|e| Failure::new("BadId", e.to_string()))?;
        ctx.signal_entity(&c, "add", 5)?;
        let after_add: i64 = ctx.call_entity(&c, "add", 10).await?;
        let failed = match ctx.call_entity::<Value>(&c, "fail", ()).await {
            Err(TaskError::EntityOperationFailed { failure, .. }) => failure.error_type,
            other => format!("unexpected: {other:?}"),
        };
        let panicked = match ctx.call_entity::<Value>(&c, "panic", ()).await {
            Err(e) => e
                .failure()
                .map(|f| f.error_type.clone())
                .unwrap_or_default(),
            Ok(_) => "no panic".into(),
        };
        let now: i64 = ctx.call_entity(&c, "get", ()).await?;
        Ok(json!({"after_add": after_add, "failed": failed, "panicked": panicked, "now": now}))
    });
    r.add_orchestrator("FillJournal", |ctx: OrchestrationContext| async move {
        let j = EntityId::new("Journal", "j1").map_err(|e| Failure::new("BadId", e.to_string()))?;
        for i in 1..=20 {
            ctx.signal_entity(&j, "append", i)?;
        }
        Ok(())
    });
    r.add_orchestrator("CallNobody", |ctx: OrchestrationContext| async move {
        let e = EntityId::new("Nobody", "x").map_err(|e| Failure::new("BadId", e.to_string()))?;
        match ctx.call_entity::<Value>(&e, "op", ()).await {
            Err(e) => Ok(e
                .failure()
                .map(|f| f.error_type.clone())
                .unwrap_or_default()),
            Ok(_) => Ok("answered".to_string()),
        }
    });
    r
}

async fn until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + WAIT;
    while !f().await {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_run_operations_in_order_with_rollback() {
    for (name, store, _dir) in stores().await {
        let worker = Worker::start(store.clone(), registry(), WorkerOptions::default());
        let client = Client::new(store.clone());

        let id = client
            .start_new("UseCounter", None, "k1")
            .await
            .expect("start");
        let st = client.wait_for_completion(&id, WAIT).await.expect("done");
        assert_eq!(
            st.runtime_status,
            RuntimeStatus::Completed,
            "{name}: {st:?}"
        );
        assert_eq!(
            st.output_as::<Value>().unwrap(),
            json!({"after_add": 15, "failed": "Refused", "panicked": "panic", "now": 15}),
            "{name}: the signal came first, failures rolled back"
        );
        let c1 = EntityId::new("Counter", "k1").unwrap();
        assert_eq!(
            client.read_entity_state::<i64>(&c1).await.unwrap(),
            Some(15)
        );

        // Signals from one sender apply in the order sent.
        let id = client.start_new("FillJournal", None, ()).await.unwrap();
        client.wait_for_completion(&id, WAIT).await.unwrap();
        let j1 = EntityId::new("journal", "j1").unwrap();
        until("the journal fills", || async {
            client
                .read_entity_state::<Vec<i64>>(&j1)
                .await
                .unwrap()
                .is_some_and(|v| v.len() == 20)
        })
        .await;
        let items: Vec<i64> = client.read_entity_state(&j1).await.unwrap().unwrap();
        assert_eq!(items, (1..=20).collect::<Vec<_>>(), "{name}");

        // Client signals; entities exist from their first write; lists page.
        for key in ["a", "b", "c"] {
            let e = EntityId::new("counter", key).unwrap();
            client.signal_entity(&e, "add", 1).await.unwrap();
        }
        let empty = EntityId::new("counter", "never-written").unwrap();
        client.signal_entity(&empty, "get", ()).await.unwrap();
        let c = EntityId::new("counter", "c").unwrap();
        until("signals applied", || async {
            client.read_entity_state::<i64>(&c).await.unwrap() == Some(1)
        })
        .await;
        let mut seen = Vec::new();
        let mut query = EntityQuery {
            name: Some("Counter".into()),
            page_size: 2,
            ..EntityQuery::default()
        };
        loop {
            let page = client.list_entities(&query).await.unwrap();
            seen.extend(page.entities.iter().map(|e| e.id.key.clone()));
            match page.continuation_token {
                Some(t) => query.continuation = Some(t),
                None => break,
            }
        }
        seen.sort();
        assert_eq!(
            seen,
            ["a", "b", "c", "k1"],
            "{name}: only entities with state"
        );
        assert_eq!(client.read_entity_state::<i64>(&empty).await.unwrap(), None);

        // A delayed signal waits for its time; deleting state empties it.
        let at = chrono::Utc::now() + chrono::Duration::milliseconds(600);
        client
            .signal_entity_at(&c, "add", 10, Some(at))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(client.read_entity_state::<i64>(&c).await.unwrap(), Some(1));
        until("the delayed signal", || async {
            client.read_entity_state::<i64>(&c).await.unwrap() == Some(11)
        })
        .await;
        assert!(chrono::Utc::now() >= at);
        client.signal_entity(&c, "reset", ()).await.unwrap();
        until("the reset", || async {
            client.read_entity_state::<i64>(&c).await.unwrap().is_none()
        })
        .await;

        // An entity nobody registered: the call fails, naming it.
        let id = client.start_new("CallNobody", None, ()).await.unwrap();
        let st = client.wait_for_completion(&id, WAIT).await.unwrap();
        assert_eq!(
            st.output_as::<String>().unwrap(),
            "EntityNotFound",
            "{name}"
        );
        worker.shutdown().await;
    }
}

fn rules_registry() -> Registry {
    let mut r = registry();
    r.add_orchestrator("BreakRules", |ctx: OrchestrationContext| async move {
        let a = EntityId::new("Counter", "rules-a").unwrap();
        let b = EntityId::new("Counter", "rules-b").unwrap();
        let outside = EntityId::new("Counter", "rules-c").unwrap();
        let section = ctx.lock(&[b.clone(), a.clone()]).await?;
        let kind = |e: TaskError| match e {
            TaskError::LockingRulesViolation(_) => "LockingRulesViolation".to_string(),
            other => format!("unexpected: {other}"),
        };
        let mut seen = Vec::new();
        seen.push(kind(
            ctx.lock(std::slice::from_ref(&outside))
                .await
                .err()
                .unwrap(),
        ));
        seen.push(kind(
            ctx.call_sub_orchestrator::<Value>("UseCounter", "x")
                .await
                .unwrap_err(),
        ));
        seen.push(kind(
            ctx.call_entity::<i64>(&outside, "get", ())
                .await
                .unwrap_err(),
        ));
        seen.push(kind(ctx.signal_entity(&a, "add", 1).unwrap_err()));
        // Locked entities can be called.
        let got: i64 = ctx.call_entity(&b, "add", 2).await?;
        let held = ctx.is_locked();
        section.release();
        // Released: the rules no longer apply.
        ctx.signal_entity(&a, "add", 1)?;
        Ok(json!({"violations": seen, "held": held, "got": got, "after": ctx.is_locked()}))
    });
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_section_rules_are_enforced() {
    for (name, store, _dir) in stores().await {
        let worker = Worker::start(store.clone(), rules_registry(), WorkerOptions::default());
        let client = Client::new(store.clone());
        let v = "LockingRulesViolation";
        let id = client.start_new("BreakRules", None, ()).await.unwrap();
        let st = client.wait_for_completion(&id, WAIT).await.unwrap();
        assert_eq!(
            st.output_as::<Value>().unwrap(),
            json!({"violations": [v, v, v, v], "held": true, "got": 2, "after": false}),
            "{name}: {st:?}"
        );
        let a = EntityId::new("Counter", "rules-a").unwrap();
        until("the signal after the release", || async {
            client.read_entity_state::<i64>(&a).await.unwrap() == Some(1)
        })
        .await;
        worker.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entity_storage_is_cleaned() {
    use perdure::{EventKind, HistoryEvent};
    use perdure_store::InstanceMessage;
    for (name, store, _dir) in stores().await {
        let worker = Worker::start(store.clone(), registry(), WorkerOptions::default());
        let client = Client::new(store.clone());
        let empty = EntityId::new("counter", "empty").unwrap();
        let kept = EntityId::new("counter", "kept").unwrap();
        let held = EntityId::new("counter", "held").unwrap();
        client.signal_entity(&empty, "add", 1).await.unwrap();
        client.signal_entity(&empty, "reset", ()).await.unwrap();
        client.signal_entity(&kept, "add", 1).await.unwrap();
        // A lock held by an orchestration that no longer exists; a signal
        // then waits behind it.
        let now = chrono::Utc::now();
        store
            .send_message(InstanceMessage {
                instance_id: held.to_string(),
                execution_id: None,
                event: HistoryEvent::new(
                    now,
                    EventKind::EntityLockRequested {
                        critical_section_id: "cs-ghost".into(),
                        lock_set: vec![held.to_string()],
                        position: 0,
                        parent_instance_id: "ghost".into(),
                    },
                ),
                visible_at: now,
            })
            .await
            .unwrap();
        client.signal_entity(&held, "add", 5).await.unwrap();
        until("entities settle", || async {
            let e = store.get_instance(&empty.to_string()).await.unwrap();
            let h = store.get_instance(&held.to_string()).await.unwrap();
            e.is_some_and(|e| e.status == RuntimeStatus::Completed && e.output.is_none())
                && h.is_some_and(|h| {
                    perdure::dispatch::entity_lock_holder(&h.custom_status).is_some()
                        && !perdure::dispatch::entity_schedule_is_empty(&h.custom_status)
                        && h.status != RuntimeStatus::Pending
                })
                && client.read_entity_state::<i64>(&kept).await.unwrap() == Some(1)
        })
        .await;
        assert_eq!(client.read_entity_state::<i64>(&held).await.unwrap(), None);
        let done = client.clean_entity_storage(true, true).await.unwrap();
        assert_eq!(
            (done.empty_entities_removed, done.orphaned_locks_released),
            (1, 1),
            "{name}"
        );
        assert!(store
            .get_instance(&empty.to_string())
            .await
            .unwrap()
            .is_none());
        until("the queued signal runs after the release", || async {
            client.read_entity_state::<i64>(&held).await.unwrap() == Some(5)
        })
        .await;
        assert_eq!(
            client.read_entity_state::<i64>(&kept).await.unwrap(),
            Some(1)
        );
        // An entity with requests waiting is never removed.
        let again = client.clean_entity_storage(true, true).await.unwrap();
        assert_eq!(
            again,
            perdure::CleanEntityStorageResult::default(),
            "{name}"
        );
        worker.shutdown().await;
    }
}
