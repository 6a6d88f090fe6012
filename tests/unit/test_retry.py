"""The one retry policy: backoff bounded in tries and in time, retrying only what it is
told to."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest

from chatrelay.errors import ChatRelayError, Reason
from chatrelay.retry import Backoff, Spread


def test_waits_double_up_to_the_cap_and_stop_at_the_count():
    assert list(Backoff(first_s=0.1, max_s=0.5, attempts=6).waits()) == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert list(Backoff(attempts=1).waits()) == []


def test_waits_stop_where_the_next_try_would_start_past_the_time_bound():
    assert list(Backoff(first_s=1.0, max_s=1.0).within(2.5).waits()) == [1.0, 1.0]
    assert list(Backoff(first_s=0.2).within(0).waits()) == []


def test_unbounded_waits_go_on():
    assert list(itertools.islice(Backoff(first_s=0.2, max_s=2.0).waits(), 6)) == [0.2, 0.4, 0.8, 1.6, 2.0, 2.0]


async def test_run_retries_what_it_is_told_to_and_returns_the_answer():
    failures = [ChatRelayError(Reason.UNAVAILABLE, "down"), ChatRelayError(Reason.BUSY, "busy")]
    calls = []

    async def call():
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return "answer"
    retryable = lambda exc: exc.reason in (Reason.UNAVAILABLE, Reason.BUSY)  # noqa: E731
    assert await Backoff(first_s=0.001, attempts=5).run(call, retryable) == "answer"
    assert len(calls) == 3


async def test_run_raises_a_refusal_it_may_not_retry_at_once_and_the_last_one_past_the_bound():
    calls = []

    async def refused():
        calls.append(1)
        raise ChatRelayError(Reason.NOT_ALLOWED, "no")
    with pytest.raises(ChatRelayError, match="no"):
        await Backoff(first_s=0.001, attempts=5).run(refused, lambda exc: exc.reason is Reason.UNAVAILABLE)
    assert len(calls) == 1

    async def down():
        calls.append(1)
        raise ChatRelayError(Reason.UNAVAILABLE, f"down {len(calls)}")
    calls.clear()
    with pytest.raises(ChatRelayError) as caught:
        await Backoff(first_s=0.001, attempts=3).run(down, lambda exc: True)
    assert (len(calls), caught.value.message) == (3, "down 3")


def test_run_sync_is_the_same_rule_for_blocking_calls():
    tries = []

    def locked():
        tries.append(1)
        if len(tries) < 3:
            raise OSError("database is locked")
        return "open"
    assert Backoff(first_s=0.001, attempts=3).run_sync(locked, lambda exc: "locked" in str(exc)) == "open"
    with pytest.raises(OSError, match="disk I/O error"):
        Backoff(first_s=0.001, attempts=3).run_sync(lambda: (_ for _ in ()).throw(OSError("disk I/O error")),
                                                    lambda exc: "locked" in str(exc))


def test_polls_of_several_items_are_spread_each_at_a_phase_of_its_own():
    """A client's groups and queues polled with --follow: each about once a period, never
    two at the same instant, at gaps that vary, in no fixed order (issue 16)."""
    spread, keys, now, polled = Spread(1.0, random.Random(7)), ["group a", "group b", "queue c"], 0.0, []
    for _ in range(10_000):  # bounded: simulated time, 100 periods
        key, wait = spread.next(keys, now)
        if key is not None:
            polled.append((now, key))
        now += wait
        if now > 100:
            break
    counts = Counter(k for _, k in polled)
    assert set(counts) == set(keys) and all(70 <= c <= 140 for c in counts.values())
    times = [t for t, _ in polled]
    assert len(set(times)) == len(times)
    own = [t for t, k in polled if k == "group a"]
    gaps = [b - a for a, b in zip(own, own[1:])]
    assert 0.5 <= min(gaps) and max(gaps) <= 1.5 and len({round(g, 3) for g in gaps}) > 10
    assert len({tuple(k for _, k in polled[i:i + 3]) for i in range(0, 90, 3)}) > 1


def test_an_item_gone_is_polled_no_more_and_a_new_one_gets_a_phase():
    spread = Spread(1.0, random.Random(1))
    spread.next(["a", "b"], 0.0)
    assert set(spread.due) == {"a", "b"}
    spread.next(["b", "c"], 0.0)
    assert set(spread.due) == {"b", "c"} and 0.0 <= spread.due["c"] <= 1.0
    assert spread.next([], 5.0) == (None, 1.0)


def test_a_stream_comes_back_after_the_relays_hint_spread_or_its_own_backoff():
    import random

    from chatrelay.errors import ChatRelayError, Reason
    from chatrelay.reader import RECONNECTS, reconnect_wait

    busy = ChatRelayError(Reason.UNAVAILABLE, "this gateway is opening 1000 streams; come back later")
    busy.retry_after_ms = 4000
    random.seed(7)
    waits = [reconnect_wait(RECONNECTS.waits(), busy) for _ in range(200)]
    assert 4.0 <= min(waits) < 4.2 and 5.8 < max(waits) <= 6.0  # spread over half as long again
    plain = ChatRelayError(Reason.UNAVAILABLE, "relay shard unavailable")
    backoff = RECONNECTS.waits()
    assert [reconnect_wait(backoff, plain) for _ in range(3)] == [0.2, 0.4, 0.8]
    assert reconnect_wait(RECONNECTS.waits(), None) == 0.2  # the stream ended without an error
