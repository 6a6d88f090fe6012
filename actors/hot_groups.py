"""The hot-group policy: a group past `hot_posts_per_s` moves from its home shard to a
shard of its own; once it has stayed under half of that for COOL_CHECKS windows in a
row, it goes home and that shard stops, so that it costs no process while it is quiet."""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from chatrelay.actors.placement import ShardGroups, home_shard, own_shard_index

log = logging.getLogger(__name__)

COOL_CHECKS = 6  # windows in a row under half the hot threshold before a group goes home


class HotGroups:
    """`start_shard(index)` starts a shard of its own and returns once it serves;
    `stop(self)` stops the shard this policy runs in."""

    def __init__(self, groups: ShardGroups, shards: int, hot_posts_per_s: float, window_s: float,
                 start_shard: Callable[[int], Awaitable[object]], stop: Callable[[], Awaitable[None]]) -> None:
        self.groups = groups
        self.shards = shards  # base shards, from 0; shards of their own come after
        self.hot = hot_posts_per_s
        self.window_s = window_s
        self.start_shard = start_shard
        self.stop = stop
        self.own_shards: dict[int, object] = {}  # held: Ray stops an actor once its creator's last handle goes

    async def run(self) -> None:
        if self.groups.index < self.shards:
            await self._every_window(self._move_hot, "moving a hot group failed (it stays where it was)")
        else:
            self._cool = 0
            await self._every_window(self._return_when_cool, "returning a cooled group failed (it stays here)")

    async def _every_window(self, act, failed: str) -> None:
        """Every window: `await act(rates)`, with the posts/s of each group loaded through
        the whole last window, until `act` returns True. A failed round is logged and the
        next window tries again."""
        seen: dict[str, int] = {}
        while True:
            await asyncio.sleep(self.window_s)
            try:
                counts = {a: g.posts_accepted for a, g in self.groups.loaded.items()}
                rates = {a: (n - seen[a]) / self.window_s for a, n in counts.items() if a in seen}
                seen = counts
                if await act(rates):
                    return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(failed)

    async def _move_hot(self, rates: dict[str, float]) -> bool:
        for address, rate in rates.items():
            if rate < self.hot:
                continue
            if len(self.groups) < 2:
                break  # alone here already
            target = own_shard_index(self.shards, address)
            self.own_shards[target] = await self.start_shard(target)
            await self.groups.move(address, target)
        return False

    async def _return_when_cool(self, rates: dict[str, float]) -> bool:
        hot = any(r >= self.hot / 2 for r in rates.values())
        self._cool = 0 if hot or not len(self.groups) else self._cool + 1
        if self._cool < COOL_CHECKS:
            return False
        for address, relay in list(self.groups.loaded.items()):
            await self.groups.move(address, home_shard(relay.record.group_id, self.shards))
        if len(self.groups):
            return False
        log.info("relay shard %d: its groups went home; stopping", self.groups.index)
        await self.stop()
        return True
