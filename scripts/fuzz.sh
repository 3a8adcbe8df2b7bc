#!/usr/bin/env bash
# Fuzzing for longer than CI does: every fuzz target (or the ones named)
# for SECONDS each (default 600), printing libFuzzer's progress.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#   FUZZ_ENGINE=stable scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Targets: history_decode, grpc_convert, http_params, http_request
# (crates/perdure-fuzz; `cargo run -p perdure-fuzz -- list`).
#
# The default engine is libFuzzer, coverage-guided: the fuzz/ workspace
# built with the instrumentation flags `cargo fuzz` passes, which the
# stable toolchain takes (no nightly, no cargo-fuzz install; fuzz/ has
# cargo fuzz's layout, so `cargo fuzz run TARGET` is meant to work too,
# though neither CI nor this script uses it). Its corpus grows in
# fuzz/corpus/TARGET (seeded from
# the targets' seeds) and crashing inputs land in fuzz/artifacts/TARGET;
# `cargo run -p perdure-fuzz -- replay TARGET FILE` runs one again.
#
# FUZZ_ENGINE=stable runs the stable driver instead (release build):
# mutations of the seeds and of fuzz/corpus, no coverage feedback; CI runs
# it for 20 s per target.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
shift || true
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  targets=(history_decode grpc_convert http_params http_request)
fi

if [ "${FUZZ_ENGINE:-libfuzzer}" = stable ]; then
  exec cargo run --release -q -p perdure-fuzz -- run --seconds "$seconds" \
    --corpus fuzz/corpus "${targets[@]}"
fi

host=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
# --target keeps the flags off build scripts and proc macros, as cargo fuzz does.
cargo build --release --manifest-path fuzz/Cargo.toml --target "$host" --bins
unset RUSTFLAGS
# The stable driver writes the seeds (built as CI builds it: one feature set).
cargo build -q --bin perdure --bin perdure-fuzz
target/debug/perdure-fuzz seeds fuzz/corpus
status=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  echo "== $t: libFuzzer for $seconds s"
  "fuzz/target/$host/release/$t" "fuzz/corpus/$t" -max_total_time="$seconds" \
    -max_len=4096 -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" || status=1
done
exit "$status"
