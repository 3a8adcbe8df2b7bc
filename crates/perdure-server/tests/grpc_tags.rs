//! Orchestration tags over the gRPC door: kept from the start request,
//! returned in the instance's state and in its ExecutionStarted event,
//! given to a sub-orchestration by its action, recorded with an activity's
//! TaskScheduled event, and carried through continue-as-new.

mod support;

use pb::orchestrator_action::OrchestratorActionType as A;
use perdure_server::grpc::proto as pb;
use std::collections::HashMap;
use support::grpc::*;

fn tags(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn tagged(name: &str, id: &str, t: &HashMap<String, String>) -> pb::CreateInstanceRequest {
    pb::CreateInstanceRequest {
        tags: t.clone(),
        ..create(name, id, "1")
    }
}

async fn state(g: &mut Grpc, id: &str) -> pb::OrchestrationState {
    g.get_instance(get(id))
        .await
        .expect("get")
        .into_inner()
        .orchestration_state
        .expect("state")
}

fn started_tags(r: &pb::OrchestratorRequest) -> HashMap<String, String> {
    use pb::history_event::EventType as T;
    r.past_events
        .iter()
        .chain(&r.new_events)
        .find_map(|e| match &e.event_type {
            Some(T::ExecutionStarted(s)) => Some(s.tags.clone()),
            _ => None,
        })
        .expect("an ExecutionStarted event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_given_at_start_come_back_in_the_state() {
    let (mut g, worker, _stop, _dir) = start(None).await;
    let t = tags(&[("env", "test"), ("owner", "durable")]);
    g.start_instance(tagged("NobodyServesThis", "t1", &t))
        .await
        .expect("start");
    g.start_instance(create("NobodyServesThis", "t2", "1"))
        .await
        .expect("start");
    assert_eq!(state(&mut g, "t1").await.tags, t);
    assert!(state(&mut g, "t2").await.tags.is_empty());
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_sees_the_tags_in_execution_started() {
    let (mut g, worker, _stop, _dir) = start(None).await;
    let t = tags(&[("Orchestration", "Sequence")]);
    g.start_instance(tagged("RemoteTagged", "seen", &t))
        .await
        .expect("start");
    let mut items = open(&mut g, &["RemoteTagged"], &[]).await;
    let item = next(&mut items).await;
    assert_eq!(started_tags(orchestrator(&item)), t);
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_orchestration_starts_with_the_tags_of_its_action() {
    let (mut g, worker, _stop, _dir) = start(None).await;
    g.start_instance(create("RemoteParent", "parent", "1"))
        .await
        .expect("start");
    let mut items = open(&mut g, &["RemoteParent"], &[]).await;
    let item = next(&mut items).await;
    let child_tags = tags(&[("child", "yes")]);
    let action = pb::OrchestratorAction {
        rewind_orchestration: Vec::new(),
        id: 0,
        orchestrator_action_type: Some(A::CreateSubOrchestration(
            pb::CreateSubOrchestrationAction {
                instance_id: "kid".into(),
                name: "NobodyServesThis".into(),
                tags: child_tags.clone(),
                ..Default::default()
            },
        )),
    };
    g.complete_orchestrator_task(respond(&item, vec![action]))
        .await
        .expect("complete");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = g.get_instance(get("kid")).await.expect("get").into_inner();
        if r.exists {
            assert_eq!(r.orchestration_state.expect("state").tags, child_tags);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the child was created"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_is_recorded_with_its_tags() {
    use pb::history_event::EventType as T;
    let (mut g, worker, _stop, _dir) = start(None).await;
    g.start_instance(create("RemoteSeq", "act", "1"))
        .await
        .expect("start");
    let mut items = open(&mut g, &["RemoteSeq"], &["Act"]).await;
    let item = next(&mut items).await;
    let task_tags = tags(&[("Activity", "PlusOne")]);
    let mut action = schedule_task(0, "Act", "1");
    if let Some(A::ScheduleTask(t)) = &mut action.orchestrator_action_type {
        t.tags = task_tags.clone();
    }
    g.complete_orchestrator_task(respond(&item, vec![action]))
        .await
        .expect("complete");
    let history = g
        .stream_instance_history(pb::StreamInstanceHistoryRequest {
            instance_id: "act".into(),
            ..Default::default()
        })
        .await
        .expect("history")
        .into_inner()
        .message()
        .await
        .expect("chunk")
        .expect("a chunk");
    let recorded = history.events.iter().find_map(|e| match &e.event_type {
        Some(T::TaskScheduled(t)) => Some(t.tags.clone()),
        _ => None,
    });
    assert_eq!(recorded, Some(task_tags));
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_as_new_keeps_the_tags() {
    let (mut g, worker, _stop, _dir) = start(None).await;
    let t = tags(&[("forever", "1")]);
    g.start_instance(tagged("RemoteLoop", "loop", &t))
        .await
        .expect("start");
    let mut items = open(&mut g, &["RemoteLoop"], &[]).await;
    let item = next(&mut items).await;
    g.complete_orchestrator_task(respond(
        &item,
        vec![complete(pb::OrchestrationStatus::ContinuedAsNew, "2")],
    ))
    .await
    .expect("continue as new");
    let item = next(&mut items).await;
    assert_eq!(
        started_tags(orchestrator(&item)),
        t,
        "the new execution's start"
    );
    assert_eq!(state(&mut g, "loop").await.tags, t, "the instance's state");
    worker.shutdown().await;
}
