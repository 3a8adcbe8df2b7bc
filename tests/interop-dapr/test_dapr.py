"""Dapr's flavour of the Durable Task Python SDK (durabletask-dapr) runs the
basic workflow patterns on Perdure: Dapr's protocol sends a task execution
id where Microsoft's sends a trace context, and a task router beside every
action; Perdure reads both flavours."""

import json
import time
from datetime import timedelta

from durabletask import client as cl
from durabletask import task

DONE = cl.OrchestrationStatus.COMPLETED


def plus_one(ctx, n):
    return n + 1


def sequence(ctx: task.OrchestrationContext, n):
    n = yield ctx.call_activity(plus_one, input=n)
    n = yield ctx.call_activity(plus_one, input=n)
    return n


def fan_out(ctx: task.OrchestrationContext, n):
    results = yield task.when_all([ctx.call_activity(plus_one, input=i) for i in range(n)])
    return sum(results)


def parent(ctx: task.OrchestrationContext, n):
    return (yield ctx.call_sub_orchestrator(sequence, input=n))


def approval(ctx: task.OrchestrationContext, _):
    event = ctx.wait_for_external_event("approve")
    timeout = ctx.create_timer(timedelta(seconds=30))
    winner = yield task.when_any([event, timeout])
    return event.get_result() if winner == event else "timed out"


def short_wait(ctx: task.OrchestrationContext, _):
    timeout = ctx.create_timer(timedelta(seconds=1))
    winner = yield task.when_any([ctx.wait_for_external_event("never"), timeout])
    return "timed out" if winner == timeout else "event"


def counter(ctx: task.OrchestrationContext, n):
    if n < 3:
        ctx.continue_as_new(n + 1)
        return
    return n


attempts = {"n": 0}


def flaky(ctx, _):
    attempts["n"] += 1
    if attempts["n"] < 3:
        raise RuntimeError(f"attempt {attempts['n']} fails")
    return attempts["n"]


def retrying(ctx: task.OrchestrationContext, _):
    policy = task.RetryPolicy(first_retry_interval=timedelta(milliseconds=50), max_number_of_attempts=3)
    return (yield ctx.call_activity(flaky, retry_policy=policy))


def fails(ctx, _):
    raise ValueError("no such order")


def failing(ctx: task.OrchestrationContext, _):
    return (yield ctx.call_activity(fails))


def status_then_wait(ctx: task.OrchestrationContext, _):
    ctx.set_custom_status("waiting")
    return (yield ctx.wait_for_external_event("go"))


ALL = [sequence, fan_out, parent, approval, short_wait, counter, retrying, failing, status_then_wait]
ACTIVITIES = [plus_one, flaky, fails]


def finish(c, orchestrator, input=None):
    """Starts `orchestrator` and waits for its end."""
    iid = c.schedule_new_orchestration(orchestrator, input=input)
    return c.wait_for_orchestration_completion(iid, timeout=30)


def output(state):
    assert state is not None
    assert state.runtime_status == DONE, state.failure_details and state.failure_details.message
    return json.loads(state.serialized_output)


def test_activity_sequence(hub):
    assert output(finish(hub(ALL, ACTIVITIES), sequence, 1)) == 3


def test_fan_out_fan_in(hub):
    assert output(finish(hub(ALL, ACTIVITIES), fan_out, 10)) == 55


def test_sub_orchestration(hub):
    assert output(finish(hub(ALL, ACTIVITIES), parent, 5)) == 7


def test_external_event_beats_timeout(hub):
    c = hub(ALL, ACTIVITIES)
    iid = c.schedule_new_orchestration(approval)
    c.wait_for_orchestration_start(iid, timeout=30)
    c.raise_orchestration_event(iid, "approve", data={"ok": True})
    assert output(c.wait_for_orchestration_completion(iid, timeout=30)) == {"ok": True}


def test_timer_beats_missing_event(hub):
    assert output(finish(hub(ALL, ACTIVITIES), short_wait)) == "timed out"


def test_continue_as_new(hub):
    assert output(finish(hub(ALL, ACTIVITIES), counter, 0)) == 3


def test_retry_policy_retries_an_activity(hub):
    attempts["n"] = 0
    assert output(finish(hub(ALL, ACTIVITIES), retrying)) == 3


def test_activity_failure_fails_the_orchestration(hub):
    state = finish(hub(ALL, ACTIVITIES), failing)
    assert state.runtime_status == cl.OrchestrationStatus.FAILED
    assert "no such order" in state.failure_details.message


def test_custom_status_suspend_resume(hub):
    c = hub(ALL, ACTIVITIES)
    iid = c.schedule_new_orchestration(status_then_wait)
    c.wait_for_orchestration_start(iid, timeout=30)
    deadline = time.time() + 30
    while c.get_orchestration_state(iid).serialized_custom_status is None and time.time() < deadline:
        time.sleep(0.05)
    assert c.get_orchestration_state(iid).serialized_custom_status == "waiting"
    c.suspend_orchestration(iid)
    deadline = time.time() + 30
    while c.get_orchestration_state(iid).runtime_status != cl.OrchestrationStatus.SUSPENDED and time.time() < deadline:
        time.sleep(0.05)
    assert c.get_orchestration_state(iid).runtime_status == cl.OrchestrationStatus.SUSPENDED
    c.resume_orchestration(iid)
    c.raise_orchestration_event(iid, "go", data=1)
    assert output(c.wait_for_orchestration_completion(iid, timeout=30)) == 1


def test_terminate_then_purge(hub):
    c = hub(ALL, ACTIVITIES)
    iid = c.schedule_new_orchestration(status_then_wait)
    c.wait_for_orchestration_start(iid, timeout=30)
    c.terminate_orchestration(iid, output="stopped")
    state = c.wait_for_orchestration_completion(iid, timeout=30)
    assert state.runtime_status == cl.OrchestrationStatus.TERMINATED
    assert json.loads(state.serialized_output) == "stopped"
    c.purge_orchestration(iid)
    assert c.get_orchestration_state(iid) is None
