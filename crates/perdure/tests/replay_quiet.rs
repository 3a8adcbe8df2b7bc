//! Log lines from orchestrator code are written once, not again on every
//! replay, and turns and activities run inside named spans.

use perdure::{Client, OrchestrationContext, Registry, Worker, WorkerOptions};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrator_logs_are_not_repeated_on_replay() {
    let buf = Buf::default();
    let writer = buf.clone();
    tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let mut r = Registry::new();
    r.add_activity("Step", |_c, n: u32| async move { Ok(n) });
    r.add_orchestrator("Logged", |ctx: OrchestrationContext| async move {
        for n in 0..4u32 {
            ctx.log_info(&format!("about to run step {n}"));
            ctx.call_activity::<u32>("Step", n).await?;
        }
        ctx.log_info("all steps done");
        Ok(())
    });
    let store = perdure::open_store("memory").await.expect("store");
    // No cache: every turn replays the whole history from the store.
    let worker = Worker::start(
        store.clone(),
        r,
        WorkerOptions {
            cache_capacity: 0,
            ..WorkerOptions::default()
        },
    );
    let client = Client::new(store);
    let id = client.start_new("Logged", None, ()).await.expect("start");
    let st = client
        .wait_for_completion(&id, Duration::from_secs(30))
        .await
        .expect("done");
    assert_eq!(st.runtime_status, perdure::RuntimeStatus::Completed);
    worker.shutdown().await;
    let text = String::from_utf8(buf.0.lock().expect("buf").clone()).expect("utf8");
    for n in 0..4 {
        assert_eq!(
            text.matches(&format!("about to run step {n}")).count(),
            1,
            "step {n} logged once:\n{text}"
        );
    }
    assert_eq!(text.matches("all steps done").count(), 1);
    assert!(
        text.contains(&format!("instance_id={id}")),
        "log lines carry the instance id:\n{text}"
    );
    assert!(
        text.contains("orchestration{"),
        "turns run in an orchestration span:\n{text}"
    );
}
