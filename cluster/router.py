"""Routing: which shard serves a group address, and the call to it.

The table comes from the registry's placement records, cached and kept fresh by a watch.
A call rides out a shard restarting, and follows a group that moves between shards
(the old shard answers Moved; the placement is read again). Groups' post batches bound
for one shard in the same turn of the loop go in one call (`post`), and so do their
other calls and reader checks (`gathered`). What arrives while such a call is going on
waits for it and goes in the next; a second call at once takes only what has waited
SHARD_SPARE_S or fills a batch (`Coalescer`'s spares). Reader checks go one call at a
time to a shard, apart from the other calls: a call of them costs the shard and the
gateway about 0.8 and 0.5 ms whatever it carries, and about 25 us more a check, so in a
storm of streams opening (calls of CHECKS_HOT checks or more) the next call waits up to
CHECKS_FILL_S for more.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ray.exceptions import ActorUnavailableError, RayActorError

from chatrelay.actors import records
from chatrelay.actors.calls import (
    CheckReader, Done, GroupCall, Moved, MovedAway, PostBatch, ShardCall, ShardCalls, ShardPosts, pack, unwrap,
)
from chatrelay.actors.factory import node_id
from chatrelay.actors.placement import home_shard
from chatrelay.actors.registry import EventKind, Registry
from chatrelay.actors.shard_socket import ShardSocketClient, SocketGone
from chatrelay.cluster.coalescer import Coalescer
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.retry import Backoff

log = logging.getLogger(__name__)

SHARD_RESTARTS = Backoff(first_s=0.05, max_s=1.0, attempts=20)
SHARD_GONE = (RayActorError, ActorUnavailableError)  # a shard restarting or stopped
MOVES = Backoff(first_s=0.01, max_s=0.5, attempts=40)  # about 15 s of following a group that moves
SHARD_POST_CALLS = 2  # calls carrying posts to one shard at a time (the second a spare: SHARD_SPARE_S)
SHARD_POST_BATCHES = 256  # groups' batches in one of them
SHARD_CALLS = 2  # calls carrying groups' other calls to one shard at a time
SHARD_CALL_ITEMS = 256  # groups' calls in one of them
SHARD_SPARE_S = 0.005  # a second call to a shard only for items that waited this long (or a full batch)
SHARD_CHECKS = 256  # reader checks in one call
CHECKS_HOT = 8  # a call of this many checks or more: streams are opening in a storm
CHECKS_FILL_S = 0.02  # then the next waits this long for more (or a full call)
SOCKET_RETRY_S = 10.0  # a shard's socket that could not be opened is asked for again after this


class ShardNotRunning(ChatRelayError):
    """A shard of a group's own that is not (or no longer) running: where the placement
    read was stale, reading it again finds where the group is served now."""


class ShardRouter:
    """Address -> shard index, from the registry's placement records."""

    def __init__(self, registry: Registry, shards: list, find_shard=None) -> None:
        self.registry = registry
        self.shards = shards
        self.find_shard = find_shard  # index -> handle, for shards of their own beyond `shards`
        self.extra: dict[int, object] = {}
        self.table: dict[str, int] = {}
        self.node = node_id()  # shards on this node are called through their Unix socket
        self.sockets: dict[int, asyncio.Future] = {}  # index -> the opening of its socket: a client, or None
        self._socket_retry: dict[int, float] = {}  # index -> when to ask for its socket again
        self.socket_calls = 0  # calls answered through a shard's socket
        self._watch: asyncio.Task | None = None
        self._posts = Coalescer(self._send_posts, in_flight=SHARD_POST_CALLS, batch=SHARD_POST_BATCHES, linger=True,
                                spare_after_s=SHARD_SPARE_S)
        self._calls = Coalescer(self._send_calls, in_flight=SHARD_CALLS, batch=SHARD_CALL_ITEMS, linger=True,
                                spare_after_s=SHARD_SPARE_S)
        self._checks = Coalescer(self._send_calls, batch=SHARD_CHECKS, linger=True, hot=(CHECKS_HOT, CHECKS_FILL_S))

    def lane_figures(self) -> dict[str, tuple[int, int]]:
        """Calls made to the shards so far and the items they carried, by kind:
        {"posts": (calls, post batches), "calls": (calls, group calls), "checks": ...}."""
        return {kind: (lanes.batches, lanes.calls)
                for kind, lanes in (("posts", self._posts), ("calls", self._calls), ("checks", self._checks))}

    def start_watch(self) -> None:
        """Keep the cached table fresh when groups are placed or moved."""
        self._watch = asyncio.create_task(self._follow(), name="placement-watch")

    async def _follow(self) -> None:
        while True:
            try:
                async for event in self.registry.watch_prefix(records.PLACEMENT_PREFIX):
                    address = event.key[len(records.PLACEMENT_PREFIX):].decode()
                    if event.kind is EventKind.PUT:
                        self.table[address] = int(event.value)
                    else:
                        self.table.pop(address, None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the registry restarting: forget the cache, watch again
                log.warning("placement watch broke, restarting: %s", exc)
                self.table.clear()
                await asyncio.sleep(1.0)

    def close(self) -> None:
        if self._watch:
            self._watch.cancel()
        for index in list(self.sockets):
            self._drop_socket(index)
        self._posts.close()
        self._calls.close()
        self._checks.close()

    def queue_shard(self, address: str) -> int:
        """Queues of 1:1 connections are placed by their address's hash and never move."""
        return home_shard(records.check_address(address, "queue").encode(), len(self.shards))

    async def index(self, address: str) -> int:
        records.check_address(address)
        index = self.table.get(address)
        if index is None:
            try:
                entry = await self.registry.get(records.placement_key(address))
            except Exception as exc:  # the registry restarting (etcd down): callers retry
                raise ChatRelayError(Reason.UNAVAILABLE, f"registry unavailable: {type(exc).__name__}") from None
            if entry is None:
                raise ChatRelayError(Reason.UNKNOWN_ADDRESS, "no group at this address")
            index = int(entry.value)
            self.table[address] = index
        return index

    async def call(self, index: int, call: ShardCall):
        """Call a shard, riding out its restart; refusals come back as ChatRelayError."""
        packed = pack(call)

        async def once():
            socket = self._socket(index)
            if socket is not None:
                try:
                    outcome = await socket.call(packed)
                    self.socket_calls += 1
                    return outcome
                except SocketGone:  # the shard stopped or restarted: Ray says which
                    self._drop_socket(index, socket)
            try:
                return await self._handle(index).serve.remote(packed)
            except SHARD_GONE:
                self.extra.pop(index, None)  # a shard of its own that stopped: look it up again
                self._drop_socket(index)
                raise
        try:
            return unwrap(await SHARD_RESTARTS.run(once, retry_on=lambda exc: isinstance(exc, SHARD_GONE)))
        except SHARD_GONE as exc:
            raise ChatRelayError(Reason.UNAVAILABLE, f"relay shard unavailable: {exc}") from None

    def _socket(self, index: int) -> ShardSocketClient | None:
        """The shard's socket when it is open; else None (through Ray), and the socket
        asked for, unless it was lately refused."""
        opening = self.sockets.get(index)
        if opening is None:
            if not self.node or time.monotonic() < self._socket_retry.get(index, 0.0):
                return None
            self.sockets[index] = asyncio.ensure_future(self._open_socket(index))
            return None
        if not opening.done():
            return None
        client = None if opening.cancelled() else opening.result()
        if client is None or client.closed is not None:
            self._drop_socket(index)
            if client is None:
                self._socket_retry[index] = time.monotonic() + SOCKET_RETRY_S
            return None
        return client

    async def _open_socket(self, index: int) -> ShardSocketClient | None:
        try:
            node, path = await self._handle(index).socket_endpoint.remote()
            if node != self.node:  # another node's shard, or one outside Ray: through Ray
                return None
            return await ShardSocketClient.connect(path)
        except Exception as exc:  # not running (yet), or gone: through Ray, asked again later
            log.debug("relay shard %d: no socket (%s); calls go through Ray", index, exc)
            return None

    def _drop_socket(self, index: int, only: ShardSocketClient | None = None) -> None:
        """Close the shard's socket (or stop opening it); with `only`, if it is still that
        one (a socket opened since by another call stays)."""
        opening = self.sockets.get(index)
        if opening is None or only is not None and not (
                opening.done() and not opening.cancelled() and opening.result() is only):
            return
        del self.sockets[index]
        if not opening.done():
            opening.cancel()
        elif not opening.cancelled() and opening.result() is not None:
            opening.result().close()

    def _handle(self, index: int):
        if 0 <= index < len(self.shards):
            return self.shards[index]
        handle = self.extra.get(index)
        if handle is None:
            try:
                handle = self.extra[index] = self.find_shard(index)
            except Exception:  # not started (yet), or no finder: the caller may retry
                raise ShardNotRunning(Reason.UNAVAILABLE, f"relay shard {index} is not running") from None
        return handle

    async def call_address(self, address: str, call: ShardCall):
        """Call the shard serving `address`; while the group moves between shards, read
        its placement again and follow it."""
        return await self._following(address, lambda index: self.call(index, call))

    async def post(self, batch: PostBatch) -> list:
        """A group's post batch, in one call with the batches other groups send to the same
        shard in this turn of the loop (following the group if it moves): its outcomes."""
        return await self._following(batch.address, lambda index: self._posts(index, batch))

    async def gathered(self, address: str, call: GroupCall | CheckReader):
        """A group call or reader check, in one call with those of its kind bound for the
        same shard in this turn of the loop (following the group if it moves): its answer."""
        lanes = self._checks if isinstance(call, CheckReader) else self._calls
        return await self._following(address, lambda index: lanes(index, call))

    async def _send_posts(self, index: int, batches: list[PostBatch]) -> list:
        return _results(index, await self.call(index, ShardPosts(tuple(batches))), len(batches), "post batches")

    async def _send_calls(self, index: int, calls: list) -> list:
        return _results(index, await self.call(index, ShardCalls(tuple(calls))), len(calls), "calls")

    async def _following(self, address: str, call_at):
        async def once():
            try:
                return await call_at(await self.index(address))
            except (Moved, ShardNotRunning):  # moved, or gone home from a shard that stopped
                self.table.pop(address, None)
                raise
        try:
            return await MOVES.run(once, retry_on=lambda exc: isinstance(exc, (Moved, ShardNotRunning)))
        except (Moved, ShardNotRunning):
            raise ChatRelayError(Reason.UNAVAILABLE, "the group is moving between relay shards; retry") from None


def _results(index: int, outcomes: tuple, sent: int, what: str) -> list:
    if len(outcomes) != sent:  # never from a shard of this version: no waiter is left hanging
        raise ChatRelayError(Reason.UNAVAILABLE, f"relay shard {index} answered {len(outcomes)} of {sent} {what}")
    return [_result(outcome) for outcome in outcomes]


def _result(outcome):
    """One batch's outcome as a waiter takes it: the value, or the exception refusing it."""
    if isinstance(outcome, Done):
        return outcome.value
    if isinstance(outcome, MovedAway):
        return Moved()
    return outcome.error()
