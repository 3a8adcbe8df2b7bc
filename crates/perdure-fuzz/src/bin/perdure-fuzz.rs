//! `perdure-fuzz`: runs Perdure's fuzz targets on the stable toolchain for
//! a bounded time (`run`), runs saved inputs again (`replay`), writes the
//! seeds out as a libFuzzer corpus (`seeds`), and lists the targets.

use clap::{Parser, Subcommand};
use perdure_fuzz::driver::{self, Options};
use perdure_fuzz::{target, Target, TARGETS};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Perdure's fuzz targets on the stable toolchain")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Mutates each target's seeds for a bounded time; exits 1 when a
    /// property broke (the input is saved under --artifacts).
    Run {
        /// Seconds per target.
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
        /// Stop a target after this many inputs, if sooner.
        #[arg(long)]
        runs: Option<u64>,
        /// Mutation seed (the same seed tries the same inputs in order).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Also start from the inputs in DIR/TARGET/ (libFuzzer's corpus).
        #[arg(long)]
        corpus: Option<PathBuf>,
        /// Where crashing inputs are saved.
        #[arg(long, default_value = "fuzz/artifacts")]
        artifacts: PathBuf,
        /// The longest input tried, in bytes.
        #[arg(long, default_value_t = 4096)]
        max_len: usize,
        /// Targets to run (all when none is named).
        targets: Vec<String>,
    },
    /// Runs a target on saved inputs and says what each did.
    Replay { target: String, files: Vec<PathBuf> },
    /// Writes every target's seeds into DIR/TARGET/ (a libFuzzer corpus).
    Seeds { dir: PathBuf },
    /// Lists the targets.
    List,
}

fn targets(names: &[String]) -> Result<Vec<&'static Target>, String> {
    if names.is_empty() {
        return Ok(TARGETS.iter().collect());
    }
    names
        .iter()
        .map(|n| {
            target(n).ok_or_else(|| format!("no target named `{n}` (see `perdure-fuzz list`)"))
        })
        .collect()
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::List => {
            for t in &TARGETS {
                println!("{:<16} {}", t.name, t.about);
            }
            ExitCode::SUCCESS
        }
        Command::Seeds { dir } => {
            for t in &TARGETS {
                let sub = dir.join(t.name);
                for (i, seed) in (t.seeds)().iter().enumerate() {
                    let path = sub.join(format!("seed-{i:03}"));
                    if let Err(e) =
                        std::fs::create_dir_all(&sub).and_then(|()| std::fs::write(&path, seed))
                    {
                        eprintln!("cannot write {}: {e}", path.display());
                        return ExitCode::from(2);
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Command::Replay {
            target: name,
            files,
        } => {
            let Some(t) = target(&name) else {
                eprintln!("no target named `{name}`");
                return ExitCode::from(2);
            };
            let mut broke = false;
            for file in files {
                match std::fs::read(&file) {
                    Ok(input) => match driver::run_one(t, &input) {
                        Ok(accepted) => println!("{}: ok (accepted: {accepted})", file.display()),
                        Err(message) => {
                            broke = true;
                            println!("{}: PROPERTY BROKE: {message}", file.display());
                        }
                    },
                    Err(e) => {
                        eprintln!("cannot read {}: {e}", file.display());
                        return ExitCode::from(2);
                    }
                }
            }
            if broke {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Run {
            seconds,
            runs,
            seed,
            corpus,
            artifacts,
            max_len,
            targets: names,
        } => {
            let chosen = match targets(&names) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            let options = Options {
                duration: Duration::try_from_secs_f64(seconds).unwrap_or(Duration::ZERO),
                max_runs: runs,
                seed,
                corpus,
                artifacts,
                max_len,
            };
            let mut broke = false;
            for t in chosen {
                let result = driver::run(t, &options, |r| {
                    eprintln!(
                        "  {}: {} inputs, {} accepted, pool {} ({:.0} s)",
                        r.target,
                        r.runs,
                        r.accepted,
                        r.pool,
                        r.elapsed.as_secs_f64()
                    );
                });
                match result {
                    Ok(r) => {
                        let rate = r.runs as f64 / r.elapsed.as_secs_f64().max(1e-9);
                        let verdict = match &r.crash {
                            None => "no property broke".to_string(),
                            Some(c) => {
                                broke = true;
                                format!(
                                    "PROPERTY BROKE: {}\n    input saved to {} (replay: perdure-fuzz replay {} {})",
                                    c.message,
                                    c.saved.display(),
                                    r.target,
                                    c.saved.display()
                                )
                            }
                        };
                        println!(
                            "{}: {} inputs ({} accepted, pool {}) in {:.1} s, {:.0}/s: {verdict}",
                            r.target,
                            r.runs,
                            r.accepted,
                            r.pool,
                            r.elapsed.as_secs_f64(),
                            rate
                        );
                    }
                    Err(e) => {
                        eprintln!("{}: {e}", t.name);
                        return ExitCode::from(2);
                    }
                }
            }
            if broke {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}
