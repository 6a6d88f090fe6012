"""The gateway's Coalescer as registrations use it (`linger`): calls that arrive together
are done as one."""

from __future__ import annotations

import asyncio


from chatrelay.cluster.coalescer import Coalescer
from chatrelay.errors import ChatRelayError, Reason


class Recording:
    """Stands in for the registrar: answers each request by its content."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[tuple[int, list[bytes]]] = []
        self.fail = fail

    async def many(self, lane: int, requests: list[bytes]):
        self.calls.append((lane, list(requests)))
        await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        return [
            ChatRelayError(Reason.REFUSED, f"no {r.decode()}") if r.startswith(b"bad") else r.upper()
            for r in requests
        ]


async def test_calls_that_arrive_together_go_as_one_call_per_lane():
    router = Recording()
    batcher = Coalescer(router.many, batch=256, linger=True)
    results = await asyncio.gather(
        batcher(0, b"a"), batcher(1, b"b"), batcher(0, b"c"), batcher(0, b"d"),
    )
    assert results == [b"A", b"B", b"C", b"D"]
    assert sorted(router.calls) == [(0, [b"a", b"c", b"d"]), (1, [b"b"])]


async def test_a_refusal_reaches_only_its_own_caller():
    batcher = Coalescer(Recording().many, batch=256, linger=True)
    good, bad = await asyncio.gather(batcher(0, b"ok"), batcher(0, b"bad one"), return_exceptions=True)
    assert good == b"OK"
    assert isinstance(bad, ChatRelayError) and (bad.reason, bad.message) == (Reason.REFUSED, "no bad one")


async def test_a_failed_batch_fails_every_caller_of_it():
    unavailable = ChatRelayError(Reason.UNAVAILABLE, "relay storage unavailable: ConnectionError")
    batcher = Coalescer(Recording(fail=unavailable).many, batch=256, linger=True)
    results = await asyncio.gather(batcher(0, b"x"), batcher(0, b"y"), return_exceptions=True)
    assert results == [unavailable, unavailable]


async def test_a_full_batch_leaves_at_once_and_a_lone_call_waits_for_nothing():
    router = Recording()
    batcher = Coalescer(router.many, batch=2, linger=True)
    results = await asyncio.gather(*(batcher(0, bytes([97 + i])) for i in range(5)))
    assert results == [b"A", b"B", b"C", b"D", b"E"]
    assert [len(r) for _, r in router.calls] == [2, 2, 1]
    assert await asyncio.wait_for(batcher(3, b"z"), 5) == b"Z"


async def test_calls_gather_while_batches_are_in_flight_and_leave_when_one_returns():
    gate = asyncio.Event()

    class Slow(Recording):
        async def many(self, lane, requests):
            self.calls.append((lane, list(requests)))
            await gate.wait()
            return [r.upper() for r in requests]

    router = Slow()
    batcher = Coalescer(router.many, in_flight=1, batch=256, linger=True)
    first = asyncio.ensure_future(batcher(0, b"a"))
    await asyncio.sleep(0.01)
    later = [asyncio.ensure_future(batcher(0, bytes([98 + i]))) for i in range(3)]
    await asyncio.sleep(0.01)
    assert [r for _, r in router.calls] == [[b"a"]]  # the rest wait for the first batch
    gate.set()
    assert await asyncio.wait_for(asyncio.gather(first, *later), 5) == [b"A", b"B", b"C", b"D"]
    assert [r for _, r in router.calls] == [[b"a"], [b"b", b"c", b"d"]]
    assert (batcher.batches, batcher.calls) == (2, 4)
