//! Histories exported from one store and imported into another: a finished
//! instance arrives as it was; an open one runs on from where it was, its
//! activities and timers queued again; bad documents are refused by name;
//! the replay checker reads export files.

use perdure::export::{ExportError, HistoryExport};
use perdure::replay::{ReplayFileError, Replayer};
use perdure::testing::TestEnv;
use perdure::{ClientError, EventKind, Failure, OrchestrationContext, Registry, RuntimeStatus};
use std::time::Duration;

/// `Order`: charge, wait a day, ship. `Charge` is faked in the tests.
fn registry() -> Registry {
    let mut r = Registry::new();
    r.add_activity("Ship", |_ctx, ()| async move { Ok("shipped".to_string()) });
    r.add_orchestrator("Order", |ctx: OrchestrationContext| async move {
        let charged: String = ctx.call_activity("Charge", ()).await?;
        ctx.create_timer_after(Duration::from_secs(86_400)).await;
        let shipped: String = ctx.call_activity("Ship", ()).await?;
        Ok(vec![charged, shipped])
    });
    r
}

/// A production environment whose `Charge` fails until told otherwise.
fn production(charge_works: bool) -> TestEnv {
    let mut env = TestEnv::new(registry());
    env.mock_activity("Charge", move |_| {
        if charge_works {
            Ok("charged".to_string())
        } else {
            Err(Failure::new("Gateway", "the gateway is down").non_retriable())
        }
    });
    env
}

/// Exports `id` from `from` through the JSON document and imports it into
/// a fresh environment (charge working), as `as_id`.
async fn carry(from: &TestEnv, id: &str, as_id: Option<&str>) -> TestEnv {
    let export = from.client().export_history(id).await.expect("export");
    let text = export.to_json();
    let read = HistoryExport::from_json(&text).expect("read back");
    assert_eq!(read, export);
    let to = production(true);
    to.client()
        .import_history(&read, as_id)
        .await
        .expect("import");
    to.run_until_idle().await.expect("run");
    to
}

#[tokio::test]
async fn a_finished_instance_arrives_as_it_was() {
    let env = production(true);
    let id = env.start("Order", ()).await.expect("start");
    env.advance(Duration::from_secs(86_400))
        .await
        .expect("advance");
    let before = env.status(&id).await.expect("status");
    let to = carry(&env, &id, None).await;
    let after = to.status(&id).await.expect("status");
    assert_eq!(after.runtime_status, RuntimeStatus::Completed);
    assert_eq!(after.output, before.output);
    assert_eq!(after.history, before.history);
}

#[tokio::test]
async fn a_failed_instance_keeps_its_failure() {
    let env = production(false);
    let id = env.start("Order", ()).await.expect("start");
    let before = env.status(&id).await.expect("status");
    let to = carry(&env, &id, None).await;
    let after = to.status(&id).await.expect("status");
    assert_eq!(after.runtime_status, RuntimeStatus::Failed);
    assert!(before.failure.is_some());
    assert_eq!(after.failure, before.failure);
}

#[tokio::test]
async fn an_open_instance_runs_on_from_its_timer() {
    let env = production(true);
    let id = env.start("Order", ()).await.expect("start");
    let to = carry(&env, &id, Some("copy")).await;
    assert_eq!(
        to.status("copy").await.expect("status").runtime_status,
        RuntimeStatus::Running
    );
    to.advance(Duration::from_secs(86_400))
        .await
        .expect("advance");
    assert_eq!(
        to.output::<Vec<String>>("copy").await.expect("output"),
        vec!["charged", "shipped"]
    );
}

#[tokio::test]
async fn an_open_activity_is_queued_again() {
    let mut env = TestEnv::new(registry());
    // Production never got an answer from the gateway: the call is open.
    env.mock_activity("Charge", |_| -> Result<String, Failure> {
        Err(Failure::new("never", "unused"))
    });
    let id = env
        .client()
        .start_new("Order", None, ())
        .await
        .expect("start");
    let item = perdure_store::OrchestrationQueue::fetch_orchestrations(
        &**env.client().store(),
        Duration::from_secs(60),
        10,
        1,
        &perdure_store::WorkFilter::Any,
    )
    .await
    .expect("fetch");
    let engine = perdure::Engine::new(env.client().store().clone(), registry(), Default::default());
    for i in item {
        engine.run_orchestration(i).await.expect("turn"); // schedules Charge, runs nothing
    }
    let to = carry(&env, &id, None).await;
    to.advance(Duration::from_secs(86_400))
        .await
        .expect("advance");
    assert_eq!(
        to.output::<Vec<String>>(&id).await.expect("output"),
        vec!["charged", "shipped"]
    );
    assert_eq!(to.activity_calls("Charge").len(), 1);
}

