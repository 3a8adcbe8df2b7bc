"""The official Durable Task Python SDK's client against `perdure serve`:
starting, waiting, events, suspend/resume, terminate, purge and failures,
with orchestrations run by Perdure's own in-process sample workers."""

import time

import grpc
import pytest
from durabletask import client as dt


def test_start_and_wait_for_hello_cities(server):
    c = dt.TaskHubGrpcClient(host_address=server)
    iid = c.schedule_new_orchestration("HelloCities")
    state = c.wait_for_orchestration_completion(iid, timeout=30)
    assert state is not None
    assert state.runtime_status == dt.OrchestrationStatus.COMPLETED
    assert state.get_output() == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    assert state.name == "HelloCities"


def test_input_output_and_custom_status(server):
    c = dt.TaskHubGrpcClient(host_address=server)
    iid = c.schedule_new_orchestration("FanOutFanIn", input=10, instance_id="py-fan")
    assert iid == "py-fan"
    state = c.wait_for_orchestration_completion(iid, timeout=30)
    assert state.get_output()["sum"] == 385
    assert state.get_input() == 10
    work = c.schedule_new_orchestration("DoWork", input=2)
    state = c.wait_for_orchestration_completion(work, timeout=30)
    assert state.get_output() == 30
    assert '"completedSteps":2' in state.serialized_custom_status


def test_events_suspend_resume(server):
    c = dt.TaskHubGrpcClient(host_address=server)
    iid = c.schedule_new_orchestration("ApprovalWorkflow", input={"request": "py"})
    c.wait_for_orchestration_start(iid, timeout=30)
    c.suspend_orchestration(iid)
    c.raise_orchestration_event(iid, "ApprovalEvent", data=True)
    c.resume_orchestration(iid)
    state = c.wait_for_orchestration_completion(iid, timeout=30)
    assert state.get_output() == "approved and processed"


def test_terminate_and_purge(server):
    c = dt.TaskHubGrpcClient(host_address=server)
    iid = c.schedule_new_orchestration("ApprovalWorkflow", input={"request": "never"})
    c.wait_for_orchestration_start(iid, timeout=30)
    c.terminate_orchestration(iid, output="enough")
    state = c.wait_for_orchestration_completion(iid, timeout=30)
    assert state.runtime_status == dt.OrchestrationStatus.TERMINATED
    assert state.get_output() == "enough"
    result = c.purge_orchestration(iid)
    assert result.deleted_instance_count == 1
    assert c.get_orchestration_state(iid) is None


def test_duplicate_id_and_unknown_instance(server):
    c = dt.TaskHubGrpcClient(host_address=server)
    c.schedule_new_orchestration("HelloCities", instance_id="py-dup")
    c.wait_for_orchestration_completion("py-dup", timeout=30)
    with pytest.raises(grpc.RpcError) as err:
        c.schedule_new_orchestration("HelloCities", instance_id="py-dup")
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.RpcError) as err:
        c.raise_orchestration_event("no-such-instance", "x", data=1)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_failure_details_and_unknown_names(server):
    c = dt.TaskHubGrpcClient(host_address=server)
    # DoWork needs a number: the in-process orchestrator fails, typed.
    iid = c.schedule_new_orchestration("DoWork", input="not a number")
    state = c.wait_for_orchestration_completion(iid, timeout=30)
    assert state.runtime_status == dt.OrchestrationStatus.FAILED
    assert state.failure_details.error_type and state.failure_details.message
    # A name no worker serves waits for one (a Python worker may connect).
    waiting = c.schedule_new_orchestration("NoSuchOrchestrator")
    time.sleep(0.5)
    assert c.get_orchestration_state(waiting).runtime_status == dt.OrchestrationStatus.PENDING


def test_entities_served_in_process(server):
    from durabletask.entities import EntityInstanceId

    c = dt.TaskHubGrpcClient(host_address=server)
    e = EntityInstanceId("Counter", "py")
    c.signal_entity(e, "add", input=3)
    c.signal_entity(e, "add", input=4)
    deadline = time.time() + 30
    meta = None
    while time.time() < deadline:
        meta = c.get_entity(e)
        if meta is not None and meta.get_state(int) == 7:
            break
        time.sleep(0.05)
    assert meta is not None and meta.get_state(int) == 7
    assert c.get_entity(EntityInstanceId("Counter", "nobody")) is None
    # An orchestration signals and calls the entity, in order.
    iid = c.schedule_new_orchestration("CountTo", input=["py2", 5])
    assert c.wait_for_orchestration_completion(iid, timeout=30).get_output() == 5
    found = c.get_all_entities(dt.EntityQuery(instance_id_starts_with="@counter@py", include_state=True))
    assert sorted((str(m.id), m.get_state(int)) for m in found) == [("@counter@py", 7), ("@counter@py2", 5)]
