"""One retry policy for every place that tries again: exponential backoff, bounded in
tries, in time, or both; and the schedule of polls that stay. Pure: it only sleeps
between tries."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, replace
from typing import Awaitable, Callable, Iterator, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    first_s: float = 0.05  # the first wait; each next one doubles, up to `max_s`
    max_s: float = 1.0
    attempts: int | None = None  # tries at most (None: bounded by `within_s` only)
    within_s: float | None = None  # no try starts later than this after the first (None: by count only)

    def __str__(self) -> str:
        bounds = [f"{self.attempts} tries" if self.attempts else "", f"{self.within_s:g} s" if self.within_s else ""]
        return f"backoff {self.first_s:g}..{self.max_s:g} s, " + (" or ".join(b for b in bounds if b) or "unbounded")

    def within(self, seconds: float) -> "Backoff":
        return replace(self, within_s=seconds)

    def waits(self) -> Iterator[float]:
        """The waits between tries, from now: none once a bound is reached."""
        deadline = None if self.within_s is None else time.monotonic() + self.within_s
        return self._waits(deadline)

    def _waits(self, deadline: float | None) -> Iterator[float]:
        wait, tries, planned = self.first_s, 1, 0.0
        while self.attempts is None or tries < self.attempts:
            # Past the bound by the clock (slow tries) or by the waits themselves.
            if deadline is not None and (time.monotonic() + wait > deadline or planned + wait > self.within_s):
                return
            yield wait
            planned += wait
            wait, tries = min(wait * 2, self.max_s), tries + 1

    async def run(self, call: Callable[[], Awaitable[T]], retry_on: Callable[[Exception], bool]) -> T:
        """`await call()` until it returns, raises what `retry_on` refuses, or a bound is
        reached (then its last exception is raised)."""
        waits = self.waits()
        while True:
            try:
                return await call()
            except Exception as exc:
                wait = next(waits, None) if retry_on(exc) else None
                if wait is None:
                    raise
            await asyncio.sleep(wait)

    def run_sync(self, call: Callable[[], T], retry_on: Callable[[Exception], bool]) -> T:
        """`run` for a blocking call on a thread of its own."""
        waits = self.waits()
        while True:
            try:
                return call()
            except Exception as exc:
                wait = next(waits, None) if retry_on(exc) else None
                if wait is None:
                    raise
            time.sleep(wait)


class Spread:
    """When each of several polls is due: each item once a period on average, at a
    random phase of its own that moves every time (0.5 to 1.5 periods apart), so a relay
    cannot tie one client's items (its groups, its queues) together by when they are
    polled. Pure: it only says what is due."""

    def __init__(self, period_s: float, rng: random.Random | None = None) -> None:
        self.period_s = period_s
        self.rng = rng or random.SystemRandom()
        self.due: dict[str, float] = {}

    def next(self, keys, now: float) -> tuple[str | None, float]:
        """(the item to poll now, 0) or (None, how long until the next one is due), for
        the items `keys` there are now (new ones get a phase, gone ones are dropped)."""
        keys = set(keys)
        for key in [k for k in self.due if k not in keys]:
            del self.due[key]
        for key in sorted(keys - self.due.keys()):
            self.due[key] = now + self.rng.uniform(0, self.period_s)
        if not self.due:
            return None, self.period_s
        key = min(self.due, key=self.due.__getitem__)
        if self.due[key] > now:
            return None, self.due[key] - now
        self.due[key] = now + self.period_s * self.rng.uniform(0.5, 1.5)
        return key, 0.0
