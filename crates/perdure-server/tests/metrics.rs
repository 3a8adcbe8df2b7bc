//! `GET /metrics` scraped as Prometheus would, before and after real work:
//! the counters, histograms and queue gauges move as the work says they
//! must. (Metrics are per process: this binary holds only this test.)

mod support;

use perdure_server::BASE_PATH;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::HashMap;
use support::{body, Server};

/// Samples by series (`name{labels}`), from the text exposition format.
fn parse(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

async fn scrape(s: &Server) -> HashMap<String, f64> {
    let root = s.base.trim_end_matches(BASE_PATH);
    let r = s
        .http
        .get(format!("{root}/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(r.status(), StatusCode::OK);
    let ct = r.headers()["content-type"].to_str().unwrap_or_default();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let text = r.text().await.expect("text");
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    parse(&text)
}

fn get(m: &HashMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

async fn start(s: &Server, name: &str, input: serde_json::Value) -> String {
    let r = s
        .http
        .post(s.url(&format!("/orchestrators/{name}")))
        .json(&input)
        .send()
        .await
        .expect("start");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    body(r).await["id"]
        .as_str()
        .expect("instance id")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_histograms_and_queue_gauges_move_with_the_work() {
    let s = Server::start(None).await;
    let before = scrape(&s).await;
    for series in [
        "perdure_grpc_workers",
        "perdure_activities{state=\"ready\"}",
        "perdure_timers{state=\"scheduled\"}",
        "perdure_orchestration_messages{state=\"ready\"}",
        "perdure_store_commit_batch_size_count",
        "perdure_store_commit_seconds_count",
    ] {
        assert!(before.contains_key(series), "{series} is missing");
    }

    // Completed: three activities in sequence.
    let hello = start(&s, "HelloCities", json!(null)).await;
    assert_eq!(s.wait_done(&hello).await["runtimeStatus"], "Completed");
    // Failed: input the orchestrator cannot read.
    let bad = start(&s, "ApprovalWorkflow", json!(42)).await;
    assert_eq!(s.wait_done(&bad).await["runtimeStatus"], "Failed");
    // Waiting on an event with a 72-hour timer, then terminated.
    let waiting = start(&s, "ApprovalWorkflow", json!({"request": "metrics"})).await;
    let mut scheduled = 0.0;
    for _ in 0..200 {
        scheduled = get(&scrape(&s).await, "perdure_timers{state=\"scheduled\"}");
        if scheduled >= 1.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(scheduled >= 1.0, "the approval's timer is not counted");
    let r = s
        .http
        .post(s.url(&format!("/instances/{waiting}/terminate?reason=test")))
        .send()
        .await
        .expect("terminate");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(s.wait_done(&waiting).await["runtimeStatus"], "Terminated");

    let after = scrape(&s).await;
    let moved = |series: &str| get(&after, series) - get(&before, series);
    assert_eq!(
        moved("perdure_orchestrations_started_total{name=\"HelloCities\"}"),
        1.0
    );
    assert_eq!(
        moved("perdure_orchestrations_completed_total{name=\"HelloCities\"}"),
        1.0
    );
    assert_eq!(
        moved("perdure_orchestrations_started_total{name=\"ApprovalWorkflow\"}"),
        2.0
    );
    assert_eq!(
        moved("perdure_orchestrations_failed_total{name=\"ApprovalWorkflow\"}"),
        1.0
    );
    assert_eq!(
        moved("perdure_orchestrations_terminated_total{name=\"ApprovalWorkflow\"}"),
        1.0
    );
    assert_eq!(
        moved("perdure_activity_executions_total{name=\"SayHello\",outcome=\"completed\"}"),
        3.0
    );
    assert_eq!(
        moved("perdure_activity_duration_seconds_count{name=\"SayHello\"}"),
        3.0
    );
    assert_eq!(
        get(
            &after,
            "perdure_activity_duration_seconds_bucket{le=\"+Inf\",name=\"SayHello\"}"
        ) - get(
            &before,
            "perdure_activity_duration_seconds_bucket{le=\"+Inf\",name=\"SayHello\"}"
        ),
        3.0
    );
    let turns =
        moved("perdure_replay_cache_hits_total") + moved("perdure_replay_cache_misses_total");
    assert!(turns >= 4.0, "replay cache lookups moved by {turns}");
    assert!(moved("perdure_store_commit_batch_size_count") >= 5.0);
    assert_eq!(
        get(&after, "perdure_store_commit_seconds_bucket{le=\"+Inf\"}"),
        get(&after, "perdure_store_commit_seconds_count")
    );
    // Every activity ran.
    assert_eq!(get(&after, "perdure_activities{state=\"ready\"}"), 0.0);
    s.stop().await;
}
