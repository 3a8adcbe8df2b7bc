//! Durable Functions' JSON shapes: the status object, history events, the
//! management URLs, and JSON error bodies.

use crate::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use perdure::{EventKind, HistoryEvent, OrchestrationStatus};
use serde_json::{json, Value};
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

/// A stored payload, as stored (null when absent, a string when not JSON).
pub fn value(p: Option<&str>) -> Body {
    Body::payload(p)
}

/// What the status object shows as `output`: the output, or the failure's
/// text for a failed instance.
pub fn output(st: &OrchestrationStatus) -> Body {
    match &st.failure {
        Some(f) => Body::Value(Value::String(f.to_string())),
        None => value(st.output.as_deref()),
    }
}

/// The status object of `GET .../instances/{id}`.
pub fn status(
    st: &OrchestrationStatus,
    show_input: bool,
    show_history: bool,
    show_output: bool,
) -> Body {
    let mut o = Body::object();
    o.insert("name", json!(st.name));
    o.insert("instanceId", json!(st.instance_id));
    o.insert("runtimeStatus", json!(st.runtime_status.as_str()));
    o.insert(
        "input",
        if show_input {
            value(st.input.as_deref())
        } else {
            Body::Value(Value::Null)
        },
    );
    o.insert("customStatus", value(st.custom_status.as_deref()));
    o.insert("output", output(st));
    o.insert("createdTime", json!(time(st.created_time)));
    o.insert("lastUpdatedTime", json!(time(st.last_updated_time)));
    // Perdure extensions to Durable Functions' status: the structured
    // failure (the dashboard shows its type and message apart).
    if let Some(f) = &st.failure {
        o.insert(
            "failureDetails",
            json!({ "errorType": f.error_type, "errorMessage": f.message }),
        );
    }
    if show_history {
        o.insert(
            "historyEvents",
            history(st.history.as_deref().unwrap_or_default(), show_output),
        );
    }
    o
}

