//! `perdure-sim`: runs seeds of the deterministic simulation and prints a
//! progress line (runs/s, failures), then each failing seed with the
//! command that reproduces it and its shrunk workload.
//!
//! ```text
//! perdure-sim --seeds 100000 [--start 0]    soak
//! perdure-sim --seeds 100000 --until-failure  soak, stopping at a failure
//! perdure-sim --seed 42                     one seed, with its violations
//! perdure-sim --seeds 1000 --sqlite         over a SQLite file, not memory
//! perdure-sim --seed 42 --no-remote         without the remote engine (the
//!                                           simulator before it had one)
//! ```

use perdure_sim::{run_seed, shrink, SimOptions};
use std::io::Write;
use std::time::Instant;

fn arg(args: &[String], name: &str) -> Option<u64> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opts = SimOptions {
        steps: arg(&args, "--steps").map_or(400, |s| s as u32),
        store: if args.iter().any(|a| a == "--sqlite") {
            perdure_sim::SimStore::Sqlite
        } else {
            perdure_sim::SimStore::Memory
        },
        remote: !args.iter().any(|a| a == "--no-remote"),
        ..SimOptions::default()
    };
    let mut flags = String::new();
    if opts.store == perdure_sim::SimStore::Sqlite {
        flags.push_str(" --sqlite");
    }
    if !opts.remote {
        flags.push_str(" --no-remote");
    }
    if let Some(seed) = arg(&args, "--seed") {
        let report = run_seed(seed, &opts);
        let a = report.remote_answered;
        println!(
            "seed {seed}: the remote engine answered {} orchestration, {} activity and {} entity work items",
            a.orchestrations, a.activities, a.entities
        );
        if report.violations.is_empty() {
            println!("seed {seed}: all oracles hold");
            return;
        }
        println!("seed {seed}: {} violations", report.violations.len());
        for v in &report.violations {
            println!("  {v}");
        }
        println!("shrunk workload:");
        for (id, p) in shrink(seed, &opts) {
            println!("  {id}: {}", serde_json::to_string(&p).unwrap_or_default());
        }
        std::process::exit(1);
    }
    let n = arg(&args, "--seeds").unwrap_or(1000);
    let start = arg(&args, "--start").unwrap_or(0);
    let until_failure = args.iter().any(|a| a == "--until-failure");
    let began = Instant::now();
    let mut failed = Vec::new();
    for (i, seed) in (start..start + n).enumerate() {
        let report = run_seed(seed, &opts);
        let failing = !report.violations.is_empty();
        if failing {
            failed.push((seed, report.violations));
        }
        let done = i as u64 + 1;
        if done.is_multiple_of(50) || done == n {
            let rate = done as f64 / began.elapsed().as_secs_f64().max(1e-9);
            let width = 30;
            let filled = (done * width / n.max(1)) as usize;
            print!(
                "\r[{}{}] {done}/{n} seeds, {rate:.0} runs/s, {} failing",
                "#".repeat(filled),
                ".".repeat(width as usize - filled),
                failed.len()
            );
            let _ = std::io::stdout().flush();
        }
        if failing && until_failure {
            break;
        }
    }
    println!();
    for (seed, violations) in &failed {
        println!("seed {seed}: {}", violations.first().map_or("", |v| v));
        println!("  reproduce: cargo run --release -p perdure-sim -- --seed {seed}{flags}");
    }
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
