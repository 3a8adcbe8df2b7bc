//! The gRPC sidecar's request conversions (`perdure_server::grpc::{convert,
//! actions, flavour}` and the entity-batch actions): the first byte picks
//! the message, the rest is its protobuf encoding, decoded as tonic would
//! and converted as the service does. Properties: no panic; every action a
//! worker sends becomes an engine action, a message or the turn's named
//! failure (none is dropped); every id the engine is handed obeys its
//! rules; failures, times, trace contexts and status codes survive the
//! conversion there and back.

use perdure::dispatch::ExecutionInfo;
use perdure_core::{validate_instance_id, Action, EntityId, Tags};
use perdure_server::grpc::{actions, convert, flavour, proto as pb};
use prost::Message;

/// Protobuf keys and values that reach deep into the messages.
pub const DICTIONARY: &[&[u8]] = &[
    b"\x12",
    b"\x1a",
    b"\x22",
    b"\x2a",
    b"\x0a\x00",
    b"\x08\xff\xff\xff\xff\x0f",
    b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
    b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    b"@counter@k",
    b"@",
    b"/",
    b"#",
    b"\x7f",
];

/// The messages the first byte chooses among.
const KINDS: u8 = 8;

/// Feeds one selector byte and message.
pub fn run(data: &[u8]) -> bool {
    let Some((&which, bytes)) = data.split_first() else {
        return false;
    };
    match which % KINDS {
        0 => decode::<pb::OrchestratorResponse>(bytes).is_some_and(|r| orchestrator_response(&r)),
        1 => decode::<pb::EntityBatchResult>(bytes).is_some_and(|r| entity_batch(&r)),
        2 => decode::<pb::CreateInstanceRequest>(bytes).is_some_and(|r| create_instance(&r)),
        3 => decode::<pb::TaskFailureDetails>(bytes).is_some_and(|f| failure(&f)),
        4 => decode::<prost_types::Timestamp>(bytes).is_some_and(|t| timestamp(&t)),
        5 => decode::<pb::TraceContext>(bytes).is_some_and(|t| trace(&t)),
        6 => decode::<pb::ScheduleTaskAction>(bytes).is_some_and(|a| schedule_task(&a)),
        _ => status_codes(bytes),
    }
}

fn decode<M: Message + Default>(bytes: &[u8]) -> Option<M> {
    M::decode(bytes).ok()
}

fn exec() -> ExecutionInfo {
    ExecutionInfo {
        name: "Fuzzed".into(),
        version: Some("1".into()),
        execution_id: "exec-1".into(),
        input: None,
        parent: None,
        trace_context: None,
        tags: Tags::new(),
    }
}

fn canonical_entity(target: &str) {
    match EntityId::parse(target) {
        Ok(id) => assert_eq!(id.to_string(), target, "entity target is not canonical"),
        Err(e) => panic!("an entity target the engine was handed does not parse ({e}): {target:?}"),
    }
}

fn valid_instance(id: &str) {
    if let Err(e) = validate_instance_id(id) {
        panic!("the engine was handed an invalid instance id ({e}): {id:?}");
    }
}

fn orchestrator_response(r: &pb::OrchestratorResponse) -> bool {
    let m = actions::map_actions(
        "fuzz-instance",
        &exec(),
        r.actions.clone(),
        crate::fixed_now(),
    );
    for a in &m.actions {
        match a {
            Action::CreateSubOrchestration { instance_id, .. }
            | Action::SendEvent { instance_id, .. } => valid_instance(instance_id),
            Action::CallEntity { target, .. }
            | Action::SignalEntity { target, .. }
            | Action::UnlockEntity { target, .. } => canonical_entity(target),
            Action::LockEntities { lock_set, .. } => {
                lock_set.iter().for_each(|t| canonical_entity(t));
                assert!(
                    lock_set.windows(2).all(|w| w[0] < w[1]),
                    "lock set is not sorted and distinct: {lock_set:?}"
                );
            }
            Action::ScheduleTask { tags, .. } => {
                assert!(
                    !tags.contains_key(""),
                    "an empty tag name reached the engine"
                )
            }
            Action::CreateTimer { .. } => {}
        }
    }
    for msg in &m.messages {
        valid_instance(&msg.instance_id);
    }
    if m.outcome.is_none() {
        assert_eq!(
            m.actions.len() + m.messages.len(),
            r.actions.len(),
            "an action was dropped without failing the turn"
        );
    }
    m.outcome.is_none()
}

