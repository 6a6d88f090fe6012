"""Registry on etcd v3 through `aetcd` (grpc.aio based).

The client is wrapped here and nowhere else, so it can be replaced. Keys are kept under
a namespace prefix, so several clusters (or tests) can share one etcd.
"""

from __future__ import annotations

import contextlib
import urllib.parse
from typing import AsyncIterator

import aetcd

from chatrelay.actors.registry import (
    Compare, Delete, Entry, EventKind, Get, Op, Put, Target, TxnResult, WatchEvent, prefix_end,
)
from chatrelay.errors import ChatRelayError, Reason


def parse_endpoint(url: str) -> tuple[str, int]:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ChatRelayError(Reason.MALFORMED, f"etcd URL must be http://HOST:PORT, got {url!r}")
    return parsed.hostname, parsed.port or 2379


class EtcdRegistry:
    def __init__(self, url: str, namespace: bytes = b"/chatrelay/", timeout: int = 10) -> None:
        host, port = parse_endpoint(url)
        self.url = url
        self.namespace = namespace
        self._client = aetcd.Client(host=host, port=port, timeout=timeout)

    def __str__(self) -> str:
        return f"etcd registry at {self.url} under {self.namespace!r}"

    def _k(self, key: bytes) -> bytes:
        return self.namespace + key

    def _entry(self, kv) -> Entry | None:
        if kv is None:
            return None
        return Entry(
            key=kv.key[len(self.namespace):], value=kv.value, create_revision=kv.create_revision,
            mod_revision=kv.mod_revision, version=kv.version, lease=kv.lease,
        )

    async def get(self, key: bytes) -> Entry | None:
        with _errors():
            return self._entry(await self._client.get(self._k(key)))

    async def get_prefix(self, prefix: bytes) -> list[Entry]:
        with _errors():
            result = await self._client.get_prefix(self._k(prefix), sort_order="ascend")
        return [self._entry(kv) for kv in result]

    async def put(self, key: bytes, value: bytes, lease: int = 0) -> int:
        with _errors(lease):
            result = await self._client.put(self._k(key), value, lease=lease or None)
        return result.header.revision

    async def delete(self, key: bytes) -> bool:
        with _errors():
            return await self._client.delete(self._k(key)) is not None

    def _compare(self, c: Compare):
        t = self._client.transactions
        key = self._k(c.key)
        target = {
            Target.CREATE: t.create, Target.MOD: t.mod, Target.VERSION: t.version, Target.VALUE: t.value,
        }[c.target](key)
        return target == c.value if c.equal else target != c.value

    def _op(self, op: Op):
        t = self._client.transactions
        if isinstance(op, Put):
            return t.put(self._k(op.key), op.value, lease=op.lease or None)
        if isinstance(op, Delete):
            return t.delete(self._k(op.key))
        if isinstance(op, Get):
            return t.get(self._k(op.key))
        raise TypeError(f"not a registry operation: {op!r}")

    async def transaction(
        self, compare: list[Compare], success: list[Op], failure: list[Op] | None = None
    ) -> TxnResult:
        if any(c.target is Target.VALUE and not isinstance(c.value, bytes) for c in compare):
            raise TypeError("value comparisons take bytes")
        with _errors():
            ok, responses = await self._client.transaction(
                compare=[self._compare(c) for c in compare],
                success=[self._op(op) for op in success],
                failure=[self._op(op) for op in failure or []],
            )
        gets = []
        revision = 0
        for response in responses:
            if isinstance(response, list):  # a Get: [(value, rtypes.Get)] or []
                gets.append(self._entry(response[0][1]) if response else None)
                if response:
                    revision = max(revision, response[0][1].header.revision)
            else:
                revision = max(revision, _header_revision(response))
        return TxnResult(succeeded=ok, gets=tuple(gets), revision=revision)

    async def lease_grant(self, ttl: int) -> int:
        with _errors():
            lease = await self._client.lease(ttl)
        return lease.id

    async def lease_refresh(self, lease: int) -> None:
        with _errors(lease):
            reply = await self._client.refresh_lease(lease)
        if reply is None or reply.TTL <= 0:
            raise LookupError(f"lease {lease} not found or expired")

    async def lease_revoke(self, lease: int) -> None:
        with _errors(lease):
            await self._client.revoke_lease(lease)

    async def watch_prefix(self, prefix: bytes, start_revision: int = 0) -> AsyncIterator[WatchEvent]:
        key = self._k(prefix)
        watch = await self._client.watch(
            key, range_end=prefix_end(key), start_revision=start_revision or None
        )
        try:
            async for event in watch:
                kind = EventKind.PUT if event.kind == "PUT" else EventKind.DELETE
                yield WatchEvent(
                    kind=kind, key=event.kv.key[len(self.namespace):],
                    value=event.kv.value if kind is EventKind.PUT else b"",
                    revision=event.kv.mod_revision,
                )
        finally:
            await watch.cancel()

    async def close(self) -> None:
        await self._client.close()


def _header_revision(response) -> int:
    for name in ("response_put", "response_delete_range", "response_txn"):
        if response.HasField(name):
            return getattr(response, name).header.revision
    return 0



@contextlib.contextmanager
def _errors(lease: int = 0):
    """etcd's failures said as the embedded registry says them: NOT_FOUND for a put on a
    lease that expired is a LookupError; etcd unreachable (down, restarting) is
    UNAVAILABLE, which callers pass on and clients try again."""
    try:
        yield
    except (aetcd.ConnectionFailedError, aetcd.ConnectionTimeoutError) as exc:
        raise ChatRelayError(
            Reason.UNAVAILABLE, f"the relay's registry is unavailable ({type(exc).__name__}); retry"
        ) from exc
    except aetcd.ClientError as exc:
        if "lease not found" in str(exc):
            raise LookupError(f"lease {lease or ''} not found or expired".replace("  ", " ")) from exc
        raise
