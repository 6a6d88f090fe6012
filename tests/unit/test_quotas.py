"""Quotas per connection: one connection past its bound is refused with a retry hint;
another connection, and another kind of call, go on."""

from __future__ import annotations

import pytest

from chatrelay.cluster.quotas import ConnectionQuotas, QuotaExceeded
from chatrelay.errors import Reason


def test_past_the_bound_only_that_connection_and_kind_are_refused_until_the_minute_passes():
    quotas = ConnectionQuotas({"registrations": 3, "queues": 1})
    for t in (0.0, 1.0, 2.0):
        quotas.take("ipv4:127.0.0.1:1000", "registrations", now=t)
    with pytest.raises(QuotaExceeded) as caught:
        quotas.take("ipv4:127.0.0.1:1000", "registrations", now=10.0)
    assert (caught.value.reason, caught.value.message, caught.value.retry_after_ms) == (
        Reason.RATE_LIMITED, "at most 3 registrations a minute on one connection; retry in 51 s", 50001)
    quotas.take("ipv4:127.0.0.1:2000", "registrations", now=10.0)  # another connection
    quotas.take("ipv4:127.0.0.1:1000", "queues", now=10.0)  # another kind
    quotas.take("ipv4:127.0.0.1:1000", "registrations", now=60.5)  # the first one's minute has passed
    assert quotas.refused == 1


def test_a_bound_of_zero_is_no_bound_and_forgotten_connections_start_afresh():
    quotas = ConnectionQuotas({"registrations": 0, "link stores": 1}, peers=2)
    for _ in range(1000):
        quotas.take("a", "registrations", now=0.0)
    quotas.take("a", "link stores", now=0.0)
    quotas.take("b", "link stores", now=0.0)
    quotas.take("c", "link stores", now=0.0)  # "a" is let go: at most two connections are kept
    quotas.take("a", "link stores", now=1.0)
    with pytest.raises(QuotaExceeded):
        quotas.take("c", "link stores", now=1.0)


def test_registrations_of_all_connections_together_are_bound_a_second():
    quotas = ConnectionQuotas({"registrations": 0}, per_second={"registrations": 2})
    quotas.take("a", "registrations", now=0.0)
    quotas.take("b", "registrations", now=0.2)
    with pytest.raises(QuotaExceeded) as caught:
        quotas.take("c", "registrations", now=0.5)
    assert (caught.value.reason, caught.value.message, caught.value.retry_after_ms) == (
        Reason.RATE_LIMITED, "this relay takes at most 2 registrations a second; retry in a moment", 501)
    quotas.take("c", "registrations", now=1.0)  # the first left the second
    quotas.take("a", "queues", now=1.0)  # another kind has no such bound


def test_a_reader_past_its_streams_is_refused_until_one_closes():
    from chatrelay.cluster.quotas import ReaderStreams

    streams = ReaderStreams(2)
    streams.open(b"alice")
    streams.open(b"alice")
    with pytest.raises(Exception) as caught:
        streams.open(b"alice")
    assert (caught.value.reason, caught.value.message, caught.value.retry_after_ms) == (
        Reason.QUOTA_EXCEEDED, "this reader has 2 follow streams open on this gateway, its most; close one first", 5000)
    streams.open(b"bob")  # another reader
    streams.close(b"alice")
    streams.open(b"alice")
    assert streams.refused == 1
    unbounded = ReaderStreams(0)
    for _ in range(100):
        unbounded.open(b"alice")


def test_past_the_streams_a_gateway_opens_at_once_new_ones_are_told_when_to_come_back():
    from chatrelay.cluster.quotas import OpeningStreams

    opening = OpeningStreams(limit=2)
    opening.enter(now=0.0)
    opening.enter(now=0.0)
    for _ in range(4):  # opened in the last second: none yet, so the hint is its longest
        with pytest.raises(Exception) as caught:
            opening.enter(now=0.1)
    assert (caught.value.reason, caught.value.message, caught.value.retry_after_ms) == (
        Reason.UNAVAILABLE, "this gateway is opening 2 streams; come back later", 6000)  # (2 + 4) / 1 a second
    opening.leave(now=0.2)  # one checked: room for one more
    opening.enter(now=0.2)
    for i in range(10):  # ten open in the last second: the crowd waiting is spread over what they take
        opening.leave(now=0.3)
        opening.enter(now=0.3)
    with pytest.raises(Exception) as caught:
        opening.enter(now=0.4)
    assert caught.value.retry_after_ms == 636  # (2 opening + 5 refused) / 11 opened = 0.636 s
    with pytest.raises(Exception) as caught:
        opening.enter(now=5.0)  # a quiet second since: counted afresh, none opened (taken as 1)
    assert caught.value.retry_after_ms == 3000  # (2 + 1) / 1
    assert opening.refused == 6


def test_the_hint_is_at_least_half_a_second_and_at_most_thirty():
    from chatrelay.cluster.quotas import OpeningStreams

    few = OpeningStreams(limit=1)
    few.enter(now=0.0)
    for _ in range(50):
        few.leave(now=0.0)
        few.enter(now=0.0)
    with pytest.raises(Exception) as caught:
        few.enter(now=0.0)
    assert caught.value.retry_after_ms == 500  # 2 / 50 a second is less
    crowd = OpeningStreams(limit=1)
    crowd.enter(now=0.0)
    for _ in range(40):
        with pytest.raises(Exception) as caught:
            crowd.enter(now=0.0)
    assert caught.value.retry_after_ms == 30_000  # 41 / 1 a second is more
