//! The HTTP door's parsers, fed one at a time: the first byte picks the
//! parser, the rest is what a request carries there (a query string, a
//! body, a header value, a path segment). Properties: no panic; every
//! refusal is a 4xx (400, or 413 for a body too large); what is accepted
//! obeys the documented rule (flags, seconds under a day, `top` 1 to
//! 10000, ids, hosts) and survives being written and read again (times,
//! statuses, entity ids, trace contexts, hub names); a body is kept byte
//! for byte.

use axum::http::StatusCode;
use perdure::{RuntimeStatus, TaskHubs};
use perdure_core::{validate_instance_id, EntityId, TraceContext};
use perdure_server::fuzzing as door;

/// Query names and values, JSON and header fragments.
pub const DICTIONARY: &[&[u8]] = &[
    b"showHistory=",
    b"showHistoryOutput=",
    b"showInput=",
    b"returnInternalServerErrorOnFailure=",
    b"recursive=",
    b"restartWithNewInstanceId=",
    b"fetchState=",
    b"timeout=",
    b"pollingInterval=",
    b"createdTimeFrom=",
    b"createdTimeTo=",
    b"runtimeStatus=",
    b"top=",
    b"taskHub=",
    b"true",
    b"FALSE",
    b"1e308",
    b"NaN",
    b"-0",
    b"86399.9999999999",
    b"2024-01-31T12:00:00Z",
    b"+23:59",
    b"Running,Completed",
    b"%2C",
    b"%00",
    b"%C4%B0",
    b"localhost",
    b"[::1]",
    b":7071",
    b"127.0.0.1",
    b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    b"{\"a\":",
    b"\\u0000",
    b"\xef\xbb\xbf",
    b"\xc2\xa0",
];

const KINDS: u8 = 8;

/// Feeds one parser.
pub fn run(data: &[u8]) -> bool {
    let Some((&which, rest)) = data.split_first() else {
        return false;
    };
    let text = std::str::from_utf8(rest);
    match (which % KINDS, text) {
        (0, _) => query(rest),
        (1, _) => body(rest),
        (2, _) => continuation(rest),
        (3, Ok(t)) => authority(t),
        (4, Ok(t)) => instance_id(t),
        (5, Ok(t)) => entity_id(t),
        (6, Ok(t)) => traceparent(t),
        (7, Ok(t)) => hub(t),
        _ => false,
    }
}

fn refused(what: &str, status: StatusCode) {
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "{what} refused with {status}"
    );
}

const FLAGS: [(&str, bool); 7] = [
    ("showHistory", false),
    ("showHistoryOutput", false),
    ("showInput", true),
    ("returnInternalServerErrorOnFailure", false),
    ("recursive", false),
    ("restartWithNewInstanceId", false),
    ("fetchState", false),
];

fn query(raw: &[u8]) -> bool {
    let q = door::query(raw);
    let mut all_ok = true;
    for (name, default) in FLAGS {
        let given = q.get(name).map(|v| v.to_ascii_lowercase());
        match door::flag(&q, name, default) {
            Ok(v) => {
                let expected = match given.as_deref() {
                    None => default,
                    Some("true" | "1") => true,
                    Some("false" | "0") => false,
                    Some(other) => panic!("`{name}={other}` accepted as {v}"),
                };
                assert_eq!(v, expected, "`{name}` read wrong");
            }
            Err(s) => {
                refused(name, s);
                all_ok = false;
            }
        }
    }
    for name in ["timeout", "pollingInterval"] {
        match door::seconds(&q, name) {
            Ok(Some(d)) => assert!(d.as_secs_f64() < 86_400.0, "`{name}` of {d:?} accepted"),
            Ok(None) => assert!(!q.contains_key(name), "`{name}` ignored"),
            Err(s) => {
                refused(name, s);
                all_ok = false;
            }
        }
    }
    for name in ["createdTimeFrom", "createdTimeTo"] {
        match door::timestamp(&q, name) {
            Ok(Some(t)) => {
                let written = t.to_rfc3339();
                let back = chrono::DateTime::parse_from_rfc3339(&written)
                    .map(|b| b.with_timezone(&chrono::Utc));
                assert_eq!(back, Ok(t), "`{name}` does not survive writing: {written}");
            }
            Ok(None) => assert!(!q.contains_key(name), "`{name}` ignored"),
            Err(s) => {
                refused(name, s);
                all_ok = false;
            }
        }
    }
    match door::statuses(&q) {
        Ok(list) => {
            let given = q.get("runtimeStatus").map_or(0, |l| l.split(',').count());
            assert!(list.len() <= given, "more statuses than given: {list:?}");
            for s in list {
                assert_eq!(
                    s.as_str().parse::<RuntimeStatus>().ok(),
                    Some(s),
                    "{s} renamed"
                );
            }
        }
        Err(s) => {
            refused("runtimeStatus", s);
            all_ok = false;
        }
    }
    match door::page_size(&q) {
        Ok(n) => assert!((1..=10_000).contains(&n), "`top` of {n} accepted"),
        Err(s) => {
            refused("top", s);
            all_ok = false;
        }
    }
    if let Some(raw_hub) = q.get("taskHub") {
        all_ok &= hub(raw_hub);
    }
    all_ok
}

