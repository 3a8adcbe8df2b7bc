//! The async HTTP API pattern's job: a long-running DoWork that reports progress in its custom status.
//! Run: `cargo run -p perdure-examples --example async_http_api`

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    perdure_examples::run_sample("sqlite://perdure.db", "DoWork", serde_json::json!(5)).await?;
    Ok(())
}
