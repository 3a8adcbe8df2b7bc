//! A fixed range of simulation seeds, run on every CI run, over the memory
//! store and (fewer) over a SQLite file: each must keep every oracle.
//! `perdure-sim --seeds N [--sqlite]` soaks further.

use perdure_sim::{run_seed, SimOptions, SimStore};

/// Runs `seeds` over `store` and fails with every failing seed, each with
/// the command that reproduces it.
fn keep_every_oracle_on(store: SimStore, seeds: std::ops::Range<u64>) {
    let opts = SimOptions {
        store,
        ..SimOptions::default()
    };
    let flag = if store == SimStore::Sqlite {
        " --sqlite"
    } else {
        ""
    };
    let mut failing = Vec::new();
    for seed in seeds {
        let report = run_seed(seed, &opts);
        if let Some(v) = report.violations.first() {
            failing.push(format!(
                "seed {seed}: {v}\n  reproduce: cargo run --release -p perdure-sim -- --seed {seed}{flag}"
            ));
        }
    }
    assert!(failing.is_empty(), "{}", failing.join("\n"));
}

fn keep_every_oracle(seeds: std::ops::Range<u64>) {
    keep_every_oracle_on(SimStore::Memory, seeds)
}

#[test]
fn sqlite_seeds_0_to_100_keep_every_oracle() {
    keep_every_oracle_on(SimStore::Sqlite, 0..100);
}

#[test]
fn seeds_0_to_1500_keep_every_oracle() {
    keep_every_oracle(0..1500);
}

#[test]
fn seeds_1500_to_3000_keep_every_oracle() {
    keep_every_oracle(1500..3000);
}

#[test]
fn seeds_3000_to_4500_keep_every_oracle() {
    keep_every_oracle(3000..4500);
}

#[test]
fn a_seed_replays_the_same_run() {
    let opts = SimOptions::default();
    let a = run_seed(7, &opts);
    let b = run_seed(7, &opts);
    assert_eq!(a.programs, b.programs);
    assert_eq!(a.violations.len(), b.violations.len());
}

#[test]
fn the_remote_engine_answers_every_kind_of_work() {
    let opts = SimOptions::default();
    let mut total = perdure_sim::remote::Answered::default();
    for seed in 0..40 {
        let a = run_seed(seed, &opts).remote_answered;
        total.orchestrations += a.orchestrations;
        total.activities += a.activities;
        total.entities += a.entities;
    }
    assert!(
        total.orchestrations > 0 && total.activities > 0 && total.entities > 0,
        "the sidecar's every path is driven: {total:?}"
    );
}
