//! The seed documents' patterns as Perdure orchestrations and activities,
//! shared by `perdure demo`, `perdure worker`, the runnable examples in
//! `examples/examples/` and the end-to-end tests. [`registry`] registers
//! them all.

pub mod approval;
pub mod bank;
pub mod chaining;
pub mod devices;
pub mod entities;
pub mod error_handling;
pub mod eternal;
pub mod fan_out;
pub mod monitor;
pub mod site_monitor;

use perdure::{Client, Registry};

/// Every sample orchestration and activity. Activities that play an outside
/// party (a device acknowledging a download) use `client` to raise events.
pub fn registry(client: Client) -> Registry {
    let mut r = Registry::new();
    chaining::register(&mut r);
    fan_out::register(&mut r);
    monitor::register(&mut r);
    approval::register(&mut r);
    devices::register(&mut r, client);
    error_handling::register(&mut r);
    eternal::register(&mut r);
    entities::register(&mut r);
    bank::register(&mut r);
    site_monitor::register(&mut r);
    r
}

/// Runs one sample orchestration to completion on `store_url` with a worker
/// in this process, and returns its final status. Used by the programs in
/// `examples/examples/`.
pub async fn run_sample(
    store_url: &str,
    orchestration: &str,
    input: serde_json::Value,
) -> anyhow::Result<perdure::OrchestrationStatus> {
    let store = perdure::open_store(store_url).await?;
    let client = Client::new(store.clone());
    let worker = perdure::Worker::start(
        store,
        registry(client.clone()),
        perdure::WorkerOptions::default(),
    );
    let id = client.start_new(orchestration, None, input).await?;
    let status = client
        .wait_for_completion(&id, std::time::Duration::from_secs(120))
        .await;
    worker.shutdown().await;
    let status = status?;
    println!(
        "{orchestration} ({id}) {}: {}",
        status.runtime_status,
        status.output.as_deref().unwrap_or("null")
    );
    Ok(status)
}
