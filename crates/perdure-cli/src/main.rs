//! The `perdure` command: `demo` runs every pattern of the seed documents,
//! `worker` runs the sample orchestrations against a store until stopped,
//! and the instance commands (`start`, `status`, `history`, `raise`,
//! `terminate`) manage instances in a store.

mod demo;
mod table;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use perdure::{Client, Worker, WorkerOptions};
use std::time::Duration;

#[derive(Parser)]
#[command(name = "perdure", version, about = "Durable orchestrations in Rust")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs every pattern of the seed documents and prints their results.
    Demo {
        #[arg(long, default_value = perdure::DEFAULT_STORE_URL)]
        store: String,
    },
    /// Runs a worker with the sample orchestrations until interrupted.
    Worker {
        #[arg(long, default_value = perdure::DEFAULT_STORE_URL)]
        store: String,
        /// Lease on taken work, in milliseconds.
        #[arg(long, default_value_t = 30_000)]
        lease_ms: u64,
    },
    /// Starts an orchestration instance.
    Start {
        name: String,
        /// Input as JSON.
        #[arg(long, default_value = "null")]
        input: String,
        #[arg(long)]
        id: Option<String>,
        #[arg(long, default_value = perdure::DEFAULT_STORE_URL)]
        store: String,
    },
    /// Shows an instance's status as JSON.
    Status {
        id: String,
        #[arg(long, default_value = perdure::DEFAULT_STORE_URL)]
        store: String,
    },
    /// Prints an instance's history as a table.
    History {
        id: String,
        #[arg(long, default_value = perdure::DEFAULT_STORE_URL)]
        store: String,
    },
    /// Raises an external event on an instance.
    Raise {
        id: String,
        event: String,
        /// Event data as JSON.
        #[arg(long, default_value = "null")]
        data: String,
        #[arg(long, default_value = perdure::DEFAULT_STORE_URL)]
        store: String,
    },
    /// Terminates an instance.
    Terminate {
        id: String,
        #[arg(long, default_value = "terminated from the command line")]
        reason: String,
        #[arg(long, default_value = perdure::DEFAULT_STORE_URL)]
        store: String,
    },
}

fn json_arg(what: &str, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).with_context(|| format!("{what} is not valid JSON: {text}"))
}

fn client(store: &str) -> Result<Client> {
    let store = perdure::open_store(store).with_context(|| format!("opening store {store}"))?;
    Ok(Client::new(store))
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Demo { store } => demo::run(&store).await,
        Command::Worker { store, lease_ms } => {
            let store =
                perdure::open_store(&store).with_context(|| format!("opening store {store}"))?;
            let client = Client::new(store.clone());
            let options = WorkerOptions {
                lease: Duration::from_millis(lease_ms),
                ..WorkerOptions::default()
            };
            let worker = Worker::start(store, perdure_examples::registry(client), options);
            eprintln!("perdure worker running; Ctrl-C to stop");
            tokio::signal::ctrl_c().await?;
            worker.shutdown().await;
            Ok(())
        }
        Command::Start {
            name,
            input,
            id,
            store,
        } => {
            let input = json_arg("--input", &input)?;
            let id = client(&store)?
                .start_new(&name, id.as_deref(), input)
                .await?;
            println!("{id}");
            Ok(())
        }
        Command::Status { id, store } => {
            let st = client(&store)?
                .get_status(&id, false)
                .await?
                .with_context(|| format!("instance `{id}` was not found"))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&table::status_json(&st))?
            );
            Ok(())
        }
        Command::History { id, store } => {
            let st = client(&store)?
                .get_status(&id, true)
                .await?
                .with_context(|| format!("instance `{id}` was not found"))?;
            print!(
                "{}",
                table::history_table(&id, st.history.as_deref().unwrap_or_default())
            );
            Ok(())
        }
        Command::Raise {
            id,
            event,
            data,
            store,
        } => {
            let data = json_arg("--data", &data)?;
            client(&store)?.raise_event(&id, &event, data).await?;
            Ok(())
        }
        Command::Terminate { id, reason, store } => {
            client(&store)?.terminate(&id, reason).await?;
            Ok(())
        }
    }
}
