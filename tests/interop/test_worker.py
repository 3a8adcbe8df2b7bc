"""Orchestrations written with the official Durable Task Python SDK, run by
Python workers that take their work from `perdure serve` over the gRPC
protocol: every pattern of the programming model, management, versioning,
work-item filters, shared load and reconnects."""

import threading
import time
from datetime import datetime, timedelta, timezone

import grpc
import pytest
from durabletask import client as dt
from durabletask import task
from durabletask import worker as wk
from durabletask.internal import orchestrator_service_pb2 as pb

TIMEOUT = 60
S = dt.OrchestrationStatus


def named(fn, name):
    fn.__name__ = name
    return fn


def hello(ctx: task.ActivityContext, city: str) -> str:
    return f"Hello {city}!"


def square(ctx: task.ActivityContext, n: int) -> int:
    return n * n


def chain(ctx: task.OrchestrationContext, _):
    out = []
    for city in ["Tokyo", "Seattle", "London"]:
        out.append((yield ctx.call_activity(hello, input=city)))
    return out


def fan_out(ctx: task.OrchestrationContext, n: int):
    results = yield task.when_all([ctx.call_activity(square, input=i) for i in range(1, n + 1)])
    return sum(results)


def done(c, iid):
    state = c.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state is not None, f"{iid} vanished"
    return state


def history_kinds(c, iid):
    return [type(e).__name__ for e in c.get_orchestration_history(iid)]


def wait_status(c, iid, status, within=TIMEOUT):
    deadline = time.time() + within
    while time.time() < deadline:
        st = c.get_orchestration_state(iid)
        if st is not None and st.runtime_status == status:
            return st
        time.sleep(0.05)
    raise AssertionError(f"{iid} did not reach {status}: {c.get_orchestration_state(iid)}")


def wait_custom_status(c, iid, value, within=TIMEOUT):
    deadline = time.time() + within
    while time.time() < deadline:
        st = c.get_orchestration_state(iid)
        if st is not None and st.serialized_custom_status == value:
            return st
        time.sleep(0.05)
    raise AssertionError(f"{iid} never showed custom status {value}")


def test_chaining_and_history(server, workers):
    workers([chain], [hello])
    c = dt.TaskHubGrpcClient(host_address=server)
    iid = c.schedule_new_orchestration(chain)
    st = done(c, iid)
    assert st.runtime_status == S.COMPLETED
    assert st.get_output() == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    # One history, the protocol's event types.
    kinds = history_kinds(c, iid)
    assert kinds.count("TaskScheduledEvent") == 3 and kinds.count("TaskCompletedEvent") == 3
    assert kinds[:2] == ["OrchestratorStartedEvent", "ExecutionStartedEvent"]
    assert kinds[-1] == "ExecutionCompletedEvent"


def test_fan_out_fan_in(server, workers):
    workers([fan_out], [square])
    c = dt.TaskHubGrpcClient(host_address=server)
    iid = c.schedule_new_orchestration(fan_out, input=50)
    assert done(c, iid).get_output() == sum(i * i for i in range(1, 51))


def child(ctx: task.OrchestrationContext, n: int):
    r = yield ctx.call_activity(square, input=n)
    return {"n": n, "square": r, "parent": ctx.parent_instance_id}


def parent(ctx: task.OrchestrationContext, _):
    a = yield ctx.call_sub_orchestrator(child, input=3, instance_id=f"{ctx.instance_id}-kid")
    b = yield ctx.call_sub_orchestrator(child, input=4)
    return [a, b]


def test_sub_orchestrations(server, workers):
    workers([parent, child], [square])
    c = dt.TaskHubGrpcClient(host_address=server)
    iid = c.schedule_new_orchestration(parent, instance_id="py-parent")
    st = done(c, iid)
    assert st.get_output() == [
        {"n": 3, "square": 9, "parent": "py-parent"},
        {"n": 4, "square": 16, "parent": "py-parent"},
    ]
    kid = c.get_orchestration_state("py-parent-kid")
    assert kid.runtime_status == S.COMPLETED and kid.name == "child"


def sleeper(ctx: task.OrchestrationContext, seconds: float):
    start = ctx.current_utc_datetime
    yield ctx.create_timer(timedelta(seconds=seconds))
    return (ctx.current_utc_datetime - start).total_seconds()


