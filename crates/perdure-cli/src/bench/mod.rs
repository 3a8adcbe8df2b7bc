//! `perdure bench`: the named performance workloads (hello-seq5,
//! latency-seq3, fanout, events, timers, idle-instances, long-history) run
//! against a fresh task hub, each reporting its measures beside the
//! machine's fsync'd-commit rate, the durable steps per transaction and the
//! peak memory of the worker. Workers run in this process, or in child
//! processes (`--processes N`, `perdure bench-worker`) to measure scale-out.

mod hosts;
mod instructions;
mod probe;
mod workloads;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use perdure::{Client, Registry, Store, Worker, WorkerOptions};
use perdure_store::CommitStats;
use serde_json::{json, Map, Value};
use std::io::{BufRead, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// N orchestrations (default 10,000) of 5 sequential no-op activities,
    /// started at once: orchestrations/s and p50/p99 start-to-finish.
    #[value(name = "hello-seq5")]
    HelloSeq5,
    /// One client, one at a time, N (default 500) orchestrations of 3
    /// activities: p50/p99/max end-to-end latency.
    #[value(name = "latency-seq3")]
    LatencySeq3,
    /// One orchestration fanning out N (default 10,000) activities and
    /// summing them: wall time.
    Fanout,
    /// One instance receiving N (default 10,000) events one by one (raised
    /// by 64 clients at once), then N instances each receiving one:
    /// events/s and raise-to-observe latency.
    Events,
    /// N (default 10,000) orchestrations each on a 1 s durable timer: how
    /// late the timers fire.
    Timers,
    /// N (default 100,000) instances waiting on an event: peak worker memory.
    #[value(name = "idle-instances")]
    IdleInstances,
    /// One orchestration of N (default 10,000) sequential activities: time
    /// per step over the first and the last 1,000.
    #[value(name = "long-history")]
    LongHistory,
    /// N orchestrations (default 2,000) of 5 sequential activities that
    /// each wait --io-ms (a call to another service), started at once,
    /// under a per-worker limit of --activity-concurrency: orchestrations/s
    /// and activities/s (with --processes 1, 2, 4: scale-out).
    #[value(name = "io-seq5")]
    IoSeq5,
    /// N orchestrations (default 1,000) passing a 64 KiB payload through 5
    /// activities in turn, started at once: payload MB/s, beside the
    /// disk's sequential write rate.
    #[value(name = "payload-seq5")]
    PayloadSeq5,
}

impl Workload {
    fn default_size(self) -> usize {
        match self {
            Workload::LatencySeq3 => 500,
            Workload::IdleInstances => 100_000,
            Workload::IoSeq5 => 2_000,
            Workload::PayloadSeq5 => 1_000,
            _ => 10_000,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Workload::HelloSeq5 => "hello-seq5",
            Workload::LatencySeq3 => "latency-seq3",
            Workload::Fanout => "fanout",
            Workload::Events => "events",
            Workload::Timers => "timers",
            Workload::IdleInstances => "idle-instances",
            Workload::LongHistory => "long-history",
            Workload::IoSeq5 => "io-seq5",
            Workload::PayloadSeq5 => "payload-seq5",
        }
    }
}

#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    pub workload: Workload,
    /// Store URL. Default: a fresh SQLite file in a temporary directory.
    /// With postgres:// a fresh task hub is created and dropped afterwards.
    #[arg(long)]
    pub store: Option<String>,
    /// Workload size (instances, activities or events; see each workload).
    #[arg(long)]
    pub size: Option<usize>,
    /// Print one JSON line with every measure instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Run the workers in this many child processes instead of in this one.
    #[arg(long, default_value_t = 0)]
    pub processes: usize,
    /// Run N worker processes, each on a host of its own: a network
    /// namespace joined to PostgreSQL's by a veth link, with --rtt-ms added
    /// to each round trip (tc netem, or a delaying relay where the kernel
    /// has no netem). Needs root and a postgres:// store.
    #[arg(long, default_value_t = 0, conflicts_with_all = ["processes", "instructions"])]
    pub hosts: usize,
    /// With --hosts: milliseconds added to each round trip to PostgreSQL.
    #[arg(long, default_value_t = 1.0, requires = "hosts")]
    pub rtt_ms: f64,
    /// How long each io-seq5 activity waits, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub io_ms: u64,
    /// Activities each worker (process) runs at once. Default: 16 for
    /// io-seq5 (a worker's limit on calls to another service), the
    /// worker's default (256) otherwise.
    #[arg(long)]
    pub activity_concurrency: Option<usize>,
    /// Export this process's spans over OTLP/gRPC to this endpoint while
    /// the workload runs (the cost of tracing; in-process workers only).
    #[arg(long)]
    pub otlp_endpoint: Option<String>,
    /// Count instructions and allocations per unit of the workload instead
    /// of timing it (perf stat, else valgrind; --size N, default 200, and
    /// 2N are run). Build with --release first.
    #[arg(long, conflicts_with_all = ["processes", "otlp_endpoint"])]
    pub instructions: bool,
    /// With --instructions: measure this many times and report the median
    /// (thread interleavings move a single count by several percent).
    #[arg(long, default_value_t = 3, requires = "instructions")]
    pub repeat: usize,
    /// Skip the machine's fsync probe (a timed loop: its instruction
    /// count varies), as the runs of --instructions do.
    #[arg(long, hide = true)]
    pub no_probe: bool,
}

