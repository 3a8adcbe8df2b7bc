//! Human interaction: nobody approves within the (shortened) timeout, so the request is escalated.
//! Run: `cargo run -p perdure-examples --example approval_escalation`

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    perdure_examples::run_sample(
        "sqlite://perdure.db",
        "ApprovalWorkflow",
        serde_json::json!({"request": "expense-7", "timeout_secs": 3}),
    )
    .await?;
    Ok(())
}
