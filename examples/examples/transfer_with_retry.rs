//! Error handling: a flaky credit is retried on durable timers; the transfer completes on the third attempt.
//! Run: `cargo run -p perdure-examples --example transfer_with_retry`

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    perdure_examples::run_sample("sqlite://perdure.db", "TransferFunds", serde_json::json!({"transfer_id": "example-tx", "from": "alice", "to": "bob", "amount": 25, "credit_failures": 2, "max_attempts": 5})).await?;
    Ok(())
}
