"""One sliding window for every rate bound: events per key within the last `span_s`
seconds. A member's posts in a group and a connection's calls of one kind at the gateway
are both counted with it."""

from __future__ import annotations

import collections
from typing import Hashable


class RateWindow:
    """`keys`: at most this many keys are remembered, the longest quiet let go first
    (None: no bound, where the keys are bounded already, as a group's members are)."""

    def __init__(self, span_s: float, keys: int | None = None) -> None:
        self.span_s = span_s
        self.keys = keys
        self._times: collections.OrderedDict[Hashable, collections.deque] = collections.OrderedDict()

    def count(self, key: Hashable, now: float) -> int:
        """Events of `key` within the window ending at `now`."""
        times = self._times.get(key)
        if times is None:
            return 0
        while times and now - times[0] >= self.span_s:
            times.popleft()
        return len(times)

    def wait_s(self, key: Hashable, now: float) -> float | None:
        """Seconds until the oldest event of `key` leaves the window (None: it has none)."""
        times = self._times.get(key)
        return self.span_s - (now - times[0]) if times else None

    def active(self, now: float) -> bool:
        """Whether any key has an event within the window ending at `now`."""
        return any(times and now - times[-1] < self.span_s for times in self._times.values())

    def add(self, key: Hashable, now: float) -> None:
        times = self._times.get(key)
        if times is None:
            times = self._times[key] = collections.deque()
            while self.keys is not None and len(self._times) > self.keys:
                self._times.popitem(last=False)
        self._times.move_to_end(key)
        times.append(now)
