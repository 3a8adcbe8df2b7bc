//! Telling the two flavours of the Durable Task protocol apart where they
//! disagree on a field: Microsoft's (the official Durable Task SDKs) and
//! Dapr's (`durabletask-dapr`, `@dapr/durabletask-js`). Both speak
//! `TaskHubSidecarService` with the same field numbers almost everywhere;
//! where a request field means two things, `proto/orchestrator_service.proto`
//! declares it so that both decode ("Flavours:" comments) and this module
//! reads it. Nothing is configured: every action is read on its own.

use super::convert;
use super::proto as pb;
use perdure_core::{Tags, TraceContext};
use prost::Message;

/// What a `ScheduleTaskAction` carries beyond its name, version and input.
#[derive(Debug, Default, PartialEq)]
pub struct ScheduleTask {
    pub trace_context: Option<TraceContext>,
    pub tags: Tags,
    /// Dapr's `taskExecutionId`, when the action came from a Dapr SDK.
    pub task_execution_id: Option<String>,
}

/// Reads a `ScheduleTaskAction`'s fields 4 and 5.
///
/// Field 5 is Microsoft's `TraceContext` message or Dapr's
/// `taskExecutionId` string. An encoded `TraceContext` with a trace parent
/// starts with its field-1 key (`0x0a`), which no execution id (printable
/// text) does, so that byte decides. When field 5 is Dapr's, field 4 is
/// Dapr's `TaskRouter`, not tags. An entry with an empty name is never a
/// tag: it is the router Dapr SDKs send without app ids, even when their
/// field 5 is empty.
pub fn schedule_task(action: &pb::ScheduleTaskAction) -> ScheduleTask {
    let raw = action.parent_trace_context.as_slice();
    if raw.first() == Some(&0x0a) {
        if let Ok(t) = pb::TraceContext::decode(raw) {
            return ScheduleTask {
                trace_context: convert::trace_from_pb(Some(&t)),
                tags: named_tags(action),
                task_execution_id: None,
            };
        }
    }
    match std::str::from_utf8(raw) {
        Ok(id) if !id.is_empty() => ScheduleTask {
            trace_context: None,
            tags: Tags::new(),
            task_execution_id: Some(id.to_string()),
        },
        _ => ScheduleTask {
            trace_context: None,
            tags: named_tags(action),
            task_execution_id: None,
        },
    }
}

fn named_tags(action: &pb::ScheduleTaskAction) -> Tags {
    let mut tags = convert::tags_from_pb(&action.tags);
    tags.remove("");
    tags
}

/// Field 5 of a `ScheduleTaskAction` in Microsoft's flavour: the encoded
/// trace context (empty without one), as SDK-side code in tests and the
/// simulator writes it.
pub fn trace_field(t: Option<&TraceContext>) -> Vec<u8> {
    t.map(|t| convert::trace_to_pb(t).encode_to_vec())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    fn action(tags: &[(&str, &str)], field5: Vec<u8>) -> pb::ScheduleTaskAction {
        pb::ScheduleTaskAction {
            name: "a".into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            parent_trace_context: field5,
            ..Default::default()
        }
    }

    fn read(tags: &[(&str, &str)], field5: Vec<u8>) -> ScheduleTask {
        schedule_task(&action(tags, field5))
    }

    fn trace() -> TraceContext {
        TraceContext::from_w3c(PARENT, None).expect("valid traceparent")
    }

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn microsoft_trace_context_and_tags_are_read() {
        let got = read(&[("team", "x")], trace_field(Some(&trace())));
        assert_eq!(got.trace_context, Some(trace()));
        assert_eq!(got.tags, tags(&[("team", "x")]));
        assert_eq!(got.task_execution_id, None);
    }

    #[test]
    fn microsoft_action_without_trace_keeps_its_tags() {
        let got = read(&[("team", "x")], Vec::new());
        assert_eq!(
            got,
            ScheduleTask {
                tags: tags(&[("team", "x")]),
                ..Default::default()
            }
        );
    }

    #[test]
    fn dapr_execution_id_is_not_a_trace_and_its_router_is_not_a_tag() {
        let got = read(
            &[("app-a", "app-b")],
            b"4c2a1f0e-9d3b-4c1e-8f2a-0b1c2d3e4f50".to_vec(),
        );
        assert_eq!(got.trace_context, None);
        assert_eq!(got.tags, Tags::new());
        assert_eq!(
            got.task_execution_id.as_deref(),
            Some("4c2a1f0e-9d3b-4c1e-8f2a-0b1c2d3e4f50")
        );
    }

    #[test]
    fn dapr_empty_router_without_execution_id_is_not_a_tag() {
        assert_eq!(read(&[("", "")], Vec::new()), ScheduleTask::default());
    }

    #[test]
    fn bytes_that_are_neither_flavour_are_ignored() {
        assert_eq!(read(&[], vec![0x0a, 0xff, 0xfe]), ScheduleTask::default());
    }
}
