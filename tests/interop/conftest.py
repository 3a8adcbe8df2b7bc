"""Starts `perdure serve --samples` for the interoperability tests, on SQLite
and (when PERDURE_TEST_POSTGRES is set) on PostgreSQL, and Python workers
from the official Durable Task SDK that connect to it."""

import pytest
from durabletask import worker as wk
from perdure_server import BIN, new_store, server_log, start_server, stores  # noqa: F401


@pytest.fixture(params=list(stores()))
def store_kind(request):
    return request.param


@pytest.fixture
def server(store_kind):
    proc = start_server(new_store(store_kind))
    yield f"localhost:{proc.grpc_port}"
    proc.kill()
    proc.wait()


@pytest.fixture
def workers(server):
    """Makes started Python workers connected to the server; stops them at
    the end of the test."""
    made = []

    def make(orchestrators=(), activities=(), filters=False, versioning=None, concurrency=None, entities=()):
        w = wk.TaskHubGrpcWorker(host_address=server, concurrency_options=concurrency)
        for o in orchestrators:
            w.add_orchestrator(o)
        for a in activities:
            w.add_activity(a)
        for e in entities:
            w.add_entity(e)
        if versioning is not None:
            w.use_versioning(versioning)
        if filters:
            w.use_work_item_filters()
        w.start()
        made.append(w)
        return w

    yield make
    for w in made:
        try:
            w.stop()
        except Exception:
            pass
