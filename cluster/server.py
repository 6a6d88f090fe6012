"""The gateway's gRPC server: RelayService, the AdminService beside it, gRPC health and
reflection, on one port."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from chatrelay.actors import tracing
from chatrelay.actors.registration import Registrar
from chatrelay.actors.registry import Registry
from chatrelay.cluster.metrics import MetricsInterceptor
from chatrelay.cluster.servicer import POST_IN_FLIGHT, RelayServicer
from chatrelay.cluster.tail import TAIL_WINDOW
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.v1 import relay_pb2, relay_pb2_grpc

MAX_REQUEST = 64 * 1024
# Calls that gRPC has taken in but the gateway's event loop has not picked up yet. Past
# gRPC's own defaults (1,000, and all past 3,000) it ends new calls at once with
# CANCELLED, which a burst of subscribers (re)opening their streams reaches.
PENDING_CALLS = 20_000


async def serve(
    registry: Registry, shards: list, listen: str, subscriber_lag: int = TAIL_WINDOW, find_shard=None,
    metrics=None, admin=None, post_in_flight: int = POST_IN_FLIGHT, *, registrar: Registrar,
) -> tuple[grpc.aio.Server, int, RelayServicer]:
    """The gateway's gRPC server. `registrar` registers groups; `metrics` (a
    GatewayMetrics) times and counts calls; `admin(servicer)` makes the AdminService,
    served beside the relay's."""
    watched = metrics is not None or tracing.enabled()
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_REQUEST), ("grpc.so_reuseport", 0),
            ("grpc.server.max_pending_requests", PENDING_CALLS), ("grpc.server.max_pending_requests_hard_limit", 2 * PENDING_CALLS),
        ],
        interceptors=[MetricsInterceptor(metrics)] if watched else None,
    )
    servicer = RelayServicer(registry, shards, subscriber_lag, find_shard, metrics, post_in_flight, registrar=registrar)
    servicer.router.start_watch()
    relay_pb2_grpc.add_RelayServiceServicer_to_server(servicer, server)
    if admin is not None:
        relay_pb2_grpc.add_AdminServiceServicer_to_server(admin(servicer), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = (
        relay_pb2.DESCRIPTOR.services_by_name["RelayService"].full_name,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    ) + ((relay_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,) if admin is not None else ())
    reflection.enable_server_reflection(names, server)
    port = server.add_insecure_port(listen)
    if port == 0:
        raise ChatRelayError(Reason.UNAVAILABLE, f"cannot listen on {listen}")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set(names[0], health_pb2.HealthCheckResponse.SERVING)
    return server, port, servicer

