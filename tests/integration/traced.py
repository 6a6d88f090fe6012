"""Spans the relay's processes sent, as the tests read them: from the JSON files of
`--traces DIR`, or received by an OTLP collector of the test's own (`--traces
otlp://HOST:PORT`), a real gRPC server of OpenTelemetry's TraceService on loopback.
Either way, one dict a span: name, kind, context (trace_id, span_id), parent_id,
attributes, and the process that sent it (`gateway…`, `shard-N…`)."""

from __future__ import annotations

import json
import pathlib
import threading
import time
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from realparts import free_port


def spans_in(folder: pathlib.Path) -> list[dict]:
    found = []
    for path in sorted(folder.glob("*.jsonl")):
        found += [json.loads(line) | {"process": path.stem} for line in path.read_text().splitlines() if line.strip()]
    return found


def _value(any_value):
    return getattr(any_value, any_value.WhichOneof("value"))


class OtlpCollector(trace_service_pb2_grpc.TraceServiceServicer):
    """Takes every span exported to it (OTLP/gRPC, plaintext) and keeps it."""

    def __init__(self) -> None:
        self.port = free_port()
        self._lock = threading.Lock()
        self._spans: list[dict] = []
        self.requests = 0
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self.server)
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        self.server.start()

    def Export(self, request, context):  # noqa: N802 (the service's method name)
        received = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            process = resource["service.name"].removeprefix("chatrelay-")
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append({
                        "name": span.name,
                        "kind": "SpanKind." + trace_pb2.Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                        "context": {"trace_id": "0x" + span.trace_id.hex(), "span_id": "0x" + span.span_id.hex()},
                        "parent_id": "0x" + span.parent_span_id.hex() if span.parent_span_id else None,
                        "attributes": {a.key: _value(a.value) for a in span.attributes},
                        "process": process,
                        "resource": resource,
                    })
        with self._lock:
            self._spans += received
            self.requests += 1
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self) -> list[dict]:
        with self._lock:
            return list(self._spans)

    def __enter__(self) -> "OtlpCollector":
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop(grace=None)


def assert_posts_traced_to_shard_and_delivery(read, count: int) -> None:
    """Each post's trace (`read()` gives the spans so far): the gateway's SERVER span, its
    shard's span and the gateway's delivery span, children of it (the processes send
    their spans within a second)."""
    deadline = time.monotonic() + 30
    while True:
        seen = read()
        posts = [s for s in seen if s["name"] == "chatrelay.v1.RelayService/Post"]
        children = {(s["name"], s["parent_id"]): s for s in seen if s.get("parent_id")}
        complete = [
            p for p in posts
            if ("chatrelay.shard.post", p["context"]["span_id"]) in children
            and ("chatrelay.deliver", p["context"]["span_id"]) in children
        ]
        if len(complete) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(posts) == count and len(complete) == count, (len(posts), len(complete))
    for post in complete:
        assert post["kind"] == "SpanKind.SERVER" and post["process"].startswith("gateway")
        assert post["attributes"]["rpc.grpc.status_code"] == 0
        shard = children[("chatrelay.shard.post", post["context"]["span_id"])]
        deliver = children[("chatrelay.deliver", post["context"]["span_id"])]
        assert shard["process"].startswith("shard-") and shard["context"]["trace_id"] == post["context"]["trace_id"]
        assert deliver["context"]["trace_id"] == post["context"]["trace_id"]
        assert deliver["attributes"]["chatrelay.subscribers"] == 1
    assert sorted(children[("chatrelay.deliver", p["context"]["span_id"])]["attributes"]["chatrelay.seq"]
                  for p in complete) == list(range(1, count + 1))
