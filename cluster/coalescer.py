"""One group commit for the gateway: calls of one lane that arrive while that lane is busy
wait and go on together. Registrations (a lane a home shard) and posts (a lane a group)
both go through it, with their own rules as parameters.

Each lane has at most `in_flight` calls going on at a time; each carries at most `batch`
items. A caller that finds a call free starts one: alone at once, or, with `linger`,
after one turn of the event loop, together with the calls that arrived in that turn.
Items that arrive while every call is taken wait in arrival order, holding no CPU, and
the call that comes back takes them on (those whose callers went away are dropped). Past
`waiting` items waiting, the lane's callers (and only they) are refused with `refuse()`;
past `total` items waiting in all lanes together (what the gateway holds in memory for
its callers), every new caller that would wait is.

With `spare_after_s`, the calls past a lane's first are spares: items that arrive while
a call is going on wait for it to come back and go on together, unless a full `batch`
is waiting or the first of them has waited `spare_after_s`, when a spare call takes
them. A call's fixed cost is then shared by more items, while one slow call still holds
up the lane's others for no longer than that.

With `hot=(items, seconds)` (and one call in flight), a lane whose last call carried
`items` or more is under load, and its next call, if anything waits for one, waits up to
`seconds` for a full `batch` before it goes: where a call's fixed cost is most of its
cost, fewer and fuller calls. A calm lane (smaller calls) never waits.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Awaitable, Callable, Hashable


def settle(future: asyncio.Future, result) -> None:
    """Hand a waiter its result, or the exception that is its result, unless it has gone."""
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


class _Lane:
    __slots__ = ("calls", "waiting", "timer", "filled")

    def __init__(self) -> None:
        self.calls = 0  # going on
        self.filled: asyncio.Future | None = None  # while a hot lane's call waits for a full batch
        self.timer: asyncio.TimerHandle | None = None  # a spare call's start, while items wait
        self.waiting: collections.deque[tuple[object, asyncio.Future]] = collections.deque()


class Coalescer:
    """`await coalescer(lane, item)` answers one item; `send(lane, items)` makes the call
    and returns one result per item, each the answer or the exception refusing it (an
    exception raised by `send` is every item's answer)."""

    def __init__(
        self, send: Callable[[Hashable, list], Awaitable[list]], *, in_flight: int = 1, batch: int = 64,
        waiting: int | None = None, refuse: Callable[[], Exception] | None = None, linger: bool = False,
        total: int | None = None, spare_after_s: float | None = None, hot: tuple[int, float] | None = None,
    ) -> None:
        if in_flight < 1 or (waiting is not None and waiting < 0) or batch < 1 or (total is not None and total < 0):
            raise ValueError("in_flight 1 or more, waiting and total 0 or more, batch 1 or more")
        if spare_after_s is not None and not 0 <= spare_after_s <= 1:
            raise ValueError("spare_after_s from 0 to 1 second")
        self.spare_after_s = spare_after_s
        if hot is not None and (hot[0] < 1 or not 0 < hot[1] <= 1 or in_flight != 1):
            raise ValueError("hot: a call of 1 item or more, a wait above 0 up to 1 second, one call in flight")
        self.hot = hot
        if (waiting is not None or total is not None) and refuse is None:
            raise ValueError("a bound on waiting items needs the refusal to answer past it")
        self.total = total
        self.waiting_total = 0  # items waiting in every lane
        self.send = send
        self.in_flight = in_flight
        self.batch = batch
        self.waiting = waiting
        self.refuse = refuse
        self.linger = linger
        self._lanes: dict[Hashable, _Lane] = {}
        self._calls: set[asyncio.Task] = set()
        self.refused = 0
        self.batches = 0  # calls made, and the items in them: their ratio is the mean batch size
        self.calls = 0

    def __len__(self) -> int:
        """Lanes with calls going on (nothing is kept for an idle lane)."""
        return len(self._lanes)

    async def __call__(self, lane: Hashable, item):
        state = self._lanes.get(lane)
        if state is None:
            state = self._lanes[lane] = _Lane()
        answer = asyncio.get_running_loop().create_future()
        free = state.calls == 0 if self.spare_after_s is not None else state.calls < self.in_flight
        if free:
            state.calls += 1
            if self.linger:
                state.waiting.append((item, answer))
                self.waiting_total += 1
                self._start(lane, state, [])
            else:
                self._start(lane, state, [(item, answer)])
        elif (self.waiting is not None and len(state.waiting) >= self.waiting) or (
                self.total is not None and self.waiting_total >= self.total):
            self.refused += 1
            raise self.refuse()
        else:
            state.waiting.append((item, answer))
            self.waiting_total += 1
            if state.filled is not None and len(state.waiting) >= self.batch:
                settle(state.filled, None)
            if state.calls < self.in_flight:  # a spare call is free: now, or once this has waited
                if len(state.waiting) >= self.batch:
                    self._spare(lane, state)
                elif state.timer is None:
                    state.timer = asyncio.get_running_loop().call_later(self.spare_after_s, self._spare, lane, state)
        return await answer  # a caller that goes away before its turn: its item is not sent

    def _spare(self, lane: Hashable, state: _Lane) -> None:
        """Start a spare call for the lane's waiting items, if they are still waiting."""
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        if state.waiting and state.calls < self.in_flight and self._lanes.get(lane) is state:
            state.calls += 1
            self._start(lane, state, [])

    def _start(self, lane: Hashable, state: _Lane, first: list) -> None:
        task = asyncio.create_task(self._turns(lane, state, first))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    def _take(self, state: _Lane) -> list:
        if state.timer is not None:  # what waited goes on now: a spare is not needed for it
            state.timer.cancel()
            state.timer = None
        taken = []
        while state.waiting and len(taken) < self.batch:
            item, answer = state.waiting.popleft()
            self.waiting_total -= 1
            if not answer.done():  # its caller is still there
                taken.append((item, answer))
        return taken

    async def _turns(self, lane: Hashable, state: _Lane, items: list) -> None:
        try:
            items = items or self._take(state)  # with linger: this task ran a loop turn later
            while items:
                self.batches += 1
                self.calls += len(items)
                try:
                    results = await self.send(lane, [item for item, _ in items])
                except asyncio.CancelledError:
                    for _, answer in items:
                        answer.cancel()
                    raise
                except Exception as exc:
                    results = [exc] * len(items)
                for (_, answer), result in zip(items, results):
                    settle(answer, result)
                if self.hot and len(items) >= self.hot[0] and state.waiting:
                    await self._fill(state, self.hot[1])
                items = self._take(state)
        finally:
            state.calls -= 1
            if state.calls == 0 and not state.waiting and self._lanes.get(lane) is state:
                del self._lanes[lane]

    async def _fill(self, state: _Lane, seconds: float) -> None:
        """Wait up to `seconds` for a full batch to wait in the lane."""
        if len(state.waiting) >= self.batch:
            return
        state.filled = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait((state.filled,), timeout=seconds)
        finally:
            state.filled.cancel()
            state.filled = None

    def close(self) -> None:
        """Stop: every call going on, and every item waiting, is cancelled for its caller."""
        for state in self._lanes.values():
            if state.timer is not None:
                state.timer.cancel()
                state.timer = None
            for _, answer in state.waiting:
                answer.cancel()
        for task in list(self._calls):
            task.cancel()