/// One measure of a run.
pub struct Metric {
    pub key: String,
    pub value: f64,
    pub unit: &'static str,
}

impl Metric {
    fn new(key: &str, value: f64, unit: &'static str) -> Self {
        Metric {
            key: key.to_string(),
            value,
            unit,
        }
    }
    pub fn ms(key: &str, v: f64) -> Self {
        Self::new(key, v, "ms")
    }
    pub fn secs(key: &str, v: f64) -> Self {
        Self::new(key, v, "s")
    }
    pub fn rate(key: &str, v: f64) -> Self {
        Self::new(key, v, "/s")
    }
    pub fn count(key: &str, v: f64) -> Self {
        Self::new(key, v, "")
    }
}

/// What a workload runs with.
pub struct Run {
    pub client: Client,
    pub size: usize,
    pub progress: ProgressBar,
}

/// The `q` quantile of sorted values (nearest rank).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The worker settings benchmarks run with (and `bench-worker` children):
/// the defaults, with at most `activities` activities at once when given.
pub fn worker_options(activities: Option<usize>) -> WorkerOptions {
    let mut o = WorkerOptions::default();
    if let Some(n) = activities {
        o.activity_concurrency = n.max(1);
    }
    o
}

impl BenchArgs {
    /// The per-worker activity limit of this run, if not the default.
    fn activity_limit(&self) -> Option<usize> {
        self.activity_concurrency
            .or((self.workload == Workload::IoSeq5).then_some(16))
    }
}

pub fn registry() -> Registry {
    let mut r = Registry::new();
    workloads::register(&mut r);
    r
}

/// Where the run's store lives, and how to clean it up.
struct Hub {
    url: String,
    kind: &'static str,
    _dir: Option<tempfile::TempDir>,
    scratch: std::path::PathBuf,
}

fn fresh_hub(url: Option<&str>) -> Result<Hub> {
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    match url {
        None => {
            let dir = tempfile::Builder::new().prefix("perdure-bench").tempdir()?;
            let scratch = dir.path().to_path_buf();
            Ok(Hub {
                url: format!("sqlite://{}", dir.path().join("bench.db").display()),
                kind: "sqlite",
                _dir: Some(dir),
                scratch,
            })
        }
        Some(u) if u.starts_with("sqlite://") => {
            let path = std::path::PathBuf::from(&u["sqlite://".len()..]);
            if path.exists() {
                bail!("{} exists: benchmarks run on a fresh store", path.display());
            }
            let scratch = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(|p| p.to_path_buf())
                .unwrap_or_else(|| ".".into());
            Ok(Hub {
                url: u.to_string(),
                kind: "sqlite",
                _dir: None,
                scratch,
            })
        }
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
            // Keep the caller's parameters (pool_size) but use a fresh hub.
            let (base, query) = u.split_once('?').unwrap_or((u, ""));
            let mut params: Vec<&str> = query
                .split('&')
                .filter(|p| !p.is_empty() && !p.starts_with("hub="))
                .collect();
            let hub = format!("hub=bench_{tag}");
            params.push(&hub);
            Ok(Hub {
                url: format!("{base}?{}", params.join("&")),
                kind: "postgres",
                _dir: None,
                scratch: std::env::temp_dir(),
            })
        }
        Some(u) => bail!(
            "benchmarks run on sqlite:// or postgres:// stores, not {}",
            perdure::redact_url(u)
        ),
    }
}

/// Worker child processes; each prints its store's commit counters and its
/// peak memory as one JSON line when its stdin closes.
struct Children(Vec<Child>);

