"""Quotas at the gateway: how many calls of a kind one connection may make in a minute
(registrations, link stores, queues created), and all connections together in a second
(registrations); how many follow streams one reader key may have open. Past a
connection's bound only that connection is refused, with RESOURCE_EXHAUSTED, reason
`rate_limited` (or `quota_exceeded` for streams), and a retry hint; every other
connection, and every other reader, goes on. And how many streams a gateway opens at
once (`OpeningStreams`): past that, a storm of subscribers is told when to come back."""

from __future__ import annotations

import time

from chatrelay.actors.rate_window import RateWindow
from chatrelay.errors import ChatRelayError, Reason

WINDOW_S = 60.0
PEERS = 100_000  # connections remembered at most; the longest quiet are let go first
STREAM_RETRY_MS = 5_000  # a reader at its bound of streams: try again after this
OPENING = 1_000  # streams a gateway opens at once (each waiting for its reader's check)
OPEN_WAIT_S = (0.5, 30.0)  # the retry hint of a stream refused for that, at least and at most


class QuotaExceeded(ChatRelayError):
    def __init__(self, message: str, retry_after_ms: int) -> None:
        super().__init__(Reason.RATE_LIMITED, message)
        self.retry_after_ms = retry_after_ms


class ConnectionQuotas:
    """`per_minute`: kind -> calls one connection may make in a minute; `per_second`:
    kind -> calls all connections together may make in a second (0: no bound)."""

    def __init__(self, per_minute: dict[str, int], per_second: dict[str, int] | None = None,
                 peers: int = PEERS) -> None:
        self.per_minute = per_minute
        self.per_second = per_second or {}
        self._calls = RateWindow(WINDOW_S, keys=peers)
        self._all = RateWindow(1.0)
        self.refused = 0

    def take(self, peer: str, kind: str, now: float | None = None) -> None:
        """Count one call of `kind` by the connection `peer`, or refuse it."""
        limit, relay_wide = self.per_minute.get(kind, 0), self.per_second.get(kind, 0)
        if not (limit or relay_wide):
            return
        now = time.monotonic() if now is None else now
        if limit and self._calls.count((peer, kind), now) >= limit:
            self.refused += 1
            wait_s = self._calls.wait_s((peer, kind), now)
            raise QuotaExceeded(
                f"at most {limit} {kind} a minute on one connection; retry in {int(wait_s) + 1} s",
                retry_after_ms=int(wait_s * 1000) + 1,
            )
        if relay_wide and self._all.count(kind, now) >= relay_wide:
            self.refused += 1
            raise QuotaExceeded(
                f"this relay takes at most {relay_wide} {kind} a second; retry in a moment",
                retry_after_ms=int(self._all.wait_s(kind, now) * 1000) + 1,
            )
        if limit:
            self._calls.add((peer, kind), now)
        if relay_wide:
            self._all.add(kind, now)


class ReaderStreams:
    """Follow streams open on this gateway per reader key: at most `limit` each (0: no
    bound), so that one credential cannot hold a gateway's streams."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[bytes, int] = {}
        self.refused = 0

    def open(self, reader: bytes) -> None:
        held = self._open.get(reader, 0)
        if self.limit and held >= self.limit:
            self.refused += 1
            error = ChatRelayError(Reason.QUOTA_EXCEEDED, (
                f"this reader has {held} follow streams open on this gateway, its most; close one first"
            ))
            error.retry_after_ms = STREAM_RETRY_MS
            raise error
        self._open[reader] = held + 1

    def close(self, reader: bytes) -> None:
        held = self._open.get(reader, 0) - 1
        if held > 0:
            self._open[reader] = held
        else:
            self._open.pop(reader, None)


class OpeningStreams:
    """Streams being opened on this gateway at once, at most `limit`. Past it a new one is
    refused at once, UNAVAILABLE, with a hint to come back once those waiting before it
    are likely open: (opening + refused in the last second) / streams opened in the last
    second. Every subscriber of a gateway that restarted comes back at once; without the
    bound they pile up in gRPC's queue, which cancels them, and they come back again and
    again, each time spending the CPU the gateway needs to open them."""

    def __init__(self, limit: int = OPENING) -> None:
        self.limit = limit
        self.opening = 0
        self.refused = 0
        self._last_s = RateWindow(1.0)

    def enter(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self.opening >= self.limit:
            self.refused += 1
            self._last_s.add("refused", now)
            waiting = self.opening + self._last_s.count("refused", now)
            rate = max(1, self._last_s.count("opened", now))
            error = ChatRelayError(Reason.UNAVAILABLE, f"this gateway is opening {self.opening} streams; come back later")
            error.retry_after_ms = int(1000 * min(OPEN_WAIT_S[1], max(OPEN_WAIT_S[0], waiting / rate)))
            raise error
        self.opening += 1

    def leave(self, now: float | None = None) -> None:
        """The stream's reader was checked (or refused): it is open, or gone."""
        self.opening -= 1
        self._last_s.add("opened", time.monotonic() if now is None else now)
