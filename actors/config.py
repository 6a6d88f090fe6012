"""What every actor of one relay needs to find its state: passed to actors at creation."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from chatrelay.actors.message_log import MessageLog
from chatrelay.actors.policy import RelayLimits
from chatrelay.actors.registry import Registry


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Derived from the relay's Settings by `chatrelay up` (cluster/up.py), with the keys
    and the ports it settled on; every default is in Settings."""

    data_dir: str
    relay_key_seed: bytes
    shards: int
    etcd: str | None
    listen: str
    limits: RelayLimits
    operator_key: bytes | None  # the public key admin requests must be signed by
    metrics: str | None  # HOST:PORT of the gateway's Prometheus endpoint
    traces: str | None  # the folder every relay process writes its spans to

    def __repr__(self) -> str:  # the seed stays out of logs
        return f"ClusterConfig(data_dir={self.data_dir!r}, shards={self.shards}, etcd={self.etcd!r})"

    __str__ = __repr__

    @property
    def relay_key(self) -> bytes:
        from nacl.signing import SigningKey

        return bytes(SigningKey(self.relay_key_seed).verify_key)

    @property
    def etcd_namespace(self) -> bytes:
        """One relay's keys in a shared etcd: named by its identity, not by any group."""
        return b"/chatrelay/" + hashlib.sha256(self.relay_key).hexdigest()[:16].encode() + b"/"


class Storage(Protocol):
    """Opens a relay's backends in the process that uses them (a shard, a gateway). The
    backends live in `cluster/`; the relay logic knows only their interfaces."""

    def registry(self, config: ClusterConfig) -> Registry: ...

    def message_log(self, config: ClusterConfig) -> MessageLog: ...