def test_durable_timers(server, workers):
    workers([sleeper])
    c = dt.TaskHubGrpcClient(host_address=server)
    began = time.time()
    iid = c.schedule_new_orchestration(sleeper, input=1.0)
    st = done(c, iid)
    assert time.time() - began >= 1.0
    assert st.get_output() >= 1.0, "orchestration time moved past the timer"


def approval(ctx: task.OrchestrationContext, delay: float):
    if delay:
        yield ctx.create_timer(timedelta(seconds=delay))
    ctx.set_custom_status("waiting")
    answer = ctx.wait_for_external_event("Approval")
    timeout = ctx.create_timer(timedelta(seconds=2))
    winner = yield task.when_any([answer, timeout])
    if winner == answer:
        return f"approved: {answer.get_result()}"
    return "timed out"


def test_external_events_before_after_and_timeout(server, workers):
    workers([approval])
    c = dt.TaskHubGrpcClient(host_address=server)
    # Raised before the orchestration waits for it: buffered.
    early = c.schedule_new_orchestration(approval, input=0.5)
    c.raise_orchestration_event(early, "Approval", data="early")
    # Raised while it waits.
    late = c.schedule_new_orchestration(approval, input=0)
    wait_custom_status(c, late, '"waiting"')
    c.raise_orchestration_event(late, "Approval", data="late")
    # Never raised: the timer wins.
    never = c.schedule_new_orchestration(approval, input=0)
    assert done(c, early).get_output() == "approved: early"
    assert done(c, late).get_output() == "approved: late"
    assert done(c, never).get_output() == "timed out"


def race(ctx: task.OrchestrationContext, _):
    fast = ctx.call_activity(square, input=7)
    slow = ctx.create_timer(timedelta(seconds=30))
    winner = yield task.when_any([fast, slow])
    both = yield task.when_all([ctx.call_activity(square, input=2), ctx.call_activity(square, input=3)])
    return {"fast_won": winner == fast, "value": fast.get_result(), "both": both}


def test_when_any_and_when_all(server, workers):
    workers([race], [square])
    c = dt.TaskHubGrpcClient(host_address=server)
    iid = c.schedule_new_orchestration(race)
    assert done(c, iid).get_output() == {"fast_won": True, "value": 49, "both": [4, 9]}


ATTEMPTS: dict = {}


def flaky(ctx: task.ActivityContext, key: str) -> int:
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if ATTEMPTS[key] < 3:
        raise RuntimeError(f"transient failure {ATTEMPTS[key]}")
    return ATTEMPTS[key]


def flaky_child(ctx: task.OrchestrationContext, key: str):
    return (yield ctx.call_activity(flaky, input=key))


def flaky_child_no_retry(ctx: task.OrchestrationContext, key: str):
    n = yield ctx.call_activity(flaky, input=key)
    return n


RETRY = task.RetryPolicy(first_retry_interval=timedelta(milliseconds=100), max_number_of_attempts=3)


def retrying(ctx: task.OrchestrationContext, key: str):
    a = yield ctx.call_activity(flaky, input=f"{key}-act", retry_policy=RETRY)
    # The child fails twice (its activity has no retry), then succeeds.
    b = yield ctx.call_sub_orchestrator(flaky_child_no_retry, input=f"{key}-sub", retry_policy=RETRY)
    return [a, b]


def test_retry_policies_on_activities_and_sub_orchestrations(server, workers):
    workers([retrying, flaky_child_no_retry], [flaky])
    c = dt.TaskHubGrpcClient(host_address=server)
    key = f"r{time.time_ns()}"
    iid = c.schedule_new_orchestration(retrying, input=key)
    st = done(c, iid)
    assert st.runtime_status == S.COMPLETED, st.failure_details
    assert st.get_output() == [3, 3]


def bad_input(ctx: task.ActivityContext, _):
    raise ValueError("bad input")


def fails(ctx: task.OrchestrationContext, catch: bool):
    try:
        yield ctx.call_activity(bad_input)
    except task.TaskFailedError as e:
        if catch:
            return {"type": e.details.error_type, "message": e.details.message}
        raise
    return "unreachable"


