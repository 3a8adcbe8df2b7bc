//! `perdure demo`: every pattern of the seed documents, run on a real store,
//! with each result printed and HelloCities' history shown as a table.

use crate::table;
use anyhow::{bail, Context, Result};
use perdure::{Client, EntityId, RuntimeStatus, Worker, WorkerOptions};
use perdure_examples::{
    approval::ApprovalInput, bank::Transfer as BankTransfer, error_handling::Transfer,
    eternal::CleanupState, monitor::MonitorInput, site_monitor::SiteCheck,
};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(120);

async fn run_one(
    client: &Client,
    name: &str,
    input: Value,
) -> Result<perdure::OrchestrationStatus> {
    let id = client.start_new(name, None, input).await?;
    let st = client.wait_for_completion(&id, WAIT).await?;
    if st.runtime_status != RuntimeStatus::Completed {
        bail!(
            "{name} ({id}) ended {}: {:?}",
            st.runtime_status,
            st.failure
        );
    }
    Ok(st)
}

fn show(title: &str, st: &perdure::OrchestrationStatus) {
    println!("\n== {title}");
    println!(
        "   instance {}  ->  {}",
        st.instance_id,
        st.output.as_deref().unwrap_or("null")
    );
}

pub async fn run_demo(client: &Client) -> Result<()> {
    let st = run_one(client, "HelloCities", Value::Null).await?;
    show("Pattern 1: function chaining (HelloCities)", &st);
    let full = client
        .get_status(&st.instance_id, true)
        .await?
        .context("HelloCities vanished")?;
    println!();
    let events = perdure_server::wire::history(full.history.as_deref().unwrap_or_default(), true);
    print!(
        "{}",
        table::history_table(
            &st.instance_id,
            &serde_json::Value::Array(events.into_iter().map(|e| e.into_value()).collect()),
        )
    );

    let st = run_one(client, "FanOutFanIn", json!(20)).await?;
    show(
        "Pattern 2: fan-out/fan-in (20 parallel F2 calls, summed)",
        &st,
    );

    println!("\n== Pattern 3: async HTTP API (start, then poll the status)");
    let id = client.start_new("DoWork", None, 5).await?;
    println!("   started DoWork as {id}");
    let mut last = String::new();
    loop {
        let st = client
            .get_status(&id, false)
            .await?
            .context("DoWork vanished")?;
        let line = format!(
            "   status {:<9} customStatus {}",
            st.runtime_status,
            st.custom_status.as_deref().unwrap_or("null")
        );
        if line != last {
            println!("{line}");
            last = line;
        }
        if st.runtime_status.is_terminal() {
            println!("   output {}", st.output.as_deref().unwrap_or("null"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let m = MonitorInput {
        job_id: "job-42".into(),
        polling_interval_secs: 1,
        expiry_secs: 30,
        completes_after_checks: 3,
    };
    let st = run_one(client, "JobMonitor", serde_json::to_value(&m)?).await?;
    show(
        "Pattern 4: monitor (job polled every second on a durable timer)",
        &st,
    );

    println!("\n== Pattern 5: human interaction (approval raced against a 72-hour timer)");
    let input = ApprovalInput {
        request: "expense-1001".into(),
        timeout_secs: 72 * 3600,
    };
    let id = client.start_new("ApprovalWorkflow", None, &input).await?;
    client.raise_event(&id, "ApprovalEvent", true).await?;
    let st = client.wait_for_completion(&id, WAIT).await?;
    println!(
        "   approved in time:  {}",
        st.output.as_deref().unwrap_or("null")
    );
    let input = ApprovalInput {
        request: "expense-1002".into(),
        timeout_secs: 2,
    };
    let st = run_one(client, "ApprovalWorkflow", serde_json::to_value(&input)?).await?;
    println!(
        "   no answer (timer shortened to 2 s):  {}",
        st.output.as_deref().unwrap_or("null")
    );

    let st = run_one(client, "ProvisionNewDevices", json!(5)).await?;
    show(
        "Sub-orchestrations: 5 devices provisioned in parallel, each awaiting its ack",
        &st,
    );

    println!("\n== Error handling: retry on durable timers, then compensation");
    let t = Transfer {
        transfer_id: format!("tx-{}", st.instance_id),
        from: "alice".into(),
        to: "bob".into(),
        amount: 100,
        credit_failures: 2,
        max_attempts: 5,
    };
    let st = run_one(client, "TransferFunds", serde_json::to_value(&t)?).await?;
    println!(
        "   flaky bank, 5 attempts allowed:  {}",
        st.output.as_deref().unwrap_or("null")
    );
    let t = Transfer {
        transfer_id: format!("tx2-{}", st.instance_id),
        credit_failures: 10,
        max_attempts: 2,
        ..t
    };
    let st = run_one(client, "TransferFunds", serde_json::to_value(&t)?).await?;
    println!(
        "   bank down, 2 attempts allowed:   {}",
        st.output.as_deref().unwrap_or("null")
    );

    let s = CleanupState {
        round: 0,
        rounds: 5,
        interval_ms: 200,
        cleaned: 0,
    };
    let st = run_one(client, "PeriodicCleanup", serde_json::to_value(&s)?).await?;
    show("Eternal orchestration: 5 rounds of continue-as-new", &st);

    bank_demo(client).await?;
    site_monitor_demo(client).await?;
    Ok(())
}

/// Critical sections: concurrent transfers between entity accounts.
async fn bank_demo(client: &Client) -> Result<()> {
    println!(
        "
== Critical sections: 12 concurrent transfers between 3 Account entities"
    );
    let run = uuid::Uuid::new_v4().simple().to_string();
    let accounts: Vec<String> = (0..3).map(|i| format!("{}-{i}", &run[..8])).collect();
    let id = |key: &str| EntityId::new("Account", key).context("account id");
    for key in &accounts {
        client.signal_entity(&id(key)?, "deposit", 100).await?;
    }
    let mut started = Vec::new();
    for i in 0..12 {
        let t = BankTransfer {
            from: accounts[i % 3].clone(),
            to: accounts[(i + 1) % 3].clone(),
            amount: 40 + (i as i64 % 3) * 30,
        };
        started.push(client.start_new("BankTransfer", None, &t).await?);
    }
    let mut moved = 0;
    for i in &started {
        let st = client.wait_for_completion(i, WAIT).await?;
        moved += usize::from(st.output_as::<bool>().unwrap_or(false));
    }
    let mut total = 0;
    for key in &accounts {
        let balance: i64 = client.read_entity_state(&id(key)?).await?.unwrap_or(0);
        println!("   account {key}: {balance}");
        total += balance;
    }
    println!("   {moved} of 12 transfers went through; total {total} (started with 300)");
    if total != 300 {
        bail!("money was lost or created: total {total}");
    }
    Ok(())
}

/// Durable HTTP: a monitor that checks a local endpoint on durable timers.
async fn site_monitor_demo(client: &Client) -> Result<()> {
    let app = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/health", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let check = SiteCheck {
        url: url.clone(),
        checks: 3,
        interval_ms: 200,
    };
    let st = run_one(client, "SiteMonitor", serde_json::to_value(&check)?).await;
    server.abort();
    show(
        &format!("Durable HTTP: SiteMonitor checked {url} three times"),
        &st?,
    );
    Ok(())
}

pub async fn run(store_url: &str) -> Result<()> {
    let store = perdure::open_store(store_url)
        .await
        .with_context(|| format!("opening store {}", perdure::redact_url(store_url)))?;
    println!("Perdure demo on {}", perdure::redact_url(store_url));
    let client = Client::new(store.clone());
    let worker = Worker::start(
        store,
        perdure_examples::registry(client.clone()),
        WorkerOptions::default(),
    );
    let result = run_demo(&client).await;
    worker.shutdown().await;
    result?;
    println!("\nAll patterns completed.");
    Ok(())
}
