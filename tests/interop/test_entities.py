"""Durable entities written with the official Python SDK, run by Python
workers on `perdure serve`: function-based and class-based entities,
calls and signals from orchestrations (delayed ones too), failures rolled
back, and critical sections that keep money from being lost or created."""

import time
from datetime import timedelta

from durabletask import client as dt
from durabletask import entities, task

TIMEOUT = 60


def py_counter(ctx: entities.EntityContext, value):
    n = ctx.get_state(int, 0)
    if ctx.operation == "add":
        ctx.set_state(n + value)
        return n + value
    if ctx.operation == "get":
        return n
    if ctx.operation == "reset":
        ctx.set_state(None)
        return None
    if ctx.operation == "fail":
        ctx.set_state(-1)
        raise ValueError("this operation always fails")
    raise ValueError(f"no operation {ctx.operation}")


class PyAccount(entities.DurableEntity):
    def deposit(self, amount):
        self.set_state(self.get_state(int, 0) + amount)
        return self.get_state(int, 0)

    def withdraw(self, amount):
        balance = self.get_state(int, 0)
        if amount > balance:
            raise ValueError("insufficient funds")
        self.set_state(balance - amount)
        return balance - amount

    def balance(self, _=None):
        return self.get_state(int, 0)


def use_counter(ctx: task.OrchestrationContext, key: str):
    c = entities.EntityInstanceId("py_counter", key)
    ctx.signal_entity(c, "add", input=5)
    after = yield ctx.call_entity(c, "add", input=10)
    try:
        yield ctx.call_entity(c, "fail")
        failed = "no"
    except task.TaskFailedError as e:
        failed = e.details.message
    now = yield ctx.call_entity(c, "get")
    ctx.signal_entity(c, "add", input=100, signal_time=ctx.current_utc_datetime + timedelta(seconds=1))
    return [after, failed, now]


def py_transfer(ctx: task.OrchestrationContext, t):
    a = entities.EntityInstanceId("PyAccount", t["from"])
    b = entities.EntityInstanceId("PyAccount", t["to"])
    with (yield ctx.lock_entities([a, b])):
        balance = yield ctx.call_entity(a, "balance")
        if balance < t["amount"]:
            return False
        yield ctx.call_entity(a, "withdraw", input=t["amount"])
        yield ctx.call_entity(b, "deposit", input=t["amount"])
    return True


def state_of(c, entity, kind=int):
    meta = c.get_entity(entity)
    return None if meta is None else meta.get_state(kind)


def until(what, f, within=TIMEOUT):
    deadline = time.time() + within
    while time.time() < deadline:
        if f():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out: {what}")


def test_entities_calls_signals_and_rollback(server, workers):
    workers([use_counter], entities=[py_counter], filters=True)
    c = dt.TaskHubGrpcClient(host_address=server)
    key = f"k{time.time_ns()}"
    iid = c.schedule_new_orchestration(use_counter, input=key)
    st = c.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert st.runtime_status == dt.OrchestrationStatus.COMPLETED, st.failure_details
    after, failed, now = st.get_output()
    assert (after, now) == (15, 15), "the signal came first; the failure rolled back"
    assert "always fails" in failed
    e = entities.EntityInstanceId("py_counter", key)
    assert state_of(c, e) == 15, "the delayed signal waits for its time"
    until("the delayed signal", lambda: state_of(c, e) == 115)
    # A client signal to a Python entity.
    c.signal_entity(e, "add", input=1)
    until("the client signal", lambda: state_of(c, e) == 116)


def test_critical_sections_keep_money(server, workers):
    workers([py_transfer], entities=[PyAccount], filters=True)
    c = dt.TaskHubGrpcClient(host_address=server)
    run = f"r{time.time_ns()}"
    accounts = [f"{run}-{i}" for i in range(3)]
    for a in accounts:
        c.signal_entity(entities.EntityInstanceId("PyAccount", a), "deposit", input=100)
    ids = [
        c.schedule_new_orchestration(
            py_transfer, input={"from": accounts[i % 3], "to": accounts[(i + 1) % 3], "amount": 40 + (i % 3) * 30}
        )
        for i in range(12)
    ]
    for iid in ids:
        st = c.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
        assert st.runtime_status == dt.OrchestrationStatus.COMPLETED, st.failure_details
    balances = [state_of(c, entities.EntityInstanceId("PyAccount", a)) for a in accounts]
    assert all(b is not None and b >= 0 for b in balances), balances
    assert sum(balances) == 300, balances


def test_clean_entity_storage(server, workers):
    workers([], entities=[py_counter], filters=True)
    c = dt.TaskHubGrpcClient(host_address=server)
    e = entities.EntityInstanceId("py_counter", f"clean{time.time_ns()}")
    c.signal_entity(e, "add", input=1)
    until("the entity has state", lambda: state_of(c, e) == 1)
    c.signal_entity(e, "reset")
    until("the state is deleted", lambda: c.get_entity(e) is None)
    deadline = time.time() + TIMEOUT
    removed = 0
    while removed == 0 and time.time() < deadline:
        removed = c.clean_entity_storage().empty_entities_removed
        time.sleep(0.1)
    assert removed == 1
