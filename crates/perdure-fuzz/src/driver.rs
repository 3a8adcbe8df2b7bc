//! The stable driver: runs a target over its seeds (and a libFuzzer corpus
//! directory, when one is given), then over mutations of them for a
//! bounded time or number of runs. Inputs a target accepts join the pool
//! that mutations start from, a cheap stand-in for coverage feedback. The
//! first panic stops the target; its input is saved under the artifacts
//! directory, where `perdure-fuzz replay` (or the libFuzzer target) runs
//! it again.

use crate::mutate::{mutate, Rng};
use crate::Target;
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long and from where a target runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Stop after this long (the seeds always run).
    pub duration: Duration,
    /// Stop after this many inputs, if sooner.
    pub max_runs: Option<u64>,
    /// The mutation seed: the same seed tries the same inputs in order.
    pub seed: u64,
    /// A directory of `TARGET/` subdirectories of inputs to start from
    /// (libFuzzer's corpus layout, `fuzz/corpus`).
    pub corpus: Option<PathBuf>,
    /// Where crashing inputs are written, as `TARGET/crash-HASH`.
    pub artifacts: PathBuf,
    /// The longest input tried.
    pub max_len: usize,
}

/// A property that broke.
#[derive(Clone, Debug)]
pub struct Crash {
    /// The panic's message and place.
    pub message: String,
    pub input: Vec<u8>,
    /// Where the input was saved.
    pub saved: PathBuf,
}

/// What a run of one target did.
#[derive(Clone, Debug)]
pub struct Report {
    pub target: &'static str,
    /// Inputs tried, seeds included.
    pub runs: u64,
    /// Inputs the code under test accepted.
    pub accepted: u64,
    /// Inputs mutations start from.
    pub pool: usize,
    pub elapsed: Duration,
    pub crash: Option<Crash>,
}

/// Why the driver could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("cannot read the corpus directory {path}: {source}")]
    Corpus {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot save a crashing input to {path}: {source}")]
    Save {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The most inputs kept to mutate from.
const MAX_POOL: usize = 4096;

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Routes panic messages to [`LAST_PANIC`] instead of stderr (once).
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let place = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let text = format!("{}{place}", payload_text(info.payload()));
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(text));
        }));
    });
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Runs `target` on one input: its verdict, or the panic's message.
pub fn run_one(target: &Target, input: &[u8]) -> Result<bool, String> {
    quiet_panics();
    catch_unwind(AssertUnwindSafe(|| (target.run)(input))).map_err(|payload| {
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| payload_text(payload.as_ref()))
    })
}

fn corpus_inputs(dir: &Path, max_len: usize) -> Result<Vec<Vec<u8>>, DriverError> {
    let err = |source| DriverError::Corpus {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(err(e)),
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(err)?;
    paths.sort();
    for path in paths.into_iter().filter(|p| p.is_file()) {
        let bytes = std::fs::read(&path).map_err(err)?;
        if bytes.len() <= max_len {
            out.push(bytes);
        }
    }
    Ok(out)
}

/// FNV-1a, to name a saved input by its content.
fn content_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn save(options: &Options, target: &Target, input: &[u8]) -> Result<PathBuf, DriverError> {
    let dir = options.artifacts.join(target.name);
    let path = dir.join(format!("crash-{:016x}", content_hash(input)));
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&path, input))
        .map_err(|source| DriverError::Save {
            path: path.clone(),
            source,
        })?;
    Ok(path)
}

/// Runs `target` under `options`, calling `progress` about once a second.
pub fn run(
    target: &'static Target,
    options: &Options,
    mut progress: impl FnMut(&Report),
) -> Result<Report, DriverError> {
    let started = Instant::now();
    let mut report = Report {
        target: target.name,
        runs: 0,
        accepted: 0,
        pool: 0,
        elapsed: Duration::ZERO,
        crash: None,
    };
    let mut pool: Vec<Vec<u8>> = (target.seeds)();
    if let Some(dir) = &options.corpus {
        pool.extend(corpus_inputs(&dir.join(target.name), options.max_len)?);
    }
    let fixed = pool.len();
    let mut rng = Rng::new(options.seed);
    let mut last_report = Instant::now();
    let mut next = 0usize;
    loop {
        let input = if next < fixed {
            next += 1;
            pool[next - 1].clone()
        } else {
            if options.max_runs.is_some_and(|n| report.runs >= n)
                || (report.runs.is_multiple_of(64) && started.elapsed() >= options.duration)
            {
                break;
            }
            let mut input = pool[rng.below(pool.len())].clone();
            let other = &pool[rng.below(pool.len())];
            mutate(
                &mut rng,
                &mut input,
                other,
                target.dictionary,
                options.max_len,
            );
            input
        };
        report.runs += 1;
        match run_one(target, &input) {
            Ok(true) => {
                report.accepted += 1;
                if next >= fixed {
                    if pool.len() < MAX_POOL {
                        pool.push(input);
                    } else if rng.below(16) == 0 {
                        let slot = fixed + rng.below(pool.len() - fixed);
                        pool[slot] = input;
                    }
                }
            }
            Ok(false) => {}
            Err(message) => {
                let saved = save(options, target, &input)?;
                report.crash = Some(Crash {
                    message,
                    input,
                    saved,
                });
                break;
            }
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            report.pool = pool.len();
            report.elapsed = started.elapsed();
            progress(&report);
        }
    }
    report.pool = pool.len();
    report.elapsed = started.elapsed();
    Ok(report)
}
