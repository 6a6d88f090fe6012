"""GatewayActor: runs the grpc.aio gateway inside a Ray actor, one per node, like Ray
Serve's proxies. A plain class; `chatrelay.actors.factory` makes it an actor."""

from __future__ import annotations

from chatrelay.actors.proc import process_info
from chatrelay.cluster.config import ClusterConfig, open_registry


class GatewayActor:
    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.server = None
        self.servicer = None
        self.port = 0

    async def start(self) -> int:
        """Start serving (once); returns the bound port."""
        if self.server is None:
            import ray

            from chatrelay.actors.factory import NAMESPACE, shard_handles, shard_name
            from chatrelay.cluster.gateway import serve

            registry = open_registry(self.config)
            shards = shard_handles(self.config)
            self.server, self.port, self.servicer = await serve(
                registry, shards, self.config.listen, self.config.limits.subscriber_lag,
                lambda i: ray.get_actor(shard_name(self.config, i), namespace=NAMESPACE),
            )
        return self.port

    async def stats(self) -> dict:
        out = self.servicer.stats() if self.servicer else {}
        return {**out, "process": process_info()}

    async def stop(self) -> None:
        if self.server is not None:
            self.servicer.close()
            await self.server.stop(grace=1.0)
            self.server = None
