//! The stored history encoding (`perdure_core::history`, versions 1 and 2:
//! JSON, and frames with raw payloads): bytes as a store row holds them,
//! decoded as one event or a run of events. Properties: no panic; what decodes encodes to text that decodes to the same events and
//! encodes to the same text again; a single event decodes the same way
//! alone and as a run; every decoded event has a gRPC form that survives
//! protobuf's encoding and an HTTP form that is valid JSON.

use perdure_core::{
    decode_event, decode_events, encode_event, encode_events, EventKind, FailureDetails,
    HistoryEvent, ParentInstance, RuntimeStatus, Tags, TraceContext,
};
use perdure_server::grpc::{convert, proto as pb};
use prost::Message;

/// Field names, type names and JSON fragments of the encoding.
pub const DICTIONARY: &[&[u8]] = &[
    b"\"v\":1",
    b"{\"v\":2,",
    b"\"result\":[0,1]",
    b"\"input\":[0,3]",
    b"\"v\":",
    b"\"event_id\":",
    b"\"timestamp\":\"2026-01-01T00:00:00Z\"",
    b"\"timestamp\":",
    b"\"type\":",
    b"\"ExecutionStarted\"",
    b"\"ExecutionCompleted\"",
    b"\"TaskScheduled\"",
    b"\"TaskFailed\"",
    b"\"TimerFired\"",
    b"\"EntityLockRequested\"",
    b"\"failure\":{\"error_type\":\"E\",\"message\":\"m\"}",
    b"\"inner\":",
    b"\"trace_context\":",
    b"\"traceparent\":\"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\"",
    b"\"tags\":{\"k\":\"v\"}",
    b"\"parent\":",
    b"\"position\":",
    b"\"lock_set\":[\"@a@b\"]",
    b"\"input\":null",
    b"\"status\":\"Failed\"",
    b"null",
    b"true",
    b"-1",
    b"9223372036854775807",
    b"18446744073709551616",
    b"1e400",
    b"\"\\u0000\"",
    b"\"\\ud800\"",
    b"+14:00",
    b".999999999",
    b"9999-12-31T23:59:60Z",
];

/// Feeds one stored row.
pub fn run(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let one = decode_event(text);
    let many = decode_events(text);
    if let Ok(event) = &one {
        match &many {
            Ok(events) => assert_eq!(
                events.as_slice(),
                std::slice::from_ref(event),
                "one event decodes differently as a run: {text:?}"
            ),
            Err(e) => panic!("one event decodes alone but not as a run ({e}): {text:?}"),
        }
    }
    match many {
        Ok(events) => {
            check(&events);
            true
        }
        Err(_) => false,
    }
}

/// The round-trip and form properties of decoded events.
pub fn check(events: &[HistoryEvent]) {
    let text = encode_events(events);
    let again = match decode_events(&text) {
        Ok(again) => again,
        Err(e) => panic!("re-encoded events do not decode ({e}): {text}"),
    };
    assert_eq!(again, events, "events change through encoding: {text}");
    assert_eq!(encode_events(&again), text, "encoding is not stable");
    for e in events {
        let one = encode_event(e);
        match decode_event(&one) {
            Ok(back) => assert_eq!(&back, e, "event changes through encoding: {one}"),
            Err(err) => panic!("an encoded event does not decode ({err}): {one}"),
        }
        let wire = convert::event("fuzz-instance", e);
        let bytes = wire.encode_to_vec();
        match pb::HistoryEvent::decode(bytes.as_slice()) {
            Ok(back) => assert_eq!(back, wire, "gRPC form changes through protobuf"),
            Err(err) => panic!("gRPC form does not decode ({err}): {wire:?}"),
        }
        let _ = e.type_name();
        let _ = (e.name(), e.input(), e.result(), e.completion_id());
    }
    let shown = perdure_server::wire::history(events, true);
    let json = match serde_json::to_string(&shown) {
        Ok(json) => json,
        Err(e) => panic!("HTTP form does not serialize: {e}"),
    };
    // JSON's grammar, not serde_json::Value's range: a stored `1e400` is
    // JSON and is shown as it was sent.
    if let Err(e) = serde_json::from_str::<&serde_json::value::RawValue>(&json) {
        panic!("HTTP form is not JSON ({e}): {json}");
    }
}

/// One event of every kind, with and without optional fields, encoded
/// alone and as runs; rows of the earlier shape (no tags); a few near-misses.
pub fn seeds() -> Vec<Vec<u8>> {
    let events = sample_events();
    let mut out: Vec<Vec<u8>> = events
        .iter()
        .map(|e| encode_event(e).into_bytes())
        .collect();
    out.push(encode_events(&events).into_bytes());
    out.push(encode_events(&events[..3]).into_bytes());
    out.push(encode_events(&[]).into_bytes());
    for row in [
        r#"{"v":1,"event_id":-1,"timestamp":"2021-05-05T18:45:28Z","type":"ExecutionStarted","name":"O","input":null,"execution_id":"e"}"#,
        r#"{"v":2,"event_id":-1,"timestamp":"2021-05-05T18:45:28Z","type":"OrchestratorStarted"}"#,
        r#"  [{"v":1,"event_id":0,"timestamp":"2021-05-05T18:45:28.5+02:00","type":"TimerCreated","fire_at":"2021-05-05T18:45:29Z"}]"#,
        "not json",
    ] {
        out.push(row.as_bytes().to_vec());
    }
    out
}

