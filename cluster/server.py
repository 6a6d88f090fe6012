"""The gateway's gRPC server: RelayService, the AdminService beside it, gRPC health and
reflection, on one port."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from google.protobuf.message import DecodeError
from google.protobuf.message_factory import GetMessageClass

from chatrelay.actors import tracing
from chatrelay.actors.registration import Registrar
from chatrelay.actors.registry import Registry
from chatrelay.cluster.access_log import AccessLog
from chatrelay.cluster.metrics import MetricsInterceptor
from chatrelay.cluster.servicer import POST_IN_FLIGHT, RelayServicer, abort
from chatrelay.cluster.tail import TAIL_WINDOW
from chatrelay.errors import ChatRelayError, MalformedError, Reason
from chatrelay.v1 import relay_pb2

MAX_REQUEST = 64 * 1024
# Calls that gRPC has taken in but the gateway's event loop has not picked up yet. Past
# gRPC's own defaults (1,000, and all past 3,000) it ends new calls at once with
# CANCELLED, and it ends any call that waited UNREQUESTED_S (its default: 30 s) the same
# way. Every subscriber of a large channel (re)opening its stream at once, after a gateway
# restarts, reaches both: each call ended so comes back and costs its client and the
# gateway the work again. So a gateway keeps as many waiting as it holds streams, as long
# as the loop needs to take them.
PENDING_CALLS = 100_000
UNREQUESTED_S = 120
QUEUE_OPTIONS = [
    ("grpc.server.max_pending_requests", PENDING_CALLS),
    ("grpc.server.max_pending_requests_hard_limit", 2 * PENDING_CALLS),
    ("grpc.server_max_unrequested_time_in_server", UNREQUESTED_S),
]
KEEPALIVE_TIMEOUT_MS = 20_000  # a peer that does not answer a ping within this is gone


async def serve(
    registry: Registry, shards: list, listen: str, subscriber_lag: int = TAIL_WINDOW, find_shard=None,
    metrics=None, admin=None, post_in_flight: int = POST_IN_FLIGHT, *, registrar: Registrar,
    tls: tuple[bytes, bytes] | None, access_log=None, share_port: bool = False,
) -> tuple[grpc.aio.Server, int, RelayServicer]:
    """The gateway's gRPC server, over TLS with `tls` (key PEM, certificate PEM), else
    plaintext. `registrar` registers groups; `metrics` (a GatewayMetrics) times and
    counts calls; `admin(servicer)` makes the AdminService, served beside the relay's.
    `share_port`: the port is bound with SO_REUSEPORT, for the other gateways of this
    node (the kernel spreads new connections over them); else a port taken is refused."""
    watched = metrics is not None or tracing.enabled()
    limits = registrar.limits
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_REQUEST), ("grpc.so_reuseport", int(share_port)), *QUEUE_OPTIONS,
            # A stranger's connections: closed when silent, idle or unresponsive, and each
            # bounded in what it may have going at once.
            ("grpc.server_handshake_timeout_ms", int(limits.handshake_timeout_s * 1000)),
            ("grpc.max_connection_idle_ms", int(limits.idle_timeout_s * 1000)),
            ("grpc.keepalive_time_ms", int(limits.keepalive_s * 1000)), ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
            ("grpc.max_concurrent_streams", limits.streams_per_connection),
        ],
        interceptors=[*([AccessLog(access_log)] if access_log is not None else []),
                      *([MetricsInterceptor(metrics)] if watched else [])] or None,
    )
    servicer = RelayServicer(registry, shards, subscriber_lag, find_shard, metrics, post_in_flight, registrar=registrar)
    servicer.router.start_watch()
    server.add_generic_rpc_handlers((handlers("RelayService", servicer),))
    if admin is not None:
        server.add_generic_rpc_handlers((handlers("AdminService", admin(servicer)),))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = (
        relay_pb2.DESCRIPTOR.services_by_name["RelayService"].full_name,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    ) + ((relay_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,) if admin is not None else ())
    reflection.enable_server_reflection(names, server)
    if tls is None:
        port = server.add_insecure_port(listen)
    else:
        port = server.add_secure_port(listen, grpc.ssl_server_credentials([tls]))
    if port == 0:
        raise ChatRelayError(Reason.UNAVAILABLE, f"cannot listen on {listen}")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    for name in (names[0], *names[3:]):  # the relay's services: RelayService, and AdminService where served
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, servicer


class Undecodable:
    """A request whose bytes are not the message its method takes."""

    __slots__ = ("error",)

    def __init__(self, error: ChatRelayError) -> None:
        self.error = error


def handlers(service_name: str, servicer) -> grpc.GenericRpcHandler:
    """A service's method handlers, made from its descriptor as the generated code makes
    them, except that a request that cannot be decoded is refused as malformed
    (INVALID_ARGUMENT, reason `malformed`) where gRPC would answer UNKNOWN with the
    parser's exception, and that an answer may come encoded already (bytes)."""
    service = relay_pb2.DESCRIPTOR.services_by_name[service_name]
    out = {}
    for method in service.methods:
        if method.client_streaming:
            raise TypeError(f"{method.full_name}: client streams are not served")
        behavior = getattr(servicer, method.name)
        make = grpc.unary_stream_rpc_method_handler if method.server_streaming else grpc.unary_unary_rpc_method_handler
        wrap = _refusing_stream if method.server_streaming else _refusing
        out[method.name] = make(
            wrap(behavior), request_deserializer=_decoder(GetMessageClass(method.input_type)),
            response_serializer=_encode,
        )
    return grpc.method_handlers_generic_handler(service.full_name, out)


def _encode(response) -> bytes:
    """An answer as it goes out: a message, or bytes a handler encoded already (a
    stream's batch, encoded once for every stream that writes it)."""
    return response if isinstance(response, bytes) else response.SerializeToString()


def _decoder(cls):
    def decode(data: bytes):
        try:
            return cls.FromString(data)
        except DecodeError:
            return Undecodable(MalformedError("request", f"it is not a {cls.DESCRIPTOR.full_name}"))
    return decode


def _refusing(behavior):
    async def unary(request, context):
        if isinstance(request, Undecodable):
            await abort(context, request.error)
        return await behavior(request, context)
    return unary


def _refusing_stream(behavior):
    async def stream(request, context):
        if isinstance(request, Undecodable):
            await abort(context, request.error)
            return
        async for item in behavior(request, context):
            yield item
    return stream
