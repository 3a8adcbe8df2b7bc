//! Every fuzz target over its seeds, over inputs that once broke a
//! property (one row each), and for a short deterministic run of the
//! stable driver.

use perdure_fuzz::driver::{self, Options};
use perdure_fuzz::{target, TARGETS};
use std::time::Duration;

/// Seeds run clean, and most of each target's seeds are accepted (so the
/// seeds reach past the first check).
#[test]
fn seeds_run_clean_and_are_mostly_accepted() {
    for t in &TARGETS {
        let seeds = (t.seeds)();
        assert!(!seeds.is_empty(), "{} has no seeds", t.name);
        let mut accepted = 0;
        for (i, seed) in seeds.iter().enumerate() {
            match driver::run_one(t, seed) {
                Ok(ok) => accepted += usize::from(ok),
                Err(message) => panic!("{} seed {i}: {message}", t.name),
            }
        }
        assert!(
            accepted * 2 > seeds.len(),
            "{}: only {accepted} of {} seeds accepted",
            t.name,
            seeds.len()
        );
    }
}

/// Inputs the fuzzers found, kept so the fixed bugs stay fixed: (target,
/// what broke, input).
const FOUND: &[(&str, &str, &[u8])] = &[
    (
        "http_params",
        "a number of seconds just under a day accepted as a whole day once rounded",
        b"0pollingInterval=86399.9999999999",
    ),
    (
        "http_request",
        "a path segment that is not UTF-8 answered 400 in plain text",
        b"\x02instances/oshomHista\xfe\xc0\x8a\xa8;cowHisto\xf7y=tru\xcd",
    ),
    (
        "history_decode",
        "a stored 1e400 payload shown as sent (JSON's grammar, not f64's range)",
        b"{\x22v\x22:1,\x22event_id\x22:18,\x22timestamp\x22:\x222021-05-05T18:45:28.123456789Z\x22,\x22type\x22:\x22EntityOperationSignaled\x22,\x22request_id\x22:\x22r1\x22,\x22target\x22:\x22@counter@k\x22,\x22operation\x22:\x22add\x22,\x22input\x22:\x2211e400\x22,\x22scheduled_time\x22:\x222021-05-05T18:45:28.123456789Z\x22,\x22trace_conte0t\x22:{\x22t\x22:\x22congo=t61rcWkgMzE\x22}}",
    ),
];

#[test]
fn inputs_that_broke_properties_now_pass() {
    for (name, what, input) in FOUND {
        let Some(t) = target(name) else {
            panic!("no target named {name}");
        };
        if let Err(message) = driver::run_one(t, input) {
            panic!("{name} ({what}) breaks again: {message}");
        }
    }
}

/// A short run of every target finds nothing and tries what it was asked.
#[test]
fn a_short_run_of_every_target_breaks_nothing() {
    let artifacts = std::env::temp_dir().join(format!("perdure-fuzz-{}", std::process::id()));
    let options = Options {
        duration: Duration::from_secs(600),
        max_runs: Some(1_500),
        seed: 7,
        corpus: None,
        artifacts: artifacts.clone(),
        max_len: 1024,
    };
    for t in &TARGETS {
        let report = match driver::run(t, &options, |_| {}) {
            Ok(r) => r,
            Err(e) => panic!("{}: {e}", t.name),
        };
        if let Some(c) = &report.crash {
            panic!(
                "{}: {} (input {:?})",
                t.name,
                c.message,
                String::from_utf8_lossy(&c.input)
            );
        }
        assert_eq!(report.runs, 1_500, "{} stopped early", t.name);
    }
    let _ = std::fs::remove_dir_all(artifacts);
}
