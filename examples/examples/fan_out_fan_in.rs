//! Fan-out/fan-in: F2 runs on 100 items in parallel and the results are summed.
//! Run: `cargo run -p perdure-examples --example fan_out_fan_in`

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    perdure_examples::run_sample("sqlite://perdure.db", "FanOutFanIn", serde_json::json!(100))
        .await?;
    Ok(())
}
