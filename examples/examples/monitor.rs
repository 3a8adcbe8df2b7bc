//! Monitor: poll a job every second on a durable timer until it completes, then alert.
//! Run: `cargo run -p perdure-examples --example monitor`

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    perdure_examples::run_sample("sqlite://perdure.db", "JobMonitor", serde_json::json!({"job_id": "job-1", "polling_interval_secs": 1, "expiry_secs": 60, "completes_after_checks": 3})).await?;
    Ok(())
}
