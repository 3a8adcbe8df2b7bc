//! `perdure replay`: the recorded histories of a store checked against
//! the orchestrations this build holds (the samples), before a deploy puts
//! the code in front of them. Every running, pending or suspended
//! instance is checked, and with `--since` every instance created since;
//! `--name` narrows to one orchestration. A mismatch names the instance,
//! the history event, what the history holds and what the code did, with
//! its stable code (`PERDURE-ND-00N`); any mismatch exits with status 1.

use anyhow::{bail, Context, Result};
use perdure::replay::{check_instances, ReplayError};
use perdure::{Client, InstanceQuery, RuntimeStatus};

pub async fn run(store: &str, name: Option<String>, since: Option<String>) -> Result<()> {
    let since = since
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(&t)
                .map(|t| t.with_timezone(&chrono::Utc))
                .with_context(|| {
                    format!("--since must be a time like 2026-12-01T00:00:00Z, not `{t}`")
                })
        })
        .transpose()?;
    let handle = perdure::open_store(store)
        .await
        .with_context(|| format!("opening store {}", perdure::redact_url(store)))?;
    let client = Client::new(handle);
    let registry = perdure_examples::registry(client.clone());
    let query = InstanceQuery {
        statuses: match since {
            Some(_) => Vec::new(),
            None => vec![
                RuntimeStatus::Pending,
                RuntimeStatus::Running,
                RuntimeStatus::Suspended,
            ],
        },
        created_from: since,
        name,
        page_size: 500,
        ..Default::default()
    };
    let checks = check_instances(&registry, &client, &query).await?;
    let (mut clean, mut unknown, mut bad) = (0, 0, 0);
    for c in &checks {
        match &c.result {
            Ok(()) => clean += 1,
            Err(e @ ReplayError::Unregistered(_)) => {
                unknown += 1;
                println!("{} ({}, {}): skipped: {e}", c.instance_id, c.name, c.status);
            }
            Err(e) => {
                bad += 1;
                println!("{} ({}, {}): {e}", c.instance_id, c.name, c.status);
            }
        }
    }
    println!(
        "checked {} instances: {clean} replay cleanly, {bad} do not, {unknown} have no orchestrator here",
        checks.len()
    );
    if bad > 0 {
        bail!("{bad} recorded histories do not replay against this build");
    }
    Ok(())
}
