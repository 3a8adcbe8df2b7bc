"""Starting and stopping `perdure serve` for the Python interoperability
tests: the ports it took, a fresh store URL (SQLite, or a fresh hub on
PostgreSQL), the server process and its log. Plain Python, no SDK, so the
suites for both flavours of the SDK (tests/interop, tests/interop-dapr)
share it."""

import os
import re
import socket
import subprocess
import tempfile
import time
import uuid

BIN = os.environ.get("PERDURE_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "target", "debug", "perdure"))


def stores():
    yield "sqlite"
    if os.environ.get("PERDURE_TEST_POSTGRES"):
        yield "postgres"
    else:
        print("skipped: PERDURE_TEST_POSTGRES is not set, so the interop tests ran without PostgreSQL")


def new_store(kind: str) -> str:
    """A fresh store URL of the given kind."""
    if kind == "sqlite":
        return f"sqlite://{tempfile.mkdtemp()}/interop.db"
    base = os.environ["PERDURE_TEST_POSTGRES"]
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}hub=py_{uuid.uuid4().hex[:12]}"


READY = re.compile(rb"HTTP API on http://127\.0\.0\.1:(\d+)/.* gRPC on 127\.0\.0\.1:(\d+) ")


def start_server(store: str, port: int = 0, samples: bool = True, extra=(), http_port: int = 0) -> subprocess.Popen:
    """Starts `perdure serve` and waits until it has said where it listens.
    Port 0 (the default) lets the server take free ports, so no other process
    can take them between a choice and the bind; the ports it took are
    `proc.grpc_port` and `proc.http_port`, read from its startup line."""
    args = [BIN, "serve", "--store", store, "--http", f"127.0.0.1:{http_port}", "--grpc", f"127.0.0.1:{port}", *extra]
    if samples:
        args.append("--samples")
    # The server's log goes to a file (a pipe nobody reads would fill up and
    # stall it); tests print it when something goes wrong.
    log_path = tempfile.mktemp(prefix="perdure-serve-", suffix=".log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
    proc.log_path = log_path
    deadline = time.time() + 30
    while True:
        with open(log_path, "rb") as f:
            ready = READY.search(f.read())
        if ready:
            proc.http_port, proc.grpc_port = int(ready.group(1)), int(ready.group(2))
            socket.create_connection(("127.0.0.1", proc.grpc_port), timeout=5).close()
            return proc
        if proc.poll() is not None:
            raise RuntimeError(f"perdure serve exited: {server_log(proc)}")
        if time.time() > deadline:
            proc.kill()
            raise RuntimeError(f"perdure serve did not start listening: {server_log(proc)}")
        time.sleep(0.05)


def server_log(proc) -> str:
    with open(proc.log_path, "rb") as f:
        return f.read().decode(errors="replace")[-4000:]
