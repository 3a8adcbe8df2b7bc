"""`GET /metrics` while the official Python SDK's worker is connected over
gRPC: the connected-worker gauge, and the orchestration and activity
counters for work the SDK ran."""

import re
import time
import urllib.request

from durabletask import client as dt
from durabletask import task
from durabletask import worker as wk

from conftest import new_store, server_log, start_server


def greet(ctx: task.ActivityContext, city: str) -> str:
    return f"Hello {city}!"


def greetings(ctx: task.OrchestrationContext, _):
    out = []
    for city in ["Tokyo", "Seattle", "London"]:
        out.append((yield ctx.call_activity(greet, input=city)))
    return out


def scrape(http_port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as r:
        assert r.headers["content-type"].startswith("application/openmetrics-text")
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(\S+) (\S+)$", line)
        if m and not line.startswith("#"):
            out[m.group(1)] = float(m.group(2))
    return out


def until(what, f, within=30):
    deadline = time.time() + within
    while time.time() < deadline:
        v = f()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_metrics_count_sdk_workers_and_their_work():
    proc = start_server(new_store("sqlite"))
    grpc_port, http_port = proc.grpc_port, proc.http_port
    w = None
    try:
        assert scrape(http_port)["perdure_grpc_workers"] == 0
        w = wk.TaskHubGrpcWorker(host_address=f"localhost:{grpc_port}")
        w.add_orchestrator(greetings)
        w.add_activity(greet)
        w.start()
        until("the worker to connect", lambda: scrape(http_port)["perdure_grpc_workers"] == 1)
        c = dt.TaskHubGrpcClient(host_address=f"localhost:{grpc_port}")
        iid = c.schedule_new_orchestration(greetings)
        st = c.wait_for_orchestration_completion(iid, timeout=60)
        assert st.runtime_status == dt.OrchestrationStatus.COMPLETED, server_log(proc)
        m = scrape(http_port)
        assert m['perdure_orchestrations_started_total{name="greetings"}'] == 1
        assert m['perdure_orchestrations_completed_total{name="greetings"}'] == 1
        assert m['perdure_activity_executions_total{name="greet",outcome="completed"}'] == 3
        assert m['perdure_activity_duration_seconds_count{name="greet"}'] == 3
        w.stop()
        w = None
        until("the worker to be counted gone", lambda: scrape(http_port)["perdure_grpc_workers"] == 0)
    finally:
        if w is not None:
            w.stop()
        proc.kill()
        proc.wait()
