//! Prometheus metrics: what this process's workers, gRPC service and store
//! did and how much work waits. Counters and histograms are recorded where
//! the work happens (a committed turn, a finished activity, a replay-cache
//! lookup, a connected SDK worker); the store's commit histograms and queue
//! depths are read at each scrape. [`render`] writes them in the text
//! exposition format Prometheus scrapes (OpenMetrics); `perdure serve`
//! serves it at `GET /metrics`, and an embedded application can serve the
//! same text from its own endpoint.
//!
//! The metrics of a process are kept in one registry ([`global`]), like the
//! default registry of Prometheus' client libraries: every worker and
//! server in the process adds to the same counters.

use crate::Store;
use perdure_core::{EventKind, RuntimeStatus};
use perdure_store::stats::{BATCH_BOUNDS, LATENCY_BOUNDS_SECONDS};
use perdure_store::{CommitStats, OrchestrationCommit, QueueDepths, StoreError};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NameLabel {
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActivityLabels {
    name: String,
    outcome: &'static str,
}

fn activity_histogram() -> Histogram {
    // 1 ms to about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The process's metrics (see the module doc).
pub struct Metrics {
    registry: Registry,
    started: Family<NameLabel, Counter>,
    completed: Family<NameLabel, Counter>,
    failed: Family<NameLabel, Counter>,
    terminated: Family<NameLabel, Counter>,
    activities: Family<ActivityLabels, Counter>,
    activity_seconds: Family<NameLabel, Histogram, fn() -> Histogram>,
    cache_hits: Counter,
    cache_misses: Counter,
    grpc_workers: Gauge,
    /// The store's numbers for the scrape in progress.
    scraped: Arc<Mutex<Option<(CommitStats, QueueDepths)>>>,
    /// One scrape at a time (each sets `scraped`, then encodes).
    scrape: tokio::sync::Mutex<()>,
    /// The names that have a label value of their own.
    names: Mutex<std::collections::HashSet<String>>,
}

/// Distinct name label values a process keeps; later names share
/// [`OTHER_NAMES`], so a client inventing names cannot grow the metrics
/// without bound.
pub const MAX_NAME_LABELS: usize = 200;

/// The label value of names past [`MAX_NAME_LABELS`].
pub const OTHER_NAMES: &str = "_other";

/// `value` as the text format's label values are written: backslash,
/// double quote and line feed escaped.
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static GLOBAL: OnceLock<Metrics> = OnceLock::new();
    GLOBAL.get_or_init(Metrics::new)
}

/// The metrics text for a scrape: the process's counters with `store`'s
/// commit histograms and queue depths read now.
pub async fn render(store: &dyn Store) -> Result<String, StoreError> {
    global().render(store).await
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let started = Family::<NameLabel, Counter>::default();
        let completed = Family::<NameLabel, Counter>::default();
        let failed = Family::<NameLabel, Counter>::default();
        let terminated = Family::<NameLabel, Counter>::default();
        let activities = Family::<ActivityLabels, Counter>::default();
        let activity_seconds =
            Family::<NameLabel, Histogram, fn() -> Histogram>::new_with_constructor(
                activity_histogram,
            );
        let cache_hits = Counter::default();
        let cache_misses = Counter::default();
        let grpc_workers = Gauge::default();
        let scraped = Arc::new(Mutex::new(None));
        registry.register(
            "perdure_orchestrations_started",
            "Orchestration executions started (a continue-as-new starts a new one), by name",
            started.clone(),
        );
        registry.register(
            "perdure_orchestrations_completed",
            "Orchestration executions completed, by name",
            completed.clone(),
        );
        registry.register(
            "perdure_orchestrations_failed",
            "Orchestration executions failed, by name",
            failed.clone(),
        );
        registry.register(
            "perdure_orchestrations_terminated",
            "Orchestration executions terminated, by name",
            terminated.clone(),
        );
        registry.register(
            "perdure_activity_executions",
            "Activity executions by name and outcome (completed, failed)",
            activities.clone(),
        );
        registry.register(
            "perdure_activity_duration_seconds",
            "Time an activity ran in this process, by name",
            activity_seconds.clone(),
        );
        registry.register(
            "perdure_replay_cache_hits",
            "Turns that continued a replayed orchestration kept in memory",
            cache_hits.clone(),
        );
        registry.register(
            "perdure_replay_cache_misses",
            "Turns that replayed the stored history first",
            cache_misses.clone(),
        );
        registry.register(
            "perdure_grpc_workers",
            "SDK workers connected over the Durable Task gRPC protocol",
            grpc_workers.clone(),
        );
        registry.register_collector(Box::new(StoreCollector(scraped.clone())));
        Metrics {
            registry,
            started,
            completed,
            failed,
            terminated,
            activities,
            activity_seconds,
            cache_hits,
            cache_misses,
            grpc_workers,
            scraped,
            scrape: tokio::sync::Mutex::new(()),
            names: Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// See [`render`].
    pub async fn render(&self, store: &dyn Store) -> Result<String, StoreError> {
        let _one = self.scrape.lock().await;
        let depths = store.queue_depths().await?;
        if let Ok(mut s) = self.scraped.lock() {
            *s = Some((store.commit_stats(), depths));
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .map_err(|e| StoreError::Backend(format!("encoding metrics: {e}")))?;
        Ok(out)
    }

    /// What a committed turn did: read from the events it appended (a
    /// commit that changes nothing counts nothing).
    pub fn turn_committed(&self, turn: &TurnSummary) {
        for name in &turn.started {
            self.started.get_or_create(&self.label(name)).inc();
        }
        if let Some(status) = turn.ended {
            let family = match status {
                RuntimeStatus::Completed => &self.completed,
                RuntimeStatus::Failed => &self.failed,
                RuntimeStatus::Terminated => &self.terminated,
                _ => return,
            };
            family.get_or_create(&self.label(&turn.name)).inc();
        }
    }

    /// An activity finished in this process after `took`.
    pub fn activity_finished(&self, name: &str, ok: bool, took: Option<Duration>) {
        let outcome = if ok { "completed" } else { "failed" };
        self.activities
            .get_or_create(&ActivityLabels {
                name: self.name_value(name),
                outcome,
            })
            .inc();
        if let Some(took) = took {
            self.activity_seconds
                .get_or_create(&self.label(name))
                .observe(took.as_secs_f64());
        }
    }

    /// A turn found its replayed orchestration in memory (`hit`) or
    /// replayed the stored history.
    pub fn replay_cache(&self, hit: bool) {
        if hit {
            self.cache_hits.inc();
        } else {
            self.cache_misses.inc();
        }
    }

    /// Counts a connected gRPC worker until the returned guard is dropped.
    pub fn grpc_worker_connected(&self) -> GrpcWorkerGuard {
        self.grpc_workers.inc();
        GrpcWorkerGuard(self.grpc_workers.clone())
    }
}

/// See [`Metrics::grpc_worker_connected`].
pub struct GrpcWorkerGuard(Gauge);

impl Drop for GrpcWorkerGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// The label value for `name`: escaped, or [`OTHER_NAMES`] once
    /// [`MAX_NAME_LABELS`] other names have theirs.
    fn name_value(&self, name: &str) -> String {
        let Ok(mut names) = self.names.lock() else {
            return OTHER_NAMES.to_string();
        };
        if names.contains(name) {
            return escape_label_value(name);
        }
        if names.len() >= MAX_NAME_LABELS {
            return OTHER_NAMES.to_string();
        }
        names.insert(name.to_string());
        escape_label_value(name)
    }

    fn label(&self, name: &str) -> NameLabel {
        NameLabel {
            name: self.name_value(name),
        }
    }
}

/// What a turn's commit means for the orchestration counters, taken before
/// the commit is handed to the store.
#[derive(Clone, Debug, Default)]
pub struct TurnSummary {
    name: String,
    started: Vec<String>,
    ended: Option<RuntimeStatus>,
}

impl TurnSummary {
    pub fn of(commit: &OrchestrationCommit) -> Self {
        let mut s = TurnSummary {
            name: commit.update.name.clone(),
            ..TurnSummary::default()
        };
        for e in &commit.history {
            match &e.kind {
                EventKind::ExecutionStarted { name, .. } => s.started.push(name.clone()),
                EventKind::ExecutionCompleted { status, .. } => s.ended = Some(*status),
                EventKind::ExecutionTerminated { .. } => s.ended = Some(RuntimeStatus::Terminated),
                _ => {}
            }
        }
        s
    }
}

/// The store's numbers, set by the scrape that encodes them.
#[derive(Debug)]
struct StoreCollector(Arc<Mutex<Option<(CommitStats, QueueDepths)>>>);

fn histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    bounds: &[f64],
    counts: &[u64],
    sum: f64,
) -> Result<(), std::fmt::Error> {
    let mut buckets: Vec<(f64, u64)> = bounds.iter().copied().zip(counts.iter().copied()).collect();
    buckets.push((f64::MAX, counts.get(bounds.len()).copied().unwrap_or(0)));
    let count = counts.iter().sum();
    let mut m = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, &buckets, None)
}