#[tokio::test]
async fn an_import_over_an_existing_instance_is_refused() {
    let env = production(true);
    let id = env.start("Order", ()).await.expect("start");
    let export = env.client().export_history(&id).await.expect("export");
    let err = env
        .client()
        .import_history(&export, None)
        .await
        .expect_err("exists");
    assert!(matches!(err, ClientError::InvalidArgument(_)), "{err}");
    assert!(err.to_string().contains("already exists"), "{err}");
}

#[test]
fn a_document_of_another_format_is_refused() {
    let err =
        HistoryExport::from_json(r#"{"format":"dtfx","formatVersion":1}"#).expect_err("format");
    assert!(matches!(err, ExportError::Malformed(_)), "{err}");
}

#[test]
fn a_document_of_a_later_version_is_refused_by_version() {
    let err = HistoryExport::from_json(r#"{"format":"perdure.history","formatVersion":9}"#)
        .expect_err("version");
    assert!(matches!(err, ExportError::Version { found: 9 }), "{err}");
}

#[test]
fn a_document_that_is_not_json_is_refused() {
    assert!(matches!(
        HistoryExport::from_json("{nope"),
        Err(ExportError::Malformed(_))
    ));
}

#[tokio::test]
async fn the_replayer_reads_an_export_file_and_names_the_mismatch() {
    let env = production(true);
    let id = env.start("Order", ()).await.expect("start");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("order.json");
    let export = env.client().export_history(&id).await.expect("export");
    std::fs::write(&path, export.to_json()).expect("write");
    assert!(Replayer::new(registry()).replay_file(&path).is_ok());
    // A branch that ships before the wait.
    let mut branch = Registry::new();
    branch.add_orchestrator("Order", |ctx: OrchestrationContext| async move {
        let charged: String = ctx.call_activity("Charge", ()).await?;
        let shipped: String = ctx.call_activity("Ship", ()).await?;
        Ok(vec![charged, shipped])
    });
    let err = Replayer::new(branch)
        .replay_file(&path)
        .expect_err("mismatch");
    assert!(matches!(err, ReplayFileError::Replay { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("PERDURE-ND-001") && text.contains(&id),
        "{text}"
    );
}

#[tokio::test]
async fn the_replayer_names_a_missing_file() {
    let err = Replayer::new(registry())
        .replay_file("/nonexistent/order.json")
        .expect_err("missing");
    assert!(matches!(err, ReplayFileError::Io { .. }), "{err}");
}

#[tokio::test]
async fn an_imported_history_holds_no_import_event() {
    let env = production(true);
    let id = env.start("Order", ()).await.expect("start");
    let to = carry(&env, &id, None).await;
    let history = to.history(&id).await.expect("history");
    assert!(!history
        .iter()
        .any(|e| matches!(e.kind, EventKind::HistoryImported { .. })));
}

mod common;

/// On every store, with a real worker: an instance imported at its day-long
/// timer, the timer repaired (fired now), and the instance completing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_instance_is_repaired_and_completes_on_every_store() {
    let env = production(true);
    let id = env.start("Order", ()).await.expect("start");
    let export = env.client().export_history(&id).await.expect("export");
    for (label, store, _dir) in common::stores().await {
        let mut registry = registry();
        registry.add_activity(
            "Charge",
            |_ctx, ()| async move { Ok("charged".to_string()) },
        );
        let worker = perdure::Worker::start(store.clone(), registry, Default::default());
        let client = perdure::Client::new(store);
        let as_id = format!("imported-{}", uuid_like(label));
        client
            .import_history(&export, Some(&as_id))
            .await
            .expect("import");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let timer = loop {
            let steps = client.pending_steps(&as_id).await.expect("steps");
            if let Some(t) = steps
                .into_iter()
                .find(|s| s.step == perdure::RepairedStep::Timer)
            {
                break t;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{label}: never imported"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        client
            .repair(
                &as_id,
                perdure::RepairRequest {
                    step_id: timer.step_id,
                    repair: perdure::Repair::SkipTimer,
                    by: "test".into(),
                    reason: "no need to wait a day".into(),
                },
            )
            .await
            .expect("repair");
        let st = client
            .wait_for_completion(&as_id, Duration::from_secs(30))
            .await
            .expect("completes");
        assert_eq!(
            st.output.as_deref(),
            Some(r#"["charged","shipped"]"#),
            "{label}: {st:?}"
        );
        worker.shutdown().await;
    }
}

/// A per-run suffix, so reruns on a shared PostgreSQL never collide.
fn uuid_like(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{label}-{nanos}")
}
