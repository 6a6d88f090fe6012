"""`chatrelay up`: a relay on this machine: local Ray, shards, its gateways (--gateways a node), embedded
registry and message log (or etcd), and the relay's own link stored for resolving."""

from __future__ import annotations

import asyncio
import os
import pathlib
import threading
import time
from dataclasses import dataclass, field

from nacl.signing import SigningKey

from chatrelay import links, tls
from chatrelay.actors.policy import RelayLimits
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.settings import OTLP_SCHEME, RAY_CLIENT_SCHEME, Settings, gateway_addresses, redact
from chatrelay.actors import records
from chatrelay.actors.records import LinkRecord
from chatrelay.cluster import identity
from chatrelay.actors.config import ClusterConfig
from chatrelay.cluster.gateway_actor import GatewayActor
from chatrelay.cluster.link_store import LinkStore
from chatrelay.cluster.ports import pick_port, refuse_taken
from chatrelay.cluster.storage import LocalStorage, open_registry, prepare_store


@dataclass
class RunningRelay:
    config: ClusterConfig
    port: int  # the first gateway's
    link: str
    shards: list
    gateway: object  # the first relay node's first gateway
    gateways: dict = field(default_factory=dict)  # (node id, index) -> gateway, --gateways per relay node
    joined: bool = False  # an existing Ray cluster (--ray-address): left running at stop
    addresses: list = field(default_factory=list)  # HOST:PORT of each gateway, as it listens (a node's share one)
    stopping: threading.Event = field(default_factory=threading.Event)
    pin: bytes = b""  # the fingerprint of the gateways' TLS key (none with --insecure)
    lost: str = ""  # why the relay stopped by itself: its Ray session is gone

    @property
    def address(self) -> str:
        """HOST:PORT of the first gateway."""
        host = self.config.listen.rpartition(":")[0]
        return f"{host}:{self.port}"

    @property
    def target(self) -> str:
        """`PIN@HOST:PORT`, what the SDK's RelayClient takes."""
        return tls.join_target(self.pin or None, self.address)


LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def loopback_only() -> None:
    """Keep a local Ray on 127.0.0.1. Ray swaps a loopback node address for the machine's
    reachable one unless it believes it runs as a single machine; this says so, to this
    process and to the Ray processes it starts (they inherit the environment)."""
    _ray_cluster_mode(False)


def _ray_cluster_mode(several_nodes: bool) -> None:
    os.environ[LOOPBACK_ENV] = "1" if several_nodes else "0"
    try:
        from ray._private import ray_constants
    except ImportError:  # a Ray without this module: nothing to adjust
        return
    ray_constants.ENABLE_RAY_CLUSTER = several_nodes


def init_local_ray() -> None:
    import ray

    from chatrelay.actors import factory

    loopback_only()
    ray.init(
        address="local",  # a new local instance, never a cluster `ray start` left behind
        namespace=factory.NAMESPACE,
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=128 * 1024 * 1024,
        resources={factory.RELAY_RESOURCE: factory.RELAY_RESOURCE_UNITS},
    )


RAYLET_WAIT_S = 10.0


def join_ray(address: str) -> None:
    """Join a running Ray cluster (the deploy/ scripts, KubeRay) as its driver: with
    HOST:PORT (or auto) on a node of it, through that node's raylet; with ray://HOST:PORT
    through Ray Client from anywhere (the chart's controller, a container beside the head)."""
    import ray

    from chatrelay.actors import factory

    _ray_cluster_mode(True)  # a cluster of several nodes (see loopback_only)
    if address == "auto" and os.environ.get("RAY_ADDRESS", "").startswith(RAY_CLIENT_SCHEME):
        address = os.environ["RAY_ADDRESS"]  # what Ray would take for auto
    if address.startswith(RAY_CLIENT_SCHEME):
        ray.init(address=address, namespace=factory.NAMESPACE, log_to_driver=False)
        return
    _require_local_raylet(address)
    host = address.rpartition(":")[0]
    try:
        import ipaddress

        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    # On one machine (deploy/local-cluster.sh), the driver attaches to the head's node by
    # its loopback address; elsewhere Ray finds this machine's node by itself.
    extra = {"_node_ip_address": host} if loopback else {}
    ray.init(address=address, namespace=factory.NAMESPACE, log_to_driver=False, **extra)


def _require_local_raylet(address: str) -> None:
    """A driver attaches through a raylet it finds among this machine's processes (Ray
    2.60 scans them, then uses its sockets under /tmp/ray). Where there is none to see (a
    container of its own, another PID namespace), Ray would wait 60 s and say only that it
    failed to connect: say at once what to do instead."""
    import time

    from ray._private import services

    deadline = time.monotonic() + RAYLET_WAIT_S  # a node's raylet may be starting
    while not services.find_node_ids():
        if time.monotonic() > deadline:
            raise ChatRelayError(
                Reason.UNAVAILABLE,
                f"cannot join Ray at {address}: no Ray node's processes are visible here (a driver needs a raylet "
                f"in its PID namespace and its /tmp/ray); from another container or PID namespace, join through "
                f"Ray Client: --ray-address ray://HEAD:10001")
        time.sleep(0.5)


