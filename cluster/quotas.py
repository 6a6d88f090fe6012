"""Quotas per connection at the gateway: how many calls of a kind one connection may make
in a minute (registrations, link stores, queues created). Past it, only that connection
is refused, with RESOURCE_EXHAUSTED, reason `rate_limited`, and a retry hint; every other
connection goes on."""

from __future__ import annotations

import time

from chatrelay.actors.rate_window import RateWindow
from chatrelay.errors import ChatRelayError, Reason

WINDOW_S = 60.0
PEERS = 100_000  # connections remembered at most; the longest quiet are let go first


class QuotaExceeded(ChatRelayError):
    def __init__(self, message: str, retry_after_ms: int) -> None:
        super().__init__(Reason.RATE_LIMITED, message)
        self.retry_after_ms = retry_after_ms


class ConnectionQuotas:
    """`per_minute`: kind -> calls one connection may make in a minute (0: no bound)."""

    def __init__(self, per_minute: dict[str, int], peers: int = PEERS) -> None:
        self.per_minute = per_minute
        self._calls = RateWindow(WINDOW_S, keys=peers)
        self.refused = 0

    def take(self, peer: str, kind: str, now: float | None = None) -> None:
        """Count one call of `kind` by the connection `peer`, or refuse it."""
        limit = self.per_minute.get(kind, 0)
        if not limit:
            return
        now = time.monotonic() if now is None else now
        if self._calls.count((peer, kind), now) >= limit:
            self.refused += 1
            wait_s = self._calls.wait_s((peer, kind), now)
            raise QuotaExceeded(
                f"at most {limit} {kind} a minute on one connection; retry in {int(wait_s) + 1} s",
                retry_after_ms=int(wait_s * 1000) + 1,
            )
        self._calls.add((peer, kind), now)
