"""Crash safety over the wire: `perdure serve` is killed with SIGKILL while
Python workers are in the middle of orchestrations and activities, started
again on the same store and port, and every instance completes with the
right output once the workers have reconnected on their own."""

import time

import grpc
from datetime import timedelta

from conftest import new_store, server_log, start_server
from durabletask import client as dt
from durabletask import task
from durabletask import worker as wk

def step(ctx: task.ActivityContext, n: int) -> int:
    time.sleep(0.15)
    return n + 1


def crash_chain(ctx: task.OrchestrationContext, n: int):
    for _ in range(4):
        n = yield ctx.call_activity(step, input=n)
        yield ctx.create_timer(timedelta(milliseconds=150))
    parts = yield task.when_all([ctx.call_activity(step, input=i) for i in range(5)])
    return n + sum(parts)


def wait_through_reconnect(c, iid, within=120):
    # The process's gRPC connections back off after the server went away;
    # calls fail fast with UNAVAILABLE until they reconnect.
    deadline = time.time() + within
    while True:
        try:
            return c.wait_for_orchestration_completion(iid, timeout=max(1, int(deadline - time.time())))
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE or time.time() > deadline:
                raise
            time.sleep(0.2)


def test_sigkill_serve_while_python_workers_run(store_kind):
    store = new_store(store_kind)
    lease = "--lease-ms"
    server = start_server(store, samples=False, extra=[lease, "2000"])
    # The restarts listen on the port the first server took: the workers
    # reconnect to the address they were given.
    port = server.grpc_port
    address = f"localhost:{port}"
    workers = []
    for _ in range(2):
        w = wk.TaskHubGrpcWorker(host_address=address)
        w.add_orchestrator(crash_chain)
        w.add_activity(step)
        w.start()
        workers.append(w)
    try:
        c = dt.TaskHubGrpcClient(host_address=address)
        ids = [c.schedule_new_orchestration(crash_chain, input=i * 10) for i in range(12)]
        for delay in (1.0, 1.5):
            time.sleep(delay)
            server.kill()  # SIGKILL
            server.wait()
            time.sleep(0.3)
            server = start_server(store, port, samples=False, extra=[lease, "2000"])
        c = dt.TaskHubGrpcClient(host_address=address)
        for i, iid in enumerate(ids):
            assert server.poll() is None, f"perdure serve exited: {server_log(server)}"
            st = wait_through_reconnect(c, iid)
            assert st is not None and st.runtime_status == dt.OrchestrationStatus.COMPLETED, (iid, st)
            # 4 steps, then 5 parallel steps of 0..4 (each + 1) = 15.
            assert st.get_output() == i * 10 + 4 + 15
    finally:
        for w in workers:
            w.stop()
        server.kill()
        server.wait()