def policy_of(settings: Settings):
    from chatrelay.actors.policy import RelayPolicy

    denied: frozenset[str] = frozenset()
    if settings.deny_groups is not None:
        try:
            lines = settings.deny_groups.read_text().split()
        except OSError as exc:
            raise ChatRelayError(Reason.MALFORMED, f"cannot read --deny-groups file: {exc}") from None
        bad = [line for line in lines if len(line) != 64 or any(c not in "0123456789abcdef" for c in line.lower())]
        if bad:
            raise ChatRelayError(Reason.MALFORMED, f"--deny-groups file has lines that are not group ids: {bad[0]!r}")
        denied = frozenset(line.lower() for line in lines)
    return RelayPolicy(max_groups=settings.max_groups, deny_names=settings.deny_names, denied_groups=denied)


def _traces(traces: str | None) -> str | None:
    """Where every relay process sends its spans: an OTLP collector's URL as given, or the
    folder as an absolute path (the processes run in other working directories)."""
    if not traces or traces.startswith(OTLP_SCHEME):
        return traces
    return str(pathlib.Path(traces).resolve())


def start(settings: Settings, *, ray_init: bool = True) -> RunningRelay:
    import ray

    from chatrelay.actors import factory

    identity.secure_data_dir(settings.data_dir)
    key = identity.load_or_create(settings.data_dir)
    pin = b"" if settings.insecure else tls.pin_of_pem(identity.load_or_create_tls(settings.data_dir)[1])
    operator = identity.load_or_create(settings.data_dir, identity.OPERATOR_KEY_FILE)
    listen = settings.listen
    host, _, port_text = listen.rpartition(":")
    if port_text == "0":
        # Pick the port now: a gateway restarted by Ray binds it again, so the relay link
        # (which names it) stays true.
        listen = f"{host}:{pick_port(host)}"
    forward = settings.forward
    if forward is not None and forward.endswith(":0"):
        forward_host = forward.rpartition(":")[0]
        forward = f"{forward_host}:{pick_port(forward_host)}"
    config = ClusterConfig(
        data_dir=str(pathlib.Path(settings.data_dir).resolve()),
        relay_key=bytes(key.verify_key),
        shards=settings.shards,
        etcd=settings.etcd,
        listen=listen,
        limits=RelayLimits.of(settings, policy_of(settings)),
        operator_key=bytes(operator.verify_key),
        metrics=settings.metrics,
        traces=_traces(settings.traces),
        insecure=settings.insecure,
        etcd_tls=tuple(str(pathlib.Path(p).resolve()) if p else None
                       for p in (settings.etcd_ca, settings.etcd_cert, settings.etcd_key)),
        store=settings.store,
        forward=forward, forward_private=settings.forward_private, forward_source=settings.forward_source,
        forward_per_minute=settings.forward_per_minute, access_log=settings.access_log, gateways=settings.gateways,
    )
    asyncio.run(_prepare_store(config))
    joined = False
    if ray_init and not ray.is_initialized():
        if settings.ray_address:
            join_ray(settings.ray_address)
            joined = True
        else:
            init_local_ray()
    nodes = factory.relay_node_cpus()
    if not nodes:
        raise ChatRelayError(Reason.UNAVAILABLE, (
            f"no Ray node offers the {factory.RELAY_RESOURCE!r} resource: start the relay workers with "
            f"--resources='{{\"{factory.RELAY_RESOURCE}\": {factory.RELAY_RESOURCE_UNITS}}}'"
        ))
    places = sorted(_gateway_places(config, nodes))  # the first node's first gateway first
    # The last gateway's metrics port (with --gateways 0, known only now): the others' are below it.
    gateway_addresses(config.listen, config.metrics, {}, max(index for _, index in places))
    shared = _shared(places)
    if not settings.ray_address and shared:  # bound with SO_REUSEPORT: refused taken, as one gateway's is
        refuse_taken(listen)
    shards = [factory.start_shard(i, config, LocalStorage()) for i in range(config.shards)]
    ray.get([s.ready.remote() for s in shards])
    gateways = {place: _start_gateway(config, place, shared) for place in places}
    ports = ray.get([g.start.remote() for g in gateways.values()])
    addresses = ray.get([g.address.remote() for g in gateways.values()])
    hosts = settings.advertise.split(",") if settings.advertise else sorted(set(addresses))[: links.MAX_HOSTS]
    forwarding = sorted({a for a in ray.get([g.forward_address.remote() for g in gateways.values()]) if a})
    bundle = links.relay_link(key, settings.relay_name, hosts, pin=pin, forward_hosts=forwarding[: links.MAX_HOSTS])
    asyncio.run(_store_relay_link(config, key, bundle))
    identity.write_private(pathlib.Path(settings.data_dir) / identity.LINK_FILE, f"{bundle.link}\n".encode())
    relay = RunningRelay(
        config=config, port=ports[0], link=str(bundle.link), shards=shards, gateway=gateways[places[0]],
        gateways=gateways, joined=joined, addresses=addresses, pin=pin,
    )
    threading.Thread(target=_supervise, args=(relay,), name="gateway-supervisor", daemon=True).start()
    return relay


