//! Fuzz targets for the places where Perdure reads bytes it did not write:
//! the stored history encoding (`history`), the gRPC sidecar's request
//! conversions (`grpc`), the HTTP door's parsers (`http`) and the HTTP
//! router with its handlers (`http_request`). Each target is a function
//! from bytes to a verdict (was the input accepted?) that panics when a
//! property breaks: no panic anywhere, and where a decoder has an encoder,
//! decode(encode(x)) gives x back.
//!
//! The same functions run under two drivers: libFuzzer (the `fuzz/`
//! workspace, `cargo fuzz run TARGET`, coverage-guided) and this crate's
//! `perdure-fuzz` binary ([`driver`]: mutations of the seeds, on the stable
//! toolchain, no instrumentation), which CI runs for a bounded time.

pub mod driver;
pub mod grpc;
pub mod history;
pub mod http;
pub mod http_request;
pub mod mutate;

/// A fuzz target: what it reads, how, and where to start.
pub struct Target {
    /// The name drivers and the `fuzz/` workspace know it by.
    pub name: &'static str,
    /// One line on what it feeds and checks.
    pub about: &'static str,
    /// Feeds one input; true when the code under test accepted it (such
    /// inputs are worth mutating further). Panics when a property breaks.
    pub run: fn(&[u8]) -> bool,
    /// Valid (and a few invalid) inputs to start from.
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Tokens the mutator splices in (field names, keywords).
    pub dictionary: &'static [&'static [u8]],
}

/// Every target.
pub const TARGETS: [Target; 4] = [
    Target {
        name: "history_decode",
        about: "stored history events: decode, re-encode, decode again; their gRPC and HTTP forms",
        run: history::run,
        seeds: history::seeds,
        dictionary: history::DICTIONARY,
    },
    Target {
        name: "grpc_convert",
        about: "protobuf bytes decoded as worker responses and client requests, converted into engine types",
        run: grpc::run,
        seeds: grpc::seeds,
        dictionary: grpc::DICTIONARY,
    },
    Target {
        name: "http_params",
        about: "the HTTP door's parsers: query flags, seconds, times, statuses, top, tokens, bodies, ids, hosts",
        run: http::run,
        seeds: http::seeds,
        dictionary: http::DICTIONARY,
    },
    Target {
        name: "http_request",
        about: "whole requests through the HTTP router and its handlers (memory store): no 5xx, JSON answers",
        run: http_request::run,
        seeds: http_request::seeds,
        dictionary: http_request::DICTIONARY,
    },
];

/// The target named `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Splits `data` at the first `sep`: (before, after); all of it and nothing
/// when there is none.
pub fn split_once(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == sep) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// A fixed time for conversions that take "now" (targets read no clock).
pub fn fixed_now() -> perdure_core::Timestamp {
    chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default()
}
