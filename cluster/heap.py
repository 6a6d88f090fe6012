"""The cyclic garbage collector of a gateway, whose heap is mostly long-lived: each open
stream holds its call, its generators and their frames, tens of objects that live as
long as it does, so 100,000 streams are millions of objects.

CPython's collector walks its oldest generation, every object, each time that
generation has grown by a quarter since the last such walk. A gateway whose streams
come back all at once grows it by far more than that: in a reconnect storm of 100,000
subscribers, the restarted gateway made 17 of these walks, 12.5 s of its CPU (README,
the reconnect storm; 2.3 s with this). Objects freed by their reference counts, most of
a closed stream's, never need the collector.

So every FREEZE_S what is still alive is frozen (`gc.freeze()`, O(1)): the collector's
own passes then walk only what came since. Every FULL_S everything is unfrozen and
collected once in full, then frozen again, so that cycles among frozen objects that
became garbage are freed at most FULL_S late.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger(__name__)

FREEZE_S = 1.0  # how often what is alive is frozen
FULL_S = 300.0  # how often a full collection frees the cycles among frozen objects


class HeapKeeper:
    """Freezes the survivors every `freeze_s` and collects everything every `full_s`
    (from when it starts); `full_collections` and `freed` say what it did."""

    def __init__(self, freeze_s: float = FREEZE_S, full_s: float = FULL_S) -> None:
        if not 0 < freeze_s <= full_s:
            raise ValueError("freeze_s above 0 and at most full_s")
        self.freeze_s, self.full_s = freeze_s, full_s
        self.last_full = time.monotonic()
        self.full_collections = 0
        self.freed = 0  # objects the full collections found unreachable
        self._task: asyncio.Task | None = None

    def freeze(self) -> None:
        """Freeze what is alive now. (Not `gc.get_freeze_count()` here: it walks every
        frozen object, and costs a loaded gateway more than the collections saved.)"""
        gc.freeze()

    def collect_full(self) -> int:
        """Unfreeze everything, collect it in full, freeze the survivors: the number of
        unreachable objects found."""
        gc.unfreeze()
        try:
            found = gc.collect()
        finally:
            gc.freeze()
        self.full_collections += 1
        self.freed += found
        self.last_full = time.monotonic()
        return found

    def due(self, now: float) -> bool:
        """Whether a full collection is due at `now` (monotonic)."""
        return now - self.last_full >= self.full_s

    def start(self) -> None:
        if self._task is None:
            self.last_full = time.monotonic()
            self._task = asyncio.create_task(self._run(), name="heap-keeper")

    async def _run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.freeze_s)
                if self.due(time.monotonic()):
                    began = time.perf_counter()
                    found = self.collect_full()
                    log.debug("full collection: %d unreachable, %.3f s", found, time.perf_counter() - began)
                else:
                    self.freeze()
        finally:
            gc.unfreeze()  # stopped: the collector's own rules again, over everything

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
