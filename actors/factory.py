"""The one place where `ray.remote` is applied: everything else is plain classes."""

from __future__ import annotations

import ray

from chatrelay.actors.gateway import GatewayActor
from chatrelay.actors.shard import RelayShard
from chatrelay.cluster.config import ClusterConfig

NAMESPACE = "chatrelay"
# Relay actors run only on Ray nodes that offer this resource: a local `chatrelay up`
# gives it to its node; in a cluster, the relay workers (not the head) are started with
# `--resources='{"chatrelay": 1000}'`. Each actor takes a sliver of it.
RELAY_RESOURCE = "chatrelay"
RELAY_RESOURCE_UNITS = 1000
_SLIVER = {RELAY_RESOURCE: 0.001}


def relay_tag(config: ClusterConfig) -> str:
    """Names actors by relay, so several relays can share one Ray cluster (and tests)."""
    return config.relay_key.hex()[:12]


def shard_name(config: ClusterConfig, index: int) -> str:
    return f"chatrelay-{relay_tag(config)}-shard-{index}"


def start_shard(index: int, config: ClusterConfig):
    # Restarted by Ray when it dies; every call it serves is idempotent (posts by message
    # id, joins by member key, commands by command id), so retrying them is safe.
    # SPREAD: over every relay node, so that one node lost takes only some groups along
    # (Ray starts their shards again on the nodes left).
    cls = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=3, max_concurrency=10_000)(RelayShard)
    return cls.options(
        name=shard_name(config, index), namespace=NAMESPACE, get_if_exists=True, resources=_SLIVER,
        scheduling_strategy="SPREAD",
    ).remote(index, config)


def gateway_name(config: ClusterConfig, node_id: str) -> str:
    return f"chatrelay-{relay_tag(config)}-gateway-{node_id[:16]}"


def start_gateway(config: ClusterConfig, node_id: str):
    """The gateway of one relay node, pinned to it (one per node, like Ray Serve's
    proxies). Shards are found by name, so a restarted gateway needs nothing from the
    object store."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    cls = ray.remote(num_cpus=0, max_restarts=-1, max_concurrency=10_000)(GatewayActor)
    return cls.options(
        name=gateway_name(config, node_id), namespace=NAMESPACE, get_if_exists=True, resources=_SLIVER,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
    ).remote(config)


def relay_nodes() -> list[str]:
    """Ids of the live Ray nodes that take relay actors, sorted."""
    return sorted(
        n["NodeID"] for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get(RELAY_RESOURCE)
    )


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
