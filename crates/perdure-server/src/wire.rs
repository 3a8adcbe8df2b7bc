//! Durable Functions' JSON shapes: the status object, history events, the
//! management URLs, and JSON error bodies.

use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use perdure::{EventKind, HistoryEvent, OrchestrationStatus};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

pub type ApiError = (StatusCode, Json<Value>);

/// A JSON error body: `{"error": kind, "message": text}`.
pub fn error(status: StatusCode, kind: &str, message: impl Into<String>) -> ApiError {
    (
        status,
        Json(json!({ "error": kind, "message": message.into() })),
    )
}

/// `yyyy-MM-ddTHH:mm:ssZ`, as Durable Functions writes times.
pub fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// JSON text as a value (null when absent, a string when not JSON).
pub fn value(p: Option<&str>) -> Value {
    match p {
        None => Value::Null,
        Some(text) => {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
        }
    }
}

/// The status object of `GET .../instances/{id}`.
pub fn status(
    st: &OrchestrationStatus,
    show_input: bool,
    show_history: bool,
    show_output: bool,
) -> Value {
    let output = match &st.failure {
        Some(f) => Value::String(f.to_string()),
        None => value(st.output.as_deref()),
    };
    let mut o = json!({
        "name": st.name,
        "instanceId": st.instance_id,
        "runtimeStatus": st.runtime_status.as_str(),
        "input": if show_input { value(st.input.as_deref()) } else { Value::Null },
        "customStatus": value(st.custom_status.as_deref()),
        "output": output,
        "createdTime": time(st.created_time),
        "lastUpdatedTime": time(st.last_updated_time),
    });
    // Perdure extensions to Durable Functions' status: the structured
    // failure (the dashboard shows its type and message apart).
    if let Some(f) = &st.failure {
        o["failureDetails"] = json!({ "errorType": f.error_type, "errorMessage": f.message });
    }
    if show_history {
        o["historyEvents"] = Value::Array(history(
            st.history.as_deref().unwrap_or_default(),
            show_output,
        ));
    }
    o
}

