//! W3C trace context as history carries it, and the deterministic span ids
//! that let every turn of an orchestration (in any process, after any
//! replay) name the same spans: the orchestration's own span and the client
//! span of each task it schedules are derived from the instance, execution
//! and task ids, so a span emitted in a later turn can point at one whose
//! id an earlier turn handed to a child.

use serde::{Deserialize, Serialize};

/// A W3C `traceparent` (and optional `tracestate`): the span a recorded
/// step continues.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    pub traceparent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

/// The parts of a valid `traceparent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: u128,
    pub span_id: u64,
    pub flags: u8,
}

impl TraceContext {
    /// A context for `span_id` in `trace_id`.
    pub fn new(trace_id: u128, span_id: u64, flags: u8, tracestate: Option<String>) -> Self {
        TraceContext {
            traceparent: format!("00-{trace_id:032x}-{span_id:016x}-{flags:02x}"),
            tracestate,
        }
    }

    /// A context from the W3C header values, or `None` when `traceparent`
    /// is not valid (W3C asks receivers to ignore it then); an empty
    /// `tracestate` counts as none.
    pub fn from_w3c(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        let tc = TraceContext {
            traceparent: traceparent.trim().to_string(),
            tracestate: tracestate
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        };
        tc.parse().map(|_| tc)
    }

    /// Parses the `traceparent`; `None` when it is not a valid version-00
    /// header (all-zero ids are invalid).
    pub fn parse(&self) -> Option<TraceParent> {
        parse_traceparent(&self.traceparent)
    }

    /// The same trace and flags, continued by `span_id`.
    pub fn child(&self, span_id: u64) -> Option<TraceContext> {
        let p = self.parse()?;
        Some(TraceContext::new(
            p.trace_id,
            span_id,
            p.flags,
            self.tracestate.clone(),
        ))
    }
}

/// Parses a W3C `traceparent` header value.
pub fn parse_traceparent(value: &str) -> Option<TraceParent> {
    let mut parts = value.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2 || version == "ff" || trace.len() != 32 || span.len() != 16 {
        return None;
    }
    if flags.len() != 2 || (version == "00" && parts.next().is_some()) {
        return None;
    }
    u8::from_str_radix(version, 16).ok()?;
    let trace_id = u128::from_str_radix(trace, 16).ok()?;
    let span_id = u64::from_str_radix(span, 16).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    (trace_id != 0 && span_id != 0).then_some(TraceParent {
        trace_id,
        span_id,
        flags,
    })
}

/// FNV-1a over the parts (with a separator), finished with a 64-bit mix.
fn hash64(seed: u64, parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0x1f)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    if h == 0 {
        1
    } else {
        h
    }
}

/// The span id of an execution's `orchestration:{name}` span.
pub fn orchestration_span_id(instance_id: &str, execution_id: &str) -> u64 {
    hash64(0, &[instance_id, execution_id, "orchestration"])
}

/// The span id of the client span of the task (activity or
/// sub-orchestration) an execution scheduled with action id `task_id`.
pub fn task_span_id(instance_id: &str, execution_id: &str, task_id: i64) -> u64 {
    hash64(
        0,
        &[instance_id, execution_id, "task", &task_id.to_string()],
    )
}

/// A trace id for an execution that was started without trace context.
pub fn execution_trace_id(instance_id: &str, execution_id: &str) -> u128 {
    let hi = hash64(1, &[instance_id, execution_id]);
    let lo = hash64(2, &[instance_id, execution_id]);
    (u128::from(hi) << 64) | u128::from(lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_rejects_bad_values() {
        let tc = TraceContext::new(0xabc, 0x12, 1, Some("k=v".into()));
        assert_eq!(
            tc.traceparent,
            "00-00000000000000000000000000000abc-0000000000000012-01"
        );
        let p = tc.parse().unwrap();
        assert_eq!((p.trace_id, p.span_id, p.flags), (0xabc, 0x12, 1));
        let child = tc.child(7).unwrap();
        assert_eq!(child.parse().unwrap().trace_id, 0xabc);
        assert_eq!(child.tracestate.as_deref(), Some("k=v"));
        for bad in [
            "",
            "00-0-1-01",
            "00-00000000000000000000000000000000-0000000000000012-01",
            "00-00000000000000000000000000000abc-0000000000000000-01",
            "ff-00000000000000000000000000000abc-0000000000000012-01",
            "00-00000000000000000000000000000abc-0000000000000012-01-extra",
            "00-zz000000000000000000000000000abc-0000000000000012-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let a = orchestration_span_id("i", "e");
        assert_eq!(a, orchestration_span_id("i", "e"));
        assert_ne!(a, orchestration_span_id("i", "e2"));
        assert_ne!(task_span_id("i", "e", 1), task_span_id("i", "e", 2));
        assert_ne!(task_span_id("ab", "c", 1), task_span_id("a", "bc", 1));
        assert_ne!(execution_trace_id("i", "e"), 0);
    }
}
