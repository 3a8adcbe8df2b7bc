//! Code changed under running instances: `ctx.is_patched` keeps instances
//! started before a change on the branch they recorded and sends new ones
//! down the new branch (a `PatchMarker` in their history);
//! `ctx.deprecate_patch` retires the old branch. Shown in the test kit
//! (a deploy between two steps of an instance) and with real processes
//! (a worker killed, and a worker with the new code started on the same
//! SQLite file).

use perdure::testing::TestEnv;
use perdure::{EventKind, OrchestrationContext, Registry, RuntimeStatus};
use std::time::Duration;

/// The code of each release of the `Order` orchestration: it charges,
/// waits for `Ship`, then ships. Release 2 adds a fraud check before the
/// wait (behind the patch `fraud-check` when `guarded`), release 3 keeps
/// only the new branch (`deprecate_patch`).
#[derive(Clone, Copy, Debug)]
enum Release {
    V1,
    V2 { guarded: bool },
    V3,
}

fn registry(release: Release) -> Registry {
    let mut r = Registry::new();
    for name in ["Charge", "CheckFraud", "Ship"] {
        r.add_activity(name, move |_ctx, ()| async move { Ok(name.to_string()) });
    }
    r.add_orchestrator("Order", move |ctx: OrchestrationContext| async move {
        let mut steps: Vec<String> = vec![ctx.call_activity("Charge", ()).await?];
        let check = match release {
            Release::V1 => false,
            Release::V2 { guarded: true } => ctx.is_patched("fraud-check"),
            Release::V2 { guarded: false } => true,
            Release::V3 => {
                ctx.deprecate_patch("fraud-check");
                true
            }
        };
        if check {
            steps.push(ctx.call_activity("CheckFraud", ()).await?);
        }
        ctx.wait_for_external_event::<()>("Ship").await?;
        steps.push(ctx.call_activity("Ship", ()).await?);
        Ok(steps)
    });
    r
}

fn markers(history: &[perdure::HistoryEvent]) -> Vec<String> {
    history
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::PatchMarker { change_id } => Some(change_id.clone()),
            _ => None,
        })
        .collect()
}

/// Starts `Order` as `id` under `first`, deploys `then`, ships it, and
/// returns its status.
async fn across_deploy(first: Release, then: Release) -> perdure::OrchestrationStatus {
    let mut env = TestEnv::new(registry(first));
    env.start_with_id("Order", "o1", ()).await.expect("start");
    env.deploy(registry(then));
    env.raise_event("o1", "Ship", ()).await.expect("raise");
    env.status("o1").await.expect("status")
}

