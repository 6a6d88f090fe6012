"""A gateway's metrics: OpenTelemetry instruments, read by Prometheus at `--metrics`.

Names follow the OpenTelemetry conventions: `rpc.server.call.duration` for every call,
unary or a stream (from its start to its end), refused and undecodable ones too, by
status; `messaging.process.duration` for the relay's own operations (post, join,
register), and counters under `chatrelay.`. No label names a group, a member or an
address: per-group figures come from the admin API (`chatrelay top`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import grpc

# Seconds: from a fraction of a millisecond (a refusal) to several (an fsync under load).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# The relay's operations, by the RPC that carries them.
OPERATIONS = {"Post": "post", "Join": "join", "RegisterGroup": "register"}
COUNTERS = {
    "post": ("chatrelay.posts", "{post}", "Posts answered, by outcome (the gRPC status)"),
    "join": ("chatrelay.joins", "{join}", "Join requests answered, by outcome"),
    "register": ("chatrelay.registrations", "{registration}", "Group registrations answered, by outcome"),
}


class GatewayMetrics:
    """The instruments of one gateway process. `shard_figures` is read when Prometheus
    scrapes: {shard index: {"groups": n, "mailbox_depth": n}}, kept fresh by the gateway;
    `shard_calls` too: {kind: (calls to the shards, items they carried)}, and
    `socket_calls`: how many of those went through a shard's socket, not Ray."""

    def __init__(self, meter, subscribers=lambda: 0, shard_figures=lambda: {}, shard_calls=lambda: {},
                 socket_calls=lambda: 0) -> None:
        from opentelemetry.metrics import Observation

        self.rpc_duration = meter.create_histogram(
            "rpc.server.call.duration", unit="s",
            description="gRPC calls served (a stream from its start to its end), by method and status",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self.process_duration = meter.create_histogram(
            "messaging.process.duration", unit="s",
            description="From a post, join or registration arriving to its answer",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self.counters = {op: meter.create_counter(name, unit=unit, description=text)
                         for op, (name, unit, text) in COUNTERS.items()}
        self.deliveries = meter.create_counter(
            "chatrelay.deliveries", unit="{delivery}", description="Posts written to subscriber streams",
        )
        self.cut_off = meter.create_counter(
            "chatrelay.subscribers.cut_off", unit="{stream}",
            description="Subscriber streams cut off for falling behind (they resume from the log)",
        )
        self.errors = meter.create_counter(
            "chatrelay.rpc.errors", unit="{call}",
            description="gRPC calls (streams too) that ended with a status other than OK, by status",
        )
        # Each counter from zero at the start, so a panel shows 0 before its first event
        # (and a rate over it is defined), not an empty graph.
        for operation, counter in self.counters.items():
            counter.add(0, {"messaging.system": "chatrelay", "messaging.operation.name": operation, "outcome": "OK"})
        self.deliveries.add(0)
        self.cut_off.add(0)
        for code in grpc.StatusCode:  # a status's first error is a rise from 0, which a rate sees
            if code is not grpc.StatusCode.OK:
                self.errors.add(0, {"rpc.grpc.status_code": code.name})
        meter.create_observable_up_down_counter(
            "chatrelay.subscribers", unit="{stream}", description="Open subscriber streams on this gateway",
            callbacks=[lambda _options: [Observation(subscribers())]],
        )

        def shard_gauge(field: str):
            def observe(_options):
                return [Observation(getattr(stats, field), {"chatrelay.shard": str(index)})
                        for index, stats in sorted(shard_figures().items())]
            return observe

        meter.create_observable_gauge(
            "chatrelay.shard.groups", unit="{group}", description="Groups loaded in each relay shard",
            callbacks=[shard_gauge("group_count")],
        )
        meter.create_observable_gauge(
            "chatrelay.shard.mailbox.depth", unit="{request}",
            description="Requests waiting in the mailboxes of each relay shard's groups",
            callbacks=[shard_gauge("mailbox_depth")],
        )

        def reader_checks(_options):
            return [Observation(getattr(stats, f"readers_{check}"),
                                {"chatrelay.shard": str(index), "chatrelay.check": check})
                    for index, stats in sorted(shard_figures().items()) for check in ("verified", "remembered")]

        meter.create_observable_counter(
            "chatrelay.shard.reader.checks", unit="{check}",
            description="Reader credentials each relay shard checked: verified (its signature checked) or remembered "
                        "(the same credential let in before)",
            callbacks=[reader_checks],
        )

        def lanes(at: int):
            def observe(_options):
                return [Observation(figures[at], {"chatrelay.call": kind}) for kind, figures in shard_calls().items()]
            return observe

        meter.create_observable_counter(
            "chatrelay.shard.calls", unit="{call}",
            description="Calls this gateway made to the shards, by what they carry: posts, (group) calls, "
                        "(reader) checks",
            callbacks=[lanes(0)],
        )
        meter.create_observable_counter(
            "chatrelay.shard.socket.calls", unit="{call}",
            description="Calls this gateway made through the Unix sockets of the shards on its node (the others "
                        "went through Ray)",
            callbacks=[lambda _options: [Observation(socket_calls())]],
        )
        meter.create_observable_counter(
            "chatrelay.shard.call.items", unit="{item}",
            description="What those calls carried: post batches of groups, group calls, reader checks",
            callbacks=[lanes(1)],
        )

    def finished(self, method: str, seconds: float, code: grpc.StatusCode) -> None:
        service, _, name = method.lstrip("/").rpartition("/")
        status = code.name
        self.rpc_duration.record(seconds, {
            "rpc.system": "grpc", "rpc.service": service, "rpc.method": name, "rpc.grpc.status_code": status,
        })
        if code is not grpc.StatusCode.OK:
            self.errors.add(1, {"rpc.grpc.status_code": status})
        operation = OPERATIONS.get(name) if service == "chatrelay.v1.RelayService" else None
        if operation is not None:
            attributes = {"messaging.system": "chatrelay", "messaging.operation.name": operation, "outcome": status}
            self.process_duration.record(seconds, attributes)
            self.counters[operation].add(1, attributes)


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Times every call and counts it by status (with `metrics`): a unary one with a
    SERVER span for it (when tracing), a stream from its start to its end; what streams
    carry is counted where they deliver (`chatrelay.deliveries`)."""

    def __init__(self, metrics: GatewayMetrics | None) -> None:
        self.metrics = metrics

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None:  # no such method: gRPC answers UNIMPLEMENTED; counted without its name
            if self.metrics is not None:
                self.metrics.errors.add(1, {"rpc.grpc.status_code": grpc.StatusCode.UNIMPLEMENTED.name})
            return None
        if handler.unary_stream:
            return self._stream(handler, details.method)
        if not handler.unary_unary:
            return handler
        inner, method, metrics = handler.unary_unary, details.method, self.metrics

        async def timed(request, context):
            start = time.perf_counter()
            code = grpc.StatusCode.OK
            with _server_span(method) as span:
                try:
                    return await inner(request, context)
                except BaseException:
                    code = context.code() or grpc.StatusCode.UNKNOWN
                    raise
                finally:
                    code = _ended(code, context)
                    if metrics is not None:
                        metrics.finished(method, time.perf_counter() - start, code)
                    if span is not None:
                        span.set_attribute("rpc.grpc.status_code", code.value[0])

        return grpc.unary_unary_rpc_method_handler(
            timed, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


    def _stream(self, handler, method: str):
        """A server stream timed from its start to its end and counted by how it ended
        (OK, refused, cut off, or the client gone: CANCELLED)."""
        inner, metrics = handler.unary_stream, self.metrics

        async def timed(request, context):
            start = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                async for item in inner(request, context):
                    yield item
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except BaseException:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            finally:
                code = _ended(code, context)
                if metrics is not None:
                    metrics.finished(method, time.perf_counter() - start, code)

        return grpc.unary_stream_rpc_method_handler(
            timed, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer,
        )


def _ended(code: grpc.StatusCode, context) -> grpc.StatusCode:
    """How a call ended: a status its handler set on the context without raising
    counts as the call's own."""
    if code is grpc.StatusCode.OK and context.code() not in (None, grpc.StatusCode.OK):
        return context.code()
    return code


def _server_span(method: str):
    """The call's SERVER span, current for the handler (it yields None when not tracing)."""
    from chatrelay.actors import tracing

    if not tracing.enabled():
        return contextlib.nullcontext()
    from opentelemetry.trace import SpanKind

    service, _, name = method.lstrip("/").rpartition("/")
    return tracing.tracer().start_as_current_span(
        method.lstrip("/"), kind=SpanKind.SERVER, record_exception=False, set_status_on_exception=False,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
    )


class MetricsEndpoint:
    """A MeterProvider of its own whose reader Prometheus scrapes at http://HOST:PORT/metrics."""

    def __init__(self, listen: str) -> None:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.resources import Resource
        from prometheus_client import CollectorRegistry, start_http_server
        from prometheus_client.platform_collector import PlatformCollector
        from prometheus_client.process_collector import ProcessCollector

        host, _, port = listen.rpartition(":")
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.reader = PrometheusMetricReader(registry=self.registry)
        self.provider = MeterProvider(
            metric_readers=[self.reader], resource=Resource.create({"service.name": "chatrelay-gateway"}),
        )
        self.meter = self.provider.get_meter("chatrelay")
        self.server, self.thread = start_http_server(int(port), addr=host.strip("[]"), registry=self.registry)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.provider.shutdown()
