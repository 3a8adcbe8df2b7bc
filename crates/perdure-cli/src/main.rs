//! The `perdure` command: `serve` runs the engine with its HTTP API, `demo`
//! runs every pattern of the seed documents, `worker` runs the sample
//! orchestrations, and the instance commands manage instances in a store
//! (`--store`) or through a running server (`--server`).

mod alloc;
mod backend;
mod bench;
mod demo;
mod replay;
mod steps;
mod table;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use perdure::{Client, Worker, WorkerOptions};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[global_allocator]
static ALLOCATOR: alloc::Allocator = alloc::Allocator;

#[derive(Parser)]
#[command(name = "perdure", version, about = "Durable orchestrations in Rust")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where instance commands act: a store, or a running server.
#[derive(Args, Clone, Debug)]
pub struct Target {
    /// Store URL: sqlite://PATH or memory.
    #[arg(long, default_value = perdure::DEFAULT_STORE_URL, global = true)]
    store: String,
    /// Base URL of a running `perdure serve` (e.g. http://127.0.0.1:7071); overrides --store.
    #[arg(long, global = true)]
    server: Option<String>,
    /// API key for --server (also PERDURE_API_KEY).
    #[arg(long, env = "PERDURE_API_KEY", global = true, hide_env_values = true)]
    api_key: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

/// What one client may hold of `perdure serve` (both doors).
#[derive(clap::Args)]
struct DoorLimits {
    /// Seconds a client may take to send a request's headers; also how
    /// long a kept-alive HTTP connection may sit idle.
    #[arg(long, default_value_t = 30)]
    header_timeout_secs: u64,
    /// Seconds a request's body may take to arrive (then 408).
    #[arg(long, default_value_t = 60)]
    body_timeout_secs: u64,
    /// Connections held at once, per door (later ones wait their turn).
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Long-poll waits at once, over both doors.
    #[arg(long, default_value_t = 1000)]
    max_waits: usize,
    /// MiB of request bodies held in memory at once.
    #[arg(long, default_value_t = 256)]
    max_body_mib_in_flight: usize,
}

impl DoorLimits {
    fn limits(&self) -> perdure_server::Limits {
        perdure_server::Limits {
            header_timeout: Duration::from_secs(self.header_timeout_secs.max(1)),
            body_timeout: Duration::from_secs(self.body_timeout_secs.max(1)),
            max_connections: self.max_connections.max(1),
            max_waits: self.max_waits,
            max_body_bytes_in_flight: self
                .max_body_mib_in_flight
                .max(17)
                .saturating_mul(1024 * 1024),
            ..perdure_server::Limits::default()
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Runs the engine and its HTTP API (Durable Functions' webhook API).
    Serve {
        #[arg(long, default_value = perdure::DEFAULT_STORE_URL)]
        store: String,
        /// Address for the HTTP API.
        #[arg(long, default_value = "127.0.0.1:7071")]
        http: SocketAddr,
        /// Address for the Durable Task gRPC protocol (the sidecar that the
        /// official Durable Task SDKs' clients and workers connect to).
        #[arg(long, default_value = "127.0.0.1:4001")]
        grpc: SocketAddr,
        /// Also run the demo's orchestrations and activities in this process.
        #[arg(long)]
        samples: bool,
        /// Required on every request; needed to listen beyond loopback.
        #[arg(long, env = "PERDURE_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// A second key that may only read over HTTP (GET: the dashboard,
        /// status, lists, metrics scrapes); needs --api-key.
        #[arg(long, env = "PERDURE_READ_KEY", hide_env_values = true)]
        read_key: Option<String>,
        #[command(flatten)]
        limits: DoorLimits,
        /// Lease on taken work, in milliseconds: work held by a process that
        /// died goes to others once it runs out.
        #[arg(long, default_value_t = 30_000)]
        lease_ms: u64,
        /// Export spans over OTLP/gRPC to this endpoint (e.g.
        /// http://127.0.0.1:4317); the standard OTEL_EXPORTER_OTLP_ENDPOINT
        /// is read when this is not given.
        #[arg(long)]
        otlp_endpoint: Option<String>,
    },
    /// Replays recorded histories against this build's orchestrations (the
    /// samples): every running instance, and with --since every instance
    /// created since then; or, with --file, exports written by `perdure
    /// history ID --json`. Exits 1 if any history no longer replays.
    Replay {
        #[arg(long, env = "PERDURE_STORE", hide_env_values = true, default_value = perdure::DEFAULT_STORE_URL)]
        store: String,
        /// Export files to check instead of the store (repeat for more).
        #[arg(long = "file")]
        files: Vec<String>,
        /// Only instances of this orchestration.
        #[arg(long)]
        name: Option<String>,
        /// Also finished instances created at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
    },
    /// Runs every pattern of the seed documents and prints their results.
    Demo {
        #[arg(long, default_value = perdure::DEFAULT_STORE_URL)]
        store: String,
    },
    /// Runs a named performance workload and reports its measures.
    Bench(bench::BenchArgs),
    /// A benchmark's worker process (started by `perdure bench --processes`).
    #[command(hide = true)]
    BenchWorker {
        /// Read from the environment, so a password stays out of the
        /// process list.
        #[arg(long, env = "PERDURE_STORE", hide_env_values = true)]
        store: String,
        /// Activities run at once (the parent's --activity-concurrency).
        #[arg(long)]
        activity_concurrency: Option<usize>,
    },
    /// Runs a worker with the sample orchestrations until interrupted.
    Worker {
        #[arg(long, default_value = perdure::DEFAULT_STORE_URL)]
        store: String,
        /// Lease on taken work, in milliseconds.
        #[arg(long, default_value_t = 30_000)]
        lease_ms: u64,
        /// Export spans over OTLP/gRPC to this endpoint (e.g.
        /// http://127.0.0.1:4317); the standard OTEL_EXPORTER_OTLP_ENDPOINT
        /// is read when this is not given.
        #[arg(long)]
        otlp_endpoint: Option<String>,
    },
    /// Starts an orchestration instance and prints its id.
    Start {
        name: String,
        #[arg(long)]
        id: Option<String>,
        /// Input as JSON.
        #[arg(long, default_value = "null")]
        input: String,
        #[command(flatten)]
        target: Target,
    },
    /// Shows an instance's status.
    Status {
        id: String,
        /// Include the history.
        #[arg(long)]
        history: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Lists instances.
    List {
        /// Only these statuses (repeat or comma-separate).
        #[arg(long = "status", value_delimiter = ',')]
        statuses: Vec<String>,
        /// Only ids starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        top: usize,
        #[command(flatten)]
        target: Target,
    },
    /// Prints an instance's history as a table; with --json, its export
    /// document (status and history; see docs/history-format.md), which
    /// `perdure import` and `perdure replay --file` read.
    History {
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Imports an export document (`perdure history ID --json`) as an
    /// instance of the store: a finished instance arrives as it was, an
    /// open one runs on under this store's workers from where it was.
    Import {
        /// The export file (`-` for standard input).
        file: String,
        /// Import under this instance id (default: the exported one).
        #[arg(long = "as")]
        as_id: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Settles a pending step of a stuck instance by hand (see `--steps`):
    /// completes or fails an activity or sub-orchestration, or fires a
    /// timer now. Recorded in the history with who and why, and applied by
    /// the instance's next turn.
    Repair {
        id: String,
        /// The step's id (the event id of its TaskScheduled, TimerCreated or
        /// SubOrchestrationInstanceCreated event); without it, lists the
        /// pending steps.
        #[arg(long)]
        step: Option<i64>,
        /// Complete the step with this result (JSON).
        #[arg(long, conflicts_with_all = ["fail", "skip_timer"])]
        complete: Option<String>,
        /// Fail the step with this message (non-retriable: a retry policy
        /// does not run it again).
        #[arg(long, conflicts_with = "skip_timer")]
        fail: Option<String>,
        /// The error type of --fail.
        #[arg(long, default_value = "Repaired", requires = "fail")]
        error_type: String,
        /// Fire the timer now.
        #[arg(long)]
        skip_timer: bool,
        /// Why (recorded in the history).
        #[arg(long)]
        reason: Option<String>,
        /// Who (recorded; default: $USER).
        #[arg(long, env = "USER", default_value = "unknown")]
        by: String,
        #[command(flatten)]
        target: Target,
    },
    /// Raises an external event on an instance.
    Raise {
        id: String,
        event: String,
        /// Event data as JSON.
        #[arg(long, default_value = "null")]
        data: String,
        #[command(flatten)]
        target: Target,
    },
    /// Terminates an instance.
    Terminate {
        id: String,
        #[arg(long, default_value = "terminated from the command line")]
        reason: String,
        /// Also terminate its sub-orchestrations.
        #[arg(long)]
        recursive: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Suspends an instance.
    Suspend {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        target: Target,
    },
    /// Resumes a suspended instance.
    Resume {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        target: Target,
    },
    /// Rewinds a failed instance.
    Rewind {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        target: Target,
    },
    /// Restarts a finished instance with its input; prints the id.
    Restart {
        id: String,
        /// Under a new instance id.
        #[arg(long)]
        new_id: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Purges a finished instance (or, with --before, every finished
    /// instance created before a time).
    Purge {
        id: Option<String>,
        /// Also purge its sub-orchestrations.
        #[arg(long)]
        recursive: bool,
        /// Purge by filter: created before this ISO 8601 time.
        #[arg(long)]
        before: Option<String>,
        #[command(flatten)]
        target: Target,
    },
}

fn json_arg(what: &str, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).with_context(|| format!("{what} is not valid JSON: {text}"))
}

fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Installs OTLP span export when an endpoint is configured.
fn export_spans(flag: Option<&str>) -> Result<Option<Arc<perdure_server::telemetry::OtlpSpans>>> {
    let Some(endpoint) = perdure_server::telemetry::configured_endpoint(flag) else {
        return Ok(None);
    };
    let spans = perdure_server::telemetry::install_otlp(&endpoint)?;
    eprintln!("perdure: exporting spans over OTLP to {endpoint}");
    Ok(Some(spans))
}

/// Sends the spans still queued before the process ends.
async fn stop_spans(spans: Option<Arc<perdure_server::telemetry::OtlpSpans>>) {
    if let Some(s) = spans {
        let _ = tokio::task::spawn_blocking(move || s.shutdown()).await;
    }
}

async fn serve(
    store: &str,
    (http, grpc): (SocketAddr, SocketAddr),
    samples: bool,
    (api_key, read_key): (Option<String>, Option<String>),
    limits: perdure_server::Limits,
    lease: Duration,
) -> Result<()> {
    let store_handle = perdure::open_store(store)
        .await
        .with_context(|| format!("opening store {}", perdure::redact_url(store)))?;
    let client = Client::new(store_handle.clone());
    // Any name may be started: remote workers over gRPC serve names this
    // process does not know, and an instance waits (Pending) for a worker
    // that takes its name.
    let config = perdure_server::ServerConfig {
        api_key: api_key.filter(|k| !k.is_empty()),
        read_key: read_key.filter(|k| !k.is_empty()),
        known_orchestrators: None,
        waits: perdure_server::Waits::new(limits.max_waits),
        limits,
    };
    if config.read_key.is_some() && config.api_key.is_none() {
        bail!("--read-key needs --api-key beside it: the read-only key is a second key");
    }
    let mut dispatch = perdure_server::grpc::DispatchOptions {
        lease,
        ..Default::default()
    };
    let worker = if samples {
        let registry = perdure_examples::registry(client.clone());
        dispatch.local_orchestrations = registry
            .orchestrator_names()
            .into_iter()
            .chain(registry.entity_instance_names())
            .collect();
        dispatch.local_activities = registry.activity_names();
        Some(Worker::start(
            store_handle,
            registry,
            WorkerOptions {
                take_unknown_names: false,
                lease,
                ..WorkerOptions::default()
            },
        ))
    } else {
        None
    };
    for addr in [http, grpc] {
        if !addr.ip().is_loopback() && config.api_key.is_none() {
            bail!(
                "refusing to listen on {addr} without an API key: set --api-key or PERDURE_API_KEY"
            );
        }
    }
    // A fixed port is bound before port 0: an ephemeral port the kernel
    // picks for one door must not be the fixed port the other door asked for.
    let bind = |addr: std::net::SocketAddr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))
    };
    let (listener, grpc_listener) = if http.port() == 0 {
        let grpc_listener = bind(grpc).await?;
        (bind(http).await?, grpc_listener)
    } else {
        (bind(http).await?, bind(grpc).await?)
    };
    let http_addr = listener.local_addr()?;
    eprintln!(
        "perdure serve: HTTP API on http://{http_addr}{}, dashboard on http://{http_addr}/, metrics on http://{http_addr}/metrics, gRPC on {} (store {}{})",
        perdure_server::BASE_PATH,
        grpc_listener.local_addr()?,
        perdure::redact_url(store),
        if samples { ", samples loaded" } else { "" }
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let grpc_config = config.clone();
    // One set of hubs for both doors: a hub opened over gRPC is the same
    // store the HTTP API's `taskHub` names.
    let hubs = std::sync::Arc::new(perdure::TaskHubs::new(client, Some(store.to_string())));
    let http_server =
        perdure_server::serve_hubs_on(listener, hubs.clone(), config, wait(stopped.clone()));
    let grpc_server = perdure_server::grpc::serve_grpc_with(
        grpc_listener,
        hubs,
        dispatch,
        &grpc_config,
        wait(stopped),
    );
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let (h, g) = tokio::join!(http_server, grpc_server);
    h?;
    g?;
    if let Some(w) = worker {
        w.shutdown().await;
    }
    Ok(())
}

async fn run() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            store,
            http,
            grpc,
            samples,
            api_key,
            read_key,
            limits,
            lease_ms,
            otlp_endpoint,
        } => {
            let lease = Duration::from_millis(lease_ms.max(100));
            let spans = export_spans(otlp_endpoint.as_deref())?;
            let keys = (api_key, read_key);
            let served = serve(&store, (http, grpc), samples, keys, limits.limits(), lease).await;
            stop_spans(spans).await;
            served
        }
        Command::Demo { store } => demo::run(&store).await,
        Command::Replay {
            store,
            files,
            name,
            since,
        } => {
            if files.is_empty() {
                replay::run(&store, name, since).await
            } else {
                steps::replay_files(&files)
            }
        }
        Command::Bench(args) => bench::run(args).await,
        Command::BenchWorker {
            store,
            activity_concurrency,
        } => bench::worker_process(&store, activity_concurrency).await,
        Command::Worker {
            store,
            lease_ms,
            otlp_endpoint,
        } => {
            let spans = export_spans(otlp_endpoint.as_deref())?;
            let store = perdure::open_store(&store)
                .await
                .with_context(|| format!("opening store {}", perdure::redact_url(&store)))?;
            let client = Client::new(store.clone());
            // Other workers (other processes, SDK workers over gRPC) may
            // serve names the samples do not have: leave those to them.
            let options = WorkerOptions {
                take_unknown_names: false,
                lease: Duration::from_millis(lease_ms),
                ..WorkerOptions::default()
            };
            let worker = Worker::start(store, perdure_examples::registry(client), options);
            eprintln!("perdure worker running; Ctrl-C to stop");
            shutdown_signal().await;
            worker.shutdown().await;
            stop_spans(spans).await;
            Ok(())
        }
        Command::Start {
            name,
            id,
            input,
            target,
        } => {
            let input = json_arg("--input", &input)?;
            let id = backend::open(&target)
                .await?
                .start(&name, id.as_deref(), input)
                .await?;
            println!("{id}");
            Ok(())
        }
        Command::Status {
            id,
            history,
            target,
        } => {
            let st = backend::open(&target).await?.status(&id, history).await?;
            if target.json {
                println!("{}", serde_json::to_string_pretty(&st)?);
            } else {
                print!("{}", table::status_text(&st));
            }
            Ok(())
        }
        Command::List {
            statuses,
            prefix,
            top,
            target,
        } => {
            let list = backend::open(&target)
                .await?
                .list(&statuses, prefix.as_deref(), top)
                .await?;
            if target.json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print!("{}", table::list_table(&list));
            }
            Ok(())
        }
        Command::History { id, target } => {
            let backend = backend::open(&target).await?;
            if target.json {
                println!("{}", backend.export(&id).await?.to_json());
            } else {
                let st = backend.status(&id, true).await?;
                print!("{}", table::history_table(&id, &st["historyEvents"]));
            }
            Ok(())
        }
        Command::Import {
            file,
            as_id,
            target,
        } => {
            let export = steps::read_export(&file)?;
            let id = backend::open(&target)
                .await?
                .import(&export, as_id.as_deref())
                .await?;
            println!("{id}");
            Ok(())
        }
        Command::Repair {
            id,
            step,
            complete,
            fail,
            error_type,
            skip_timer,
            reason,
            by,
            target,
        } => {
            let backend = backend::open(&target).await?;
            let Some(step) = step else {
                print!("{}", steps::pending_text(&id, &backend.pending(&id).await?));
                return Ok(());
            };
            let action = match (complete, fail, skip_timer) {
                (Some(result), None, false) => steps::RepairAction::Complete(result),
                (None, Some(message), false) => steps::RepairAction::Fail {
                    message,
                    error_type,
                },
                (None, None, true) => steps::RepairAction::SkipTimer,
                _ => bail!("say what to do with step {step}: --complete JSON, --fail MESSAGE or --skip-timer"),
            };
            let Some(reason) = reason else {
                bail!("a repair is recorded with its reason: give --reason")
            };
            backend.repair(&id, step, action, &by, &reason).await?;
            println!("repair of step {step} of {id} queued; the instance's next turn applies it");
            Ok(())
        }
        Command::Raise {
            id,
            event,
            data,
            target,
        } => {
            let data = json_arg("--data", &data)?;
            backend::open(&target).await?.raise(&id, &event, data).await
        }
        Command::Terminate {
            id,
            reason,
            recursive,
            target,
        } => {
            backend::open(&target)
                .await?
                .control(&id, backend::Control::Terminate { recursive }, &reason)
                .await
        }
        Command::Suspend { id, reason, target } => {
            backend::open(&target)
                .await?
                .control(&id, backend::Control::Suspend, &reason)
                .await
        }
        Command::Resume { id, reason, target } => {
            backend::open(&target)
                .await?
                .control(&id, backend::Control::Resume, &reason)
                .await
        }
        Command::Rewind { id, reason, target } => {
            backend::open(&target)
                .await?
                .control(&id, backend::Control::Rewind, &reason)
                .await
        }
        Command::Restart { id, new_id, target } => {
            println!(
                "{}",
                backend::open(&target).await?.restart(&id, new_id).await?
            );
            Ok(())
        }
        Command::Purge {
            id,
            recursive,
            before,
            target,
        } => {
            let b = backend::open(&target).await?;
            let n = match (id, before) {
                (Some(id), None) => b.purge(&id, recursive).await?,
                (None, Some(before)) => b.purge_before(&before).await?,
                _ => bail!("give either an instance id or --before TIME"),
            };
            if target.json {
                println!("{}", serde_json::json!({ "instancesDeleted": n }));
            } else {
                println!("{n} instance(s) purged");
            }
            Ok(())
        }
    }
}

#[tokio::main]
async fn main() {
    init_tracing();
    if let Err(e) = run().await {
        let mut msg = e.to_string();
        for cause in e.chain().skip(1) {
            msg.push_str(": ");
            msg.push_str(&cause.to_string());
        }
        eprintln!("perdure: {msg}");
        std::process::exit(1);
    }
}