fn body(raw: &[u8]) -> bool {
    match door::json_body(raw) {
        Ok(Some(text)) => {
            assert_eq!(text.as_bytes(), raw, "the body was not kept as sent");
            if let Err(e) = serde_json::from_str::<&serde_json::value::RawValue>(&text) {
                panic!("a body that is not JSON was accepted ({e}): {text:?}");
            }
            true
        }
        Ok(None) => {
            let blank = std::str::from_utf8(raw).is_ok_and(|t| t.trim().is_empty());
            assert!(blank, "a body was dropped: {raw:?}");
            false
        }
        Err(s) => {
            assert!(
                s == StatusCode::BAD_REQUEST || s == StatusCode::PAYLOAD_TOO_LARGE,
                "a body refused with {s}"
            );
            false
        }
    }
}

fn continuation(raw: &[u8]) -> bool {
    match door::continuation(raw) {
        Some(token) => {
            assert!(!token.is_empty(), "an empty token was kept");
            assert_eq!(token.as_bytes(), raw, "the token was not kept as sent");
            true
        }
        None => false,
    }
}

/// An independent reading of "this authority names a loopback host".
fn names_loopback(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((h, _)) => h,
            None => return false,
        },
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let host = host.to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn authority(text: &str) -> bool {
    let ok = door::is_loopback_authority(text);
    if ok {
        assert!(
            names_loopback(text),
            "a keyless server would answer Host `{text}`"
        );
    }
    ok
}

fn instance_id(text: &str) -> bool {
    let rule = {
        let n = text.chars().count();
        (1..=256).contains(&n)
            && !text.starts_with('@')
            && !text
                .chars()
                .any(|c| c.is_control() || matches!(c, '/' | '\\' | '#' | '?'))
    };
    let ok = validate_instance_id(text).is_ok();
    assert_eq!(ok, rule, "instance id {text:?}");
    ok
}

fn entity_id(text: &str) -> bool {
    let parsed = EntityId::parse(text);
    if let Ok(id) = &parsed {
        assert_eq!(
            EntityId::parse(&id.to_string()).as_ref(),
            Ok(id),
            "entity id does not survive writing"
        );
        assert_eq!(EntityId::new(&id.name, &id.key).as_ref(), Ok(id));
    }
    let (name, key) = crate::split_once(text.as_bytes(), 0);
    if let (Ok(name), Ok(key)) = (std::str::from_utf8(name), std::str::from_utf8(key)) {
        if let Ok(id) = EntityId::new(name, key) {
            assert_eq!(
                EntityId::parse(&id.to_string()),
                Ok(id.clone()),
                "an entity id from its parts does not survive writing"
            );
            assert!(
                id.to_string().chars().count() <= 256,
                "entity id longer than an instance id may be"
            );
        }
    }
    parsed.is_ok()
}

fn traceparent(text: &str) -> bool {
    let (parent, state) = match text.split_once('\n') {
        Some((p, s)) => (p, Some(s)),
        None => (text, None),
    };
    let Some(tc) = TraceContext::from_w3c(parent, state) else {
        return false;
    };
    assert_eq!(
        TraceContext::from_w3c(&tc.traceparent, tc.tracestate.as_deref()).as_ref(),
        Some(&tc),
        "a trace context does not survive writing"
    );
    let parsed = tc.parse();
    assert!(parsed.is_some(), "an accepted traceparent does not parse");
    if let Some(child) = tc.child(0x1234_5678_9abc_def0) {
        assert!(child.parse().is_some(), "a child context does not parse");
    }
    true
}

fn hub(text: &str) -> bool {
    match TaskHubs::name(text) {
        Ok(name) => {
            assert!(
                !name.is_empty()
                    && name.len() <= 40
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "hub name {text:?} read as {name:?}"
            );
            assert_eq!(
                TaskHubs::name(&name).ok().as_deref(),
                Some(name.as_str()),
                "hub names are not stable"
            );
            for base in [
                "memory",
                "sqlite://data/perdure.db",
                "postgres://u@h/db?hub=a",
            ] {
                if let Ok(url) = perdure::hub_store_url(base, text) {
                    if let Some(path) = url.strip_prefix("sqlite://") {
                        assert!(
                            path.starts_with("data/") && !path[5..].contains('/'),
                            "hub {text:?} leaves the store's directory: {url}"
                        );
                    }
                }
            }
            true
        }
        Err(_) => false,
    }
}

fn with_kind(kind: u8, rest: &str) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(rest.as_bytes());
    out
}

/// Inputs each parser accepts, and some it refuses.
pub fn seeds() -> Vec<Vec<u8>> {
    [
        (0, "showHistory=true&showHistoryOutput=1&showInput=FALSE&top=50&runtimeStatus=Running,%20Completed&createdTimeFrom=2024-01-31T12:00:00Z&createdTimeTo=2024-02-01T00:00:00.123%2B01:00&timeout=1.5&pollingInterval=0.01&taskHub=my-hub"),
        (0, "recursive=0&restartWithNewInstanceId=yes&top=0&timeout=-1"),
        (1, "{\"b\": [1, 2.50, 1e3], \"s\": \"\\u00e9\"}"),
        (1, "  \n"),
        (1, "{\"a\":"),
        (2, "eyJvZmZzZXQiOjEwMH0="),
        (3, "localhost:7071"),
        (3, "[::1]:7071"),
        (3, "evil.example"),
        (4, "order-42"),
        (4, "@nope"),
        (5, "@Counter@key@with@ats"),
        (5, "counter\0k"),
        (6, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\ncongo=t61rcWkgMzE"),
        (7, "My-Hub_2"),
    ]
    .into_iter()
    .map(|(k, s)| with_kind(k, s))
    .collect()
}