fn gauges(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: &[(&'static str, u64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (state, v) in values {
        let labels = [("state", *state)];
        let m = family.encode_family(&labels)?;
        ConstGauge::new(*v as i64).encode(m)?;
    }
    Ok(())
}

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some((stats, d)) = self.0.lock().ok().and_then(|s| *s) else {
            return Ok(());
        };
        histogram(
            &mut encoder,
            "perdure_store_commit_batch_size",
            "Requests carried by each durable store transaction (group commit)",
            &BATCH_BOUNDS,
            &stats.batch_buckets,
            stats.writes as f64,
        )?;
        histogram(
            &mut encoder,
            "perdure_store_commit_seconds",
            "Time from the start of a durable store transaction to its durable end",
            &LATENCY_BOUNDS_SECONDS,
            &stats.latency_buckets,
            stats.commit_micros as f64 / 1e6,
        )?;
        gauges(
            &mut encoder,
            "perdure_orchestration_messages",
            "Messages to orchestrations and entities: ready (visible, waiting for a turn) or scheduled (visible later)",
            &[("ready", d.messages_ready), ("scheduled", d.messages_scheduled)],
        )?;
        gauges(
            &mut encoder,
            "perdure_timers",
            "Durable timers: due (their time has come, their turn has not run) or scheduled",
            &[("due", d.timers_due), ("scheduled", d.timers_scheduled)],
        )?;
        gauges(
            &mut encoder,
            "perdure_activities",
            "Activities: ready (waiting for a worker), running (leased) or delayed (waiting out a retry delay)",
            &[
                ("ready", d.activities_ready),
                ("running", d.activities_running),
                ("delayed", d.activities_delayed),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        for (name, written) in [
            ("Plain", "Plain"),
            ("say \"hi\"", "say \\\"hi\\\""),
            ("back\\slash", "back\\\\slash"),
            ("two\nlines", "two\\nlines"),
        ] {
            assert_eq!(escape_label_value(name), written, "{name}");
        }
    }

    #[test]
    fn names_past_the_bound_fold_into_other() {
        let m = Metrics::new();
        for i in 0..MAX_NAME_LABELS + 50 {
            m.activity_finished(&format!("Activity{i}"), true, None);
        }
        m.activity_finished(r#"evil"} 1\nfake_metric{a=""#, true, None);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &m.registry).unwrap();
        let lines: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("perdure_activity_executions_total{"))
            .collect();
        assert_eq!(lines.len(), MAX_NAME_LABELS + 1, "{out}");
        let other = lines
            .iter()
            .find(|l| l.contains("name=\"_other\""))
            .expect("an _other line");
        assert!(other.ends_with(" 51"), "{other}");
        assert!(!out.contains("\nfake_metric"), "{out}");
    }
}