fn entity_batch(r: &pb::EntityBatchResult) -> bool {
    use pb::operation_action::OperationActionType as T;
    match perdure_server::fuzzing::entity_actions(&r.actions, crate::fixed_now()) {
        Ok(messages) => {
            let sent: Vec<&T> = r
                .actions
                .iter()
                .filter_map(|a| a.operation_action_type.as_ref())
                .collect();
            assert_eq!(messages.len(), sent.len(), "an entity action was dropped");
            for (msg, action) in messages.iter().zip(sent) {
                match action {
                    T::SendSignal(_) => canonical_entity(&msg.instance_id),
                    T::StartNewOrchestration(_) => valid_instance(&msg.instance_id),
                }
            }
            true
        }
        Err(status) => {
            assert_eq!(
                status.code(),
                tonic::Code::InvalidArgument,
                "entity actions refused with {status:?}"
            );
            false
        }
    }
}

fn create_instance(r: &pb::CreateInstanceRequest) -> bool {
    if let Some(at) = r
        .scheduled_start_timestamp
        .as_ref()
        .and_then(convert::from_ts)
    {
        let _ = convert::ts(at);
    }
    if let Some(t) = convert::trace_from_pb(r.parent_trace_context.as_ref()) {
        assert!(t.parse().is_some(), "a trace context was kept unparsed");
    }
    let tags = convert::tags_from_pb(&r.tags);
    assert_eq!(
        convert::tags_from_pb(&convert::tags_to_pb(&tags)),
        tags,
        "tags change through the protocol's map"
    );
    if let Some(policy) = &r.orchestration_id_reuse_policy {
        for code in &policy.replaceable_status {
            let _ = convert::from_status(*code);
        }
    }
    let id_ok = r.instance_id.is_empty() || validate_instance_id(&r.instance_id).is_ok();
    let input_ok = perdure::RawJson::from_wire(r.input.as_deref()).is_ok();
    id_ok && input_ok
}

fn failure(f: &pb::TaskFailureDetails) -> bool {
    let engine = convert::from_failure(f);
    let _ = engine.to_string();
    let wire = convert::failure(&engine);
    assert_eq!(
        convert::from_failure(&wire),
        engine,
        "a failure changes through the protocol"
    );
    let mut without_properties = f.clone();
    clear_properties(&mut without_properties);
    assert_eq!(
        wire, without_properties,
        "a failure's protocol form changes through the engine"
    );
    true
}

fn clear_properties(f: &mut pb::TaskFailureDetails) {
    f.properties.clear();
    if let Some(inner) = f.inner_failure.as_deref_mut() {
        clear_properties(inner);
    }
}

fn timestamp(t: &prost_types::Timestamp) -> bool {
    let Some(time) = convert::from_ts(t) else {
        return false;
    };
    assert_eq!(
        convert::from_ts(&convert::ts(time)),
        Some(time),
        "a time changes through the protocol: {t:?}"
    );
    true
}

fn trace(t: &pb::TraceContext) -> bool {
    let Some(tc) = convert::trace_from_pb(Some(t)) else {
        return false;
    };
    assert_eq!(
        convert::trace_from_pb(Some(&convert::trace_to_pb(&tc))),
        Some(tc.clone()),
        "a trace context changes through the protocol"
    );
    let action = pb::ScheduleTaskAction {
        parent_trace_context: flavour::trace_field(Some(&tc)),
        ..Default::default()
    };
    assert_eq!(
        flavour::schedule_task(&action).trace_context,
        Some(tc),
        "Microsoft's trace field is not read back"
    );
    true
}

