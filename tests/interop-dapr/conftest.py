"""Starts `perdure serve` for the tests of Dapr's flavour of the Durable
Task Python SDK (`durabletask-dapr`, which installs the module
`durabletask` too, so it lives in a venv of its own), with a worker and a
client from that SDK connected to it."""

import os
import sys

import pytest
from durabletask import client as cl
from durabletask import worker as wk

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "interop"))
from perdure_server import new_store, start_server, stores  # noqa: E402


@pytest.fixture(params=list(stores()))
def server(request):
    proc = start_server(new_store(request.param), samples=False)
    yield f"localhost:{proc.grpc_port}"
    proc.kill()
    proc.wait()


@pytest.fixture
def hub(server):
    """Starts a Dapr SDK worker serving the given orchestrators and
    activities; returns a client. Stops both at the end of the test."""
    made = []

    def make(orchestrators=(), activities=()):
        w = wk.TaskHubGrpcWorker(host_address=server)
        for o in orchestrators:
            w.add_orchestrator(o)
        for a in activities:
            w.add_activity(a)
        w.start()
        made.append(w)
        c = cl.TaskHubGrpcClient(host_address=server)
        made.append(c)
        return c

    yield make
    for m in made:
        try:
            m.stop() if isinstance(m, wk.TaskHubGrpcWorker) else m.close()
        except Exception:
            pass
