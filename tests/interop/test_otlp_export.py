"""`perdure serve --otlp-endpoint` as an operator runs it: spans from the
sample HelloCities, started over the HTTP API with a W3C traceparent,
arrive at an OTLP/gRPC receiver (the OpenTelemetry project's own protobuf
service, served here with grpcio) as one tree under the caller's span."""

from concurrent import futures
import json
import os
import threading
import time
import urllib.request

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from conftest import free_port, new_store, server_log, start_server

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


def test_serve_exports_the_span_tree_over_otlp():
    receiver = Receiver()
    otlp = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, otlp)
    otlp_port = otlp.add_insecure_port("127.0.0.1:0")
    otlp.start()
    grpc_port, http_port = free_port(), free_port()
    os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "100"
    try:
        proc = start_server(new_store("sqlite"), grpc_port, http_port=http_port,
                            extra=["--otlp-endpoint", f"http://127.0.0.1:{otlp_port}"])
    finally:
        del os.environ["OTEL_BSP_SCHEDULE_DELAY"]
    try:
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
    finally:
        proc.kill()
        proc.wait()
        otlp.stop(None)