SUPERVISE_S = 1.0
RESTARTING_S = 0.1  # the next round, after one that found a gateway restarting (its clients wait)
GONE_WAIT_S = 5.0  # for killed gateways to be gone before their shards are killed
GONE_POLL_S = 0.05


def _supervise(relay: RunningRelay) -> None:
    """Every second until the relay stops (a tenth of one after a round that failed, a
    gateway restarting): a relay node that joined gets its gateways; the gateways of a node
    that is gone are let go; and every gateway is asked to serve (Ray restarts a gateway
    actor that died, but only `start` makes it serve again). A Ray session that is gone
    (a Ray Client one that did not reconnect) stops the relay, saying why in
    `relay.lost`: its actors went with the session, and a restart starts them again."""
    import ray

    from chatrelay.actors import factory

    wait = SUPERVISE_S
    while not relay.stopping.wait(wait):
        if not ray.is_initialized():  # Ray Client gave up reconnecting: the session's actors are gone
            relay.lost = ("its Ray session is gone (Ray Client did not reconnect in time), and the relay's "
                          "shards and gateways with it")
            relay.stopping.set()
            return
        try:
            places = _gateway_places(relay.config, factory.relay_node_cpus())
            shared = _shared(places)
            for place in places - set(relay.gateways):
                relay.gateways[place] = _start_gateway(relay.config, place, shared)
            for place in set(relay.gateways) - places:
                ray.kill(relay.gateways.pop(place), no_restart=True)
            ray.get([g.start.remote() for g in relay.gateways.values()], timeout=30)
            wait = SUPERVISE_S
        except Exception:  # restarting, or Ray going down: try again soon
            wait = RESTARTING_S


def _gateway_places(config: ClusterConfig, node_cpus: dict[str, int]) -> set[tuple[str, int]]:
    """(node id, index) of every gateway the relay runs: --gateways on each node (0: one
    per CPU of that node)."""
    from chatrelay.actors import factory

    return {(node, i) for node, cpus in node_cpus.items() for i in range(factory.gateways_of(config, cpus))}


def _shared(places) -> set[str]:
    """The nodes that run more than one gateway: theirs share the node's port."""
    return {node for node, index in places if index > 0}


def _start_gateway(config: ClusterConfig, place: tuple[str, int], shared: set[str]):
    from chatrelay.actors import factory

    return factory.start_gateway(GatewayActor, config, *place, share_port=place[0] in shared)


async def _prepare_store(config: ClusterConfig) -> None:
    failures: tuple = (OSError,)
    if config.store:
        import asyncpg

        failures = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
    try:
        await prepare_store(config)
    except failures as exc:  # PostgreSQL not there, or refusing us: the operator's to fix, said in one line
        raise ChatRelayError(Reason.UNAVAILABLE, f"cannot open the store at {redact(config.store or '')}: {exc}") from None


async def _store_relay_link(config: ClusterConfig, key: SigningKey, bundle: links.LinkBundle) -> None:
    registry = open_registry(config)
    try:
        await LinkStore(registry).put(bundle.lookup_id, LinkRecord(owner=bytes(key.verify_key), data=bundle.ciphertext, version=bundle.version))
        await registry.put(records.RELAY_LINK, str(bundle.link).encode())
    finally:
        await registry.close()


def _kill(actors: list) -> None:
    import ray

    for actor in actors:
        try:
            ray.kill(actor, no_restart=True)
        except Exception:  # its node is gone already
            pass


def _gone(actors: list, within_s: float) -> None:
    """Wait until each killed actor is dead (a call to it fails), at most `within_s` in all.
    A gateway still alive when its shards are killed sees its calls to them (a group
    tail's long poll) fail, and Ray logs each as failed and retried."""
    import ray

    deadline = time.monotonic() + within_s
    for actor in actors:
        while (left := deadline - time.monotonic()) > 0:
            try:
                ray.get(actor.__ray_ready__.remote(), timeout=left)
            except Exception:  # dead (or the wait is over)
                break
            time.sleep(GONE_POLL_S)  # the kill not through yet


def stop(relay: RunningRelay, *, ray_shutdown: bool = True) -> None:
    import ray

    relay.stopping.set()
    gateways = list(relay.gateways.values()) or [relay.gateway]
    try:
        ray.get([g.stop.remote() for g in gateways], timeout=10)
    except Exception:  # stopping anyway
        pass
    from chatrelay.actors import factory

    try:
        own = factory.own_shards(relay.config)
    except Exception:  # Ray going down: nothing more to stop
        own = []
    shards = [*relay.shards, *own]
    try:  # leases let go, so that the next start serves at once
        ray.get([s.release.remote() for s in shards], timeout=10)
    except Exception:  # stopping anyway: unreleased leases run out by themselves
        pass
    _kill(gateways)
    _gone(gateways, GONE_WAIT_S)  # their calls to the shards go with them, not failed and retried
    _kill(shards)
    if ray_shutdown:
        ray.shutdown()  # a joined cluster stays up: only this driver leaves it
