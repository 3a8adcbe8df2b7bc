#!/usr/bin/env bash
# Schemathesis (pinned, from PyPI, in a venv of its own) against the
# OpenAPI document of a running `perdure serve --samples` on a memory
# store: every operation, positive and negative cases, failing on any 5xx
# and on any answer the document does not describe (status code, content
# type, headers, body schema).
#
#   tests/schemathesis/run.sh [MAX_EXAMPLES]
#
# MAX_EXAMPLES is the budget per operation and phase: 100 in CI (about
# 2,200 test cases over the 17 operations, under a minute here); more for a
# longer run, e.g. `tests/schemathesis/run.sh 1000`. One worker: CPython
# 3.11's ast.parse is not safe across hypothesis's threads.
# PERDURE_BIN names the binary (default: target/debug/perdure, built when
# missing). The report is left in target/schemathesis/.
set -euo pipefail
cd "$(dirname "$0")/../.."
examples="${1:-100}"
bin="${PERDURE_BIN:-$PWD/target/debug/perdure}"
if [ ! -x "$bin" ]; then
  cargo build --bin perdure
fi
venv=.venv-schemathesis
if [ ! -x "$venv/bin/st" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check schemathesis==4.32.5
fi
out=target/schemathesis
mkdir -p "$out"
# Port 0: the server takes free ports itself and names them in its first line.
"$bin" serve --samples --store memory --http 127.0.0.1:0 --grpc 127.0.0.1:0 \
  2>"$out/server.log" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
port=
for _ in $(seq 300); do
  port=$(sed -n 's|.*HTTP API on http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$out/server.log" | head -n 1)
  [ -n "$port" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$out/server.log"; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { echo "perdure serve did not say where it listens"; cat "$out/server.log"; exit 1; }
# --wait-for-schema polls until the server answers (bounded); no sleeps.
SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$PWD/tests/schemathesis" \
  "$venv/bin/st" run "http://127.0.0.1:$port/openapi.json" \
  --wait-for-schema 60 \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --max-examples "$examples" \
  --seed 1 \
  --generation-database none \
  --workers 1 \
  --request-timeout 10 \
  --no-color \
  --report junit --report-dir "$out"
