"""The one place where `ray.remote` is applied: everything else is plain classes."""

from __future__ import annotations

import ray

from chatrelay.actors.gateway import GatewayActor
from chatrelay.actors.shard import RelayShard
from chatrelay.cluster.config import ClusterConfig

NAMESPACE = "chatrelay"


def relay_tag(config: ClusterConfig) -> str:
    """Names actors by relay, so several relays can share one Ray cluster (and tests)."""
    return config.relay_key.hex()[:12]


def shard_name(config: ClusterConfig, index: int) -> str:
    return f"chatrelay-{relay_tag(config)}-shard-{index}"


def start_shard(index: int, config: ClusterConfig):
    # Restarted by Ray when it dies; every call it serves is idempotent (posts by message
    # id, joins by member key, commands by command id), so retrying them is safe.
    cls = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=3, max_concurrency=10_000)(RelayShard)
    return cls.options(name=shard_name(config, index), namespace=NAMESPACE, get_if_exists=True).remote(index, config)


def start_gateway(config: ClusterConfig, node: int = 0):
    # Shards are found by name, so a restarted gateway needs nothing from the object store.
    cls = ray.remote(num_cpus=0, max_restarts=-1, max_concurrency=10_000)(GatewayActor)
    name = f"chatrelay-{relay_tag(config)}-gateway-{node}"
    return cls.options(name=name, namespace=NAMESPACE, get_if_exists=True).remote(config)


def own_shards(config: ClusterConfig) -> list:
    """Shards started for hot groups (indexes from `config.shards` on)."""
    return list(own_shard_handles(config).values())


def own_shard_handles(config: ClusterConfig) -> dict:
    """{index: handle} of the shards started for hot groups."""
    prefix = f"chatrelay-{relay_tag(config)}-shard-"
    handles = {}
    for name in _actor_names(prefix):
        index = int(name[len(prefix):])
        if index >= config.shards:
            handles[index] = ray.get_actor(name, namespace=NAMESPACE)
    return handles


def gateway_handles(config: ClusterConfig, exclude_current: bool = True) -> list:
    """The relay's gateways (one a node), without the calling actor itself."""
    current = ray.get_runtime_context().get_actor_id() if exclude_current else None
    handles = []
    for name in _actor_names(f"chatrelay-{relay_tag(config)}-gateway-"):
        handle = ray.get_actor(name, namespace=NAMESPACE)
        if handle._actor_id.hex() != current:
            handles.append(handle)
    return handles


def _actor_names(prefix: str) -> list[str]:
    names = []
    for actor in ray.util.list_named_actors(all_namespaces=True):
        name = actor["name"] if isinstance(actor, dict) else actor
        if name.startswith(prefix):
            names.append(name)
    return names


def shard_handles(config: ClusterConfig) -> list:
    return [ray.get_actor(shard_name(config, i), namespace=NAMESPACE) for i in range(config.shards)]
