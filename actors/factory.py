"""The one place where `ray.remote` is applied: everything else is plain classes."""

from __future__ import annotations

import ray

from chatrelay.actors.gateway import GatewayActor
from chatrelay.actors.shard import RelayShard
from chatrelay.cluster.config import ClusterConfig

NAMESPACE = "chatrelay"


def shard_name(index: int) -> str:
    return f"chatrelay-shard-{index}"


def start_shard(index: int, config: ClusterConfig):
    # Restarted by Ray when it dies; every call it serves is idempotent (posts by message
    # id, joins by member key, commands by command id), so retrying them is safe.
    cls = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=3, max_concurrency=10_000)(RelayShard)
    return cls.options(name=shard_name(index), get_if_exists=True).remote(index, config)


def start_gateway(config: ClusterConfig, shards: list, name: str = "chatrelay-gateway-0"):
    cls = ray.remote(num_cpus=0, max_restarts=-1, max_concurrency=10_000)(GatewayActor)
    return cls.options(name=name, get_if_exists=True).remote(config, shards)
