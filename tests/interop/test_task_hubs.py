"""The Durable Task Scheduler flavour of the official Python SDK
(`durabletask-azuremanaged`) against `perdure serve`, connected as it
connects to the Scheduler's local emulator (endpoint, task hub, no
credential): each task hub is its own world; a client on one never sees
another's instances, and a worker on one never takes another's work."""

import time

from durabletask import client as dt
from durabletask import task
from durabletask.azuremanaged.client import DurableTaskSchedulerClient
from durabletask.azuremanaged.worker import DurableTaskSchedulerWorker

TIMEOUT = 60


def hub_client(server, hub):
    return DurableTaskSchedulerClient(
        host_address=f"http://{server}", taskhub=hub, token_credential=None, secure_channel=False
    )


def hub_worker(server, hub, orchestrators):
    w = DurableTaskSchedulerWorker(
        host_address=f"http://{server}", taskhub=hub, token_credential=None, secure_channel=False
    )
    for o in orchestrators:
        w.add_orchestrator(o)
    w.start()
    return w


def which_hub(ctx: task.OrchestrationContext, hub: str):
    return f"ran on {hub}"


def test_a_scheduler_client_and_worker_run_on_their_hub(server):
    w = hub_worker(server, "orders", [which_hub])
    try:
        c = hub_client(server, "orders")
        iid = c.schedule_new_orchestration(which_hub, input="orders")
        st = c.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
        assert st is not None and st.runtime_status == dt.OrchestrationStatus.COMPLETED
        assert st.get_output() == "ran on orders"
    finally:
        w.stop()


def test_hubs_are_isolated(server):
    orders = hub_client(server, "orders")
    billing = hub_client(server, "billing")
    iid = orders.schedule_new_orchestration(which_hub, input="orders", instance_id="iso-1")
    assert orders.get_orchestration_state(iid) is not None
    assert billing.get_orchestration_state(iid) is None
    # The plain SDK client names no hub: the default one.
    assert dt.TaskHubGrpcClient(host_address=server).get_orchestration_state(iid) is None
    # A worker on another hub does not take the work.
    w = hub_worker(server, "billing", [which_hub])
    try:
        time.sleep(2)
        st = orders.get_orchestration_state(iid)
        assert st.runtime_status == dt.OrchestrationStatus.PENDING
    finally:
        w.stop()
    w = hub_worker(server, "orders", [which_hub])
    try:
        st = orders.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
        assert st.get_output() == "ran on orders"
    finally:
        w.stop()