/// History in Durable Functions' `historyEvents` form.
pub fn history(events: &[HistoryEvent], show_output: bool) -> Vec<Value> {
    let mut scheduled: HashMap<i64, (&str, chrono::DateTime<chrono::Utc>)> = HashMap::new();
    let mut out = Vec::new();
    for e in events {
        let mut o = Map::new();
        o.insert("EventType".into(), json!(e.type_name()));
        o.insert("EventId".into(), json!(e.event_id));
        o.insert(
            "Timestamp".into(),
            json!(e
                .timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
        let completion = |id: i64, o: &mut Map<String, Value>| {
            if let Some((name, at)) = scheduled.get(&id) {
                o.insert("FunctionName".into(), json!(name));
                o.insert(
                    "ScheduledTime".into(),
                    json!(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                );
            }
            o.insert("TaskScheduledId".into(), json!(id));
        };
        match &e.kind {
            // As in the seed documents' table: turn ends shown, turn starts not.
            EventKind::OrchestratorStarted => continue,
            EventKind::OrchestratorCompleted => {}
            EventKind::ExecutionStarted { name, parent, .. } => {
                o.insert("FunctionName".into(), json!(name));
                if let Some(p) = parent {
                    o.insert("ParentInstanceId".into(), json!(p.instance_id));
                }
            }
            EventKind::TaskScheduled { name, .. }
            | EventKind::SubOrchestrationInstanceCreated { name, .. } => {
                scheduled.insert(e.event_id, (name.as_str(), e.timestamp));
                o.insert("FunctionName".into(), json!(name));
                if let EventKind::SubOrchestrationInstanceCreated { instance_id, .. } = &e.kind {
                    o.insert("InstanceId".into(), json!(instance_id));
                }
            }
            EventKind::TaskCompleted {
                task_scheduled_id,
                result,
            }
            | EventKind::SubOrchestrationInstanceCompleted {
                task_scheduled_id,
                result,
            } => {
                completion(*task_scheduled_id, &mut o);
                if show_output {
                    o.insert("Result".into(), value(result.as_deref()));
                }
            }
            EventKind::TaskFailed {
                task_scheduled_id,
                failure,
            }
            | EventKind::SubOrchestrationInstanceFailed {
                task_scheduled_id,
                failure,
            } => {
                completion(*task_scheduled_id, &mut o);
                o.insert("Reason".into(), json!(failure.error_type));
                o.insert("Details".into(), json!(failure.message));
            }
            EventKind::TimerCreated { fire_at } => {
                o.insert("FireAt".into(), json!(time(*fire_at)));
            }
            EventKind::TimerFired { timer_id, fire_at } => {
                o.insert("TimerId".into(), json!(timer_id));
                o.insert("FireAt".into(), json!(time(*fire_at)));
            }
            EventKind::EventRaised { name, input } | EventKind::EventSent { name, input, .. } => {
                o.insert("Name".into(), json!(name));
                if show_output {
                    o.insert("Input".into(), value(input.as_deref()));
                }
            }
            EventKind::ExecutionCompleted {
                status,
                result,
                failure,
            } => {
                o.insert("OrchestrationStatus".into(), json!(status.as_str()));
                if let Some(f) = failure {
                    o.insert(
                        "FailureDetails".into(),
                        json!({ "ErrorType": f.error_type, "ErrorMessage": f.message }),
                    );
                }
                if show_output {
                    o.insert("Result".into(), value(result.as_deref()));
                }
            }
            EventKind::ExecutionTerminated { reason }
            | EventKind::ExecutionSuspended { reason }
            | EventKind::ExecutionResumed { reason }
            | EventKind::ExecutionRewound { reason } => {
                o.insert("Reason".into(), value(reason.as_deref()));
            }
            EventKind::ContinueAsNew { input } => {
                if show_output {
                    o.insert("Input".into(), value(input.as_deref()));
                }
            }
            EventKind::EntityOperationSignaled {
                request_id,
                target,
                operation,
                input,
                ..
            }
            | EventKind::EntityOperationCalled {
                request_id,
                target,
                operation,
                input,
                ..
            } => {
                o.insert("RequestId".into(), json!(request_id));
                o.insert("InstanceId".into(), json!(target));
                o.insert("Operation".into(), json!(operation));
                if show_output {
                    o.insert("Input".into(), value(input.as_deref()));
                }
            }
            EventKind::EntityOperationCompleted { request_id, output } => {
                o.insert("RequestId".into(), json!(request_id));
                if show_output {
                    o.insert("Result".into(), value(output.as_deref()));
                }
            }
            EventKind::EntityOperationFailed {
                request_id,
                failure,
            } => {
                o.insert("RequestId".into(), json!(request_id));
                o.insert("Reason".into(), json!(failure.error_type));
                o.insert("Details".into(), json!(failure.message));
            }
            EventKind::EntityLockRequested {
                critical_section_id,
                lock_set,
                ..
            } => {
                o.insert("CriticalSectionId".into(), json!(critical_section_id));
                o.insert("LockSet".into(), json!(lock_set));
            }
            EventKind::EntityLockGranted {
                critical_section_id,
            } => {
                o.insert("CriticalSectionId".into(), json!(critical_section_id));
            }
            EventKind::EntityUnlockSent {
                critical_section_id,
                target,
                ..
            } => {
                o.insert("CriticalSectionId".into(), json!(critical_section_id));
                o.insert("InstanceId".into(), json!(target));
            }
        }
        out.push(Value::Object(o));
    }
    out
}

/// The scheme and host the request came in on, for management URLs.
pub fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("http");
    format!("{scheme}://{host}{}", crate::BASE_PATH)
}

fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The check-status body: the instance id and its management URLs.
pub fn management_urls(base: &str, id: &str, key: Option<&str>) -> Value {
    let i = format!("{base}/instances/{}", enc(id));
    let code = key.map(|k| format!("code={}", enc(k)));
    let q = |extra: &str| -> String {
        let parts: Vec<&str> = [Some(extra), code.as_deref()]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    };
    json!({
        "id": id,
        "statusQueryGetUri": format!("{i}{}", q("")),
        "sendEventPostUri": format!("{i}/raiseEvent/{{eventName}}{}", q("")),
        "terminatePostUri": format!("{i}/terminate{}", q("reason={text}")),
        "purgeHistoryDeleteUri": format!("{i}{}", q("")),
        "restartPostUri": format!("{i}/restart{}", q("")),
        "suspendPostUri": format!("{i}/suspend{}", q("reason={text}")),
        "resumePostUri": format!("{i}/resume{}", q("reason={text}")),
        "rewindPostUri": format!("{i}/rewind{}", q("reason={text}")),
    })
}
