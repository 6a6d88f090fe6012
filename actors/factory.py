"""The one place where `ray.remote` is applied: everything else is plain classes.

The gateway's actor class lives in `cluster/` (it serves gRPC) and is handed in by the
caller, so that nothing here depends on the layer above.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import ray

from chatrelay.actors.config import ClusterConfig, Storage
from chatrelay.actors.shard import RelayShard
from chatrelay.settings import MAX_GATEWAYS

log = logging.getLogger(__name__)

NAMESPACE = "chatrelay"
REPORT_S = 5.0  # how often a shard's figures go to Ray's metrics
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


@dataclass(frozen=True, slots=True)
class RayShardHost:
    """A shard's `ShardHost`: shards of their own start as Ray actors like it."""

    config: ClusterConfig
    storage: Storage

    async def start_shard(self, index: int):
        shard = start_shard(index, self.config, self.storage)
        await shard.ready.remote()
        return shard

    def stop_self(self) -> None:
        ray.kill(ray.get_runtime_context().current_actor, no_restart=True)

    def node_id(self) -> str:
        return node_id()

    def restarted(self) -> bool:
        # Ray restarts an actor only once it counts the one before dead (its process gone,
        # or its node lost: then it may live on unseen, which fencing is for).
        return ray.get_runtime_context().was_current_actor_reconstructed

    async def report(self, shard: RelayShard) -> None:
        """Ray's metrics (`ray.util.metrics`, exported by Ray's own metrics agent where it
        runs): groups loaded, mailbox depth and posts accepted, labelled by shard only."""
        try:
            from ray.util.metrics import Counter, Gauge
        except ImportError:  # a Ray without metrics
            return
        tags = {"shard": str(shard.index)}
        groups = Gauge("chatrelay_shard_groups", "Groups loaded in the relay shard", tag_keys=("shard",))
        depth = Gauge("chatrelay_shard_mailbox_depth", "Requests waiting in the shard's mailboxes", tag_keys=("shard",))
        posts = Counter("chatrelay_shard_posts", "Posts the shard accepted", tag_keys=("shard",))
        reported = 0
        while True:
            try:
                loaded, waiting, total = shard.figures()
                groups.set(loaded, tags)
                depth.set(waiting, tags)
                if total > reported:
                    posts.inc(total - reported, tags)
                    reported = total
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # metrics never stop a shard
                log.warning("shard metrics not recorded: %s", exc)
            await asyncio.sleep(REPORT_S)


def start_shard(index: int, config: ClusterConfig, storage: Storage):
    # Restarted by Ray when it dies; every call it serves is idempotent (posts by message
    # id, joins by member key, commands by command id), so retrying them is safe.
    # SPREAD: over every relay node, so that one node lost takes only some groups along
    # (Ray starts their shards again on the nodes left).
    cls = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=3, max_concurrency=10_000)(RelayShard)
    return cls.options(
        name=shard_name(config, index), namespace=NAMESPACE, get_if_exists=True, resources=_SLIVER,
        scheduling_strategy="SPREAD",
    ).remote(index, config, storage, RayShardHost(config, storage))


def node_id() -> str:
    """The Ray node this process runs on ("" outside Ray)."""
    try:
        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
    except Exception:  # not in a Ray worker
        return ""


def gateway_name(config: ClusterConfig, node_id: str, index: int = 0) -> str:
    """The `index`th gateway of a node (the first keeps the name of a node's one gateway)."""
    return f"chatrelay-{relay_tag(config)}-gateway-{node_id[:16]}" + (f"-{index}" if index else "")


def start_gateway(actor_class: type, config: ClusterConfig, node_id: str, index: int = 0, share_port: bool = False):
    """The `index`th gateway of one relay node (an `actor_class`), pinned to it (like Ray
    Serve's proxies; `share_port`: the node runs more than one, sharing its port). Shards
    are found by name, so a restarted gateway needs nothing from the object store."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    cls = ray.remote(num_cpus=0, max_restarts=-1, max_concurrency=10_000)(actor_class)
    return cls.options(
        name=gateway_name(config, node_id, index), namespace=NAMESPACE, get_if_exists=True, resources=_SLIVER,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
    ).remote(config, index, share_port)


def relay_node_cpus() -> dict[str, int]:
    """{node id: its CPUs, as Ray counts them} of the live Ray nodes that take relay actors."""
    return {
        n["NodeID"]: int(n.get("Resources", {}).get("CPU", 1)) for n in ray.nodes()
        if n.get("Alive") and n.get("Resources", {}).get(RELAY_RESOURCE)
    }


def gateways_of(config: ClusterConfig, cpus: int) -> int:
    """How many gateways a relay node of `cpus` CPUs runs: --gateways, or one per CPU (at
    most MAX_GATEWAYS)."""
    return config.gateways or max(1, min(cpus, MAX_GATEWAYS))


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


def gateway_handles(config: ClusterConfig) -> list:
    """The relay's gateways: every one of every node, by node and index."""
    prefix = f"chatrelay-{relay_tag(config)}-gateway-"
    return [ray.get_actor(name, namespace=NAMESPACE)
            for name in sorted(_actor_names(prefix), key=lambda n: _gateway_place(n[len(prefix):]))]


def _gateway_place(rest: str) -> tuple[str, int]:
    """(node id's first 16, index) from what follows the prefix of a gateway's name."""
    node, _, index = rest.partition("-")
    return node, int(index or 0)


def _actor_names(prefix: str) -> list[str]:
    names = []
    for actor in ray.util.list_named_actors(all_namespaces=True):
        name = actor["name"] if isinstance(actor, dict) else actor
        if name.startswith(prefix):
            names.append(name)
    return names


def shard_handles(config: ClusterConfig) -> list:
    return [ray.get_actor(shard_name(config, i), namespace=NAMESPACE) for i in range(config.shards)]
