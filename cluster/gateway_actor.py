"""GatewayActor: runs the grpc.aio gateway inside a Ray actor, one or more per node (like
Ray Serve's proxies), a node's gateways sharing its port. A plain class;
`chatrelay.actors.factory` makes it an actor."""

from __future__ import annotations

import asyncio
import logging
import pathlib

from chatrelay import settings
from chatrelay.actors.figures import GatewayStats, ProcessInfo, ShardStats
from chatrelay.actors.config import ClusterConfig
from chatrelay.cluster.storage import LocalStorage, open_registry

log = logging.getLogger(__name__)

SHARD_FIGURES_S = 5.0  # how often the gateway reads its shards' figures for the metrics
STATS_TIMEOUT_S = 5.0


class GatewayActor:
    def __init__(self, config: ClusterConfig, index: int = 0, share_port: bool = False) -> None:
        self.config = config
        self.index = index  # which of its node's gateways; the first alone forwards (--forward)
        self.share_port = share_port  # its node runs more than one gateway: they share the port
        self.server = None
        self.servicer = None
        self.endpoint = None  # the Prometheus endpoint, with --metrics
        self.metrics = None
        self.shard_figures: dict[int, ShardStats] = {}
        self._figures_task: asyncio.Task | None = None
        self.port = 0
        self.forwarder = None  # with --forward (cluster/forwarder.py)
        self.forward_port = 0
        self.heap = None  # its HeapKeeper, once it serves
        self.listen, self.metrics_listen = settings.gateway_addresses(config.listen, config.metrics, index=index)

    async def address(self) -> str:
        """HOST:PORT this gateway serves on (after `start`)."""
        return f"{self.listen.rpartition(':')[0]}:{self.port}"

    async def forward_address(self) -> str | None:
        """HOST:PORT this gateway forwards clients' connections on; None: it does not."""
        if self.forwarder is None:
            return None
        return f"{self.config.forward.rpartition(':')[0]}:{self.forward_port}"

    async def start(self) -> int:
        """Start serving (once); returns the bound port."""
        if self.server is None:
            import ray

            from chatrelay.actors.factory import NAMESPACE, shard_handles, shard_name
            from chatrelay.actors import tracing

            tracing.setup(self.config.traces, "gateway")
            from chatrelay.cluster.admin_service import AdminServicer
            from chatrelay.cluster.server import serve

            if self.metrics_listen and self.metrics is None:
                from chatrelay.cluster.metrics import GatewayMetrics, MetricsEndpoint

                self.endpoint = MetricsEndpoint(self.metrics_listen)
                self.metrics = GatewayMetrics(
                    self.endpoint.meter, subscribers=lambda: self.servicer.subscribers if self.servicer else 0,
                    shard_figures=lambda: self.shard_figures,
                    shard_calls=lambda: self.servicer.router.lane_figures() if self.servicer else {},
                    socket_calls=lambda: self.servicer.router.socket_calls if self.servicer else 0,
                )
            from chatrelay.actors.registration import Registrar

            registry = open_registry(self.config)
            shards = shard_handles(self.config)
            registrar = Registrar(LocalStorage().identity(self.config), registry, self.config.limits, self.config.shards)
            from chatrelay.cluster import identity

            tls = None if self.config.insecure else identity.load_tls(pathlib.Path(self.config.data_dir))
            access = None
            if self.config.access_log:
                from chatrelay.cluster.access_log import open_log

                access = open_log(self.config.data_dir, self.index)
            self.server, self.port, self.servicer = await serve(
                registry, shards, self.listen, self.config.limits.subscriber_lag,
                lambda i: ray.get_actor(shard_name(self.config, i), namespace=NAMESPACE),
                metrics=self.metrics,
                admin=lambda servicer: AdminServicer(self.config.operator_key, self._view(servicer)),
                post_in_flight=self.config.limits.post_in_flight, registrar=registrar, tls=tls, access_log=access,
                share_port=self.share_port,
            )
            if self.config.forward and self.forwarder is None and self.index == 0:
                from chatrelay.cluster.forwarder import Forwarder

                data = pathlib.Path(self.config.data_dir)
                self.forwarder = Forwarder(
                    self.config.forward, (str(data / identity.TLS_KEY_FILE), str(data / identity.TLS_CERT_FILE)),
                    allow_private=self.config.forward_private, source=self.config.forward_source or "",
                    per_minute=self.config.forward_per_minute)
                self.forward_port = await self.forwarder.start()
            if self.metrics is not None and self._figures_task is None:
                self._figures_task = asyncio.create_task(self._read_shard_figures())
            if self.heap is None:
                from chatrelay.cluster.heap import HeapKeeper

                self.heap = HeapKeeper()  # its streams' objects are not walked again and again
                self.heap.start()
        return self.port

    # ---- what the admin API and the metrics see of the cluster --------------------------

    def _shards(self) -> dict[int, object]:
        from chatrelay.actors import factory

        return {**dict(enumerate(factory.shard_handles(self.config))), **factory.own_shard_handles(self.config)}

    async def _shard_stats(self, groups: bool = True) -> dict:
        handles = await asyncio.to_thread(self._shards)
        indexes = sorted(handles)
        results = await asyncio.gather(
            *(asyncio.wait_for(handles[i].stats.remote(groups), STATS_TIMEOUT_S) for i in indexes),
            return_exceptions=True,
        )
        return dict(zip(indexes, results))

    async def _gateway_stats(self, groups: bool = True) -> list:
        from chatrelay.actors import factory

        import ray

        here = ray.get_runtime_context().get_actor_id()
        handles = await asyncio.to_thread(factory.gateway_handles, self.config)  # in a steady order
        mine = [g._actor_id.hex() == here for g in handles]
        results = list(await asyncio.gather(
            *(asyncio.wait_for(self.stats(groups) if me else g.stats.remote(groups), STATS_TIMEOUT_S)
              for g, me in zip(handles, mine)), return_exceptions=True,
        ))
        if not any(mine):  # its name not listed yet: this one first
            results.insert(0, await self.stats(groups))
        return results

    def _view(self, servicer):
        import ray

        from chatrelay.actors import records
        from chatrelay.actors.calls import MoveGroup, TakeDown
        from chatrelay.cluster.admin_service import ClusterView

        async def move(address: str, to_index: int) -> int:
            index = await servicer.router.index(address)
            if index == to_index:
                return index
            if to_index not in await asyncio.to_thread(self._shards):
                from chatrelay.errors import ChatRelayError, Reason

                raise ChatRelayError(Reason.MALFORMED, f"there is no relay shard {to_index}")
            return await servicer.router.call(index, MoveGroup(address, to_index))

        async def take_down(address: str, reason: str | None) -> str:
            records.check_address(address)
            return await servicer.router.call_address(address, TakeDown(address, reason))

        async def taken_down() -> dict[str, str]:
            return {e.key.removeprefix(records.TAKEDOWN_PREFIX).decode(): e.value.decode()
                    for e in await servicer.registry.get_prefix(records.TAKEDOWN_PREFIX)}

        async def placed_groups() -> int:
            return len(await servicer.registry.get_prefix(records.PLACEMENT_PREFIX))

        async def relay_link() -> str:
            entry = await servicer.registry.get(records.RELAY_LINK)
            return entry.value.decode() if entry else ""

        async def nodes() -> int:
            return sum(1 for n in await asyncio.to_thread(ray.nodes) if n.get("Alive"))

        async def subscribers_of(address: str) -> int:  # owners see every gateway's streams of their group
            from chatrelay.actors.figures import GatewayStats

            return sum(figures.subscribers for g in await self._gateway_stats(True) if isinstance(g, GatewayStats)
                       for name, figures in g.groups if name == address)
        servicer.subscribers_of = subscribers_of

        return ClusterView(
            shard_stats=self._shard_stats, gateway_stats=self._gateway_stats, move=move,
            placed_groups=placed_groups, nodes=nodes, relay_link=relay_link, take_down=take_down, taken_down=taken_down,
            registry="etcd" if self.config.etcd else "embedded",
            store="postgresql" if self.config.store else "embedded",
        )

    async def _read_shard_figures(self) -> None:
        while True:
            try:
                stats = await self._shard_stats(groups=False)
                self.shard_figures = {i: s for i, s in stats.items() if isinstance(s, ShardStats)}
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Ray busy or restarting: the next round reads again
                log.warning("reading shard figures failed: %s", exc)
            await asyncio.sleep(SHARD_FIGURES_S)

    async def stats(self, groups: bool = False) -> GatewayStats | None:
        """This gateway's streams (None before it serves)."""
        from chatrelay.actors import factory

        return self.servicer.streams.stats(ProcessInfo.here(factory.node_id()), groups) if self.servicer else None

    async def stop(self) -> None:
        if self.heap is not None:
            self.heap.stop()
            self.heap = None
        if self._figures_task is not None:
            self._figures_task.cancel()
            self._figures_task = None
        if self.server is not None:
            self.servicer.close()
            await self.server.stop(grace=1.0)
            self.server = None
        if self.endpoint is not None:
            self.endpoint.close()
            self.endpoint = self.metrics = None
