"""Payloads are opaque text: what the official Python SDK sends (inputs,
event data, activity results, outputs) comes back exactly as it was
written, numbers beyond a double and key order included, and a start
without input has none."""

from durabletask import client as dt
from durabletask import task

TIMEOUT = 60
S = dt.OrchestrationStatus

# Numbers a double cannot hold, a float, and keys out of order.
SPELLED = {"z": 1, "big": 12345678901234567890123, "neg": -98765432109876543210, "f": 1.5, "a": [0.1, 2]}


def echo_activity(ctx: task.ActivityContext, value):
    return value


def echo(ctx: task.OrchestrationContext, value):
    return (yield ctx.call_activity(echo_activity, input=value))


def echo_event(ctx: task.OrchestrationContext, _):
    return (yield ctx.wait_for_external_event("data"))


def no_input(ctx: task.OrchestrationContext, value):
    return value is None


def done(c, iid):
    state = c.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state is not None, f"{iid} vanished"
    assert state.runtime_status == S.COMPLETED, state.failure_details
    return state


def test_an_input_comes_back_as_it_was_written(server, workers):
    workers([echo], [echo_activity])
    c = dt.TaskHubGrpcClient(host_address=server)
    iid = c.schedule_new_orchestration(echo, input=SPELLED)
    st = done(c, iid)
    assert st.get_output() == SPELLED
    assert st.serialized_output == st.serialized_input
    assert list(st.get_output().keys()) == list(SPELLED.keys())


def test_event_data_comes_back_as_it_was_written(server, workers):
    workers([echo_event])
    c = dt.TaskHubGrpcClient(host_address=server)
    iid = c.schedule_new_orchestration(echo_event)
    c.raise_orchestration_event(iid, "data", data=SPELLED)
    st = done(c, iid)
    assert st.get_output() == SPELLED


def test_a_start_without_input_has_none(server, workers):
    workers([no_input])
    c = dt.TaskHubGrpcClient(host_address=server)
    iid = c.schedule_new_orchestration(no_input)
    st = done(c, iid)
    assert st.serialized_input is None
    assert st.get_output() is True