def test_failure_details(server, workers):
    workers([fails], [bad_input])
    c = dt.TaskHubGrpcClient(host_address=server)
    caught = c.schedule_new_orchestration(fails, input=True)
    assert done(c, caught).get_output() == {"type": "builtins.ValueError", "message": "bad input"}
    failed = c.schedule_new_orchestration(fails, input=False)
    st = done(c, failed)
    assert st.runtime_status == S.FAILED
    assert "bad input" in st.failure_details.message
    assert st.failure_details.error_type == "durabletask.task.TaskFailedError"


def counter(ctx: task.OrchestrationContext, n: int):
    if n < 5:
        ctx.continue_as_new(n + 1)
        return
    return n


def collector(ctx: task.OrchestrationContext, state):
    gen, got, keep = state["gen"], state["got"], state["keep"]
    if gen == 0:
        yield ctx.create_timer(timedelta(seconds=1))
    event = ctx.wait_for_external_event("x")
    winner = yield task.when_any([event, ctx.create_timer(timedelta(seconds=1))])
    got = got + [event.get_result() if winner == event else "lost"]
    if gen == 0:
        ctx.continue_as_new({"gen": 1, "got": got, "keep": keep}, save_events=keep)
        return
    return got


def test_continue_as_new_with_and_without_carried_events(server, workers):
    workers([counter, collector])
    c = dt.TaskHubGrpcClient(host_address=server)
    iid = c.schedule_new_orchestration(counter, input=0)
    st = done(c, iid)
    assert st.get_output() == 5
    kinds = history_kinds(c, iid)
    assert kinds.count("ExecutionStartedEvent") == 1, "each execution replaces the history"
    for keep, expected in [(True, ["a", "b"]), (False, ["a", "lost"])]:
        iid = c.schedule_new_orchestration(collector, input={"gen": 0, "got": [], "keep": keep})
        c.raise_orchestration_event(iid, "x", data="a")
        c.raise_orchestration_event(iid, "x", data="b")
        assert done(c, iid).get_output() == expected, f"save_events={keep}"


def staged(ctx: task.OrchestrationContext, _):
    ctx.set_custom_status({"stage": 1})
    yield ctx.wait_for_external_event("next")
    ctx.set_custom_status({"stage": 2})
    return "ok"


def test_custom_status_and_suspend_resume(server, workers):
    workers([staged])
    c = dt.TaskHubGrpcClient(host_address=server)
    iid = c.schedule_new_orchestration(staged)
    wait_custom_status(c, iid, '{"stage": 1}')
    c.suspend_orchestration(iid, reason="hold on")
    wait_status(c, iid, S.SUSPENDED)
    c.raise_orchestration_event(iid, "next")
    time.sleep(0.5)
    assert c.get_orchestration_state(iid).runtime_status == S.SUSPENDED, "events wait while suspended"
    c.resume_orchestration(iid)
    st = done(c, iid)
    assert (st.runtime_status, st.get_output(), st.get_custom_status()) == (S.COMPLETED, "ok", {"stage": 2})


def forever(ctx: task.OrchestrationContext, _):
    yield ctx.wait_for_external_event("never")


def tree(ctx: task.OrchestrationContext, _):
    yield ctx.call_sub_orchestrator(forever, instance_id=f"{ctx.instance_id}-leaf")


def test_terminate_recursive_and_purge(server, workers):
    workers([tree, forever])
    c = dt.TaskHubGrpcClient(host_address=server)
    iid = c.schedule_new_orchestration(tree, instance_id=f"tree-{time.time_ns()}")
    wait_status(c, f"{iid}-leaf", S.RUNNING)
    c.terminate_orchestration(iid, output="stop", recursive=True)
    st = done(c, iid)
    assert (st.runtime_status, st.get_output()) == (S.TERMINATED, "stop")
    assert done(c, f"{iid}-leaf").runtime_status == S.TERMINATED
    result = c.purge_orchestration(iid, recursive=True)
    assert result.deleted_instance_count == 2
    assert c.get_orchestration_state(iid) is None
    assert c.get_orchestration_state(f"{iid}-leaf") is None


