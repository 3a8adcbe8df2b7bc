//! Eternal orchestration: five rounds of work, each ending in continue-as-new.
//! Run: `cargo run -p perdure-examples --example eternal_cleanup`

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    perdure_examples::run_sample(
        "sqlite://perdure.db",
        "PeriodicCleanup",
        serde_json::json!({"round": 0, "rounds": 5, "interval_ms": 500, "cleaned": 0}),
    )
    .await?;
    Ok(())
}