fn schedule_task(a: &pb::ScheduleTaskAction) -> bool {
    let read = flavour::schedule_task(a);
    assert!(!read.tags.contains_key(""), "an empty tag name was kept");
    if read.task_execution_id.is_some() {
        assert!(
            read.trace_context.is_none() && read.tags.is_empty(),
            "a Dapr action kept Microsoft fields: {read:?}"
        );
    }
    if let Some(tc) = &read.trace_context {
        let again = pb::ScheduleTaskAction {
            parent_trace_context: flavour::trace_field(Some(tc)),
            ..a.clone()
        };
        assert_eq!(
            flavour::schedule_task(&again).trace_context.as_ref(),
            Some(tc),
            "a trace context read from field 5 is not read back"
        );
    }
    true
}

/// Each four bytes are a status code: known codes map there and back.
fn status_codes(bytes: &[u8]) -> bool {
    let mut known = false;
    for chunk in bytes.chunks(4) {
        let mut raw = [0u8; 4];
        raw[..chunk.len()].copy_from_slice(chunk);
        let code = i32::from_le_bytes(raw);
        if let Some(s) = convert::from_status(code) {
            assert_eq!(convert::status(s) as i32, code, "status {s} renumbered");
            known = true;
        }
    }
    known
}

fn with_kind(kind: u8, message: &impl Message) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend(message.encode_to_vec());
    out
}

fn action(
    id: i32,
    kind: pb::orchestrator_action::OrchestratorActionType,
) -> pb::OrchestratorAction {
    pb::OrchestratorAction {
        id,
        orchestrator_action_type: Some(kind),
        ..Default::default()
    }
}

fn entity(
    id: i32,
    kind: pb::send_entity_message_action::EntityMessageType,
) -> pb::OrchestratorAction {
    action(
        id,
        pb::orchestrator_action::OrchestratorActionType::SendEntityMessage(
            pb::SendEntityMessageAction {
                entity_message_type: Some(kind),
            },
        ),
    )
}

fn sample_trace() -> pb::TraceContext {
    pb::TraceContext {
        trace_parent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
        trace_state: Some("congo=t61rcWkgMzE".into()),
        ..Default::default()
    }
}

fn sample_failure() -> pb::TaskFailureDetails {
    pb::TaskFailureDetails {
        error_type: "Boom".into(),
        error_message: "it broke".into(),
        stack_trace: Some("at x".into()),
        inner_failure: Some(Box::new(pb::TaskFailureDetails {
            error_type: "Inner".into(),
            ..Default::default()
        })),
        is_non_retriable: true,
        properties: Default::default(),
    }
}

