//! A fixed range of simulation seeds, run on every CI run: each must keep
//! every oracle. `perdure-sim --seeds N` soaks further.

use perdure_sim::{run_seed, SimOptions};

#[test]
fn seeds_0_to_900_keep_every_oracle() {
    let opts = SimOptions::default();
    let mut failing = Vec::new();
    for seed in 0..900 {
        let report = run_seed(seed, &opts);
        if let Some(v) = report.violations.first() {
            failing.push(format!(
                "seed {seed}: {v}\n  reproduce: cargo run --release -p perdure-sim -- --seed {seed}"
            ));
        }
    }
    assert!(failing.is_empty(), "{}", failing.join("\n"));
}

#[test]
fn a_seed_replays_the_same_run() {
    let opts = SimOptions::default();
    let a = run_seed(7, &opts);
    let b = run_seed(7, &opts);
    assert_eq!(a.programs, b.programs);
    assert_eq!(a.violations.len(), b.violations.len());
}
