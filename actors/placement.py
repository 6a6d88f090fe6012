"""Which shard serves a group, and a shard's loaded groups.

A group's placement record in the registry names its shard: its home shard, chosen at
registration by its id, or a shard of its own while it is hot. A shard loads a group on
its first call, only when the placement names that shard, and hands it to another shard
with a compare-and-swap on the placement, so exactly one shard serves a group at any
moment.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from typing import Awaitable, Callable

from chatrelay.actors import records
from chatrelay.actors.calls import Moved
from chatrelay.actors.group_relay import GroupRelay, RelayContext
from chatrelay.actors.records import GroupRecord
from chatrelay.actors.registry import Put, absent, unchanged_since
from chatrelay.errors import ChatRelayError, Reason

log = logging.getLogger(__name__)

OWN_SHARDS = 1 << 20


def home_shard(group_id: bytes, shards: int) -> int:
    """The shard a group is placed on when it registers (and returns to when it cools)."""
    return zlib.crc32(group_id) % shards


def own_shard_index(shards: int, address: str) -> int:
    """The shard a hot group moves to: one of its own, named after its address."""
    return shards + zlib.crc32(address.encode()) % OWN_SHARDS


class ShardGroups:
    """The groups one shard serves, loaded on their first call. `ready()` is awaited
    before each call: it gives the shard's context once the shard may serve."""

    def __init__(self, index: int, ready: Callable[[], Awaitable[RelayContext]],
                 confirm: Callable[[], Awaitable[None]] | None = None) -> None:
        self.index = index
        self.ready = ready
        self.confirm = confirm  # asks the registry whether this shard still holds its lease
        self.loaded: dict[str, GroupRelay] = {}
        self._loading: dict[str, asyncio.Task] = {}
        self._moving: set[str] = set()
        self.moved_out = 0
        self.unloaded = 0  # groups let go for being idle

    def __len__(self) -> int:
        return len(self.loaded)

    async def get(self, address: str) -> GroupRelay:
        ctx = await self.ready()
        if address in self._moving:
            raise Moved()
        relay = self.loaded.get(address)
        if relay is not None and relay.fenced:
            # Another instance claimed it in the store: this one loads it again only if
            # it still holds its lease (else it is refused), and only where the placement
            # names this shard (else Moved).
            del self.loaded[address]
            relay = None
            if self.confirm is not None:
                await self.confirm()
        if relay is not None:
            relay.used = time.monotonic()
            return relay
        task = self._loading.get(address)
        if task is None:
            task = asyncio.create_task(self._load(ctx, address))
            self._loading[address] = task
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._loading.pop(address, None)

    async def _load(self, ctx: RelayContext, address: str) -> GroupRelay:
        registry = ctx.registry
        records.check_address(address)
        gid, placed = await asyncio.gather(
            registry.get(records.address_key(address)), registry.get(records.placement_key(address))
        )
        if gid is None:
            raise ChatRelayError(Reason.UNKNOWN_ADDRESS, "no group at this address")
        if placed is not None and int(placed.value) != self.index:
            raise Moved()  # the group is another shard's: only one serves it
        entry = await registry.get(records.group_key(bytes.fromhex(gid.value.decode())))
        if entry is None:
            raise ChatRelayError(Reason.UNKNOWN_ADDRESS, "no group at this address")
        relay = GroupRelay(ctx, GroupRecord.loads(entry.value), entry.mod_revision)
        await relay.start()
        self.loaded[address] = relay
        return relay

    def unload_idle(self, after_s: float) -> int:
        """Let go of the groups idle for `after_s` seconds (`GroupRelay.idle`); each loads
        again on its next call. A request that holds one let go finds its mailbox closed
        and is sent again (Moved), to the group loaded anew. How many were let go."""
        clock = time.monotonic()
        idle = [a for a, relay in self.loaded.items() if a not in self._moving and relay.idle(clock, after_s)]
        for address in idle:
            self.loaded.pop(address).mailbox.closing = True
        self.unloaded += len(idle)
        return len(idle)

    def let_go(self) -> None:
        """The shard may serve no more (its lease ran out): every group loads again later."""
        for relay in self.loaded.values():
            relay.mailbox.closing = True
        self.loaded.clear()

    async def move(self, address: str, to_index: int) -> int:
        """Hand a group this shard serves to shard `to_index`.

        The group takes no new requests and finishes those in its mailbox; then its
        placement record is switched, compared against the revision this shard read, so
        exactly one shard serves the group at any moment (callers in between are told
        Moved and retry). Posts are appended to the shared log only by the serving shard,
        so none is lost or reordered; the new shard continues the same sequence.
        """
        if not isinstance(to_index, int) or to_index < 0:
            raise ChatRelayError(Reason.MALFORMED, f"no relay shard {to_index!r}")
        if to_index == self.index:
            return self.index
        relay = await self.get(address)
        registry = relay.ctx.registry
        key = records.placement_key(address)
        self._moving.add(address)
        try:
            await relay.close_for_move()
            entry = await registry.get(key)
            if entry is not None and int(entry.value) != self.index:
                raise Moved()
            compare = [unchanged_since(key, entry.mod_revision)] if entry else [absent(key)]
            result = await registry.transaction(compare, [Put(key, str(to_index).encode())])
            if not result.succeeded:
                raise ChatRelayError(Reason.BUSY, "the group's placement changed meanwhile; retry")
        except BaseException:
            relay.mailbox.closing = False  # not moved: it stays here
            raise
        finally:
            self._moving.discard(address)
        self.loaded.pop(address, None)
        relay.wake_readers()
        self.moved_out += 1
        log.info("moved a group to shard %d", to_index)
        return to_index
