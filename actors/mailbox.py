"""A group's mailbox: its own bounded queue and worker task, serial inside the group,
concurrent across groups. A full mailbox refuses that group's senders with BUSY and
touches no other group.

Three kinds of item: a call (a function run in turn), a request of a kind taken several
at a time (`batched`: a join) and a batch of posts. The worker takes up to MAX_TURN items
a turn and runs the calls in order, each run of consecutive requests of one kind
together, then appends every post of the turn's batches together, and yields to other
groups' workers. An idle mailbox holds
no queue and no worker: a shard holds many thousands of idle groups.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Awaitable, Callable

from chatrelay.actors.calls import Moved
from chatrelay.errors import ChatRelayError, Reason

MAX_TURN = 64  # items a group's worker takes per turn, so one group cannot hog a shard


class _Posts:
    """A batch of posts waiting in the mailbox, and where its results go."""

    __slots__ = ("envelopes", "future")

    def __init__(self, envelopes: list, future: asyncio.Future) -> None:
        self.envelopes = envelopes
        self.future = future


class _Batched:
    """A request that `fn` takes with the others of its run: fn([arg, ...]) returns one
    result each, a value or the exception refusing that one."""

    __slots__ = ("fn", "arg", "future")

    def __init__(self, fn: Callable[[list], Awaitable[list]], arg, future: asyncio.Future) -> None:
        self.fn = fn
        self.arg = arg
        self.future = future


class Mailbox:
    """`append(envelopes)` appends a turn's posts and returns one result each (an ack, or
    the ChatRelayError refusing that post)."""

    def __init__(self, name: str, size: int, append: Callable[[list], Awaitable[list]]) -> None:
        self.name = name
        self.size = size
        self.append = append
        self.items: collections.deque | None = None
        self.closing = False  # handing the group to another shard: no new requests
        self._worker: asyncio.Task | None = None

    def __len__(self) -> int:
        return len(self.items or ())

    @property
    def idle(self) -> bool:
        """Nothing waiting and nothing going on."""
        return self.items is None and self._worker is None

    async def call(self, fn: Callable[..., Awaitable], *args):
        """fn(*args), serially with this group's other requests."""
        future = self._put(lambda f: (fn, args, f))
        return await future

    async def batched(self, fn: Callable[[list], Awaitable[list]], arg):
        """fn's result for `arg`, taken in turn with the requests of `fn` next to it in
        the mailbox (in order, none of the group's other requests between them)."""
        return await self._put(lambda f: _Batched(fn, arg, f))

    async def posts(self, envelopes: list) -> list:
        """Posts appended in the group's turn: one result each, in order."""
        return await self._put(lambda f: _Posts(envelopes, f))

    def schedule(self, fn: Callable[[], Awaitable]) -> bool:
        """fn() in turn, with no one waiting for it; False when the mailbox is full."""
        try:
            self._put(lambda f: (fn, (), f))
        except (ChatRelayError, Moved):
            return False
        return True

    def _put(self, make) -> asyncio.Future:
        if self.closing:
            raise Moved()
        if self.items is None:
            self.items = collections.deque()
        if len(self.items) >= self.size:
            raise ChatRelayError(Reason.BUSY, "this group's mailbox is full; retry in a moment")
        future = asyncio.get_running_loop().create_future()
        self.items.append(make(future))
        if self._worker is None:
            self._worker = asyncio.create_task(self._work(), name=f"group-{self.name}")
        return future

    async def _work(self) -> None:
        try:
            while self.items:
                turn = []
                while self.items and len(turn) < MAX_TURN:
                    turn.append(self.items.popleft())
                batches = [item for item in turn if isinstance(item, _Posts)]
                run: list[_Batched] = []
                for item in turn:
                    if isinstance(item, _Posts):
                        continue  # appended after the turn's calls
                    if run and not (isinstance(item, _Batched) and item.fn == run[0].fn):
                        await _run_batched(run)
                        run = []
                    if isinstance(item, _Batched):
                        run.append(item)
                    else:
                        await _run(*item)
                if run:
                    await _run_batched(run)
                if batches:
                    await self._append(batches)
                await asyncio.sleep(0)  # let other groups' workers run: fair turns
        finally:
            # No await between the last look at the mailbox and here: a request that
            # arrives later starts a new worker.
            self._worker = None
            if not self.items:
                self.items = None

    async def _append(self, batches: list[_Posts]) -> None:
        envelopes = [e for batch in batches for e in batch.envelopes]
        try:
            results = await self.append(envelopes)
        except Moved as exc:  # the group is served elsewhere now: every batch goes there
            for batch in batches:
                if not batch.future.done():
                    batch.future.set_exception(exc)
            return
        except Exception as exc:  # a bug must fail the posts, not the group's worker
            results = [_failure(exc)] * len(envelopes)
        start = 0
        for batch in batches:
            end = start + len(batch.envelopes)
            if not batch.future.done():
                batch.future.set_result(results[start:end])
            start = end

    async def wait_idle(self) -> None:
        """Until the worker has finished what the mailbox holds."""
        while self._worker is not None:
            await asyncio.wait({self._worker})

    async def stop(self) -> None:
        if self._worker:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass


def _failure(exc: Exception) -> Exception:
    if isinstance(exc, (ChatRelayError, Moved)):
        return exc
    return ChatRelayError(Reason.UNAVAILABLE, f"relay error: {type(exc).__name__}: {exc}")


async def _run(fn, args, future: asyncio.Future) -> None:
    try:
        result = await fn(*args)
    except Exception as exc:  # a bug must fail the request, not the group's worker
        if not future.done():
            future.set_exception(_failure(exc))
    else:
        if not future.done():
            future.set_result(result)


async def _run_batched(run: list[_Batched]) -> None:
    try:
        results = await run[0].fn([item.arg for item in run])
        if len(results) != len(run):
            raise RuntimeError(f"{len(results)} results for {len(run)} requests")
    except Exception as exc:  # a bug must fail the requests, not the group's worker
        results = [exc] * len(run)
    for item, result in zip(run, results):
        if item.future.done():
            continue
        if isinstance(result, Exception):
            item.future.set_exception(_failure(result))
        else:
            item.future.set_result(result)
