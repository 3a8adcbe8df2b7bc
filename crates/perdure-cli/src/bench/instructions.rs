//! `perdure bench WORKLOAD --instructions`: what one unit of a workload
//! (one orchestration of hello-seq5, one step of long-history...) costs in
//! CPU instructions and heap allocations, counted rather than timed, so
//! that a change's effect shows on a shared, noisy machine. The workload
//! runs twice in a child process of this binary, at `--size N` and `2N`,
//! and the difference divided by N is the cost of a unit without the fixed
//! costs (start-up, store creation). Instructions come from `perf stat`
//! where the machine exposes hardware counters, else from valgrind's
//! callgrind (about 50 times slower: keep N in the hundreds), with the
//! functions that cost most; allocations from valgrind's DHAT. Build with
//! `--release` first: a debug build's counts say little.

use super::BenchArgs;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::path::Path;
use std::process::Command;

/// How the instructions are counted.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Counter {
    Perf,
    Callgrind,
}

/// `perf stat -x,` output: the count of the `instructions:u` line.
fn parse_perf(stderr: &str) -> Option<u64> {
    stderr.lines().find_map(|l| {
        let mut fields = l.split(',');
        let count = fields.next()?.trim();
        let event = fields.nth(1)?;
        event
            .starts_with("instructions")
            .then(|| count.parse().ok())
            .flatten()
    })
}

/// A callgrind profile's total: its `summary:` (or `totals:`) line.
fn parse_callgrind(profile: &str) -> Option<u64> {
    profile.lines().find_map(|l| {
        let rest = l
            .strip_prefix("summary:")
            .or_else(|| l.strip_prefix("totals:"))?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// DHAT's `Total: B bytes in N blocks` line: (bytes, blocks).
fn parse_dhat(log: &str) -> Option<(u64, u64)> {
    log.lines().find_map(|l| {
        let rest = l.split("Total:").nth(1)?;
        let words: Vec<&str> = rest.split_whitespace().collect();
        let num = |s: &str| s.replace(',', "").parse::<u64>().ok();
        match words.as_slice() {
            [bytes, "bytes", "in", blocks, "blocks", ..] => Some((num(bytes)?, num(blocks)?)),
            _ => None,
        }
    })
}

fn perf_works() -> bool {
    Command::new("perf")
        .args(["stat", "-x,", "-e", "instructions:u", "true"])
        .output()
        .map(|o| parse_perf(&String::from_utf8_lossy(&o.stderr)).is_some())
        .unwrap_or(false)
}

/// The child's arguments: the same workload at `size`, JSON out, no probe.
fn child_args(args: &BenchArgs, size: usize) -> Vec<String> {
    let mut v = vec![
        "bench".to_string(),
        args.workload.name().to_string(),
        "--size".into(),
        size.to_string(),
        "--json".into(),
        "--no-probe".into(),
    ];
    if let Some(store) = &args.store {
        v.push("--store".into());
        v.push(store.clone());
    }
    v
}

fn check(out: &std::process::Output, what: &str) -> Result<()> {
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join(" / ")
        );
    }
    Ok(())
}

/// Instructions of one run at `size`, and, under callgrind, the profile.
fn instructions(
    counter: Counter,
    args: &BenchArgs,
    size: usize,
    dir: &Path,
) -> Result<(u64, Option<std::path::PathBuf>)> {
    let exe = std::env::current_exe().context("finding this binary")?;
    match counter {
        Counter::Perf => {
            let out = Command::new("perf")
                .args(["stat", "-x,", "-e", "instructions:u", "--"])
                .arg(&exe)
                .args(child_args(args, size))
                .output()
                .context("running perf")?;
            check(&out, "perf stat")?;
            let n = parse_perf(&String::from_utf8_lossy(&out.stderr))
                .context("perf printed no instruction count")?;
            Ok((n, None))
        }
        Counter::Callgrind => {
            let profile = dir.join(format!("callgrind.{size}.out"));
            let out = Command::new("valgrind")
                .arg("--tool=callgrind")
                .arg(format!("--callgrind-out-file={}", profile.display()))
                .arg(&exe)
                .args(child_args(args, size))
                .output()
                .context("running valgrind (install it: apt-get install valgrind)")?;
            check(&out, "valgrind --tool=callgrind")?;
            let text = std::fs::read_to_string(&profile)
                .with_context(|| format!("reading {}", profile.display()))?;
            let n = parse_callgrind(&text).context("the callgrind profile has no total")?;
            Ok((n, Some(profile)))
        }
    }
}

/// Bytes and blocks allocated in one run at `size`.
fn allocations(args: &BenchArgs, size: usize, dir: &Path) -> Result<(u64, u64)> {
    let exe = std::env::current_exe().context("finding this binary")?;
    let log = dir.join(format!("dhat.{size}.log"));
    let out = Command::new("valgrind")
        .env(crate::alloc::SYSTEM_ALLOCATOR_VAR, "1")
        .arg("--tool=dhat")
        .arg(format!("--log-file={}", log.display()))
        .arg(format!(
            "--dhat-out-file={}",
            dir.join(format!("dhat.{size}.json")).display()
        ))
        .arg(&exe)
        .args(child_args(args, size))
        .output()
        .context("running valgrind (install it: apt-get install valgrind)")?;
    check(&out, "valgrind --tool=dhat")?;
    let text =
        std::fs::read_to_string(&log).with_context(|| format!("reading {}", log.display()))?;
    parse_dhat(&text).context("DHAT printed no allocation total")
}

/// The functions that cost most in a callgrind profile (self cost).
fn top_functions(profile: &Path, n: usize) -> Vec<String> {
    let Ok(out) = Command::new("callgrind_annotate")
        .arg("--threshold=100")
        .arg(profile)
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(" (") || l.contains(':'))
        .filter(|l| {
            l.trim_start()
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        })
        .take(n)
        .map(|l| l.trim().to_string())
        .collect()
}

