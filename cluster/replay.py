"""Requests that can't be replayed, at the gateway: every mutating request is signed over
a nonce and a timestamp (a stranger's connection request is unsigned: it is known by
what it asks, see `queues.request_id`); one signed more than the freshness window from
the gateway's clock is `stale`, and one the gateway has taken within that window is
`replayed`. A request is remembered once it succeeded, so one that failed may be sent
again as it was; a client that tries again after a lost answer signs anew (the SDK
does), and the relay's own idempotence (one address a group, one membership a key, one
use a command id) gives it the first answer.

The memory is the gateway's own, for the window: a replay sent to another gateway of the
relay, or after a restart, meets only that idempotence, which changes nothing (the log
holds each record under its id: a queue message or request sent again gets its first
seq)."""

from __future__ import annotations

import collections
import hashlib
import time

from chatrelay.errors import ChatRelayError, Reason

CAPACITY = 1_000_000  # requests remembered at most; past it the oldest are let go


class ReplayGuard:
    def __init__(self, window_s: float, capacity: int = CAPACITY) -> None:
        self.window_s = window_s
        self.capacity = capacity
        self._seen: collections.OrderedDict[bytes, float] = collections.OrderedDict()
        self.refused = 0

    @staticmethod
    def key(data: bytes) -> bytes:
        """What identifies a request: the hash of its signature (Ed25519 signs the same
        bytes the same way, and a new nonce makes new bytes), or of an unsigned body."""
        return hashlib.sha256(data).digest()

    def check(self, what: str, key: bytes, timestamp: int | None = None, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self._forget(now)
        if timestamp is not None and abs(now - timestamp) > self.window_s:
            self.refused += 1
            raise ChatRelayError(Reason.STALE, (
                f"{what} was signed {int(now - timestamp)} s from this relay's clock; at most "
                f"{self.window_s:g} s are taken (a replay, or a clock that is off)"
            ))
        if key in self._seen:
            self.refused += 1
            raise ChatRelayError(Reason.REPLAYED, f"{what} was taken already; a new one needs a new nonce and signature")

    async def once(self, what: str, key: bytes, timestamp: int | None, call):
        """`await call()` for a request not taken yet (checked as `check` does), and the
        request remembered once it succeeded."""
        self.check(what, key, timestamp)
        result = await call()
        self.remember(key)
        return result

    def remember(self, key: bytes, now: float | None = None) -> None:
        self._seen[key] = time.time() if now is None else now
        self._seen.move_to_end(key)
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)

    def _forget(self, now: float) -> None:
        while self._seen:
            key, seen_at = next(iter(self._seen.items()))
            if now - seen_at <= self.window_s:
                return
            self._seen.popitem(last=False)
