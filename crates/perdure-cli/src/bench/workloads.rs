//! The benchmark workloads: the orchestrations they run (registered by
//! [`register`]) and the client side that starts them and measures. Every
//! measure comes from instants the client took or times the orchestrations
//! read from their own history, never from estimates.

use super::{percentile, Metric, Run};
use anyhow::{bail, Context, Result};
use futures::stream::{self, StreamExt};
use perdure::{Client, OrchestrationContext, Registry, RuntimeStatus};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Longest any single wait in a benchmark may take.
const WAIT: Duration = Duration::from_secs(3600);
/// Client calls in flight at once when a workload starts many instances.
const IN_FLIGHT: usize = 512;
/// Instances waited on at once (in start order) after a workload started
/// them all.
const WAITERS: usize = 64;
/// Clients raising events to the one instance of `events` at once.
const RAISERS: usize = 64;

fn micros_now() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// The orchestrations and the activity the workloads run.
pub fn register(r: &mut Registry) {
    r.add_activity("BenchNoop", |_ctx, v: Value| async move { Ok(v) });
    // A call to another service: waits `ms` and answers (io-seq5).
    r.add_activity("BenchIo", |_ctx, (i, ms): (u32, u64)| async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(i)
    });
    r.add_orchestrator("BenchIoSeq", |ctx: OrchestrationContext| async move {
        let (n, ms): (u32, u64) = ctx.get_input()?;
        for i in 0..n {
            ctx.call_activity::<u32>("BenchIo", (i, ms)).await?;
        }
        Ok(n)
    });
    // Takes a payload and answers one of the same size, the last byte
    // changed (payload-seq5).
    r.add_activity("BenchPayload", |_ctx, mut p: String| async move {
        if let Some(last) = p.pop() {
            p.push(if last == 'a' { 'b' } else { 'a' });
        }
        Ok(p)
    });
    r.add_orchestrator("BenchPayloadSeq", |ctx: OrchestrationContext| async move {
        let (n, bytes): (u32, usize) = ctx.get_input()?;
        let mut p = "a".repeat(bytes);
        for _ in 0..n {
            p = ctx.call_activity("BenchPayload", p).await?;
        }
        Ok(p.len())
    });
    r.add_orchestrator("BenchSeq", |ctx: OrchestrationContext| async move {
        let n: u32 = ctx.get_input()?;
        for i in 0..n {
            ctx.call_activity::<u32>("BenchNoop", i).await?;
        }
        Ok(n)
    });
    r.add_orchestrator("BenchFanout", |ctx: OrchestrationContext| async move {
        let n: u64 = ctx.get_input()?;
        let tasks: Vec<_> = (0..n)
            .map(|i| ctx.call_activity::<u64>("BenchNoop", i))
            .collect();
        let mut sum = 0u64;
        for r in perdure::future::join_all(tasks).await {
            sum += r?;
        }
        Ok(sum)
    });
    // Receives `n` events, each carrying the client's clock when it was
    // raised, and returns how long after that each was applied (µs).
    r.add_orchestrator("BenchEventSink", |ctx: OrchestrationContext| async move {
        let n: u32 = ctx.get_input()?;
        let mut lags = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let sent: i64 = ctx.wait_for_external_event("tick").await?;
            lags.push(ctx.current_utc_date_time().timestamp_micros() - sent);
        }
        Ok(lags)
    });
    r.add_orchestrator("BenchWaitOne", |ctx: OrchestrationContext| async move {
        let sent: i64 = ctx.wait_for_external_event("go").await?;
        Ok(ctx.current_utc_date_time().timestamp_micros() - sent)
    });
    // Sleeps on a durable timer; returns how late the turn that saw it fire
    // began (µs).
    r.add_orchestrator("BenchTimer", |ctx: OrchestrationContext| async move {
        let ms: i64 = ctx.get_input()?;
        let fire_at = ctx.current_utc_date_time() + chrono::Duration::milliseconds(ms);
        ctx.create_timer(fire_at).await;
        Ok((ctx.current_utc_date_time() - fire_at).num_microseconds())
    });
    r.add_orchestrator("BenchIdle", |ctx: OrchestrationContext| async move {
        ctx.wait_for_external_event::<Value>("never").await?;
        Ok(())
    });
    // `n` sequential activities; returns the time taken by the first and
    // by the last tenth of them (at most 1,000 steps each), in µs.
    r.add_orchestrator("BenchLong", |ctx: OrchestrationContext| async move {
        let n: u32 = ctx.get_input()?;
        let span = (n / 10).clamp(1, 1000);
        let mut marks = Vec::new();
        for i in 0..n {
            if i == 0 || i == span || i == n - span {
                marks.push(ctx.current_utc_date_time().timestamp_micros());
            }
            ctx.call_activity::<u32>("BenchNoop", i).await?;
        }
        marks.push(ctx.current_utc_date_time().timestamp_micros());
        Ok(json!({ "span": span, "marks": marks }))
    });
}

