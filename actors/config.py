"""What every actor of one relay needs to find its state: passed to actors at creation."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from chatrelay.actors.message_log import MessageLog
from chatrelay.actors.policy import RelayLimits
from chatrelay.actors.registry import Registry

if TYPE_CHECKING:
    from nacl.signing import SigningKey

    from chatrelay.actors.member_store import MemberStore


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Derived from the relay's Settings by `chatrelay up` (cluster/up.py), with the keys
    and the ports it settled on; every default is in Settings."""

    data_dir: str
    relay_key: bytes  # the identity's public key; its seed stays in the data dir (Storage.identity)
    shards: int
    etcd: str | None
    listen: str
    limits: RelayLimits
    operator_key: bytes | None  # the public key admin requests must be signed by
    metrics: str | None  # HOST:PORT of the gateway's Prometheus endpoint
    traces: str | None  # the folder every relay process writes its spans to, or otlp://HOST:PORT
    insecure: bool = False  # plaintext gRPC (`up --insecure`); else TLS with the data dir's key
    etcd_tls: tuple[str | None, str | None, str | None] = (None, None, None)  # CA, cert, key: paths on each node
    store: str | None = None  # a postgresql:// URL for posts and members; else the data dir's SQLite
    forward: str | None = None  # HOST:PORT each gateway forwards clients' connections on (cluster/forwarder.py)
    forward_private: bool = False
    forward_source: str | None = None
    forward_per_minute: int = 60
    access_log: bool = False  # every call, with its peer's address, to access.log in the data dir
    gateways: int = 1  # gateway processes on each relay node, sharing its port; 0 = one per CPU

    def __repr__(self) -> str:
        return (f"ClusterConfig(data_dir={self.data_dir!r}, shards={self.shards}, gateways={self.gateways}, "
                f"etcd={self.etcd!r})")

    __str__ = __repr__

    @property
    def store_schema(self) -> str:
        """One relay's tables in a shared PostgreSQL: a schema named by its identity."""
        return "relay_" + hashlib.sha256(self.relay_key).hexdigest()[:16]

    @property
    def etcd_namespace(self) -> bytes:
        """One relay's keys in a shared etcd: named by its identity, not by any group."""
        return b"/chatrelay/" + hashlib.sha256(self.relay_key).hexdigest()[:16].encode() + b"/"


class Storage(Protocol):
    """Opens a relay's backends in the process that uses them (a shard, a gateway), and
    reads its identity key there: no secret travels as an actor argument. The backends
    live in `cluster/`; the relay logic knows only their interfaces."""

    def identity(self, config: ClusterConfig) -> "SigningKey": ...

    def registry(self, config: ClusterConfig) -> Registry: ...

    def message_log(self, config: ClusterConfig) -> MessageLog: ...

    def member_store(self, config: ClusterConfig) -> "MemberStore": ...
