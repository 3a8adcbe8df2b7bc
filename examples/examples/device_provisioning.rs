//! Sub-orchestrations: provision 10 devices in parallel, each waiting for its acknowledgement.
//! Run: `cargo run -p perdure-examples --example device_provisioning`

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    perdure_examples::run_sample(
        "sqlite://perdure.db",
        "ProvisionNewDevices",
        serde_json::json!(10),
    )
    .await?;
    Ok(())
}
