"""The Coalescer's spare calls (`spare_after_s`): items that arrive while a lane's call is
going on wait for it and go on together, unless a full batch waits or the first of them
has waited `spare_after_s`; then a spare call takes them."""

from __future__ import annotations

import asyncio

import pytest

from chatrelay.cluster.coalescer import Coalescer

SPARE_S = 0.05


class Held:
    """Stands in for the shard call: records each call's items and answers them
    upper-cased once released; counts the calls going on at once."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.going_on = 0
        self.most = 0
        self.release = asyncio.Event()

    async def send(self, lane: str, items: list) -> list:
        self.calls.append(list(items))
        self.going_on += 1
        self.most = max(self.most, self.going_on)
        try:
            await self.release.wait()
        finally:
            self.going_on -= 1
        return [item.upper() for item in items]


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def a_call_and_two_behind():
    """A lane whose first call (a) is going on, with b and c arriving behind it."""
    held = Held()
    lanes = Coalescer(held.send, in_flight=2, batch=8, spare_after_s=SPARE_S)
    first = asyncio.create_task(lanes("shard", "a"))
    await settle()
    behind = [asyncio.create_task(lanes("shard", x)) for x in ("b", "c")]
    await settle()
    return held, lanes, first, behind


async def test_items_behind_a_call_wait_for_it_then_a_spare_takes_them():
    held, lanes, first, behind = await a_call_and_two_behind()
    assert held.calls == [["a"]]  # b and c wait: the first call is going on
    await asyncio.sleep(2 * SPARE_S)
    assert held.calls == [["a"], ["b", "c"]]  # they waited SPARE_S: a spare call took them together
    held.release.set()
    assert await asyncio.gather(first, *behind) == ["A", "B", "C"]
    assert held.most == 2


async def test_items_ride_the_call_that_comes_back_first_and_no_spare_is_made():
    held, lanes, first, behind = await a_call_and_two_behind()
    held.release.set()
    assert await asyncio.gather(first, *behind) == ["A", "B", "C"]
    await asyncio.sleep(2 * SPARE_S)  # the timer was let go when they went on
    assert held.calls == [["a"], ["b", "c"]] and held.most == 1
    assert len(lanes) == 0  # nothing kept for the idle lane


async def test_a_full_batch_waiting_takes_a_spare_at_once():
    held = Held()
    lanes = Coalescer(held.send, in_flight=2, batch=3, spare_after_s=SPARE_S)
    first = asyncio.create_task(lanes("shard", "a"))
    await settle()
    behind = [asyncio.create_task(lanes("shard", x)) for x in ("b", "c", "d", "e")]
    await settle()
    assert held.calls == [["a"], ["b", "c", "d"]]  # the third waiting filled a batch; e waits on
    held.release.set()
    assert await asyncio.gather(first, *behind) == ["A", "B", "C", "D", "E"]
    assert held.calls[2] == ["e"] and held.most == 2


async def test_no_more_than_in_flight_calls_however_long_items_wait():
    held = Held()
    lanes = Coalescer(held.send, in_flight=2, batch=8, spare_after_s=SPARE_S)
    calls = [asyncio.create_task(lanes("shard", "a"))]
    await settle()
    calls.append(asyncio.create_task(lanes("shard", "b")))
    await asyncio.sleep(2 * SPARE_S)  # b's spare is going on: both calls are taken
    calls += [asyncio.create_task(lanes("shard", x)) for x in ("c", "d")]
    await asyncio.sleep(2 * SPARE_S)
    assert held.calls == [["a"], ["b"]] and held.going_on == 2
    held.release.set()
    assert await asyncio.gather(*calls) == ["A", "B", "C", "D"]
    assert held.calls[2] == ["c", "d"] and held.most == 2


async def test_other_lanes_do_not_wait():
    held = Held()
    lanes = Coalescer(held.send, in_flight=2, batch=8, spare_after_s=SPARE_S)
    calls = [asyncio.create_task(lanes(lane, lane)) for lane in ("one", "two")]
    await settle()
    assert held.calls == [["one"], ["two"]]  # the first call of each lane goes at once
    held.release.set()
    assert await asyncio.gather(*calls) == ["ONE", "TWO"]


async def test_closing_lets_the_spare_timers_go():
    held = Held()
    lanes = Coalescer(held.send, in_flight=2, batch=8, spare_after_s=SPARE_S)
    first = asyncio.create_task(lanes("shard", "a"))
    await settle()
    behind = asyncio.create_task(lanes("shard", "b"))
    await settle()
    lanes.close()
    await asyncio.sleep(2 * SPARE_S)
    assert held.calls == [["a"]]  # no spare call after close
    assert first.cancelled()  # its call was cancelled with the rest
    behind.cancel()
    await asyncio.gather(first, behind, return_exceptions=True)


@pytest.mark.parametrize("spare", [-0.001, 1.5])
def test_the_spare_wait_is_bounded(spare):
    with pytest.raises(ValueError) as info:
        Coalescer(lambda lane, items: items, spare_after_s=spare)
    assert str(info.value) == "spare_after_s from 0 to 1 second"
