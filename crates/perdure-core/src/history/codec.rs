//! The stored encoding of history events, versioned.
//!
//! Version 1 is the event as one JSON object, payloads as JSON strings
//! inside it (escaped on the way in, unescaped on the way out). Version 2,
//! written since, is a *frame*: the same JSON object with each payload
//! replaced by `[offset, length]`, followed at once by the payloads' bytes
//! as they are, so a payload is copied into the stored text once and out of
//! it once, never escaped, never parsed:
//!
//! ```text
//! {"v":2,"event_id":0,...,"type":"TaskScheduled","name":"A","input":[0,7]}"Tokyo"
//! ```
//!
//! A run of events (a turn kept in one row) is frames one after another;
//! version 1 runs are JSON arrays. Both versions are read.

use super::{EventKind, HistoryEvent, Payload, PayloadText, Repair};
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};

/// The version of the stored event encoding written by [`encode_event`].
pub const HISTORY_FORMAT: u32 = 2;

/// A stored event that could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("stored history event is not valid: {0}")]
    Invalid(#[from] serde_json::Error),
    #[error(
        "stored history event has format version {0}; this build reads versions 1 to {HISTORY_FORMAT}"
    )]
    UnknownFormat(u32),
}

fn invalid(msg: &str) -> CodecError {
    CodecError::Invalid(<serde_json::Error as serde::de::Error>::custom(msg))
}

/// What a payload field's (de)serializer does: `Plain` writes and reads
/// JSON strings (version 1, and every use of the events outside the store:
/// exports, the HTTP API); `Offsets` writes and reads `[offset, length]`
/// (a version 2 header); `Append` writes nothing of note and appends the
/// payload's bytes to [`TAIL`] (the second pass of a version 2 encoding).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    Offsets,
    Append,
}

/// Payloads up to this size are gathered during the header's pass and
/// copied twice; a frame with a larger one takes a second pass instead, so
/// that large payloads are copied once.
const SMALL: usize = 1024;

