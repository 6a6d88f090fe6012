"""The gateway's Batcher: calls that arrive together reach a shard as one call."""

from __future__ import annotations

import asyncio


from chatrelay.cluster.gateway import Batcher
from chatrelay.errors import ChatRelayError, Reason


class RecordingRouter:
    """Stands in for ShardRouter.call: answers each request by its content."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[tuple[int, str, list[bytes]]] = []
        self.fail = fail

    async def call(self, index: int, method: str, requests: list[bytes]):
        self.calls.append((index, method, list(requests)))
        await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        return [
            ("error", "refused", f"no {r.decode()}") if r.startswith(b"bad") else ("ok", r.upper())
            for r in requests
        ]


async def test_calls_that_arrive_together_go_as_one_call_per_shard():
    router = RecordingRouter()
    batcher = Batcher(router, "register_many")
    results = await asyncio.gather(
        batcher.call(0, b"a"), batcher.call(1, b"b"), batcher.call(0, b"c"), batcher.call(0, b"d"),
    )
    assert results == [b"A", b"B", b"C", b"D"]
    assert sorted(router.calls) == [(0, "register_many", [b"a", b"c", b"d"]), (1, "register_many", [b"b"])]


async def test_a_refusal_reaches_only_its_own_caller():
    batcher = Batcher(RecordingRouter(), "register_many")
    good, bad = await asyncio.gather(batcher.call(0, b"ok"), batcher.call(0, b"bad one"), return_exceptions=True)
    assert good == b"OK"
    assert isinstance(bad, ChatRelayError) and (bad.reason, bad.message) == (Reason.REFUSED, "no bad one")


async def test_a_failed_shard_call_fails_every_caller_of_the_batch():
    unavailable = ChatRelayError(Reason.UNAVAILABLE, "relay shard unavailable")
    batcher = Batcher(RecordingRouter(fail=unavailable), "register_many")
    results = await asyncio.gather(batcher.call(0, b"x"), batcher.call(0, b"y"), return_exceptions=True)
    assert results == [unavailable, unavailable]


async def test_a_full_batch_leaves_at_once_and_a_lone_call_waits_for_nothing():
    router = RecordingRouter()
    batcher = Batcher(router, "register_many", limit=2)
    results = await asyncio.gather(*(batcher.call(0, bytes([97 + i])) for i in range(5)))
    assert results == [b"A", b"B", b"C", b"D", b"E"]
    assert [len(r) for _, _, r in router.calls] == [2, 2, 1]
    assert await asyncio.wait_for(batcher.call(3, b"z"), 5) == b"Z"


async def test_calls_gather_while_batches_are_in_flight_and_leave_when_one_returns():
    gate = asyncio.Event()

    class SlowRouter(RecordingRouter):
        async def call(self, index, method, requests):
            self.calls.append((index, method, list(requests)))
            await gate.wait()
            return [("ok", r.upper()) for r in requests]

    router = SlowRouter()
    batcher = Batcher(router, "register_many", in_flight=1)
    first = asyncio.ensure_future(batcher.call(0, b"a"))
    await asyncio.sleep(0.01)
    later = [asyncio.ensure_future(batcher.call(0, bytes([98 + i]))) for i in range(3)]
    await asyncio.sleep(0.01)
    assert [r for _, _, r in router.calls] == [[b"a"]]  # the rest wait for the first batch
    gate.set()
    assert await asyncio.wait_for(asyncio.gather(first, *later), 5) == [b"A", b"B", b"C", b"D"]
    assert [r for _, _, r in router.calls] == [[b"a"], [b"b", b"c", b"d"]]
    assert (batcher.batches, batcher.calls) == (2, 4)