async fn finish(client: &Client, id: &str) -> Result<perdure::OrchestrationStatus> {
    let st = client.wait_for_completion(id, WAIT).await?;
    if st.runtime_status != RuntimeStatus::Completed {
        bail!(
            "benchmark instance {id} ended {}: {:?}",
            st.runtime_status,
            st.failure
        );
    }
    Ok(st)
}

fn output<T: serde::de::DeserializeOwned>(st: &perdure::OrchestrationStatus) -> Result<T> {
    st.output_as::<T>()
        .with_context(|| format!("reading the output of {}", st.instance_id))
}

/// Waits until the instance ran its first turn (it is no longer Pending).
async fn started(client: &Client, id: &str) -> Result<()> {
    let mut watch = client.store().watch_instance(id);
    let deadline = Instant::now() + WAIT;
    loop {
        let rec = client
            .get_status(id, false)
            .await?
            .with_context(|| format!("instance {id} vanished"))?;
        if rec.runtime_status != RuntimeStatus::Pending {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("instance {id} did not start");
        }
        match watch.as_mut() {
            Some(w) => {
                let _ = tokio::time::timeout(Duration::from_millis(500), w.changed()).await;
            }
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

fn ms(us: f64) -> f64 {
    us / 1000.0
}

fn latency_metrics(prefix: &str, mut lat_us: Vec<f64>, out: &mut Vec<Metric>) {
    lat_us.sort_by(f64::total_cmp);
    out.push(Metric::ms(
        &format!("{prefix}p50_ms"),
        ms(percentile(&lat_us, 0.50)),
    ));
    out.push(Metric::ms(
        &format!("{prefix}p99_ms"),
        ms(percentile(&lat_us, 0.99)),
    ));
    out.push(Metric::ms(
        &format!("{prefix}max_ms"),
        ms(lat_us.last().copied().unwrap_or(0.0)),
    ));
}

/// Starts `n` instances of `name` at once (at most [`IN_FLIGHT`] start
/// calls in flight; no start waits for another instance to finish), then
/// runs `then` for each, in start order, [`WAITERS`] at a time.
async fn many<T, F, Fut>(run: &Run, n: usize, name: &str, input: Value, then: F) -> Result<Vec<T>>
where
    F: Fn(Client, String) -> Fut + Clone,
    Fut: std::future::Future<Output = Result<T>>,
{
    let client = run.client.clone();
    let ids: Vec<String> = (0..n).map(|i| format!("bench-{name}-{i}")).collect();
    stream::iter(ids.clone())
        .map(|id| {
            let (client, input) = (client.clone(), input.clone());
            async move { client.start_new(name, Some(&id), input).await.map(|_| ()) }
        })
        .buffer_unordered(IN_FLIGHT.min(n.max(1)))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()?;
    let results: Vec<Result<T>> = stream::iter(ids)
        .map(|id| then.clone()(client.clone(), id))
        .buffered(WAITERS)
        .inspect(|_| run.progress.inc(1))
        .collect()
        .await;
    results.into_iter().collect()
}

pub async fn hello_seq5(run: &Run) -> Result<Vec<Metric>> {
    let n = run.size;
    run.progress.set_length(n as u64);
    // Times come from the instances themselves (created, and the start of
    // the turn that completed them), so waiting in order and polling across
    // processes add nothing to them.
    let spans = many(run, n, "BenchSeq", json!(5), |client, id| async move {
        let st = finish(&client, &id).await?;
        if output::<u32>(&st)? != 5 {
            bail!("{id} returned {:?}", st.output);
        }
        Ok((st.created_time, st.last_updated_time))
    })
    .await?;
    Ok(span_metrics(&spans, n).1)
}

/// Start-to-finish spans of instances read from their status: the
/// throughput over the whole run and p50/p99 per instance.
fn span_metrics(
    spans: &[(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)],
    n: usize,
) -> (f64, Vec<Metric>) {
    let first = spans.iter().map(|s| s.0).min().unwrap_or_default();
    let last = spans.iter().map(|s| s.1).max().unwrap_or_default();
    let wall = ((last - first).num_microseconds().unwrap_or(0) as f64 / 1e6).max(1e-6);
    let lat = spans
        .iter()
        .map(|(a, b)| (*b - *a).num_microseconds().unwrap_or(0) as f64)
        .collect();
    let mut out = vec![
        Metric::rate("orchestrations_per_s", n as f64 / wall),
        Metric::secs("wall_s", wall),
    ];
    latency_metrics("", lat, &mut out);
    (wall, out)
}

/// N orchestrations of 5 activities that each wait `io_ms` (a call to
/// another service), started at once: throughput is bounded by the
/// workers' activity slots, so more worker processes add to it.
pub async fn io_seq5(run: &Run, io_ms: u64) -> Result<Vec<Metric>> {
    let n = run.size;
    run.progress.set_length(n as u64);
    let spans = many(
        run,
        n,
        "BenchIoSeq",
        json!([5, io_ms]),
        |client, id| async move {
            let st = finish(&client, &id).await?;
            if output::<u32>(&st)? != 5 {
                bail!("{id} returned {:?}", st.output);
            }
            Ok((st.created_time, st.last_updated_time))
        },
    )
    .await?;
    let (wall, mut out) = span_metrics(&spans, n);
    out.insert(1, Metric::rate("activities_per_s", (n * 5) as f64 / wall));
    Ok(out)
}

/// Bytes of each activity's input and of its output in payload-seq5.
pub const PAYLOAD_BYTES: usize = 64 * 1024;

/// N orchestrations passing a 64 KiB payload through 5 activities in turn
/// (each answers 64 KiB), started at once: payload MB/s through the
/// engine (activity inputs and outputs).
pub async fn payload_seq5(run: &Run) -> Result<Vec<Metric>> {
    let n = run.size;
    run.progress.set_length(n as u64);
    let input = json!([5, PAYLOAD_BYTES]);
    let spans = many(run, n, "BenchPayloadSeq", input, |client, id| async move {
        let st = finish(&client, &id).await?;
        if output::<usize>(&st)? != PAYLOAD_BYTES {
            bail!("{id} returned {:?}", st.output);
        }
        Ok((st.created_time, st.last_updated_time))
    })
    .await?;
    let (wall, mut out) = span_metrics(&spans, n);
    let bytes = (n * 5 * 2 * PAYLOAD_BYTES) as f64;
    out.insert(1, Metric::rate("payload_mb_per_s", bytes / 1e6 / wall));
    Ok(out)
}

pub async fn latency_seq3(run: &Run) -> Result<Vec<Metric>> {
    run.progress.set_length(run.size as u64);
    let mut lat = Vec::with_capacity(run.size);
    for i in 0..run.size {
        let id = format!("bench-lat-{i}");
        let t0 = Instant::now();
        run.client.start_new("BenchSeq", Some(&id), 3).await?;
        finish(&run.client, &id).await?;
        lat.push(t0.elapsed().as_micros() as f64);
        run.progress.inc(1);
    }
    let mut out = Vec::new();
    latency_metrics("", lat, &mut out);
    Ok(out)
}

pub async fn fanout(run: &Run) -> Result<Vec<Metric>> {
    let n = run.size as u64;
    run.progress.set_length(1);
    let t0 = Instant::now();
    run.client
        .start_new("BenchFanout", Some("bench-fanout"), n)
        .await?;
    let st = finish(&run.client, "bench-fanout").await?;
    let wall = t0.elapsed().as_secs_f64();
    let sum: u64 = output(&st)?;
    if sum != n * n.saturating_sub(1) / 2 {
        bail!(
            "the fan-out summed to {sum}, expected {}",
            n * n.saturating_sub(1) / 2
        );
    }
    run.progress.inc(1);
    Ok(vec![
        Metric::secs("wall_s", wall),
        Metric::rate("activities_per_s", n as f64 / wall),
    ])
}

pub async fn events(run: &Run) -> Result<Vec<Metric>> {
    let n = run.size;
    run.progress.set_length(2 * n as u64);
    // One instance receiving n events one by one, raised by RAISERS
    // clients at once.
    let sink = "bench-events-sink";
    run.client
        .start_new("BenchEventSink", Some(sink), n)
        .await?;
    started(&run.client, sink).await?;
    let t0 = Instant::now();
    let client = run.client.clone();
    stream::iter(0..n)
        .map(|_| {
            let client = client.clone();
            async move { client.raise_event(sink, "tick", micros_now()).await }
        })
        .buffer_unordered(RAISERS)
        .inspect(|_| run.progress.inc(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()?;
    let st = finish(&run.client, sink).await?;
    let one_wall = t0.elapsed().as_secs_f64();
    let lags: Vec<f64> = output::<Vec<i64>>(&st)?
        .into_iter()
        .map(|v| v as f64)
        .collect();
    if lags.len() != n {
        bail!("the sink saw {} events of {n}", lags.len());
    }
    let mut out = vec![Metric::rate(
        "one_instance_events_per_s",
        n as f64 / one_wall,
    )];
    latency_metrics("one_instance_", lags, &mut out);
    // n instances, each waiting for one event.
    let ids: Vec<String> = many(
        run,
        n,
        "BenchWaitOne",
        Value::Null,
        |client, id| async move {
            started(&client, &id).await?;
            Ok(id)
        },
    )
    .await?;
    run.progress.set_position(n as u64);
    let t0 = Instant::now();
    let client = run.client.clone();
    let lags: Vec<Result<f64>> = stream::iter(ids)
        .map(|id| {
            let client = client.clone();
            async move {
                client.raise_event(&id, "go", micros_now()).await?;
                let st = finish(&client, &id).await?;
                Ok(output::<i64>(&st)? as f64)
            }
        })
        .buffer_unordered(IN_FLIGHT.min(n.max(1)))
        .inspect(|_| run.progress.inc(1))
        .collect()
        .await;
    let lags = lags.into_iter().collect::<Result<Vec<_>>>()?;
    out.push(Metric::rate(
        "many_instances_events_per_s",
        n as f64 / t0.elapsed().as_secs_f64(),
    ));
    latency_metrics("many_instances_", lags, &mut out);
    Ok(out)
}

pub async fn timers(run: &Run) -> Result<Vec<Metric>> {
    let n = run.size;
    run.progress.set_length(n as u64);
    let late = many(run, n, "BenchTimer", json!(1000), |client, id| async move {
        let st = finish(&client, &id).await?;
        Ok(output::<i64>(&st)? as f64)
    })
    .await?;
    if let Some(early) = late.iter().find(|l| **l < 0.0) {
        bail!("a timer fired {early} µs early");
    }
    let mut out = Vec::new();
    latency_metrics("late_", late, &mut out);
    Ok(out)
}

pub async fn idle_instances(run: &Run) -> Result<Vec<Metric>> {
    let n = run.size;
    run.progress.set_length(n as u64);
    let t0 = Instant::now();
    many(run, n, "BenchIdle", Value::Null, |client, id| async move {
        started(&client, &id).await
    })
    .await?;
    let wall = t0.elapsed().as_secs_f64();
    Ok(vec![
        Metric::rate("started_per_s", n as f64 / wall),
        Metric::count("waiting_instances", n as f64),
    ])
}

pub async fn long_history(run: &Run) -> Result<Vec<Metric>> {
    let n = run.size.max(2) as u32;
    run.progress.set_length(1);
    let t0 = Instant::now();
    run.client
        .start_new("BenchLong", Some("bench-long"), n)
        .await?;
    let st = finish(&run.client, "bench-long").await?;
    let wall = t0.elapsed().as_secs_f64();
    run.progress.inc(1);
    let v: Value = output(&st)?;
    let span = v["span"].as_f64().unwrap_or(1.0);
    let marks: Vec<f64> = v["marks"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let [a, b, c, d] = marks[..] else {
        bail!("unexpected output from BenchLong: {v}");
    };
    let (first, last) = ((b - a) / span, (d - c) / span);
    Ok(vec![
        Metric::ms("first_step_ms", ms(first)),
        Metric::ms("last_step_ms", ms(last)),
        Metric::count("last_over_first", last / first.max(1e-9)),
        Metric::rate("steps_per_s", n as f64 / wall),
    ])
}