#[tokio::test]
async fn a_patched_change_keeps_an_old_instance_on_its_old_branch() {
    let st = across_deploy(Release::V1, Release::V2 { guarded: true }).await;
    assert_eq!(st.runtime_status, RuntimeStatus::Completed, "{st:?}");
    assert_eq!(st.output.as_deref(), Some(r#"["Charge","Ship"]"#));
    assert!(markers(&st.history.unwrap_or_default()).is_empty());
}

#[tokio::test]
async fn an_unguarded_change_fails_an_old_instance_with_a_stable_code() {
    let st = across_deploy(Release::V1, Release::V2 { guarded: false }).await;
    assert_eq!(st.runtime_status, RuntimeStatus::Failed, "{st:?}");
    let failure = st.failure.expect("failure");
    assert_eq!(failure.error_type, "NonDeterminism");
    assert!(
        failure.message.contains("PERDURE-ND-"),
        "{}",
        failure.message
    );
}

#[tokio::test]
async fn a_patched_change_sends_a_new_instance_down_the_new_branch() {
    let env = TestEnv::new(registry(Release::V2 { guarded: true }));
    env.start_with_id("Order", "o2", ()).await.expect("start");
    env.raise_event("o2", "Ship", ()).await.expect("raise");
    let st = env.status("o2").await.expect("status");
    assert_eq!(
        st.output.as_deref(),
        Some(r#"["Charge","CheckFraud","Ship"]"#)
    );
    assert_eq!(
        markers(&st.history.unwrap_or_default()),
        vec!["fraud-check"]
    );
}

#[tokio::test]
async fn a_marker_keeps_the_new_branch_across_turns_and_replays() {
    // Started under release 2, finished by a fresh worker of release 2.
    let st = across_deploy(Release::V2 { guarded: true }, Release::V2 { guarded: true }).await;
    assert_eq!(
        st.output.as_deref(),
        Some(r#"["Charge","CheckFraud","Ship"]"#)
    );
    assert_eq!(
        markers(&st.history.unwrap_or_default()),
        vec!["fraud-check"]
    );
}

#[tokio::test]
async fn a_deprecated_patch_replays_instances_that_recorded_the_marker() {
    let st = across_deploy(Release::V2 { guarded: true }, Release::V3).await;
    assert_eq!(st.runtime_status, RuntimeStatus::Completed, "{st:?}");
    assert_eq!(
        st.output.as_deref(),
        Some(r#"["Charge","CheckFraud","Ship"]"#)
    );
}

#[tokio::test]
async fn a_deprecated_patch_still_records_the_marker_for_older_workers() {
    // Started by release 3, finished by a worker still on release 2.
    let st = across_deploy(Release::V3, Release::V2 { guarded: true }).await;
    assert_eq!(
        st.output.as_deref(),
        Some(r#"["Charge","CheckFraud","Ship"]"#)
    );
    assert_eq!(
        markers(&st.history.unwrap_or_default()),
        vec!["fraud-check"]
    );
}

#[tokio::test]
async fn the_replay_checker_accepts_old_histories_under_patched_code() {
    let env = TestEnv::new(registry(Release::V1));
    env.start_with_id("Order", "o3", ()).await.expect("start");
    let history = env.history("o3").await.expect("history");
    let guarded = registry(Release::V2 { guarded: true });
    assert!(perdure::replay::replay_history(&guarded, "o3", &history).is_ok());
    let unguarded = registry(Release::V2 { guarded: false });
    let err = perdure::replay::replay_history(&unguarded, "o3", &history).expect_err("mismatch");
    assert!(err.to_string().contains("PERDURE-ND-"), "{err}");
}

// --- With real processes: a worker of one release is killed, a worker of
// the next takes over the same SQLite file.

const CHILD_ENV: &str = "PERDURE_VERSIONING_CHILD";

/// Not a test of its own: the body of a worker process the tests below
/// start (this test binary run again with `CHILD_ENV` set to
/// `RELEASE:STORE_URL`). It runs until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_worker() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (release, url) = spec.split_once(':').expect("RELEASE:URL");
    let release = match release {
        "v1" => Release::V1,
        "v2" => Release::V2 { guarded: true },
        other => panic!("unknown release {other}"),
    };
    let store = perdure::open_store(url).await.expect("store");
    let _worker = perdure::Worker::start(store, registry(release), Default::default());
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

struct Child(std::process::Child);

impl Child {
    fn start(release: &str, url: &str) -> Child {
        let exe = std::env::current_exe().expect("test binary");
        let child = std::process::Command::new(exe)
            .args(["--exact", "child_worker", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, format!("{release}:{url}"))
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn worker");
        Child(child)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill(); // SIGKILL
        let _ = self.0.wait();
    }
}

/// Waits until instance `id` has recorded `n` activity results.
async fn wait_for_results(client: &perdure::Client, id: &str, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let history = client
            .get_status(id, true)
            .await
            .expect("status")
            .and_then(|s| s.history)
            .unwrap_or_default();
        let done = history
            .iter()
            .filter(|e| matches!(e.kind, EventKind::TaskCompleted { .. }))
            .count();
        if done >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id} never got {n} results"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_release_in_a_new_process_keeps_old_instances_on_their_branch() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("v.db").display());
    let client = perdure::Client::new(perdure::open_store(&url).await.expect("store"));
    client
        .start_new("Order", Some("old"), ())
        .await
        .expect("start");
    {
        let _v1 = Child::start("v1", &url);
        wait_for_results(&client, "old", 1).await;
    } // killed with SIGKILL while `old` waits for Ship
    let _v2 = Child::start("v2", &url);
    client
        .start_new("Order", Some("new"), ())
        .await
        .expect("start");
    wait_for_results(&client, "new", 2).await;
    for id in ["old", "new"] {
        client.raise_event(id, "Ship", ()).await.expect("raise");
    }
    let old = client
        .wait_for_completion("old", Duration::from_secs(60))
        .await
        .expect("old completes");
    let new = client
        .wait_for_completion("new", Duration::from_secs(60))
        .await
        .expect("new completes");
    assert_eq!(
        old.output.as_deref(),
        Some(r#"["Charge","Ship"]"#),
        "{old:?}"
    );
    assert_eq!(
        new.output.as_deref(),
        Some(r#"["Charge","CheckFraud","Ship"]"#)
    );
    let history = client.get_status("new", true).await.expect("status");
    let history = history.and_then(|s| s.history).unwrap_or_default();
    assert_eq!(markers(&history), vec!["fraud-check"]);
}