fn sample_events() -> Vec<HistoryEvent> {
    let t = chrono::DateTime::from_timestamp(1_620_240_328, 123_456_789).unwrap_or_default();
    let trace = TraceContext::from_w3c(
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        Some("congo=t61rcWkgMzE"),
    );
    let tags: Tags = [("env".to_string(), "prod".to_string())].into();
    let mut inner = FailureDetails::new("Inner", "deeper");
    inner.stack_trace = Some("at x".into());
    let mut failure = FailureDetails::new("Boom", "it \"broke\"").non_retriable();
    failure.inner = Some(Box::new(inner));
    let kinds = vec![
        EventKind::ExecutionStarted {
            name: "HelloCities".into(),
            version: Some("1.0".into()),
            input: Some("{\"a\": [1, 2.50, 1e3]}".into()),
            execution_id: "e1".into(),
            parent: Some(ParentInstance {
                name: "Parent".into(),
                instance_id: "p".into(),
                execution_id: "pe".into(),
                task_scheduled_id: 3,
            }),
            trace_context: trace.clone(),
            tags: tags.clone(),
        },
        EventKind::ExecutionCompleted {
            status: RuntimeStatus::Failed,
            result: None,
            failure: Some(failure.clone()),
        },
        EventKind::ExecutionTerminated {
            reason: Some("\"stop\"".into()),
        },
        EventKind::ExecutionSuspended { reason: None },
        EventKind::ExecutionResumed {
            reason: Some("plain words".into()),
        },
        EventKind::ExecutionRewound { reason: None },
        EventKind::PatchMarker {
            change_id: "fraud-check".into(),
        },
        EventKind::StepRepaired {
            step_id: 4,
            step: perdure_core::RepairedStep::Activity,
            repair: perdure_core::Repair::Fail {
                failure: failure.clone(),
            },
            by: "ops".into(),
            reason: "INC-7 \"gateway\"".into(),
        },
        EventKind::StepRepaired {
            step_id: 5,
            step: perdure_core::RepairedStep::Timer,
            repair: perdure_core::Repair::SkipTimer,
            by: "ops".into(),
            reason: String::new(),
        },
        EventKind::HistoryImported {
            status: RuntimeStatus::Running,
            output: None,
            failure: None,
            custom_status: Some("{\"step\": 2}".into()),
            events: vec![HistoryEvent::new(
                chrono::DateTime::from_timestamp(0, 0).unwrap_or_default(),
                EventKind::OrchestratorStarted,
            )],
        },
        EventKind::TaskScheduled {
            name: "SayHello".into(),
            version: None,
            input: Some("\"Tokyo\"".into()),
            trace_context: trace.clone(),
            tags,
        },
        EventKind::TaskCompleted {
            task_scheduled_id: 0,
            result: Some("\"Hello Tokyo!\"".into()),
        },
        EventKind::TaskFailed {
            task_scheduled_id: 1,
            failure: failure.clone(),
        },
        EventKind::SubOrchestrationInstanceCreated {
            name: "Child".into(),
            version: None,
            instance_id: "c:0002".into(),
            input: None,
            trace_context: None,
            tags: Tags::new(),
        },
        EventKind::SubOrchestrationInstanceCompleted {
            task_scheduled_id: 2,
            result: Some("42".into()),
        },
        EventKind::SubOrchestrationInstanceFailed {
            task_scheduled_id: 2,
            failure,
        },
        EventKind::TimerCreated { fire_at: t },
        EventKind::TimerFired {
            timer_id: 4,
            fire_at: t,
        },
        EventKind::OrchestratorStarted,
        EventKind::OrchestratorCompleted,
        EventKind::EventSent {
            instance_id: "other".into(),
            name: "Approval".into(),
            input: Some("true".into()),
        },
        EventKind::EventRaised {
            name: "Approval".into(),
            input: Some("{}".into()),
            trace_context: trace.clone(),
        },
        EventKind::ContinueAsNew {
            input: Some("[]".into()),
        },
        EventKind::EntityOperationSignaled {
            request_id: "r1".into(),
            target: "@counter@k".into(),
            operation: "add".into(),
            input: Some("1".into()),
            scheduled_time: Some(t),
            trace_context: trace,
        },
        EventKind::EntityOperationCalled {
            request_id: "r2".into(),
            target: "@counter@k".into(),
            operation: "get".into(),
            input: None,
            parent_instance_id: "p".into(),
            parent_execution_id: "pe".into(),
            trace_context: None,
        },
        EventKind::EntityOperationCompleted {
            request_id: "r2".into(),
            output: Some("7".into()),
        },
        EventKind::EntityOperationFailed {
            request_id: "r3".into(),
            failure: FailureDetails::new("E", "m"),
        },
        EventKind::EntityLockRequested {
            critical_section_id: "cs".into(),
            lock_set: vec!["@a@1".into(), "@b@2".into()],
            position: 1,
            parent_instance_id: "p".into(),
        },
        EventKind::EntityLockGranted {
            critical_section_id: "cs".into(),
        },
        EventKind::EntityUnlockSent {
            critical_section_id: "cs".into(),
            target: "@a@1".into(),
            parent_instance_id: "p".into(),
        },
    ];
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| HistoryEvent {
            event_id: i as i64 - 1,
            timestamp: t,
            kind,
        })
        .collect()
}