/// A worker's turn with every action type and every entity action.
fn sample_response() -> pb::OrchestratorResponse {
    use pb::orchestrator_action::OrchestratorActionType as A;
    use pb::send_entity_message_action::EntityMessageType as M;
    let now = Some(convert::ts(crate::fixed_now()));
    let trace = sample_trace();
    let carried = convert::event(
        "fuzz-instance",
        &perdure_core::HistoryEvent::new(
            crate::fixed_now(),
            perdure_core::EventKind::EventRaised {
                name: "e".into(),
                input: None,
                trace_context: None,
            },
        ),
    );
    let actions = vec![
        action(
            0,
            A::ScheduleTask(pb::ScheduleTaskAction {
                name: "SayHello".into(),
                input: Some("\"Tokyo\"".into()),
                tags: [("team".to_string(), "x".to_string())].into(),
                parent_trace_context: trace.encode_to_vec(),
                ..Default::default()
            }),
        ),
        action(
            1,
            A::ScheduleTask(pb::ScheduleTaskAction {
                name: "Dapr".into(),
                tags: [(String::new(), String::new())].into(),
                parent_trace_context: b"4c2a1f0e-9d3b-4c1e-8f2a-0b1c2d3e4f50".to_vec(),
                ..Default::default()
            }),
        ),
        action(2, A::CreateTimer(pb::CreateTimerAction { fire_at: now })),
        action(
            3,
            A::CreateSubOrchestration(pb::CreateSubOrchestrationAction {
                instance_id: "child".into(),
                name: "Child".into(),
                parent_trace_context: Some(trace),
                ..Default::default()
            }),
        ),
        action(
            4,
            A::SendEvent(pb::SendEventAction {
                instance: Some(pb::OrchestrationInstance {
                    instance_id: "other".into(),
                    execution_id: None,
                }),
                name: "Approval".into(),
                data: Some("true".into()),
            }),
        ),
        action(
            5,
            A::TerminateOrchestration(pb::TerminateOrchestrationAction {
                instance_id: "other".into(),
                reason: Some("\"why\"".into()),
                recurse: false,
            }),
        ),
        entity(
            6,
            M::EntityOperationSignaled(pb::EntityOperationSignaledEvent {
                request_id: "r1".into(),
                operation: "add".into(),
                target_instance_id: Some("@Counter@k".into()),
                scheduled_time: now,
                ..Default::default()
            }),
        ),
        entity(
            7,
            M::EntityOperationCalled(pb::EntityOperationCalledEvent {
                request_id: "r2".into(),
                operation: "get".into(),
                target_instance_id: Some("@counter@k".into()),
                ..Default::default()
            }),
        ),
        entity(
            8,
            M::EntityLockRequested(pb::EntityLockRequestedEvent {
                critical_section_id: "cs".into(),
                lock_set: vec!["@b@2".into(), "@a@1".into(), "@a@1".into()],
                ..Default::default()
            }),
        ),
        entity(
            9,
            M::EntityUnlockSent(pb::EntityUnlockSentEvent {
                critical_section_id: "cs".into(),
                target_instance_id: Some("@a@1".into()),
                ..Default::default()
            }),
        ),
        action(
            10,
            A::CompleteOrchestration(pb::CompleteOrchestrationAction {
                orchestration_status: pb::OrchestrationStatus::ContinuedAsNew as i32,
                result: Some("1".into()),
                carryover_events: vec![carried],
                failure_details: Some(sample_failure()),
                ..Default::default()
            }),
        ),
    ];
    pb::OrchestratorResponse {
        instance_id: "fuzz-instance".into(),
        actions,
        ..Default::default()
    }
}

fn sample_batch() -> pb::EntityBatchResult {
    use pb::operation_action::OperationActionType as T;
    pb::EntityBatchResult {
        actions: vec![
            pb::OperationAction {
                id: 0,
                operation_action_type: Some(T::SendSignal(pb::SendSignalAction {
                    instance_id: "@counter@k".into(),
                    name: "add".into(),
                    input: Some("1".into()),
                    scheduled_time: Some(convert::ts(crate::fixed_now())),
                    parent_trace_context: Some(sample_trace()),
                    ..Default::default()
                })),
            },
            pb::OperationAction {
                id: 1,
                operation_action_type: Some(T::StartNewOrchestration(
                    pb::StartNewOrchestrationAction {
                        instance_id: "started".into(),
                        name: "O".into(),
                        ..Default::default()
                    },
                )),
            },
        ],
        entity_state: Some("{\"n\":1}".into()),
        ..Default::default()
    }
}

/// One message of each kind, with every action and entity action type.
pub fn seeds() -> Vec<Vec<u8>> {
    let create = pb::CreateInstanceRequest {
        instance_id: "fuzz".into(),
        name: "HelloCities".into(),
        input: Some("[1,2]".into()),
        scheduled_start_timestamp: Some(convert::ts(crate::fixed_now())),
        orchestration_id_reuse_policy: Some(pb::OrchestrationIdReusePolicy {
            replaceable_status: vec![1, 3, 5],
        }),
        tags: [("k".to_string(), "v".to_string())].into(),
        parent_trace_context: Some(sample_trace()),
        ..Default::default()
    };
    let schedule = pb::ScheduleTaskAction {
        name: "a".into(),
        tags: [("app-a".to_string(), "app-b".to_string())].into(),
        parent_trace_context: vec![0x0a, 0xff, 0xfe],
        ..Default::default()
    };
    let time = prost_types::Timestamp {
        seconds: 1_767_225_599,
        nanos: 999_999_999,
    };
    vec![
        with_kind(0, &sample_response()),
        with_kind(1, &sample_batch()),
        with_kind(2, &create),
        with_kind(3, &sample_failure()),
        with_kind(4, &time),
        with_kind(5, &sample_trace()),
        with_kind(6, &schedule),
        vec![7, 0, 0, 0, 0, 3, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
    ]
}
