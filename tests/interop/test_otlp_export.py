"""`perdure serve --otlp-endpoint` as an operator runs it: spans from the
sample HelloCities, started over the HTTP API with a W3C traceparent,
arrive at an OTLP/gRPC receiver (the OpenTelemetry project's own protobuf
service, served here with grpcio) as one tree under the caller's span."""

import contextlib
from concurrent import futures
import json
import os
import threading
import time
import urllib.request

import grpc
from durabletask import client as dt
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from conftest import new_store, server_log, start_server

TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER = "b7ad6b7169203331"


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self):
        self.spans = []
        self.services = set()
        self.lock = threading.Lock()

    def Export(self, request, context):
        with self.lock:
            for rs in request.resource_spans:
                for a in rs.resource.attributes:
                    if a.key == "service.name":
                        self.services.add(a.value.string_value)
                for ss in rs.scope_spans:
                    self.spans.extend(ss.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


@contextlib.contextmanager
def served_with_otlp():
    """`perdure serve --otlp-endpoint` exporting to a receiver of our own:
    yields (receiver, grpc_port, http_port, proc)."""
    receiver = Receiver()
    otlp = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, otlp)
    otlp_port = otlp.add_insecure_port("127.0.0.1:0")
    otlp.start()
    os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "100"
    try:
        proc = start_server(new_store("sqlite"),
                            extra=["--otlp-endpoint", f"http://127.0.0.1:{otlp_port}"])
    finally:
        del os.environ["OTEL_BSP_SCHEDULE_DELAY"]
    try:
        yield receiver, proc.grpc_port, proc.http_port, proc
    finally:
        proc.kill()
        proc.wait()
        otlp.stop(None)


def test_serve_exports_the_span_tree_over_otlp():
    with served_with_otlp() as (receiver, grpc_port, http_port, proc):
        base = f"http://127.0.0.1:{http_port}/runtime/webhooks/durabletask"
        req = urllib.request.Request(
            f"{base}/orchestrators/HelloCities", data=b"null", method="POST",
            headers={"content-type": "application/json", "traceparent": f"00-{TRACE}-{CALLER}-01"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 202
            status_url = json.loads(r.read())["statusQueryGetUri"]
        deadline = time.time() + 30
        while True:
            with urllib.request.urlopen(status_url, timeout=10) as r:
                st = json.loads(r.read())
            if st["runtimeStatus"] == "Completed":
                break
            assert time.time() < deadline, (st, server_log(proc))
            time.sleep(0.05)

        want = {"create_orchestration:HelloCities": 1, "orchestration:HelloCities": 1, "activity:SayHello": 6}
        deadline = time.time() + 20
        while True:
            with receiver.lock:
                spans = [s for s in receiver.spans if s.trace_id.hex() == TRACE]
            names = {}
            for s in spans:
                names[s.name] = names.get(s.name, 0) + 1
            if names == want or time.time() > deadline:
                break
            time.sleep(0.1)
        assert names == want, (names, server_log(proc))
        assert receiver.services == {"perdure"}

        by_id = {s.span_id: s for s in spans}
        (create,) = [s for s in spans if s.name.startswith("create_orchestration")]
        (orch,) = [s for s in spans if s.name.startswith("orchestration")]
        assert create.parent_span_id.hex() == CALLER
        assert orch.parent_span_id == create.span_id
        clients = [s for s in spans if s.name == "activity:SayHello" and s.parent_span_id == orch.span_id]
        assert len(clients) == 3
        servers = [s for s in spans if s.name == "activity:SayHello" and s not in clients]
        assert sorted(s.parent_span_id for s in servers) == sorted(c.span_id for c in clients)
        for s in spans:
            attrs = {a.key: a.value for a in s.attributes}
            assert attrs["durabletask.task.instance_id"].string_value == st["instanceId"]
            assert s.parent_span_id.hex() == CALLER or s.parent_span_id in by_id


def test_an_sdk_clients_raise_is_recorded_once():
    """The SDK client records its own `orchestration_event` span for a
    raise; the server records none for it (it records one for an HTTP
    raise, which no SDK traced)."""
    with served_with_otlp() as (receiver, grpc_port, http_port, proc):
        c = dt.TaskHubGrpcClient(host_address=f"localhost:{grpc_port}")
        ids = []
        for _ in range(2):
            iid = c.schedule_new_orchestration("ApprovalWorkflow", input={"request": "r", "timeout_secs": 3600})
            c.wait_for_orchestration_start(iid, timeout=30)
            ids.append(iid)
        c.raise_orchestration_event(ids[0], "ApprovalEvent", data=True)
        base = f"http://127.0.0.1:{http_port}/runtime/webhooks/durabletask"
        req = urllib.request.Request(
            f"{base}/instances/{ids[1]}/raiseEvent/ApprovalEvent", data=b"true", method="POST",
            headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 202
        for iid in ids:
            st = c.wait_for_orchestration_completion(iid, timeout=30)
            assert st.runtime_status == dt.OrchestrationStatus.COMPLETED, server_log(proc)
        time.sleep(1.5)  # the batch processor exports every 100 ms
        with receiver.lock:
            raises = [s for s in receiver.spans if s.name == "orchestration_event:ApprovalEvent"]
        assert len(raises) == 1, (raises, server_log(proc))
        attrs = {a.key: a.value.string_value for a in raises[0].attributes}
        assert attrs["durabletask.event.target_instance_id"] == ids[1]
