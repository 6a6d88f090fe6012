"""Traces: a post followed from the gateway to its shard and on to its delivery.

`chatrelay up --traces DIR` gives every relay process (gateway, shards) an OpenTelemetry
tracer that writes its finished spans to `DIR/<role>-<pid>.jsonl`, one JSON object a
line, as the SDK's console exporter formats them: no collector is needed to read them.
`--traces otlp://HOST:PORT` exports them instead to an OpenTelemetry collector there
(OTLP over gRPC, plaintext: a collector beside the relay, as in a cluster), each process
as service `chatrelay-<role>`.
The gateway opens a SERVER span per call; a post's context crosses the Ray call to its
shard, whose span is a child of it; when the gateway's tail of the group receives the
post for its subscribers, a `chatrelay.deliver` span, a child of the same post span,
records it. Without `--traces` no tracer is set up, and spans cost next to nothing (the
API's no-op tracer).
"""

from __future__ import annotations

import os
import pathlib

from opentelemetry import propagate, trace

from chatrelay.settings import OTLP_SCHEME

_provider = None


def setup(where: str | None, role: str) -> None:
    """Send this process's spans to `where`, a folder or otlp://HOST:PORT (once; nothing
    without one)."""
    global _provider
    if not where or _provider is not None:
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"chatrelay-{role}"}))
    provider.add_span_processor(BatchSpanProcessor(_exporter(where, role), schedule_delay_millis=200))
    _provider = provider


def _exporter(where: str, role: str):
    if where.startswith(OTLP_SCHEME):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=where[len(OTLP_SCHEME):], insecure=True)
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    folder = pathlib.Path(where)
    folder.mkdir(parents=True, exist_ok=True)
    out = open(folder / f"{role}-{os.getpid()}.jsonl", "a", buffering=1)
    return ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(indent=None) + "\n")


def enabled() -> bool:
    return _provider is not None


def tracer() -> trace.Tracer:
    return (_provider or trace.get_tracer_provider()).get_tracer("chatrelay")


def carrier() -> dict[str, str]:
    """The current span's context, to send along a call (empty when not tracing)."""
    out: dict[str, str] = {}
    if _provider is not None:
        propagate.inject(out)
    return out


def context_of(carried: dict[str, str] | None):
    """The context a caller sent (None: start a trace of its own)."""
    return propagate.extract(carried) if carried else None


def shutdown() -> None:
    global _provider
    if _provider is not None:
        _provider.shutdown()
        _provider = None


def consumer_spans(name: str, carried, attributes: dict) -> list:
    """A CONSUMER span per item that came with a context (none when not tracing), each
    a child of the span its sender carried; end them with `end_spans`."""
    if not carried or _provider is None:
        return []
    from opentelemetry.trace import SpanKind

    base = {"messaging.system": "chatrelay", "messaging.operation.name": name.rsplit(".", 1)[-1], **attributes}
    return [
        (i, tracer().start_span(name, context=context_of(c), kind=SpanKind.CONSUMER, attributes=base))
        for i, c in enumerate(carried) if c
    ]


def end_spans(spans: list, outcome) -> None:
    """End `consumer_spans`, each with its item's outcome (the class name of a typed
    outcome: Done, Refused, MovedAway)."""
    results = getattr(outcome, "value", None)
    for i, span in spans:
        result = results[i] if isinstance(results, list) and i < len(results) else outcome
        span.set_attribute("chatrelay.outcome", getattr(result, "reason", None) or type(result).__name__.lower())
        span.end()
