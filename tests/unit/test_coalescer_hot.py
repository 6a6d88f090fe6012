"""The Coalescer's hot lanes (`hot=(items, seconds)`): after a call of `items` or more,
the lane's next call waits up to `seconds` for a full batch; after a smaller call it goes
at once."""

from __future__ import annotations

import asyncio

import pytest

from chatrelay.cluster.coalescer import Coalescer

FILL_S = 1.0  # long beside the loop's turns: a busy machine does not end a wait early


class Quick:
    """Stands in for the shard call: records each call's items and answers them at once,
    upper-cased."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def send(self, lane: str, items: list) -> list:
        self.calls.append(list(items))
        await asyncio.sleep(0)
        return [item.upper() for item in items]


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def hot_lane(batch: int = 8):
    """A lane whose first call carried two items (a and b, in one turn of the loop), with
    c arriving as that call comes back."""
    quick = Quick()
    lanes = Coalescer(quick.send, batch=batch, linger=True, hot=(2, FILL_S))
    first = [asyncio.create_task(lanes("shard", x)) for x in ("a", "b")]
    await asyncio.sleep(0)
    behind = [asyncio.create_task(lanes("shard", "c"))]
    await settle()
    return quick, lanes, first, behind


async def test_a_calm_lane_does_not_wait():
    quick = Quick()
    lanes = Coalescer(quick.send, batch=8, linger=True, hot=(2, FILL_S))
    first = asyncio.create_task(lanes("shard", "a"))
    await asyncio.sleep(0)
    second = asyncio.create_task(lanes("shard", "b"))
    await settle()
    assert quick.calls == [["a"], ["b"]]  # a call of one item is calm: b went at once
    assert await asyncio.gather(first, second) == ["A", "B"]
    assert len(lanes) == 0


async def test_after_a_hot_call_the_next_waits_for_more():
    quick, lanes, first, behind = await hot_lane()
    assert quick.calls == [["a", "b"]]  # c waits: the lane is hot
    await asyncio.sleep(FILL_S / 20)
    behind.append(asyncio.create_task(lanes("shard", "d")))
    await settle()
    assert quick.calls == [["a", "b"]]
    assert await asyncio.gather(*first, *behind) == ["A", "B", "C", "D"]
    assert quick.calls == [["a", "b"], ["c", "d"]]  # together, once FILL_S had gone by
    assert len(lanes) == 0


async def test_a_full_batch_ends_the_wait():
    quick, lanes, first, behind = await hot_lane(batch=3)
    behind += [asyncio.create_task(lanes("shard", x)) for x in ("d", "e")]
    await settle()
    assert quick.calls == [["a", "b"], ["c", "d", "e"]]  # at once: c, d and e fill a batch
    assert await asyncio.gather(*first, *behind) == ["A", "B", "C", "D", "E"]


async def test_a_caller_gone_while_the_lane_waits_is_not_sent():
    quick, lanes, first, behind = await hot_lane()
    behind[0].cancel()
    behind.append(asyncio.create_task(lanes("shard", "d")))
    assert await asyncio.gather(*first, behind[1]) == ["A", "B", "D"]
    assert quick.calls == [["a", "b"], ["d"]]


async def test_closing_ends_a_waiting_call():
    quick, lanes, first, behind = await hot_lane()
    assert await asyncio.gather(*first) == ["A", "B"]
    lanes.close()
    await settle()
    assert quick.calls == [["a", "b"]]  # c never went: its caller's wait was cancelled
    [outcome] = await asyncio.gather(*behind, return_exceptions=True)
    assert isinstance(outcome, asyncio.CancelledError)


@pytest.mark.parametrize("hot, in_flight", [((0, 0.01), 1), ((8, 0.0), 1), ((8, 1.5), 1), ((8, 0.01), 2)])
def test_the_hot_wait_is_bounded(hot, in_flight):
    with pytest.raises(ValueError) as info:
        Coalescer(lambda lane, items: items, hot=hot, in_flight=in_flight)
    assert str(info.value) == "hot: a call of 1 item or more, a wait above 0 up to 1 second, one call in flight"
