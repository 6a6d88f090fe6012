"""The registry: small, strongly consistent state (registrations, placement, leases).

`Registry` is the interface; `EtcdRegistry` (cluster/registry_etcd.py) serves clusters,
`SqliteRegistry` (cluster/registry_sqlite.py) the single-node default. Both follow etcd's
model: one revision per write, compare-and-swap transactions, leases, prefix watches.
One conformance suite (tests/integration/test_registry.py) runs against both.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import AsyncIterator, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Entry:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0

    def __str__(self) -> str:
        return f"{self.key!r}@{self.mod_revision}"


class Target(enum.StrEnum):
    CREATE = "create"    # create_revision; 0 when the key is absent
    MOD = "mod"          # mod_revision
    VERSION = "version"  # number of writes since creation; 0 when absent
    VALUE = "value"


@dataclass(frozen=True, slots=True)
class Compare:
    """`key`'s `target` equals (`equal=True`) or differs from `value`."""

    key: bytes
    target: Target
    value: int | bytes
    equal: bool = True

    def holds(self, entry: Entry | None) -> bool:
        if self.target is Target.VALUE:
            actual: int | bytes | None = None if entry is None else entry.value
        elif entry is None:
            actual = 0
        else:
            actual = {
                Target.CREATE: entry.create_revision,
                Target.MOD: entry.mod_revision,
                Target.VERSION: entry.version,
            }[self.target]
        return (actual == self.value) == self.equal


def absent(key: bytes) -> Compare:
    return Compare(key, Target.CREATE, 0)


def unchanged_since(key: bytes, mod_revision: int) -> Compare:
    return Compare(key, Target.MOD, mod_revision)


@dataclass(frozen=True, slots=True)
class Put:
    key: bytes
    value: bytes
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Delete:
    key: bytes


@dataclass(frozen=True, slots=True)
class Get:
    key: bytes


Op = Put | Delete | Get


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    gets: tuple[Entry | None, ...]  # one per Get in the branch that ran, in order
    revision: int


class EventKind(enum.StrEnum):
    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    kind: EventKind
    key: bytes
    value: bytes  # empty for DELETE
    revision: int


@runtime_checkable
class Registry(Protocol):
    async def get(self, key: bytes) -> Entry | None: ...

    async def get_prefix(self, prefix: bytes) -> list[Entry]: ...

    async def put(self, key: bytes, value: bytes, lease: int = 0) -> int: ...

    async def delete(self, key: bytes) -> bool: ...

    async def transaction(
        self, compare: list[Compare], success: list[Op], failure: list[Op] | None = None
    ) -> TxnResult: ...

    async def lease_grant(self, ttl: int) -> int: ...

    async def lease_refresh(self, lease: int) -> None: ...

    async def lease_revoke(self, lease: int) -> None: ...

    def watch_prefix(self, prefix: bytes, start_revision: int = 0) -> AsyncIterator[WatchEvent]: ...

    async def close(self) -> None: ...


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key starting with `prefix` (etcd's range_end)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"
