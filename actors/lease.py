"""A shard's lease: each shard index is served by one live instance only. It holds the
key `shards/<index>` under a registry lease, renewed every second, and serves only while
its last renewal is recent enough. A new instance waits until the old lease has run out;
one that Ray restarted because the old one died (`take_over`) revokes the old lease at
once instead. That is safe even if the old one lives on where Ray cannot see it (a node
cut off): its lease is gone, so it stops serving at its next renewal, and before then the
store refuses its writes (every group write carries a fence the new instance's claims
supersede: `actors/message_log.py`)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Callable

from chatrelay.actors.registry import Put, Registry, absent
from chatrelay.errors import ChatRelayError, Reason

log = logging.getLogger(__name__)

LEASE_TTL_S = 5
LEASE_REFRESH_S = 1.0
LEASE_MARGIN_S = 2.0  # stop serving this long before the lease could run out


class ShardLease:
    def __init__(self, registry: Registry, key: bytes, on_lost: Callable[[], None], take_over: bool = False) -> None:
        self.registry = registry
        self.key = key
        self.take_over = take_over  # the previous instance is dead: revoke its lease, once
        self.on_lost = on_lost  # the lease ran out in the registry: let the groups go
        self.lease: int | None = None
        self.until = 0.0  # monotonic time until which this instance may serve
        self.held = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._hold(), name="shard-lease")

    async def _hold(self) -> None:
        while True:
            sent = time.monotonic()
            try:
                if self.lease is None:
                    lease = await self.registry.lease_grant(LEASE_TTL_S)
                    result = await self.registry.transaction(
                        [absent(self.key)], [Put(self.key, str(os.getpid()).encode(), lease=lease)]
                    )
                    if result.succeeded:
                        self.take_over = False  # only the first time: never from a live successor
                        self.lease = lease
                        self.until = sent + LEASE_TTL_S - LEASE_MARGIN_S
                        self.held.set()
                    else:  # another instance holds it, live or until its lease runs out
                        await self.registry.lease_revoke(lease)
                        if self.take_over:
                            self.take_over = False
                            await self._revoke_holder()
                            continue
                else:
                    await self.registry.lease_refresh(self.lease)
                    self.until = sent + LEASE_TTL_S - LEASE_MARGIN_S
            except asyncio.CancelledError:
                raise
            except LookupError:  # our lease ran out in the registry: another may serve now
                self.lease = None
                self.held.clear()
                self.on_lost()
            except Exception as exc:  # the registry unreachable: the deadline fences us
                log.warning("shard lease not renewed: %s", exc)
            await asyncio.sleep(LEASE_REFRESH_S)

    async def _revoke_holder(self) -> None:
        entry = await self.registry.get(self.key)
        if entry is not None and entry.lease:
            log.warning("taking over the lease of %s from the instance before (pid %s)",
                        self.key.decode(), entry.value.decode(errors="replace"))
            try:
                await self.registry.lease_revoke(entry.lease)
            except LookupError:  # it ran out meanwhile: as good
                pass

    async def check(self) -> None:
        """Serve only while holding the lease. A call that comes while a new instance
        waits out an earlier one's lease waits too (bounded), as for a restart."""
        if self.lease is None:
            try:
                await asyncio.wait_for(self.held.wait(), LEASE_TTL_S * 2)
            except asyncio.TimeoutError:
                pass
        if self.lease is None or time.monotonic() > self.until:
            raise ChatRelayError(
                Reason.UNAVAILABLE, "this relay shard does not hold its registry lease right now; retry"
            )

    async def confirm(self) -> None:
        """Renew now, not at the next round: serve on only if the registry still says this
        instance holds the lease (asked when the store has refused a write: another
        instance may have taken the shard over)."""
        if self.lease is not None:
            sent = time.monotonic()
            try:
                await self.registry.lease_refresh(self.lease)
                self.until = sent + LEASE_TTL_S - LEASE_MARGIN_S
                return
            except LookupError:
                self.lease = None
                self.held.clear()
                self.on_lost()
        raise ChatRelayError(Reason.UNAVAILABLE, "this relay shard does not hold its registry lease right now; retry")

    async def release(self) -> None:
        """Let the lease go (a clean stop), so the next instance serves at once."""
        if self._task is not None:
            self._task.cancel()
        lease, self.lease = self.lease, None
        self.held.clear()
        if lease is not None:
            await self.registry.lease_revoke(lease)
