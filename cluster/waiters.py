"""Waiters for a change, woken together, at a cost that does not grow with their number
when one of them goes away.

A group's streams on a gateway wait here for its next post. asyncio.Condition wakes them
as this does, but a waiter that goes away is taken out of a list of all of them, a scan
of that list: a reconnect storm cancelling tens of thousands of the 100,000 streams
waiting on one group kept the gateway's loop busy for minutes (README). Here a waiter
joins and leaves in O(1).
"""

from __future__ import annotations

import asyncio


class Waiters:
    """`await wait()` until the next `notify_all()`, which wakes every waiter there is,
    in the order they came."""

    def __init__(self) -> None:
        self._waiting: dict[asyncio.Future, None] = {}  # insertion-ordered

    def __len__(self) -> int:
        return len(self._waiting)

    async def wait(self) -> None:
        fut = asyncio.get_running_loop().create_future()
        self._waiting[fut] = None
        try:
            await fut
        finally:
            self._waiting.pop(fut, None)  # gone before the notification: O(1)

    def notify_all(self) -> None:
        waiting, self._waiting = self._waiting, {}  # those that wait again wait for the next one
        for fut in waiting:
            if not fut.done():
                fut.set_result(None)