pub fn run(args: &BenchArgs) -> Result<()> {
    let n = args.size.unwrap_or(200).max(1);
    let counter = if perf_works() {
        Counter::Perf
    } else {
        Counter::Callgrind
    };
    let dir = tempfile::tempdir().context("a scratch directory")?;
    eprintln!(
        "perdure bench {} --instructions: {} at sizes {n} and {} (dhat for allocations)",
        args.workload.name(),
        match counter {
            Counter::Perf => "perf stat",
            Counter::Callgrind => "callgrind",
        },
        2 * n
    );
    let per = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / n as f64;
    let repeat = args.repeat.max(1);
    let (mut instr, mut blocks, mut bytes) = (Vec::new(), Vec::new(), Vec::new());
    let (mut small, mut large, mut profile) = (0, 0, None);
    for i in 0..repeat {
        let (s, _) = instructions(counter, args, n, dir.path())?;
        let (l, p) = instructions(counter, args, 2 * n, dir.path())?;
        instr.push(per(s, l));
        (small, large, profile) = (s, l, p);
        let (bytes_s, blocks_s) = allocations(args, n, dir.path())?;
        let (bytes_l, blocks_l) = allocations(args, 2 * n, dir.path())?;
        blocks.push(per(blocks_s, blocks_l));
        bytes.push(per(bytes_s, bytes_l));
        eprintln!(
            "  run {}/{repeat}: {:.0} instructions, {:.0} allocations per unit",
            i + 1,
            instr[i],
            blocks[i]
        );
    }
    let spread = {
        let lo = instr.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = instr.iter().cloned().fold(0.0, f64::max);
        (lo, hi)
    };
    let (instr, blocks, bytes) = (median(instr), median(blocks), median(bytes));
    let top = profile
        .as_deref()
        .map(|p| top_functions(p, 15))
        .unwrap_or_default();
    if args.json {
        println!(
            "{}",
            json!({
                "workload": args.workload.name(),
                "counter": format!("{counter:?}").to_lowercase(),
                "sizes": [n, 2 * n],
                "instructions_per_unit": instr.round(),
                "instructions_per_unit_range": [spread.0.round(), spread.1.round()],
                "runs": repeat,
                "allocations_per_unit": blocks.round(),
                "allocated_bytes_per_unit": bytes.round(),
                "instructions_total": [small, large],
                "top_functions": top,
            })
        );
        return Ok(());
    }
    println!(
        "{} ({:?}, sizes {n} and {}):",
        args.workload.name(),
        counter,
        2 * n
    );
    println!(
        "  {:<28} {:>14.0}   (median of {repeat}; {:.0} to {:.0})",
        "instructions per unit", instr, spread.0, spread.1
    );
    println!("  {:<28} {:>14.0}", "allocations per unit", blocks);
    println!("  {:<28} {:>14.0}", "bytes allocated per unit", bytes);
    if !top.is_empty() {
        println!("  most instructions, at size {} (self cost):", 2 * n);
        for l in top {
            println!("    {l}");
        }
    }
    Ok(())
}

/// The median (the lower middle of an even count).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_three_is_the_middle_one() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
    }

    #[test]
    fn the_median_of_none_is_zero() {
        assert_eq!(median(Vec::new()), 0.0);
    }

    #[test]
    fn perf_csv_gives_the_instruction_count() {
        let text = "1234567,,instructions:u,100.00,,\n";
        assert_eq!(parse_perf(text), Some(1_234_567));
    }

    #[test]
    fn perf_without_counters_gives_none() {
        assert_eq!(
            parse_perf("<not supported>,,instructions:u,0,100.00,,\n"),
            None
        );
    }

    #[test]
    fn a_callgrind_profile_gives_its_summary() {
        let text = "version: 1\ncmd: perdure\nevents: Ir\nsummary: 987654321\n";
        assert_eq!(parse_callgrind(text), Some(987_654_321));
    }

    #[test]
    fn a_callgrind_profile_with_totals_gives_them() {
        assert_eq!(parse_callgrind("events: Ir\ntotals: 42\n"), Some(42));
    }

    #[test]
    fn dhat_gives_bytes_and_blocks() {
        let log = "==12== Total:     1,234,567 bytes in 8,901 blocks\n==12== At t-gmax: 9 bytes\n";
        assert_eq!(parse_dhat(log), Some((1_234_567, 8_901)));
    }

    #[test]
    fn a_log_without_a_total_gives_none() {
        assert_eq!(
            parse_dhat("==12== DHAT, a dynamic heap analysis tool\n"),
            None
        );
    }
}
