"""Orchestration tags from the official Python SDK: the tags a client
starts an instance with are stored and come back in its history (the
ExecutionStarted event), an activity's tags are recorded with its
TaskScheduled event, and continue-as-new keeps the orchestration's tags."""

from durabletask import client as dt
from durabletask import history
from durabletask import task

TIMEOUT = 60
S = dt.OrchestrationStatus


def plus_one(ctx: task.ActivityContext, n):
    return n + 1


def tagged_sequence(ctx: task.OrchestrationContext, n):
    n = yield ctx.call_activity(plus_one, input=n, tags={"Activity": "PlusOne"})
    return n


def count_to_two(ctx: task.OrchestrationContext, n):
    if n < 2:
        ctx.continue_as_new(n + 1)
        return None
    return n


def done(c, iid):
    state = c.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state is not None, f"{iid} vanished"
    assert state.runtime_status == S.COMPLETED, state.failure_details
    return state


def first(events, kind):
    return next(e for e in events if isinstance(e, kind))


def test_start_and_activity_tags_are_in_the_history(server, workers):
    workers([tagged_sequence], [plus_one])
    c = dt.TaskHubGrpcClient(host_address=server)
    iid = c.schedule_new_orchestration(tagged_sequence, input=1, tags={"Orchestration": "Sequence", "env": "test"})
    assert done(c, iid).get_output() == 2
    events = c.get_orchestration_history(iid)
    assert first(events, history.ExecutionStartedEvent).tags == {"Orchestration": "Sequence", "env": "test"}
    assert first(events, history.TaskScheduledEvent).tags == {"Activity": "PlusOne"}


def test_an_untagged_start_has_no_tags(server, workers):
    workers([count_to_two])
    c = dt.TaskHubGrpcClient(host_address=server)
    iid = c.schedule_new_orchestration(count_to_two, input=2)
    done(c, iid)
    assert not first(c.get_orchestration_history(iid), history.ExecutionStartedEvent).tags


def test_continue_as_new_keeps_the_tags(server, workers):
    workers([count_to_two])
    c = dt.TaskHubGrpcClient(host_address=server)
    iid = c.schedule_new_orchestration(count_to_two, input=0, tags={"forever": "yes"})
    assert done(c, iid).get_output() == 2
    started = first(c.get_orchestration_history(iid), history.ExecutionStartedEvent)
    assert started.input == "2"
    assert started.tags == {"forever": "yes"}
