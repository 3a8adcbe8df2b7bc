//! The HTTP API over real sockets: status codes, headers, bodies, paging and
//! API keys, against a server with an in-process worker on SQLite.

mod support;

use perdure::Client;
use perdure_server::{ServerConfig, BASE_PATH};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use support::{body, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_status_history_and_wait_mode() {
    let s = Server::start(None).await;
    let r = s
        .http
        .post(s.url("/orchestrators/HelloCities"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(r.headers()["retry-after"], "10");
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let b = body(r).await;
    let id = b["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 32);
    assert_eq!(location, b["statusQueryGetUri"]);
    for field in [
        "statusQueryGetUri",
        "sendEventPostUri",
        "terminatePostUri",
        "purgeHistoryDeleteUri",
        "restartPostUri",
        "suspendPostUri",
        "resumePostUri",
        "rewindPostUri",
    ] {
        assert!(b[field].as_str().unwrap().starts_with(&s.base), "{field}");
    }
    assert!(b["sendEventPostUri"]
        .as_str()
        .unwrap()
        .ends_with("/raiseEvent/{eventName}"));
    assert!(b["terminatePostUri"]
        .as_str()
        .unwrap()
        .ends_with("/terminate?reason={text}"));
    let st = s.wait_done(&id).await;
    assert_eq!(st["runtimeStatus"], "Completed");
    assert_eq!(
        st["output"],
        json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"])
    );
    assert!(st.get("historyEvents").is_none());
    let created_time = st["createdTime"].as_str().unwrap();
    assert!(
        created_time.ends_with('Z') && created_time.len() == 20,
        "{created_time}"
    );
    let r = s
        .http
        .get(s.url(&format!(
            "/instances/{id}?showHistory=true&showHistoryOutput=true&showInput=false"
        )))
        .send()
        .await
        .unwrap();
    let st = body(r).await;
    let events = st["historyEvents"].as_array().unwrap();
    assert_eq!(events[0]["EventType"], "ExecutionStarted");
    assert!(events.iter().any(|e| e["EventType"] == "TaskCompleted"
        && e["Result"] == "Hello Tokyo!"
        && e["FunctionName"] == "SayHello"));
    assert_eq!(events.last().unwrap()["OrchestrationStatus"], "Completed");
    assert_eq!(st["input"], Value::Null);

    // Wait mode: the answer is the output.
    let r = s
        .http
        .post(s.url("/orchestrators/FanOutFanIn/fan-1?timeout=20&pollingInterval=0.05"))
        .json(&10)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(r).await["sum"], json!(385));
    // Wait mode that runs out: 202 with the management URLs.
    let r = s
        .http
        .post(s.url("/orchestrators/ApprovalWorkflow/wait-1?timeout=0.2"))
        .json(&json!({ "request": "r" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(body(r).await["id"], "wait-1");
    let r = s.http.get(s.url("/instances/wait-1")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(r.headers()["retry-after"], "5");
    assert!(r.headers().contains_key("location"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_lifecycle_codes() {
    let s = Server::start(None).await;
    let c = &s.http;
    let err = |v: &Value| v["message"].as_str().unwrap_or_default().to_string();
    let r = c
        .post(s.url("/orchestrators/HelloCities"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(err(&body(r).await).contains("not valid JSON"));
    let r = c
        .post(s.url("/orchestrators/HelloCities/@entity"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(err(&body(r).await).contains("@"));
    let r = c
        .post(s.url("/orchestrators/NoSuchThing"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(err(&body(r).await).contains("NoSuchThing"));
    let r = c.get(s.url("/instances/unknown")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(body(r).await["error"], "NotFound");
    let r = c.get(format!("{}/nowhere", s.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(err(&body(r).await).contains("no route"));
    let r = c
        .post(s.url("/instances/unknown/raiseEvent/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = c.get(s.url("/instances?top=zero")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c
        .get(s.url("/instances?runtimeStatus=Sleeping"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // An approval: suspend, event kept, resume, finish; then 410s.
    let r = c
        .post(s.url("/orchestrators/ApprovalWorkflow/appr-1"))
        .json(&json!({ "request": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = c
        .post(s.url("/orchestrators/ApprovalWorkflow/appr-1"))
        .json(&json!({ "request": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CONFLICT,
        "a running id cannot be started again"
    );
    assert_eq!(
        c.post(s.url("/instances/appr-1/suspend?reason=lunch"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::ACCEPTED
    );
    let r = c
        .post(s.url("/instances/appr-1/raiseEvent/ApprovalEvent"))
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        c.post(s.url("/instances/appr-1/raiseEvent/ApprovalEvent"))
            .json(&true)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        c.post(s.url("/instances/appr-1/resume"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::ACCEPTED
    );
    let st = s.wait_done("appr-1").await;
    assert_eq!(st["output"], "approved and processed");
    for op in ["terminate", "suspend", "resume"] {
        assert_eq!(
            c.post(s.url(&format!("/instances/appr-1/{op}")))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::GONE,
            "{op}"
        );
    }
    assert_eq!(
        c.post(s.url("/instances/appr-1/raiseEvent/x"))
            .json(&1)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::GONE
    );
    assert_eq!(
        c.post(s.url("/instances/appr-1/rewind"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::GONE
    );

    // Terminate a waiting instance.
    c.post(s.url("/orchestrators/ApprovalWorkflow/appr-2"))
        .json(&json!({ "request": "y" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        c.post(s.url("/instances/appr-2/terminate?reason=nope&recursive=true"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::ACCEPTED
    );
    let st = s.wait_done("appr-2").await;
    assert_eq!(
        (st["runtimeStatus"].as_str(), st["output"].as_str()),
        (Some("Terminated"), Some("nope"))
    );

    // Restart under a new id answers with the new management URLs.
    let r = c
        .post(s.url("/instances/appr-2/restart?restartWithNewInstanceId=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let new_id = body(r).await["id"].as_str().unwrap().to_string();
    assert_ne!(new_id, "appr-2");
    let r = c
        .post(s.url(&format!("/instances/{new_id}/restart")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "a running instance cannot be restarted"
    );
    c.post(s.url(&format!("/instances/{new_id}/terminate")))
        .send()
        .await
        .unwrap();

    // Purge one, then by filter.
    let r = c.delete(s.url("/instances/appr-1")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(r).await, json!({ "instancesDeleted": 1 }));
    assert_eq!(
        c.delete(s.url("/instances/appr-1"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.delete(s.url("/instances")).send().await.unwrap().status(),
        StatusCode::BAD_REQUEST,
        "createdTimeFrom is required"
    );
    s.wait_done(&new_id).await;
    let r = c
        .delete(s.url("/instances?createdTimeFrom=2000-01-01T00:00:00Z&runtimeStatus=Terminated"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(r).await["instancesDeleted"], json!(2));
    let r = c
        .delete(s.url("/instances?createdTimeFrom=2000-01-01T00:00:00Z&runtimeStatus=Terminated"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_through_continuation_headers() {
    let s = Server::start(None).await;
    for i in 0..5 {
        let r = s
            .http
            .post(s.url(&format!("/orchestrators/HelloCities/page-{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    s.http
        .post(s.url("/orchestrators/ApprovalWorkflow/other"))
        .json(&json!({ "request": "z" }))
        .send()
        .await
        .unwrap();
    for i in 0..5 {
        s.wait_done(&format!("page-{i}")).await;
    }
    let mut ids = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut req = s
            .http
            .get(s.url("/instances?instanceIdPrefix=page-&top=2&showInput=true"));
        if let Some(t) = &token {
            req = req.header("x-ms-continuation-token", t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        token = r
            .headers()
            .get("x-ms-continuation-token")
            .map(|v| v.to_str().unwrap().to_string());
        let page = body(r).await;
        ids.extend(
            page.as_array()
                .unwrap()
                .iter()
                .map(|v| v["instanceId"].as_str().unwrap().to_string()),
        );
        pages += 1;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(ids, ["page-0", "page-1", "page-2", "page-3", "page-4"]);
    let r = s
        .http
        .get(s.url("/instances?runtimeStatus=Running,Pending"))
        .send()
        .await
        .unwrap();
    let list = body(r).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["instanceId"], "other");
    let r = s
        .http
        .get(s.url("/instances?createdTimeTo=2000-01-01T00:00:00Z"))
        .send()
        .await
        .unwrap();
    assert_eq!(body(r).await, json!([]));
    let r = s
        .http
        .get(format!(
            "{}/openapi.json",
            s.base.trim_end_matches(BASE_PATH)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let doc = body(r).await;
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["paths"].as_object().unwrap().len() >= 10);
    s.http
        .post(s.url("/instances/other/terminate"))
        .send()
        .await
        .unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_is_required_when_configured() {
    let s = Server::start(Some("s3cret")).await;
    let r = s.http.get(s.url("/instances")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(body(r).await["message"]
        .as_str()
        .unwrap()
        .contains("API key"));
    assert_eq!(
        s.http
            .get(s.url("/instances?code=wrong"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.http
            .get(s.url("/instances?code=s3cret"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        s.http
            .get(s.url("/instances"))
            .bearer_auth("s3cret")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let r = s
        .http
        .post(s.url("/orchestrators/HelloCities?code=s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let b = body(r).await;
    assert!(
        b["statusQueryGetUri"]
            .as_str()
            .unwrap()
            .ends_with("?code=s3cret"),
        "management URLs carry the key"
    );
    assert!(
        perdure_server::serve(
            "0.0.0.0:0".parse().unwrap(),
            Client::new(perdure::open_store("memory").await.unwrap()),
            ServerConfig::default(),
            async {}
        )
        .await
        .is_err(),
        "binding beyond loopback without a key is refused"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_are_signalled_read_and_listed() {
    let s = Server::start(None).await;
    for (key, by) in [("h1", 5), ("h1", 2), ("h2", 1)] {
        let r = s
            .http
            .post(s.url(&format!("/entities/Counter/{key}?op=add")))
            .json(&json!(by))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    let missing_op = s
        .http
        .post(s.url("/entities/Counter/h1"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing_op.status(), StatusCode::BAD_REQUEST);
    assert_eq!(body(missing_op).await["error"], "MissingOperation");
    let bad_key = s
        .http
        .get(s.url("/entities/Counter/a%23b"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_key.status(), StatusCode::BAD_REQUEST);
    let mut state = Value::Null;
    for _ in 0..400 {
        let r = s
            .http
            .get(s.url("/entities/counter/h1"))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::OK {
            state = body(r).await;
            if state == json!(7) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(state, json!(7), "both signals applied, in order");
    let none = s
        .http
        .get(s.url("/entities/counter/zz"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), StatusCode::NOT_FOUND);
    let mut listed = Value::Null;
    for _ in 0..400 {
        let r = s
            .http
            .get(s.url("/entities/Counter?fetchState=true"))
            .send()
            .await
            .unwrap();
        listed = body(r).await;
        if listed.as_array().is_some_and(|a| a.len() == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let keys: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entityId"]["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["h1", "h2"]);
    assert_eq!(listed[0]["state"], json!(7));
    assert_eq!(listed[0]["entityId"]["name"], "counter");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_metrics_follow_the_api_key_rule() {
    let s = Server::start(Some("sesame")).await;
    let root = s.base.trim_end_matches(BASE_PATH).to_string();
    let get = |path: &str| s.http.get(format!("{root}{path}")).send();
    assert_eq!(get("/").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        get("/metrics").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let page = get("/?code=sesame").await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(page.text().await.unwrap().contains("dashboard/app.js"));
    // The page's static assets hold no data and need no key.
    for (path, ct) in [
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/style.css", "text/css"),
    ] {
        let r = get(path).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(ct));
    }
    assert_eq!(
        get("/metrics?code=sesame").await.unwrap().status(),
        StatusCode::OK
    );
    s.stop().await;
}

/// JSON as a client may spell it: key order, a number beyond `f64`, `1.0`
/// and whitespace, all of which a parse-and-write would change.
const SPELLED: &str = "{\"z\": 1.0,  \"a\": [12345678901234567890123, 1e2], \"request\": \"r\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_and_events_come_back_as_they_were_sent() {
    let s = Server::start(None).await;
    for path in [
        "/orchestrators/ApprovalWorkflow/opaque",
        "/instances/opaque/raiseEvent/Unawaited",
    ] {
        let r = s
            .http
            .post(s.url(path))
            .header("content-type", "application/json")
            .body(SPELLED)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED, "{path}");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = s
            .http
            .get(s.url("/instances/opaque?showInput=true&showHistory=true&showHistoryOutput=true"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("\"EventRaised\"") || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        text.contains(&format!("\"input\":{SPELLED}")),
        "the status shows the input as sent: {text}"
    );
    assert!(
        text.contains(&format!("\"Input\":{SPELLED}")),
        "the history shows the event's data as sent: {text}"
    );
    s.stop().await;
}
