//! `perdure-sim`: a deterministic simulation of the Perdure engine, in the
//! manner of FoundationDB's simulator and TigerBeetle's VOPR. It drives the
//! real code (the turn protocol in `perdure::dispatch`, the executor and
//! replay state machine, the in-process worker's turn and activity logic
//! through [`perdure::Engine`], the gRPC sidecar's dispatcher answered by a
//! simulated SDK worker) over the memory store (or, fewer seeds, a
//! SQLite file) on a virtual clock,
//! and one seed decides everything: the workload (random programs), batch
//! sizes, which engine acts and when, client operations, crashes before
//! and after commits, lease expiries and code changes. Oracles are checked
//! at every commit and once the run is at rest; a failing seed is
//! reproduced exactly by `perdure-sim --seed N`.
//!
//! What it cannot explore: real fsync and torn writes (the SQLite and
//! PostgreSQL crash tests cover those), the network and the gRPC streams
//! themselves (the sidecar's own tests do), the real SDKs' code (the
//! interop tests do), and timing inside a single store call.

pub mod oracle;
pub mod program;
pub mod remote;
pub mod rng;
pub mod sdk;
pub mod world;

pub use world::{run_seed, RunReport, SimOptions, SimStore};

/// Shrinks a failing seed's workload: drops steps from its programs one at
/// a time while the run still fails, and returns the smallest programs
/// found (the interleaving is the seed's own, replayed on each try).
pub fn shrink(seed: u64, opts: &SimOptions) -> Vec<(String, program::Program)> {
    let report = run_seed(seed, opts);
    if report.violations.is_empty() {
        return Vec::new();
    }
    // Fewer steps and instances while it still fails.
    let mut best = opts.clone();
    for steps in [opts.steps / 4, opts.steps / 2] {
        let mut o = best.clone();
        o.steps = steps.max(1);
        if !run_seed(seed, &o).violations.is_empty() {
            best = o;
            break;
        }
    }
    for instances in 1..opts.instances {
        let mut o = best.clone();
        o.instances = instances;
        if !run_seed(seed, &o).violations.is_empty() {
            best = o;
            break;
        }
    }
    run_seed(seed, &best).programs
}