/// History in Durable Functions' `historyEvents` form.
pub fn history(events: &[HistoryEvent], show_output: bool) -> Vec<Body> {
    let mut scheduled: HashMap<i64, (&str, chrono::DateTime<chrono::Utc>)> = HashMap::new();
    let mut out = Vec::new();
    for e in events {
        let mut o = Body::object();
        o.insert("EventType", json!(e.type_name()));
        o.insert("EventId", json!(e.event_id));
        o.insert(
            "Timestamp",
            json!(e
                .timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
        let completion = |id: i64, o: &mut Body| {
            if let Some((name, at)) = scheduled.get(&id) {
                o.insert("FunctionName", json!(name));
                o.insert(
                    "ScheduledTime",
                    json!(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                );
            }
            o.insert("TaskScheduledId", json!(id));
        };
        match &e.kind {
            // As in the seed documents' table: turn ends shown, turn starts not.
            EventKind::OrchestratorStarted => continue,
            EventKind::OrchestratorCompleted => {}
            EventKind::ExecutionStarted { name, parent, .. } => {
                o.insert("FunctionName", json!(name));
                if let Some(p) = parent {
                    o.insert("ParentInstanceId", json!(p.instance_id));
                }
            }
            EventKind::TaskScheduled { name, .. }
            | EventKind::SubOrchestrationInstanceCreated { name, .. } => {
                scheduled.insert(e.event_id, (name.as_str(), e.timestamp));
                o.insert("FunctionName", json!(name));
                if let EventKind::SubOrchestrationInstanceCreated { instance_id, .. } = &e.kind {
                    o.insert("InstanceId", json!(instance_id));
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
                    o.insert("Result", value(result.as_deref()));
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
                o.insert("Reason", json!(failure.error_type));
                o.insert("Details", json!(failure.message));
            }
            EventKind::TimerCreated { fire_at } => {
                o.insert("FireAt", json!(time(*fire_at)));
            }
            EventKind::TimerFired { timer_id, fire_at } => {
                o.insert("TimerId", json!(timer_id));
                o.insert("FireAt", json!(time(*fire_at)));
            }
            EventKind::EventRaised { name, input, .. }
            | EventKind::EventSent { name, input, .. } => {
                o.insert("Name", json!(name));
                if show_output {
                    o.insert("Input", value(input.as_deref()));
                }
            }
            EventKind::ExecutionCompleted {
                status,
                result,
                failure,
            } => {
                o.insert("OrchestrationStatus", json!(status.as_str()));
                if let Some(f) = failure {
                    o.insert(
                        "FailureDetails",
                        json!({ "ErrorType": f.error_type, "ErrorMessage": f.message }),
                    );
                }
                if show_output {
                    o.insert("Result", value(result.as_deref()));
                }
            }
            EventKind::ExecutionTerminated { reason }
            | EventKind::ExecutionSuspended { reason }
            | EventKind::ExecutionResumed { reason }
            | EventKind::ExecutionRewound { reason } => {
                o.insert("Reason", value(reason.as_deref()));
            }
            EventKind::ContinueAsNew { input } => {
                if show_output {
                    o.insert("Input", value(input.as_deref()));
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
                o.insert("RequestId", json!(request_id));
                o.insert("InstanceId", json!(target));
                o.insert("Operation", json!(operation));
                if show_output {
                    o.insert("Input", value(input.as_deref()));
                }
            }
            EventKind::EntityOperationCompleted { request_id, output } => {
                o.insert("RequestId", json!(request_id));
                if show_output {
                    o.insert("Result", value(output.as_deref()));
                }
            }
            EventKind::EntityOperationFailed {
                request_id,
                failure,
            } => {
                o.insert("RequestId", json!(request_id));
                o.insert("Reason", json!(failure.error_type));
                o.insert("Details", json!(failure.message));
            }
            EventKind::EntityLockRequested {
                critical_section_id,
                lock_set,
                ..
            } => {
                o.insert("CriticalSectionId", json!(critical_section_id));
                o.insert("LockSet", json!(lock_set));
            }
            EventKind::EntityLockGranted {
                critical_section_id,
            } => {
                o.insert("CriticalSectionId", json!(critical_section_id));
            }
            EventKind::EntityUnlockSent {
                critical_section_id,
                target,
                ..
            } => {
                o.insert("CriticalSectionId", json!(critical_section_id));
                o.insert("InstanceId", json!(target));
            }
            EventKind::PatchMarker { change_id } => {
                o.insert("Name", json!(change_id));
            }
            EventKind::StepRepaired {
                step_id,
                step,
                repair,
                by,
                reason,
            } => {
                o.insert("StepId", json!(step_id));
                o.insert("Step", json!(step.as_str()));
                o.insert("Repair", json!(repair.as_str()));
                o.insert("By", json!(by));
                o.insert("Reason", json!(reason));
                match repair {
                    perdure_core::Repair::Complete { result } if show_output => {
                        o.insert("Result", value(result.as_deref()));
                    }
                    perdure_core::Repair::Fail { failure } => {
                        o.insert(
                            "FailureDetails",
                            json!({ "ErrorType": failure.error_type, "ErrorMessage": failure.message }),
                        );
                    }
                    _ => {}
                }
            }
            EventKind::HistoryImported { events, status, .. } => {
                o.insert("Events", json!(events.len()));
                o.insert("OrchestrationStatus", json!(status.as_str()));
            }
        }
        out.push(o);
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
/// With `hub` (a task hub other than the default), each URL names it.
pub fn management_urls(base: &str, id: &str, hub: Option<&str>, key: Option<&str>) -> Value {
    let i = format!("{base}/instances/{}", enc(id));
    let code = key.map(|k| format!("code={}", enc(k)));
    let hub = hub.map(|h| format!("taskHub={}", enc(h)));
    let q = |extra: &str| -> String {
        let parts: Vec<&str> = [Some(extra), hub.as_deref(), code.as_deref()]
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
