"""Registry on etcd v3 through `aetcd` (grpc.aio based).

The client is wrapped here and nowhere else, so it can be replaced. Keys are kept under
a namespace prefix, so several clusters (or tests) can share one etcd.
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import urllib.parse
from dataclasses import dataclass
from typing import AsyncIterator

import aetcd
import grpc
from aetcd import rpc, watcher

from chatrelay.actors.registry import (
    Compare, Delete, Entry, EventKind, Get, Op, Put, Target, TxnResult, WatchEvent, prefix_end,
)
from chatrelay import tls
from chatrelay.errors import ChatRelayError, Reason


def parse_endpoint(url: str) -> tuple[str, int]:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ChatRelayError(Reason.MALFORMED, f"etcd URL must be http://HOST:PORT, got {url!r}")
    return parsed.hostname, parsed.port or 2379


def parse_endpoints(urls: str) -> tuple[str, list[tuple[str, int]]]:
    """`https://a:2379,https://b:2379` -> ("https", [(a, 2379), (b, 2379)]): the members of
    one etcd cluster, in one scheme."""
    parts = [u.strip() for u in urls.split(",")]
    schemes = {urllib.parse.urlparse(u).scheme for u in parts}
    if len(schemes) != 1:
        raise ChatRelayError(Reason.MALFORMED, f"etcd URLs must all be http:// or all https://, got {urls!r}")
    return schemes.pop(), [parse_endpoint(u) for u in parts]


def channel_target(endpoints: list[tuple[str, int]]) -> str:
    """A gRPC target for etcd's members (see `tls.failover_target`)."""
    return tls.failover_target([f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in endpoints])


@dataclass(frozen=True, slots=True)
class EtcdTls:
    """PEM files for TLS to etcd: the CA its members' certificates chain to (else the
    system's roots), and this relay's client certificate and key, for an etcd started
    with --client-cert-auth. Paths, read where the registry is opened: no key travels."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: str | None) -> bytes | None:
            if path is None:
                return None
            try:
                return pathlib.Path(path).read_bytes()
            except OSError as exc:
                raise ChatRelayError(Reason.MALFORMED, f"cannot read the etcd TLS file {path}: {exc.strerror}") from None
        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca), private_key=read(self.key), certificate_chain=read(self.cert),
        )


class _Client(aetcd.Client):
    """aetcd's client on a channel made here: aetcd itself opens plaintext channels to a
    single host only."""

    def __init__(self, target: str, credentials: grpc.ChannelCredentials | None, timeout: int) -> None:
        super().__init__(timeout=timeout)
        self._target = target
        self._credentials = credentials

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        if self._is_connecting:  # another task is connecting: wait for it, as aetcd does
            await asyncio.wait_for(self._connected.wait(), self._connect_wait_timeout)
            return
        try:
            self._is_connecting = True
            if self._credentials is None:
                self.channel = grpc.aio.insecure_channel(self._target)
            else:
                self.channel = grpc.aio.secure_channel(self._target, self._credentials)
            self.kvstub = rpc.KVStub(self.channel)
            self.clusterstub = rpc.ClusterStub(self.channel)
            self.leasestub = rpc.LeaseStub(self.channel)
            self.maintenancestub = rpc.MaintenanceStub(self.channel)
            self._watcher = watcher.Watcher(rpc.WatchStub(self.channel), timeout=self._timeout, metadata=self.metadata)
            self._connected.set()
        finally:
            self._is_connecting = False


class EtcdRegistry:
    def __init__(self, url: str, namespace: bytes = b"/chatrelay/", timeout: int = 10, tls: EtcdTls | None = None) -> None:
        scheme, endpoints = parse_endpoints(url)
        if tls is not None and scheme != "https":
            raise ChatRelayError(Reason.MALFORMED, f"etcd TLS files are for https:// URLs, got {url!r}")
        self.url = url
        self.namespace = namespace
        credentials = (tls or EtcdTls()).credentials() if scheme == "https" else None
        self._client = _Client(channel_target(endpoints), credentials, timeout)

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