def test_query_with_filters_and_paging(server, workers):
    workers([chain, forever], [hello])
    c = dt.TaskHubGrpcClient(host_address=server)
    prefix = f"q{time.time_ns()}-"
    ids = [c.schedule_new_orchestration(chain, instance_id=f"{prefix}{i}") for i in range(5)]
    for iid in ids:
        done(c, iid)
    waiting = c.schedule_new_orchestration(forever, instance_id=f"{prefix}w")
    wait_status(c, waiting, S.RUNNING)
    everything = c.get_all_orchestration_states(dt.OrchestrationQuery(instance_id_prefix=prefix, max_instance_count=2))
    assert sorted(s.instance_id for s in everything) == sorted(ids + [waiting]), "pages of 2 cover all"
    running = c.get_all_orchestration_states(
        dt.OrchestrationQuery(instance_id_prefix=prefix, runtime_status=[S.RUNNING], fetch_inputs_and_outputs=True)
    )
    assert [s.instance_id for s in running] == [waiting]
    page = c.list_instance_ids(runtime_status=[S.COMPLETED], page_size=2)
    assert len(page.items) == 2 and page.continuation_token
    c.terminate_orchestration(waiting)


def test_restart(server, workers):
    workers([chain], [hello])
    c = dt.TaskHubGrpcClient(host_address=server)
    iid = c.schedule_new_orchestration(chain)
    first = done(c, iid)
    same = c.restart_orchestration(iid)
    assert same == iid
    again = done(c, iid)
    assert again.get_output() == first.get_output()
    assert again.created_at >= first.created_at
    other = c.restart_orchestration(iid, restart_with_new_instance_id=True)
    assert other != iid
    assert done(c, other).get_output() == first.get_output()


RUNS: dict = {}
BROKEN = set()


def counted(ctx: task.ActivityContext, key: str) -> str:
    RUNS[key] = RUNS.get(key, 0) + 1
    if key in BROKEN:
        raise RuntimeError(f"{key} is broken")
    return key


def two_steps(ctx: task.OrchestrationContext, key: str):
    a = yield ctx.call_activity(counted, input=f"{key}-first")
    b = yield ctx.call_activity(counted, input=f"{key}-second")
    return [a, b]


def test_rewind_reruns_only_the_failed_step(server, workers):
    workers([two_steps], [counted])
    c = dt.TaskHubGrpcClient(host_address=server)
    key = f"rw{time.time_ns()}"
    BROKEN.add(f"{key}-second")
    iid = c.schedule_new_orchestration(two_steps, input=key)
    assert done(c, iid).runtime_status == S.FAILED
    BROKEN.discard(f"{key}-second")
    c.rewind_orchestration(iid, reason="fixed")
    st = done(c, iid)
    assert (st.runtime_status, st.get_output()) == (S.COMPLETED, [f"{key}-first", f"{key}-second"])
    assert RUNS[f"{key}-first"] == 1, "the step that succeeded did not run again"
    assert RUNS[f"{key}-second"] == 2


def versioned(ctx: task.OrchestrationContext, _):
    return ctx.version


def test_versioning_fails_mismatched_versions(server, workers):
    workers(
        [versioned],
        versioning=wk.VersioningOptions(
            version="2.0", match_strategy=wk.VersionMatchStrategy.STRICT, failure_strategy=wk.VersionFailureStrategy.FAIL
        ),
    )
    c = dt.TaskHubGrpcClient(host_address=server)
    good = c.schedule_new_orchestration(versioned, version="2.0")
    assert done(c, good).get_output() == "2.0"
    bad = c.schedule_new_orchestration(versioned, version="1.0")
    st = done(c, bad)
    assert st.runtime_status == S.FAILED
    assert st.failure_details.error_type == "VersionMismatch"


def make_generation(label):
    def which(ctx: task.ActivityContext, _) -> str:
        return label

    def run(ctx: task.OrchestrationContext, _):
        who = yield ctx.call_activity("which")
        return {"orchestrator": label, "activity": who, "version": ctx.version}

    return named(run, "generation"), named(which, "which")


def test_version_routing_with_work_item_filters(server, workers):
    for v in ["1.0", "2.0"]:
        orch, act = make_generation(v)
        workers(
            [orch],
            [act],
            filters=True,
            versioning=wk.VersioningOptions(
                version=v, match_strategy=wk.VersionMatchStrategy.STRICT, failure_strategy=wk.VersionFailureStrategy.REJECT
            ),
        )
    c = dt.TaskHubGrpcClient(host_address=server)
    ids = {v: [c.schedule_new_orchestration("generation", version=v) for _ in range(3)] for v in ["1.0", "2.0"]}
    for v, started in ids.items():
        for iid in started:
            assert done(c, iid).get_output() == {"orchestrator": v, "activity": v, "version": v}


