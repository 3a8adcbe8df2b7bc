//! The Durable Task gRPC protocol's client RPCs over a real socket, against
//! in-process workers running the samples; and a remote worker speaking the
//! worker RPCs from Rust (the Python SDK's suite is in tests/interop).

mod support;

use perdure_server::grpc::proto as pb;
use std::time::Duration;
use support::grpc::*;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_rpcs_manage_instances() {
    let (mut g, worker, stop, _dir) = start(None).await;
    g.hello(()).await.expect("hello");
    let id = g
        .start_instance(create("HelloCities", "", "null"))
        .await
        .unwrap()
        .into_inner()
        .instance_id;
    assert_eq!(id.len(), 32);
    let st = wait(&mut g, &id).await;
    assert_eq!(
        st.orchestration_status,
        pb::OrchestrationStatus::Completed as i32
    );
    assert_eq!(
        st.output.as_deref(),
        Some(r#"["Hello Tokyo!","Hello Seattle!","Hello London!"]"#)
    );
    assert!(st.completed_timestamp.is_some());
    let bare = g
        .get_instance(pb::GetInstanceRequest {
            instance_id: id.clone(),
            get_inputs_and_outputs: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(bare.exists && bare.orchestration_state.unwrap().output.is_none());
    assert!(
        !g.get_instance(get("nope"))
            .await
            .unwrap()
            .into_inner()
            .exists
    );

    // Id reuse: refused by default, allowed when the policy names the status.
    let again = g
        .start_instance(create("HelloCities", &id, "null"))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
    let mut reuse = create("HelloCities", &id, "null");
    reuse.orchestration_id_reuse_policy = Some(pb::OrchestrationIdReusePolicy {
        replaceable_status: vec![pb::OrchestrationStatus::Completed as i32],
    });
    g.start_instance(reuse).await.expect("replaced");
    wait(&mut g, &id).await;
    assert_eq!(
        g.start_instance(create("HelloCities", "bad#id", "null"))
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );

    // Events, suspend/resume, terminate.
    g.start_instance(create("ApprovalWorkflow", "appr", r#"{"request":"g"}"#))
        .await
        .unwrap();
    let mut started = tonic::Request::new(get("appr"));
    started.set_timeout(Duration::from_secs(30));
    g.wait_for_instance_start(started).await.expect("starts");
    g.suspend_instance(pb::SuspendRequest {
        instance_id: "appr".into(),
        reason: Some("wait".into()),
    })
    .await
    .unwrap();
    g.raise_event(pb::RaiseEventRequest {
        instance_id: "appr".into(),
        name: "ApprovalEvent".into(),
        input: Some("true".into()),
    })
    .await
    .unwrap();
    g.resume_instance(pb::ResumeRequest {
        instance_id: "appr".into(),
        reason: None,
    })
    .await
    .unwrap();
    let st = wait(&mut g, "appr").await;
    assert_eq!(st.output.as_deref(), Some(r#""approved and processed""#));
    let missing = g
        .raise_event(pb::RaiseEventRequest {
            instance_id: "nope".into(),
            name: "x".into(),
            input: None,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    g.start_instance(create("ApprovalWorkflow", "appr2", r#"{"request":"h"}"#))
        .await
        .unwrap();
    g.terminate_instance(pb::TerminateRequest {
        instance_id: "appr2".into(),
        output: Some(r#""stop""#.into()),
        recursive: true,
    })
    .await
    .unwrap();
    let st = wait(&mut g, "appr2").await;
    assert_eq!(
        st.orchestration_status,
        pb::OrchestrationStatus::Terminated as i32
    );
    let restart = g
        .restart_instance(pb::RestartInstanceRequest {
            instance_id: "appr2".into(),
            restart_with_new_instance_id: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(restart.instance_id, "appr2");
    g.terminate_instance(pb::TerminateRequest {
        instance_id: restart.instance_id.clone(),
        output: None,
        recursive: false,
    })
    .await
    .unwrap();
    wait(&mut g, &restart.instance_id).await;
    assert_eq!(
        g.rewind_instance(pb::RewindInstanceRequest {
            instance_id: "appr".into(),
            reason: None
        })
        .await
        .unwrap_err()
        .code(),
        Code::FailedPrecondition
    );

    // History, query with paging, purge.
    let mut chunks = g
        .stream_instance_history(pb::StreamInstanceHistoryRequest {
            instance_id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let first = chunks.message().await.unwrap().expect("a chunk");
    assert!(matches!(
        first.events[0].event_type,
        Some(pb::history_event::EventType::OrchestratorStarted(_))
    ));
    assert!(first.events.iter().any(|e| matches!(&e.event_type, Some(pb::history_event::EventType::TaskCompleted(t)) if t.result.as_deref() == Some(r#""Hello Tokyo!""#))));
    let mut seen = 0;
    let mut token = None;
    loop {
        let q = pb::InstanceQuery {
            max_instance_count: 2,
            continuation_token: token,
            fetch_inputs_and_outputs: true,
            ..Default::default()
        };
        let page = g
            .query_instances(pb::QueryInstancesRequest { query: Some(q) })
            .await
            .unwrap()
            .into_inner();
        seen += page.orchestration_state.len();
        token = page.continuation_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, 4);
    let ids = g
        .list_instance_ids(pb::ListInstanceIdsRequest {
            runtime_status: vec![pb::OrchestrationStatus::Terminated as i32],
            page_size: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids.instance_ids.len(), 2);
    let purged = g
        .purge_instances(pb::PurgeInstancesRequest {
            request: Some(pb::purge_instances_request::Request::InstanceId(id.clone())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(purged.deleted_instance_count, 1);
    let filter = pb::PurgeInstanceFilter {
        runtime_status: vec![pb::OrchestrationStatus::Terminated as i32],
        ..Default::default()
    };
    let purged = g
        .purge_instances(pb::PurgeInstancesRequest {
            request: Some(pb::purge_instances_request::Request::PurgeInstanceFilter(
                filter,
            )),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(purged.deleted_instance_count, 2);

    // Entities: signal one served in-process, read it, query them.
    let bad = g
        .signal_entity(pb::SignalEntityRequest::default())
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "no entity id");
    g.signal_entity(pb::SignalEntityRequest {
        instance_id: "@counter@g1".into(),
        name: "add".into(),
        input: Some("7".into()),
        ..Default::default()
    })
    .await
    .expect("signal");
    let mut state = None;
    for _ in 0..200 {
        let r = g
            .get_entity(pb::GetEntityRequest {
                instance_id: "@counter@g1".into(),
                include_state: true,
            })
            .await
            .unwrap()
            .into_inner();
        state = r.entity.and_then(|e| e.serialized_state);
        if state.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(state.as_deref(), Some("7"));
    let listed = g
        .query_entities(pb::QueryEntitiesRequest {
            query: Some(pb::EntityQuery {
                instance_id_starts_with: Some("@counter".into()),
                include_state: true,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.entities.len(), 1);
    assert_eq!(listed.entities[0].instance_id, "@counter@g1");
    // Nothing to clean: the entity has state and no lock.
    let clean = g
        .clean_entity_storage(pb::CleanEntityStorageRequest {
            remove_empty_entities: true,
            release_orphaned_locks: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (clean.empty_entities_removed, clean.orphaned_locks_released),
        (0, 0)
    );
    // A server started without a store URL for hubs serves the default
    // hub only: it exists, it is not deleted, and another is refused.
    g.create_task_hub(pb::CreateTaskHubRequest::default())
        .await
        .expect("the default hub exists");
    let delete = g
        .delete_task_hub(pb::DeleteTaskHubRequest {})
        .await
        .unwrap_err();
    assert_eq!(delete.code(), Code::FailedPrecondition);
    let mut other = tonic::Request::new(get("anything"));
    other
        .metadata_mut()
        .insert("taskhub", "elsewhere".parse().expect("header"));
    let refused = g.get_instance(other).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let _ = stop.send(());
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_is_checked() {
    let (mut g, worker, stop, _dir) = start(Some("k3y")).await;
    assert_eq!(g.hello(()).await.unwrap_err().code(), Code::Unauthenticated);
    let mut req = tonic::Request::new(());
    req.metadata_mut()
        .insert("authorization", "Bearer k3y".parse().expect("header"));
    g.hello(req).await.expect("with the key");
    let _ = stop.send(());
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_worker_protocol() {
    let (mut g, worker, stop, _dir) = start(None).await;
    let mut items = open(&mut g, &["Remote"], &["Double"]).await;
    g.start_instance(create("Remote", "r1", "21"))
        .await
        .unwrap();
    // First dispatch: [orchestratorStarted, executionStarted], no past.
    let first = next(&mut items).await;
    let req = orchestrator(&first);
    assert!(req.past_events.is_empty());
    assert_eq!(
        kinds(&req.new_events),
        ["orchestratorStarted", "executionStarted"]
    );
    let schedule = schedule_task(0, "Double", "21");
    g.complete_orchestrator_task(respond(&first, vec![schedule]))
        .await
        .expect("turn committed");
    // The same token cannot complete twice.
    let again = g
        .complete_orchestrator_task(respond(&first, Vec::new()))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
    let act = next(&mut items).await;
    let Some(pb::work_item::Request::ActivityRequest(a)) = &act.request else {
        panic!("expected an activity, got {act:?}");
    };
    assert_eq!(
        (a.name.as_str(), a.input.as_deref(), a.task_id),
        ("Double", Some("21"), 0)
    );
    g.complete_activity_task(pb::ActivityResponse {
        instance_id: "r1".into(),
        task_id: 0,
        result: Some("42".into()),
        completion_token: act.completion_token.clone(),
        ..Default::default()
    })
    .await
    .expect("activity result recorded");
    let second = next(&mut items).await;
    let req = orchestrator(&second);
    // The stored history closes the first turn with OrchestratorCompleted;
    // a worker replays without it.
    assert_eq!(
        kinds(&req.past_events),
        ["orchestratorStarted", "executionStarted", "taskScheduled"]
    );
    assert_eq!(req.past_events[2].event_id, 0);
    assert_eq!(
        kinds(&req.new_events),
        ["orchestratorStarted", "taskCompleted"]
    );
    g.complete_orchestrator_task(respond(
        &second,
        vec![complete(pb::OrchestrationStatus::Completed, "42")],
    ))
    .await
    .expect("completion committed");
    let st = wait(&mut g, "r1").await;
    assert_eq!(
        (
            st.orchestration_status,
            st.output.as_deref(),
            st.custom_status.as_deref()
        ),
        (
            pb::OrchestrationStatus::Completed as i32,
            Some("42"),
            Some("\"remote\"")
        )
    );

    // The in-process samples are not handed to the remote worker.
    g.start_instance(create("HelloCities", "local", "null"))
        .await
        .unwrap();
    assert_eq!(
        wait(&mut g, "local").await.orchestration_status,
        pb::OrchestrationStatus::Completed as i32
    );

    // A worker that goes away gives its work back at once.
    g.start_instance(create("Remote", "r2", "1")).await.unwrap();
    let held = next(&mut items).await;
    assert_eq!(orchestrator(&held).instance_id, "r2");
    drop(items);
    let mut items = open(&mut g, &["Remote"], &[]).await;
    let redo = next(&mut items).await;
    assert_eq!(orchestrator(&redo).instance_id, "r2");
    assert_ne!(redo.completion_token, held.completion_token);
    assert_eq!(
        g.complete_orchestrator_task(respond(&held, Vec::new()))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound,
        "the old token is stale"
    );
    g.complete_orchestrator_task(respond(
        &redo,
        vec![complete(pb::OrchestrationStatus::Failed, "")],
    ))
    .await
    .unwrap();
    let st = wait(&mut g, "r2").await;
    let failure = st.failure_details.expect("failure details");
    assert_eq!(
        (
            st.orchestration_status,
            failure.error_type.as_str(),
            failure.error_message.as_str()
        ),
        (
            pb::OrchestrationStatus::Failed as i32,
            "Boom",
            "remote failure"
        )
    );

    // An idle stream gets health pings.
    let ping = tokio::time::timeout(Duration::from_secs(5), items.message())
        .await
        .expect("a ping in time")
        .unwrap()
        .unwrap();
    assert!(matches!(
        ping.request,
        Some(pb::work_item::Request::HealthPing(_))
    ));
    let _ = stop.send(());
    worker.shutdown().await;
}