thread_local! {
    static MODE: Cell<Mode> = const { Cell::new(Mode::Plain) };
    /// The next payload's offset in the frame's tail (`Offsets`, encoding).
    static NEXT: Cell<usize> = const { Cell::new(0) };
    /// The text being encoded (`Append`): moved in and out, never copied.
    static TAIL: RefCell<String> = const { RefCell::new(String::new()) };
    /// The frame's small payloads, gathered during the header's pass, or
    /// `None` once a large one was seen.
    static SMALL_TAIL: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Sets the mode for one (de)serialization and puts `Plain` back after it,
/// also when serde unwinds with an error.
struct ModeGuard;

impl ModeGuard {
    fn set(mode: Mode) -> Self {
        MODE.set(mode);
        ModeGuard
    }
}

impl Drop for ModeGuard {
    fn drop(&mut self) {
        MODE.set(Mode::Plain);
    }
}

/// `#[serde(with)]` for every payload field of an event.
pub(super) mod payload {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &Payload, s: S) -> Result<S::Ok, S::Error> {
        let Some(text) = p else {
            return s.serialize_none();
        };
        match MODE.get() {
            Mode::Plain => s.serialize_str(text),
            Mode::Offsets => {
                let at = NEXT.get();
                NEXT.set(at + text.len());
                SMALL_TAIL.with_borrow_mut(|small| match small {
                    Some(t) if text.len() <= SMALL => t.push_str(text),
                    _ => *small = None,
                });
                (at, text.len()).serialize(s)
            }
            Mode::Append => {
                TAIL.with_borrow_mut(|t| t.push_str(text));
                s.serialize_unit()
            }
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Payload, D::Error> {
        if MODE.get() == Mode::Offsets {
            // A placeholder, replaced by the bytes it names once the header
            // is read (`fill`).
            let at: Option<(usize, usize)> = Option::deserialize(d)?;
            Ok(at.map(|(o, l)| PayloadText::from(format!("{o}:{l}"))))
        } else {
            Option::<PayloadText>::deserialize(d)
        }
    }
}

/// Calls `f` on every payload of the event, nested ones included (an
/// imported history's events, a repair's result).
fn for_each_payload_mut(kind: &mut EventKind, f: &mut dyn FnMut(&mut Payload)) {
    use EventKind::*;
    match kind {
        ExecutionStarted { input, .. }
        | TaskScheduled { input, .. }
        | SubOrchestrationInstanceCreated { input, .. }
        | EventSent { input, .. }
        | EventRaised { input, .. }
        | ContinueAsNew { input }
        | EntityOperationSignaled { input, .. }
        | EntityOperationCalled { input, .. } => f(input),
        ExecutionCompleted { result, .. }
        | TaskCompleted { result, .. }
        | SubOrchestrationInstanceCompleted { result, .. } => f(result),
        ExecutionTerminated { reason }
        | ExecutionSuspended { reason }
        | ExecutionResumed { reason }
        | ExecutionRewound { reason } => f(reason),
        EntityOperationCompleted { output, .. } => f(output),
        StepRepaired { repair, .. } => match repair {
            Repair::Complete { result } => f(result),
            Repair::Fail { .. } | Repair::SkipTimer => {}
        },
        HistoryImported {
            output,
            custom_status,
            events,
            ..
        } => {
            f(output);
            f(custom_status);
            for e in events {
                for_each_payload_mut(&mut e.kind, f);
            }
        }
        TaskFailed { .. }
        | SubOrchestrationInstanceFailed { .. }
        | TimerCreated { .. }
        | TimerFired { .. }
        | OrchestratorStarted
        | OrchestratorCompleted
        | EntityOperationFailed { .. }
        | EntityLockRequested { .. }
        | PatchMarker { .. }
        | EntityLockGranted { .. }
        | EntityUnlockSent { .. } => {}
    }
}

#[derive(Serialize)]
struct EncodedRef<'a> {
    v: u32,
    #[serde(flatten)]
    event: &'a HistoryEvent,
}

#[derive(Deserialize)]
struct Encoded {
    v: u32,
    #[serde(flatten)]
    event: HistoryEvent,
}

/// Encodes an event for storage (a version 2 frame).
pub fn encode_event(event: &HistoryEvent) -> String {
    let mut out = String::new();
    encode_into(event, &mut out);
    out
}

fn encode_into(event: &HistoryEvent, out: &mut String) {
    let framed = EncodedRef {
        v: HISTORY_FORMAT,
        event,
    };
    // Serializing this plain data model cannot fail.
    let header = {
        let _mode = ModeGuard::set(Mode::Offsets);
        NEXT.set(0);
        SMALL_TAIL.with_borrow_mut(|small| match small {
            Some(t) => t.clear(),
            None => *small = Some(String::new()),
        });
        serde_json::to_string(&framed).unwrap_or_default()
    };
    out.reserve(header.len() + NEXT.get());
    out.push_str(&header);
    let gathered = SMALL_TAIL.with_borrow(|small| match small {
        Some(t) => {
            out.push_str(t);
            true
        }
        None => false,
    });
    if gathered {
        return;
    }
    // A large payload: the second pass visits the payloads in the order
    // the first gave them offsets (the same derive), appending each to
    // `out`.
    TAIL.with_borrow_mut(|t| std::mem::swap(t, out));
    {
        let _mode = ModeGuard::set(Mode::Append);
        let _ = serde_json::to_writer(std::io::sink(), &framed);
    }
    TAIL.with_borrow_mut(|t| std::mem::swap(t, out));
}

/// Encodes a run of events (a store may keep a whole turn in one row):
/// their frames one after another.
pub fn encode_events(events: &[HistoryEvent]) -> String {
    if events.is_empty() {
        return "[]".to_string();
    }
    let mut out = String::new();
    for e in events {
        encode_into(e, &mut out);
    }
    out
}

/// Decodes the event that starts at `at`; returns it and where the next
/// one starts.
fn decode_frame(text: &str, at: usize) -> Result<(HistoryEvent, usize), CodecError> {
    let rest = text
        .get(at..)
        .ok_or_else(|| invalid("frame out of range"))?;
    let framed = rest.starts_with("{\"v\":2,");
    let (e, header_end) = {
        let _mode = ModeGuard::set(if framed { Mode::Offsets } else { Mode::Plain });
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<Encoded>();
        match stream.next() {
            Some(e) => (e?, stream.byte_offset()),
            None => return Err(invalid("no event")),
        }
    };
    match (e.v, framed) {
        (1, false) => Ok((e.event, at + header_end)),
        (2, true) => {
            let mut event = e.event;
            let tail = &rest[header_end..];
            let mut end = 0;
            let mut bad = false;
            for_each_payload_mut(&mut event.kind, &mut |p| {
                let Some(placeholder) = p.as_mut() else {
                    return;
                };
                let range = placeholder.split_once(':').and_then(|(o, l)| {
                    let o: usize = o.parse().ok()?;
                    Some(o..o.checked_add(l.parse().ok()?)?)
                });
                match range.and_then(|r| Some((tail.get(r.clone())?, r.end))) {
                    Some((bytes, e)) => {
                        *placeholder = PayloadText::from(bytes);
                        end = end.max(e);
                    }
                    None => bad = true,
                }
            });
            if bad {
                return Err(invalid("a payload's offset or length is outside its frame"));
            }
            Ok((event, at + header_end + end))
        }
        (2, false) => Err(invalid("a version 2 event must start with its version")),
        (v, _) => Err(CodecError::UnknownFormat(v)),
    }
}

/// Decodes what [`encode_events`] or [`encode_event`] wrote, in either
/// version.
pub fn decode_events(text: &str) -> Result<Vec<HistoryEvent>, CodecError> {
    if text.trim_start().starts_with('[') {
        let all: Vec<Encoded> = serde_json::from_str(text)?;
        return all
            .into_iter()
            .map(|e| match e.v {
                1 => Ok(e.event),
                v => Err(CodecError::UnknownFormat(v)),
            })
            .collect();
    }
    let mut out = Vec::new();
    let mut at = 0;
    while at == 0 || !text[at..].trim().is_empty() {
        let (event, next) = decode_frame(text, at)?;
        out.push(event);
        at = next;
    }
    Ok(out)
}

/// Decodes a stored event written by [`encode_event`] (either version).
pub fn decode_event(text: &str) -> Result<HistoryEvent, CodecError> {
    let (event, end) = decode_frame(text, 0)?;
    if !text[end..].trim().is_empty() {
        return Err(invalid("trailing characters after the event"));
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FailureDetails, RepairedStep, RuntimeStatus, Tags};
    use chrono::TimeZone;

    /// Payloads that would need escaping, that look like frames, that are
    /// not JSON at all (a plain-text reason), and none.
    const PAYLOADS: [Option<&str>; 6] = [
        Some(r#"{"q":"\"quoted\" \\ back","u":"žluťoučký 🦀"}"#),
        Some(r#"{"v":2,"event_id":0,"input":[0,3]}abc"#),
        Some("plain words, not JSON"),
        Some(""),
        Some(r#""type":"TimerFired","#),
        None,
    ];

    fn p(i: usize) -> Payload {
        PAYLOADS[i % PAYLOADS.len()].map(PayloadText::from)
    }

    /// One event of every kind that carries a payload, the payloads picked
    /// from PAYLOADS starting at `k`.
    fn every_kind(k: usize) -> Vec<HistoryEvent> {
        let t = chrono::Utc.with_ymd_and_hms(2026, 12, 4, 1, 2, 3).unwrap();
        let s = |x: &str| x.to_string();
        let kinds = vec![
            EventKind::ExecutionStarted {
                name: s("O"),
                version: Some(s("2")),
                input: p(k),
                execution_id: s("e"),
                parent: None,
                trace_context: None,
                tags: Tags::new(),
            },
            EventKind::ExecutionCompleted {
                status: RuntimeStatus::Completed,
                result: p(k + 1),
                failure: None,
            },
            EventKind::ExecutionTerminated { reason: p(k + 2) },
            EventKind::ExecutionSuspended { reason: p(k + 3) },
            EventKind::ExecutionResumed { reason: p(k + 4) },
            EventKind::ExecutionRewound { reason: p(k + 5) },
            EventKind::TaskScheduled {
                name: s("A"),
                version: None,
                input: p(k),
                trace_context: None,
                tags: Tags::new(),
            },
            EventKind::TaskCompleted {
                task_scheduled_id: 0,
                result: p(k + 1),
            },
            EventKind::SubOrchestrationInstanceCreated {
                name: s("S"),
                version: None,
                instance_id: s("child"),
                input: p(k + 2),
                trace_context: None,
                tags: Tags::new(),
            },
            EventKind::SubOrchestrationInstanceCompleted {
                task_scheduled_id: 1,
                result: p(k + 3),
            },
            EventKind::EventSent {
                instance_id: s("other"),
                name: s("go"),
                input: p(k + 4),
            },
            EventKind::EventRaised {
                name: s("go"),
                input: p(k + 5),
                trace_context: None,
            },
            EventKind::ContinueAsNew { input: p(k) },
            EventKind::EntityOperationSignaled {
                request_id: s("r"),
                target: s("@c@k"),
                operation: s("add"),
                input: p(k + 1),
                scheduled_time: None,
                trace_context: None,
            },
            EventKind::EntityOperationCalled {
                request_id: s("r"),
                target: s("@c@k"),
                operation: s("get"),
                input: p(k + 2),
                parent_instance_id: s("o"),
                parent_execution_id: s("e"),
                trace_context: None,
            },
            EventKind::EntityOperationCompleted {
                request_id: s("r"),
                output: p(k + 3),
            },
            EventKind::StepRepaired {
                step_id: 0,
                step: RepairedStep::Activity,
                repair: Repair::Complete { result: p(k + 4) },
                by: s("ops"),
                reason: s("stuck"),
            },
            EventKind::TaskFailed {
                task_scheduled_id: 2,
                failure: FailureDetails::new("Boom", "it \"broke\""),
            },
            EventKind::HistoryImported {
                status: RuntimeStatus::Completed,
                output: p(k + 5),
                failure: None,
                custom_status: p(k),
                events: vec![
                    HistoryEvent::new(
                        t,
                        EventKind::TaskCompleted {
                            task_scheduled_id: 0,
                            result: p(k + 1),
                        },
                    ),
                    HistoryEvent::new(
                        t,
                        EventKind::EventRaised {
                            name: s("x"),
                            input: p(k + 2),
                            trace_context: None,
                        },
                    ),
                ],
            },
            EventKind::OrchestratorStarted,
        ];
        kinds
            .into_iter()
            .map(|kind| HistoryEvent::new(t, kind))
            .collect()
    }

    #[test]
    fn every_kind_round_trips_alone_and_in_runs() {
        for k in 0..PAYLOADS.len() {
            let events = every_kind(k);
            for e in &events {
                let text = encode_event(e);
                assert!(text.starts_with("{\"v\":2,"), "{text}");
                assert_eq!(&decode_event(&text).unwrap(), e, "{text}");
            }
            let run = encode_events(&events);
            assert_eq!(decode_events(&run).unwrap(), events, "{run}");
        }
        assert_eq!(decode_events(&encode_events(&[])).unwrap(), vec![]);
    }

    /// A frame with payloads on both sides of SMALL (gathered in one pass,
    /// or appended in a second) keeps them in their places.
    #[test]
    fn large_and_small_payloads_share_a_frame() {
        let big = format!("\"{}\"", "x".repeat(SMALL * 3));
        let t = chrono::Utc.with_ymd_and_hms(2026, 12, 4, 1, 2, 3).unwrap();
        for (output, custom_status, nested) in [
            (
                Some(big.clone()),
                Some("1".to_string()),
                Some("2".to_string()),
            ),
            (Some("1".to_string()), Some(big.clone()), None),
            (None, Some("1".to_string()), Some(big.clone())),
        ] {
            let e = HistoryEvent::new(
                t,
                EventKind::HistoryImported {
                    status: RuntimeStatus::Completed,
                    output: output.map(PayloadText::from),
                    failure: None,
                    custom_status: custom_status.map(PayloadText::from),
                    events: vec![HistoryEvent::new(
                        t,
                        EventKind::TaskCompleted {
                            task_scheduled_id: 0,
                            result: nested.map(PayloadText::from),
                        },
                    )],
                },
            );
            let small = HistoryEvent::new(
                t,
                EventKind::ContinueAsNew {
                    input: Some("3".into()),
                },
            );
            let run = [e.clone(), small.clone(), e];
            assert_eq!(decode_events(&encode_events(&run)).unwrap(), run);
            assert_eq!(decode_event(&encode_event(&small)).unwrap(), small);
        }
    }

    #[test]
    fn payloads_are_stored_as_they_are() {
        let payload = r#"{"a":"x\"y","b":[1,2]}"#;
        let e = &every_kind(0)[6];
        let mut e = e.clone();
        if let EventKind::TaskScheduled { input, .. } = &mut e.kind {
            *input = Some(payload.into());
        }
        let text = encode_event(&e);
        assert!(text.ends_with(payload), "{text}");
        assert!(
            text.contains(&format!("\"input\":[0,{}]", payload.len())),
            "{text}"
        );
    }

    #[test]
    fn exports_still_carry_payloads_as_strings() {
        let e = &every_kind(0)[7];
        let json = serde_json::to_string(e).unwrap();
        assert!(json.contains(r#""result":"{\"v\":2,"#), "{json}");
    }

    #[test]
    fn version_1_texts_read_back() {
        let v1 = r#"{"v":1,"event_id":0,"timestamp":"2021-05-05T18:45:28Z","type":"TaskScheduled","name":"A","input":"\"Tokyo\""}"#;
        let e = decode_event(v1).unwrap();
        assert_eq!(e.input(), Some("\"Tokyo\""));
        let run = format!("[{v1},{v1}]");
        assert_eq!(decode_events(&run).unwrap(), vec![e.clone(), e]);
    }

    /// Frames that lie about their payloads are refused, never read past.
    #[test]
    fn broken_frames_are_refused() {
        let cases = [
            (
                "offset past the end",
                r#"{"v":2,"event_id":0,"timestamp":"2021-05-05T18:45:28Z","type":"TaskCompleted","task_scheduled_id":0,"result":[5,3]}abc"#,
            ),
            (
                "length past the end",
                r#"{"v":2,"event_id":0,"timestamp":"2021-05-05T18:45:28Z","type":"TaskCompleted","task_scheduled_id":0,"result":[0,9]}abc"#,
            ),
            (
                "inside a character",
                r#"{"v":2,"event_id":0,"timestamp":"2021-05-05T18:45:28Z","type":"TaskCompleted","task_scheduled_id":0,"result":[0,1]}ž"#,
            ),
            (
                "a string where a frame has offsets",
                r#"{"v":2,"event_id":0,"timestamp":"2021-05-05T18:45:28Z","type":"TaskCompleted","task_scheduled_id":0,"result":"x"}"#,
            ),
            (
                "version 2 not first",
                r#"{"event_id":0,"v":2,"timestamp":"2021-05-05T18:45:28Z","type":"OrchestratorStarted"}"#,
            ),
            (
                "bytes nobody names",
                r#"{"v":2,"event_id":0,"timestamp":"2021-05-05T18:45:28Z","type":"OrchestratorStarted"}junk"#,
            ),
            ("empty", ""),
        ];
        for (what, text) in cases {
            assert!(decode_event(text).is_err(), "{what}: {text}");
            assert!(decode_events(text).is_err(), "{what} (run): {text}");
        }
    }
}
