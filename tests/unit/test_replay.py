"""The gateway's memory of requests it took (cluster/replay.py): the same request again
is `replayed` within the window, one signed outside it is `stale`, and what the window
has passed is let go."""

from __future__ import annotations

import pytest

from chatrelay.cluster.replay import ReplayGuard
from chatrelay.errors import ChatRelayError, Reason


def refused(guard, *args, **kwargs) -> ChatRelayError:
    with pytest.raises(ChatRelayError) as caught:
        guard.check(*args, **kwargs)
    return caught.value


def test_a_request_taken_once_is_replayed_after_until_the_window_passes():
    guard = ReplayGuard(window_s=300)
    key = ReplayGuard.key(b"signature")
    guard.check("join request", key, timestamp=1000, now=1000.0)
    guard.check("join request", key, timestamp=1000, now=1000.5)  # not taken yet: may come again
    guard.remember(key, now=1001.0)
    error = refused(guard, "join request", key, timestamp=1000, now=1100.0)
    assert (error.reason, error.message) == (
        Reason.REPLAYED, "join request was taken already; a new one needs a new nonce and signature")
    guard.check("join request", ReplayGuard.key(b"another signature"), timestamp=1100, now=1100.0)
    guard.check("queue message", key, now=1302.0)  # the window passed: let go (unsigned times are not checked)
    assert guard.refused == 1


@pytest.mark.parametrize("timestamp, said", [(0, "signed 10000 s from"), (10_400, "signed -400 s from")])
def test_a_request_signed_outside_the_window_is_stale(timestamp, said):
    error = refused(ReplayGuard(window_s=300), "registration", b"k", timestamp=timestamp, now=10_000.0)
    assert error.reason is Reason.STALE
    assert error.message == (f"registration was {said} this relay's clock; at most 300 s are taken "
                             "(a replay, or a clock that is off)")


def test_at_capacity_the_oldest_are_let_go():
    guard = ReplayGuard(window_s=300, capacity=2)
    for i, key in enumerate((b"a", b"b", b"c")):
        guard.remember(key, now=float(i))
    guard.check("x", b"a", now=3.0)  # let go for room
    with pytest.raises(ChatRelayError):
        guard.check("x", b"c", now=3.0)
