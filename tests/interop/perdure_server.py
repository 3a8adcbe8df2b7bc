"""Starting and stopping `perdure serve` for the Python interoperability
tests: a free port, a fresh store URL (SQLite, or a fresh hub on
PostgreSQL), the server process and its log. Plain Python, no SDK, so the
suites for both flavours of the SDK (tests/interop, tests/interop-dapr)
share it."""

import os
import socket
import subprocess
import tempfile
import time
import uuid

BIN = os.environ.get("PERDURE_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "target", "debug", "perdure"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def start_server(store: str, port: int, samples: bool = True, extra=(), http_port: int = 0) -> subprocess.Popen:
    """Starts `perdure serve` and waits until its gRPC port accepts."""
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
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"perdure serve exited: {server_log(proc)}")
            if time.time() > deadline:
                proc.kill()
                raise RuntimeError(f"perdure serve did not start listening: {server_log(proc)}")
            time.sleep(0.05)


def server_log(proc) -> str:
    with open(proc.log_path, "rb") as f:
        return f.read().decode(errors="replace")[-4000:]