def make_team(team):
    def work(ctx: task.ActivityContext, n: int) -> str:
        return f"{team}:{n}"

    def lead(ctx: task.OrchestrationContext, n: int):
        return (yield ctx.call_activity(f"work_{team}", input=n))

    return named(lead, f"lead_{team}"), named(work, f"work_{team}")


def test_work_item_filters_split_names_between_workers(server, workers):
    for team in ["red", "blue"]:
        orch, act = make_team(team)
        workers([orch], [act], filters=True)
    c = dt.TaskHubGrpcClient(host_address=server)
    red = c.schedule_new_orchestration("lead_red", input=1)
    blue = c.schedule_new_orchestration("lead_blue", input=2)
    assert done(c, red).get_output() == "red:1"
    assert done(c, blue).get_output() == "blue:2"
    # A name no connected worker accepts waits, it is not failed.
    nobody = c.schedule_new_orchestration("lead_green", input=3)
    time.sleep(1)
    assert c.get_orchestration_state(nobody).runtime_status == S.PENDING
    # The samples served inside perdure serve still run there.
    sample = c.schedule_new_orchestration("HelloCities")
    assert done(c, sample).runtime_status == S.COMPLETED


def make_member(label):
    def tagged(ctx: task.ActivityContext, n: int) -> str:
        time.sleep(0.05)
        return label

    def spread(ctx: task.OrchestrationContext, n: int):
        return (yield task.when_all([ctx.call_activity("tagged", input=i) for i in range(n)]))

    return named(spread, "spread"), named(tagged, "tagged")


def test_two_workers_share_the_load(server, workers):
    for label in ["w1", "w2"]:
        orch, act = make_member(label)
        workers([orch], [act], concurrency=wk.ConcurrencyOptions(maximum_concurrent_activity_work_items=2))
    c = dt.TaskHubGrpcClient(host_address=server)
    ids = [c.schedule_new_orchestration("spread", input=10) for _ in range(4)]
    seen = set()
    for iid in ids:
        st = done(c, iid)
        assert st.runtime_status == S.COMPLETED
        seen.update(st.get_output())
    assert seen == {"w1", "w2"}, "both workers ran activities"


STARTED = threading.Event()


def slow(ctx: task.ActivityContext, n: int) -> int:
    STARTED.set()
    time.sleep(1.5)
    return n + 1


def patient(ctx: task.OrchestrationContext, n: int):
    a = yield ctx.call_activity(slow, input=n)
    yield ctx.create_timer(timedelta(milliseconds=200))
    b = yield ctx.call_activity(slow, input=a)
    return b


def test_worker_disconnects_mid_run_and_reconnects(server, workers):
    STARTED.clear()
    first = workers([patient], [slow])
    c = dt.TaskHubGrpcClient(host_address=server)
    iid = c.schedule_new_orchestration(patient, input=1)
    assert STARTED.wait(TIMEOUT)
    # The worker goes away while its activity runs; its work goes back.
    stopper = threading.Thread(target=first.stop)
    stopper.start()
    workers([patient], [slow])
    st = done(c, iid)
    stopper.join(TIMEOUT)
    assert (st.runtime_status, st.get_output()) == (S.COMPLETED, 3)


def test_scheduled_start_and_id_reuse_policy(server, workers):
    workers([forever, chain], [hello])
    c = dt.TaskHubGrpcClient(host_address=server)
    # A scheduled start waits, Pending, until its time.
    later = c.schedule_new_orchestration(chain, start_at=datetime.now(timezone.utc) + timedelta(seconds=1.5))
    time.sleep(0.5)
    assert c.get_orchestration_state(later).runtime_status == S.PENDING
    assert done(c, later).runtime_status == S.COMPLETED
    # A running id is refused unless the reuse policy lists its status.
    iid = f"reuse-{time.time_ns()}"
    c.schedule_new_orchestration(forever, instance_id=iid)
    wait_status(c, iid, S.RUNNING)
    with pytest.raises(grpc.RpcError) as err:
        c.schedule_new_orchestration(chain, instance_id=iid)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    policy = pb.OrchestrationIdReusePolicy(replaceableStatus=[pb.ORCHESTRATION_STATUS_RUNNING])
    c.schedule_new_orchestration(chain, instance_id=iid, reuse_id_policy=policy)
    st = done(c, iid)
    assert (st.name, st.runtime_status) == ("chain", S.COMPLETED)