impl Children {
    fn spawn(
        n: usize,
        url: &str,
        activities: Option<usize>,
        hosts: Option<&hosts::Hosts>,
    ) -> Result<Self> {
        let exe = std::env::current_exe().context("finding the perdure binary")?;
        let mut kids = Vec::new();
        for i in 0..n {
            let (mut cmd, url) = match hosts {
                Some(h) => (h.command(i, &exe), h.urls[i].as_str()),
                None => (Command::new(&exe), url),
            };
            cmd.arg("bench-worker");
            if let Some(a) = activities {
                cmd.arg("--activity-concurrency").arg(a.to_string());
            }
            kids.push(
                cmd.env("PERDURE_STORE", url)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .context("starting a bench-worker process")?,
            );
        }
        Ok(Children(kids))
    }

    fn finish(mut self) -> Result<(CommitStats, u64)> {
        let mut stats = CommitStats::default();
        let mut peak = 0u64;
        for kid in &mut self.0 {
            drop(kid.stdin.take());
            let out = kid.stdout.take().context("bench-worker stdout")?;
            let mut line = String::new();
            std::io::BufReader::new(out).read_line(&mut line)?;
            let _ = kid.wait();
            let v: Value = serde_json::from_str(&line)
                .with_context(|| format!("bench-worker reported {line:?}"))?;
            let n = |k: &str| v[k].as_u64().unwrap_or(0);
            stats.transactions += n("transactions");
            stats.writes += n("writes");
            stats.steps += n("steps");
            stats.commit_micros += n("commit_micros");
            peak = peak.max(n("peak_memory"));
        }
        Ok((stats, peak))
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for k in &mut self.0 {
            let _ = k.kill();
        }
    }
}

