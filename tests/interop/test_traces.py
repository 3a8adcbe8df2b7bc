"""Trace context through Perdure between the official Python SDK's client
and worker: the SDK records its spans (OpenTelemetry, in memory here) and
Perdure carries the protocol's trace-context fields between them: the
start's parentTraceContext into ExecutionStarted, the orchestration's span
id (orchestrationTraceContext) on every dispatch, each ScheduleTask's and
CreateSubOrchestration's parentTraceContext into history and into the
activity request. With all of that right, the SDK's spans form one tree
under the caller's span, each span once, across several dispatches."""

from collections import Counter
from datetime import timedelta
import time

from durabletask import client as dt
from durabletask import task
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

_exporter = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(_exporter))
trace.set_tracer_provider(_provider)
_tracer = trace.get_tracer("perdure-interop")


def hello(ctx: task.ActivityContext, who: str) -> str:
    return f"Hello {who}"


def kid(ctx: task.OrchestrationContext, n: int):
    return (yield ctx.call_activity(hello, input=f"kid {n}"))


def traced(ctx: task.OrchestrationContext, _):
    a = yield ctx.call_activity(hello, input="a")
    b = yield ctx.call_activity(hello, input="b")
    yield ctx.create_timer(timedelta(milliseconds=100))
    c = yield ctx.call_sub_orchestrator(kid, input=1)
    return [a, b, c]


def test_sdk_spans_form_one_tree_through_perdure(server, workers):
    workers(orchestrators=[traced, kid], activities=[hello])
    c = dt.TaskHubGrpcClient(host_address=server)
    with _tracer.start_as_current_span("caller") as caller:
        iid = c.schedule_new_orchestration(traced)
    st = c.wait_for_orchestration_completion(iid, timeout=60)
    assert st.runtime_status == dt.OrchestrationStatus.COMPLETED, st.failure_details
    assert st.serialized_output == '["Hello a", "Hello b", "Hello kid 1"]'

    trace_id = caller.get_span_context().trace_id
    expected = Counter({
        "caller": 1,
        "create_orchestration:traced": 1,
        "orchestration:traced": 1,
        "activity:hello": 6,
        "orchestration:traced:timer": 1,
        "orchestration:kid": 2,
    })
    deadline = time.time() + 20
    while True:
        spans = [s for s in _exporter.get_finished_spans() if s.context.trace_id == trace_id]
        if Counter(s.name for s in spans) == expected or time.time() > deadline:
            break
        time.sleep(0.1)
    time.sleep(0.3)  # a duplicate would show up by now
    spans = [s for s in _exporter.get_finished_spans() if s.context.trace_id == trace_id]
    assert Counter(s.name for s in spans) == expected

    by_id = {s.context.span_id: s for s in spans}

    def parent(s):
        return by_id.get(s.parent.span_id) if s.parent else None

    def one(name, kind):
        found = [s for s in spans if s.name == name and s.kind == kind]
        assert len(found) == 1, (name, kind, found)
        return found[0]

    create = one("create_orchestration:traced", SpanKind.PRODUCER)
    assert parent(create).name == "caller"
    orch = one("orchestration:traced", SpanKind.SERVER)
    assert parent(orch) is create
    kid_client = one("orchestration:kid", SpanKind.CLIENT)
    kid_server = one("orchestration:kid", SpanKind.SERVER)
    assert parent(kid_client) is orch
    assert parent(kid_server) is kid_client
    assert parent(one("orchestration:traced:timer", SpanKind.INTERNAL)) is orch

    # Activity client spans hang under the orchestration that scheduled
    # them, though each was scheduled in a different dispatch; the worker's
    # server span hangs under its client span.
    clients = [s for s in spans if s.name == "activity:hello" and s.kind == SpanKind.CLIENT]
    servers = [s for s in spans if s.name == "activity:hello" and s.kind == SpanKind.SERVER]
    assert sorted(parent(s).context.span_id if parent(s) else 0 for s in clients) == sorted(
        [orch.context.span_id] * 2 + [kid_server.context.span_id]
    )
    assert sorted(s.parent.span_id for s in servers) == sorted(s.context.span_id for s in clients)
