//! Perdure's own routes and their effect on remote workers: a repair of a
//! step of an orchestration run by a remote (SDK) worker reaches it as the
//! result it stands for; export, import and repair over HTTP, and their
//! refusals.

mod support;

use perdure::{Client, Repair, RepairRequest};
use perdure_server::grpc::proto as pb;
use reqwest::StatusCode;
use serde_json::json;
use support::grpc::{complete, create, next, open, orchestrator, respond, schedule_task, wait};
use support::{body, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repair_reaches_a_remote_worker_as_the_result_it_stands_for() {
    let mut s = support::grpc::start_with(Default::default()).await;
    let url = format!("sqlite://{}", s.dir.path().join("g.db").display());
    let client = Client::new(perdure::open_store(&url).await.expect("store"));
    let mut items = open(&mut s.grpc, &["Remote"], &[]).await;
    s.grpc
        .start_instance(create("Remote", "r1", "null"))
        .await
        .expect("start");
    let first = next(&mut items).await;
    // An activity no worker serves: the step never ends on its own.
    s.grpc
        .complete_orchestrator_task(respond(&first, vec![schedule_task(0, "Never", "1")]))
        .await
        .expect("turn");
    client
        .repair(
            "r1",
            RepairRequest {
                step_id: 0,
                repair: Repair::Complete {
                    result: Some("\"fixed by hand\"".into()),
                },
                by: "ops".into(),
                reason: "the service is gone".into(),
            },
        )
        .await
        .expect("repair");
    let second = next(&mut items).await;
    let req = orchestrator(&second);
    let results: Vec<&pb::TaskCompletedEvent> = req
        .new_events
        .iter()
        .filter_map(|e| match &e.event_type {
            Some(pb::history_event::EventType::TaskCompleted(t)) => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(results.len(), 1, "{:?}", req.new_events);
    assert_eq!(results[0].task_scheduled_id, 0);
    assert_eq!(results[0].result.as_deref(), Some("\"fixed by hand\""));
    s.grpc
        .complete_orchestrator_task(respond(
            &second,
            vec![complete(pb::OrchestrationStatus::Completed, "\"ok\"")],
        ))
        .await
        .expect("turn");
    let st = wait(&mut s.grpc, "r1").await;
    assert_eq!(
        st.orchestration_status,
        pb::OrchestrationStatus::Completed as i32
    );
    let history = client
        .get_status("r1", true)
        .await
        .expect("status")
        .and_then(|s| s.history)
        .unwrap_or_default();
    assert!(history
        .iter()
        .any(|e| matches!(&e.kind, perdure::EventKind::StepRepaired { by, .. } if by == "ops")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_import_over_http() {
    let s = Server::start(None).await;
    let r = s
        .http
        .post(s.url("/orchestrators/HelloCities/h1"))
        .send()
        .await
        .expect("start");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    s.wait_done("h1").await;
    let export = body(
        s.http
            .get(s.url("/instances/h1/export"))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(export["format"], "perdure.history");
    assert_eq!(export["runtimeStatus"], "Completed");
    let r = s
        .http
        .post(s.url("/import?instanceId=h2"))
        .json(&export)
        .send()
        .await
        .expect("import");
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(body(r).await["id"], "h2");
    let st = s.wait_done("h2").await;
    assert_eq!(
        st["output"],
        json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"])
    );
    let r = s
        .http
        .post(s.url("/import"))
        .json(&json!({ "format": "something else" }))
        .send()
        .await
        .expect("import");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(body(r).await["error"], "InvalidExport");
    let r = s
        .http
        .get(s.url("/instances/missing/export"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repair_over_http_is_checked_and_applied() {
    let s = Server::start(None).await;
    let r = s
        .http
        .post(s.url("/orchestrators/ApprovalWorkflow/a1"))
        .json(&json!({ "request": "http" }))
        .send()
        .await
        .expect("start");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let timer = loop {
        let steps = body(
            s.http
                .get(s.url("/instances/a1/steps"))
                .send()
                .await
                .expect("get"),
        )
        .await;
        if let Some(t) = steps["steps"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["kind"] == "timer").cloned())
        {
            break t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let repair = |b: serde_json::Value| s.http.post(s.url("/instances/a1/repair")).json(&b).send();
    for (bad, code) in [
        (
            json!({ "stepId": 1, "action": "explode", "by": "x", "reason": "y" }),
            "InvalidRepair",
        ),
        (
            json!({ "stepId": 1, "action": "fail", "by": "x", "reason": "y" }),
            "InvalidRepair",
        ),
        (json!({ "stepId": 1, "by": "x" }), "InvalidRepair"),
        (
            json!({ "stepId": 1, "action": "complete", "by": "x", "reason": "y" }),
            "InvalidArgument",
        ),
        (
            json!({ "stepId": 9, "action": "skipTimer", "by": "x", "reason": "y" }),
            "InvalidArgument",
        ),
    ] {
        let r = repair(bad.clone()).await.expect("post");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body(r).await["error"], code, "{bad}");
    }
    let r = repair(json!({ "stepId": timer["stepId"], "action": "skipTimer",
                           "by": "http test", "reason": "approver away" }))
    .await
    .expect("post");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let st = s.wait_done("a1").await;
    assert_eq!(st["output"], "escalated http to the manager's manager");
}
