//! Function chaining: HelloCities calls SayHello for Tokyo, Seattle and London in turn.
//! Run: `cargo run -p perdure-examples --example hello_cities`

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    perdure_examples::run_sample(
        "sqlite://perdure.db",
        "HelloCities",
        serde_json::json!(null),
    )
    .await?;
    Ok(())
}
