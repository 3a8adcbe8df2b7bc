//! Human interaction: the approval arrives well before the 72-hour timer.
//! Run: `cargo run -p perdure-examples --example approval_granted`

use perdure::{Client, Worker, WorkerOptions};
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let store = perdure::open_store("sqlite://perdure.db").await?;
    let client = Client::new(store.clone());
    let worker = Worker::start(
        store,
        perdure_examples::registry(client.clone()),
        WorkerOptions::default(),
    );
    let id = client
        .start_new(
            "ApprovalWorkflow",
            None,
            serde_json::json!({ "request": "expense-8" }),
        )
        .await?;
    client.raise_event(&id, "ApprovalEvent", true).await?;
    let st = client
        .wait_for_completion(&id, Duration::from_secs(60))
        .await?;
    println!(
        "ApprovalWorkflow ({id}) {}: {}",
        st.runtime_status,
        st.output.as_deref().unwrap_or("null")
    );
    worker.shutdown().await;
    Ok(())
}