/// `perdure bench-worker`: runs the benchmark orchestrations until stdin
/// closes, then prints its commit counters and peak memory.
pub async fn worker_process(url: &str, activities: Option<usize>) -> Result<()> {
    let store = perdure::open_store(url).await?;
    let worker = Worker::start(store.clone(), registry(), worker_options(activities));
    tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).unwrap_or(0) > 0 {}
    })
    .await?;
    worker.shutdown().await;
    let s = store.commit_stats();
    let line = json!({
        "transactions": s.transactions, "writes": s.writes, "steps": s.steps,
        "commit_micros": s.commit_micros,
        "peak_memory": probe::peak_memory(std::process::id()).unwrap_or(0),
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

pub async fn run(args: BenchArgs) -> Result<()> {
    if args.instructions {
        return instructions::run(&args);
    }
    let size = args.size.unwrap_or(args.workload.default_size()).max(1);
    let hub = fresh_hub(args.store.as_deref())?;
    let fsync_rate = match hub.kind {
        _ if args.no_probe => 0.0,
        "postgres" => probe::postgres_commit_rate(&hub.url).await?,
        _ => {
            let dir = hub.scratch.clone();
            tokio::task::spawn_blocking(move || probe::sqlite_commit_rate(&dir)).await??
        }
    };
    let store: Arc<dyn Store> = perdure::open_store(&hub.url)
        .await
        .with_context(|| format!("opening {}", perdure::redact_url(&hub.url)))?;
    let spans = match &args.otlp_endpoint {
        Some(endpoint) => Some(perdure_server::telemetry::install_otlp(endpoint)?),
        None => None,
    };
    let client = Client::new(store.clone());
    let hosts = match args.hosts {
        0 => None,
        n if hub.kind == "postgres" => Some(hosts::Hosts::create(n, &hub.url, args.rtt_ms)?),
        _ => bail!("--hosts runs workers against PostgreSQL: give --store postgres://..."),
    };
    let processes = args.processes.max(args.hosts);
    let (worker, children) = if processes == 0 {
        (
            Some(Worker::start(
                store.clone(),
                registry(),
                worker_options(args.activity_limit()),
            )),
            None,
        )
    } else {
        let kids = Children::spawn(processes, &hub.url, args.activity_limit(), hosts.as_ref())?;
        (None, Some(kids))
    };
    let progress = if args.json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(size as u64)
    };
    progress.set_style(
        ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} {per_sec} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    progress.set_prefix(args.workload.name());
    let run = Run {
        client,
        size,
        progress,
    };
    let before = store.commit_stats();
    let began = Instant::now();
    let metrics = match args.workload {
        Workload::HelloSeq5 => workloads::hello_seq5(&run).await,
        Workload::LatencySeq3 => workloads::latency_seq3(&run).await,
        Workload::Fanout => workloads::fanout(&run).await,
        Workload::Events => workloads::events(&run).await,
        Workload::Timers => workloads::timers(&run).await,
        Workload::IdleInstances => workloads::idle_instances(&run).await,
        Workload::LongHistory => workloads::long_history(&run).await,
        Workload::IoSeq5 => workloads::io_seq5(&run, args.io_ms).await,
        Workload::PayloadSeq5 => workloads::payload_seq5(&run).await,
    };
    let elapsed = began.elapsed().as_secs_f64();
    run.progress.finish_and_clear();
    if let Some(s) = spans {
        let _ = tokio::task::spawn_blocking(move || s.shutdown()).await;
    }
    let (stats, peak) = match (worker, children) {
        (Some(w), _) => {
            w.shutdown().await;
            (
                store.commit_stats().since(&before),
                probe::peak_memory(std::process::id()).unwrap_or(0),
            )
        }
        (None, Some(kids)) => kids.finish()?,
        (None, None) => (CommitStats::default(), 0),
    };
    if hub.kind == "postgres" {
        drop(store);
        drop_pg_hub(&hub.url).await;
    }
    let mut metrics = metrics?;
    if let Some(h) = &hosts {
        let trips = h.round_trips.load(std::sync::atomic::Ordering::Relaxed) as f64;
        metrics.push(Metric::count(
            "round_trips_per_step",
            trips / (stats.steps.max(1) as f64),
        ));
        metrics.push(Metric::count(
            "delay_by_netem",
            f64::from(u8::from(h.netem)),
        ));
    }
    drop(hosts);
    if args.workload == Workload::PayloadSeq5 && !args.no_probe {
        let dir = hub.scratch.clone();
        let rate = tokio::task::spawn_blocking(move || probe::disk_write_rate(&dir)).await??;
        metrics.push(Metric::rate("disk_seq_write_mb_per_s", rate));
    }
    report(
        &args, &hub, size, elapsed, fsync_rate, stats, peak, &metrics,
    )
}

async fn drop_pg_hub(url: &str) {
    if let Ok(s) = perdure_postgres::PostgresStore::open(url).await {
        if let Err(e) = s.drop_hub().await {
            eprintln!("perdure bench: could not drop the benchmark hub: {e}");
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn report(
    args: &BenchArgs,
    hub: &Hub,
    size: usize,
    elapsed: f64,
    fsync_rate: f64,
    stats: CommitStats,
    peak: u64,
    metrics: &[Metric],
) -> Result<()> {
    let peak_mb = peak as f64 / (1024.0 * 1024.0);
    let per_txn = stats.steps_per_transaction();
    let avg_commit_ms = if stats.transactions > 0 {
        stats.commit_micros as f64 / stats.transactions as f64 / 1000.0
    } else {
        0.0
    };
    if args.json {
        let mut m = Map::new();
        m.insert("workload".into(), json!(args.workload.name()));
        m.insert("store".into(), json!(hub.kind));
        m.insert("size".into(), json!(size));
        m.insert("processes".into(), json!(args.processes.max(args.hosts)));
        if args.hosts > 0 {
            m.insert("hosts".into(), json!(args.hosts));
            m.insert("rtt_ms".into(), json!(args.rtt_ms));
        }
        for x in metrics {
            m.insert(x.key.clone(), json!(round(x.value)));
        }
        m.insert("elapsed_s".into(), json!(round(elapsed)));
        m.insert("fsync_commits_per_s".into(), json!(round(fsync_rate)));
        m.insert("durable_steps".into(), json!(stats.steps));
        m.insert("transactions".into(), json!(stats.transactions));
        m.insert("steps_per_fsync".into(), json!(round(per_txn)));
        m.insert("avg_commit_ms".into(), json!(round(avg_commit_ms)));
        m.insert("peak_memory_mb".into(), json!(round(peak_mb)));
        println!("{}", Value::Object(m));
        return Ok(());
    }
    let procs = match (args.processes, args.hosts) {
        (0, 0) => "worker in this process".to_string(),
        (n, 0) => format!("{n} worker processes"),
        (_, h) => format!("{h} worker hosts, {} ms round trip", args.rtt_ms),
    };
    println!(
        "{} on {} ({procs}), size {size}, {elapsed:.2} s",
        args.workload.name(),
        hub.kind
    );
    for x in metrics {
        println!("  {:<32} {:>12.2} {}", x.key, x.value, x.unit);
    }
    println!(
        "  {:<32} {:>12.0} /s",
        "machine fsync'd commits", fsync_rate
    );
    println!(
        "  {:<32} {:>12.2}   ({} steps in {} transactions, {avg_commit_ms:.2} ms each)",
        "durable steps per fsync", per_txn, stats.steps, stats.transactions
    );
    println!("  {:<32} {:>12.1} MB", "peak worker memory", peak_mb);
    Ok(())
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
