//! Protocol fidelity over the gRPC door: payloads come back as the client
//! spelled them, "no input" stays none, a running instance restarts under a
//! new id, a rewind reason is kept as the words sent, and answers from SDKs
//! that predate completion tokens are matched by instance and task id.

mod support;

use perdure_server::grpc::proto as pb;
use support::grpc::*;
use tonic::Code;

/// JSON as a client may spell it: key order, a number beyond `f64`, `1.0`
/// and whitespace, all of which a parse-and-write would change.
const SPELLED: &str = "{\"z\": 1.0,  \"a\": [12345678901234567890123, 1e2]}";

/// Starts an instance of a name nobody serves with `input` (as the
/// protocol carries it) and reads the input back.
async fn input_round_trip(input: Option<&str>) -> Result<Option<String>, Code> {
    let (mut g, worker, _stop, _dir) = start(None).await;
    let created = g
        .start_instance(pb::CreateInstanceRequest {
            instance_id: "opaque".into(),
            name: "NobodyServesThis".into(),
            input: input.map(str::to_string),
            ..Default::default()
        })
        .await;
    let out = match created {
        Err(e) => Err(e.code()),
        Ok(_) => Ok(g
            .get_instance(get("opaque"))
            .await
            .expect("get")
            .into_inner()
            .orchestration_state
            .expect("state")
            .input),
    };
    worker.shutdown().await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_comes_back_byte_for_byte() {
    assert_eq!(
        input_round_trip(Some(SPELLED)).await,
        Ok(Some(SPELLED.into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_without_input_has_none() {
    assert_eq!(input_round_trip(None).await, Ok(None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_input_is_no_input() {
    // How the JavaScript client says "no input".
    assert_eq!(input_round_trip(Some("")).await, Ok(None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_that_is_not_json_is_refused() {
    assert_eq!(
        input_round_trip(Some("{not json")).await,
        Err(Code::InvalidArgument)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_data_reaches_the_worker_byte_for_byte() {
    use pb::history_event::EventType as T;
    let (mut g, worker, _stop, _dir) = start(None).await;
    g.start_instance(create("RemoteOpaque", "ev", SPELLED))
        .await
        .expect("start");
    g.raise_event(pb::RaiseEventRequest {
        instance_id: "ev".into(),
        name: "data".into(),
        input: Some(SPELLED.into()),
    })
    .await
    .expect("raise");
    let mut items = open(&mut g, &["RemoteOpaque"], &[]).await;
    let mut seen = Vec::new();
    // The start and the event may come in one work item or two.
    while seen.len() < 2 {
        let item = next(&mut items).await;
        let r = orchestrator(&item);
        for e in &r.new_events {
            match &e.event_type {
                Some(T::ExecutionStarted(s)) => seen.push(("start", s.input.clone())),
                Some(T::EventRaised(ev)) => seen.push(("event", ev.input.clone())),
                _ => {}
            }
        }
        g.complete_orchestrator_task(respond(&item, Vec::new()))
            .await
            .expect("complete");
    }
    assert_eq!(
        seen,
        vec![
            ("start", Some(SPELLED.into())),
            ("event", Some(SPELLED.into()))
        ]
    );
    worker.shutdown().await;
}

/// Restarts instance `id` (left Pending: nobody serves its name), under a
/// new id or its own.
async fn restart_pending(new_id: bool) -> Result<String, Code> {
    let (mut g, worker, _stop, _dir) = start(None).await;
    g.start_instance(create("NobodyServesThis", "still", "1"))
        .await
        .expect("start");
    let r = g
        .restart_instance(pb::RestartInstanceRequest {
            instance_id: "still".into(),
            restart_with_new_instance_id: new_id,
        })
        .await
        .map(|r| r.into_inner().instance_id)
        .map_err(|e| e.code());
    worker.shutdown().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_instance_restarts_under_a_new_id() {
    let id = restart_pending(true).await.expect("restarted");
    assert_ne!(id, "still");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_instance_does_not_restart_under_its_own_id() {
    assert_eq!(restart_pending(false).await, Err(Code::FailedPrecondition));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewind_reason_is_kept_as_the_words_sent() {
    use pb::history_event::EventType as T;
    let (mut g, worker, _stop, _dir) = start(None).await;
    let mut items = open(&mut g, &["RewindMe"], &[]).await;
    g.start_instance(create("RewindMe", "rw", "1"))
        .await
        .expect("start");
    let first = next(&mut items).await;
    g.complete_orchestrator_task(respond(
        &first,
        vec![complete(pb::OrchestrationStatus::Failed, "")],
    ))
    .await
    .expect("failed");
    wait(&mut g, "rw").await;
    g.rewind_instance(pb::RewindInstanceRequest {
        instance_id: "rw".into(),
        reason: Some("try again, please".into()),
    })
    .await
    .expect("rewind");
    let again = next(&mut items).await;
    let reasons: Vec<Option<String>> = orchestrator(&again)
        .past_events
        .iter()
        .chain(&orchestrator(&again).new_events)
        .filter_map(|e| match &e.event_type {
            Some(T::ExecutionRewound(r)) => Some(r.reason.clone()),
            _ => None,
        })
        .collect();
    assert!(
        reasons.contains(&Some("try again, please".into())),
        "{reasons:?}"
    );
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_without_completion_tokens_are_matched_by_instance_and_task() {
    // SDKs that predate completion tokens answer by instance (and task id).
    let (mut g, worker, _stop, _dir) = start(None).await;
    let mut items = open(&mut g, &["Tokenless"], &["Double"]).await;
    g.start_instance(create("Tokenless", "t1", "21"))
        .await
        .expect("start");
    let first = next(&mut items).await;
    let schedule = schedule_task(0, "Double", "21");
    let mut turn = respond(&first, vec![schedule]);
    turn.completion_token.clear();
    g.complete_orchestrator_task(turn)
        .await
        .expect("turn committed");
    let act = next(&mut items).await;
    assert!(matches!(
        act.request,
        Some(pb::work_item::Request::ActivityRequest(_))
    ));
    g.complete_activity_task(pb::ActivityResponse {
        instance_id: "t1".into(),
        task_id: 0,
        result: Some("42".into()),
        ..Default::default()
    })
    .await
    .expect("activity result recorded");
    let second = next(&mut items).await;
    let mut end = respond(
        &second,
        vec![complete(pb::OrchestrationStatus::Completed, "42")],
    );
    end.completion_token.clear();
    g.complete_orchestrator_task(end)
        .await
        .expect("completion committed");
    let st = wait(&mut g, "t1").await;
    assert_eq!(st.output.as_deref(), Some("42"));
    worker.shutdown().await;
}
