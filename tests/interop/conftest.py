"""Starts `perdure serve --samples` for the interoperability tests, on SQLite
and (when PERDURE_TEST_POSTGRES is set) on PostgreSQL."""

import os
import socket
import subprocess
import tempfile
import time
import uuid

import pytest

BIN = os.environ.get("PERDURE_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "target", "debug", "perdure"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stores():
    yield "sqlite"
    if os.environ.get("PERDURE_TEST_POSTGRES"):
        yield "postgres"
    else:
        print("skipped: PERDURE_TEST_POSTGRES is not set, so the interop tests ran without PostgreSQL")


@pytest.fixture(params=list(_stores()))
def server(request):
    tmp = tempfile.mkdtemp()
    if request.param == "sqlite":
        store = f"sqlite://{tmp}/interop.db"
    else:
        base = os.environ["PERDURE_TEST_POSTGRES"]
        sep = "&" if "?" in base else "?"
        store = f"{base}{sep}hub=py_{uuid.uuid4().hex[:12]}"
    port = _free_port()
    proc = subprocess.Popen(
        [BIN, "serve", "--samples", "--store", store, "--http", "127.0.0.1:0", "--grpc", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"perdure serve exited: {proc.stderr.read().decode()}")
            if time.time() > deadline:
                proc.kill()
                raise RuntimeError("perdure serve did not start listening")
            time.sleep(0.05)
    yield f"localhost:{port}"
    proc.kill()
    proc.wait()
