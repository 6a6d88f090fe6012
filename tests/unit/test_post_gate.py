"""The gateway's PostGate: a group's posts take turns; other groups never wait for them."""

from __future__ import annotations

import asyncio

import pytest

from chatrelay.cluster.gateway import PostGate
from chatrelay.errors import ChatRelayError, Reason


class Shard:
    """Stands in for the shard: each post waits until the test releases it."""

    def __init__(self) -> None:
        self.running: list[str] = []
        self.most: dict[str, int] = {}
        self.release: dict[str, asyncio.Event] = {}
        self.order: list[str] = []

    async def post(self, address: str, name: str) -> str:
        self.running.append(address)
        self.most[address] = max(self.most.get(address, 0), self.running.count(address))
        self.order.append(name)
        try:
            await self.release.setdefault(address, asyncio.Event()).wait()
            return name
        finally:
            self.running.remove(address)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_flooded_group_has_at_most_in_flight_posts_going_on_and_the_rest_follow_in_order():
    gate, shard = PostGate(in_flight=2, waiting=10), Shard()
    posts = [asyncio.create_task(gate("hot", shard.post("hot", f"p{i}"))) for i in range(8)]
    await settle()
    assert shard.order == ["p0", "p1"]  # two go on, six wait
    shard.release["hot"].set()
    assert await asyncio.gather(*posts) == [f"p{i}" for i in range(8)]
    assert shard.order == [f"p{i}" for i in range(8)]
    assert shard.most == {"hot": 2}
    assert len(gate) == 0  # nothing is kept for a group with no posts going on


async def test_another_group_goes_on_at_once_while_a_flooded_one_waits():
    gate, shard = PostGate(in_flight=1, waiting=10), Shard()
    hot = [asyncio.create_task(gate("hot", shard.post("hot", f"h{i}"))) for i in range(5)]
    await settle()
    shard.release["quiet"] = asyncio.Event()
    shard.release["quiet"].set()
    assert await asyncio.wait_for(gate("quiet", shard.post("quiet", "q")), 5) == "q"
    assert shard.order == ["h0", "q"]
    shard.release["hot"].set()
    assert await asyncio.gather(*hot) == [f"h{i}" for i in range(5)]


async def test_past_the_waiting_bound_only_that_groups_senders_are_refused_busy():
    gate, shard = PostGate(in_flight=1, waiting=2), Shard()
    posts = [asyncio.create_task(gate("hot", shard.post("hot", f"p{i}"))) for i in range(3)]
    await settle()
    refused = shard.post("hot", "p3")
    with pytest.raises(ChatRelayError) as caught:
        await gate("hot", refused)
    assert (caught.value.reason, caught.value.message) == (
        Reason.BUSY, "this group has too many posts waiting; retry in a moment"
    )
    assert gate.refused == 1
    assert refused.cr_frame is None  # closed, never run
    shard.release["quiet"] = asyncio.Event()
    shard.release["quiet"].set()
    assert await gate("quiet", shard.post("quiet", "q")) == "q"
    shard.release["hot"].set()
    assert await asyncio.gather(*posts) == ["p0", "p1", "p2"]
    assert "p3" not in shard.order


async def test_a_waiting_post_whose_caller_goes_away_leaves_its_place_to_the_next():
    gate, shard = PostGate(in_flight=1, waiting=10), Shard()
    first = asyncio.create_task(gate("hot", shard.post("hot", "p0")))
    gone = asyncio.create_task(gate("hot", shard.post("hot", "p1")))
    last = asyncio.create_task(gate("hot", shard.post("hot", "p2")))
    await settle()
    gone.cancel()
    await settle()
    shard.release["hot"].set()
    assert await asyncio.gather(first, last) == ["p0", "p2"]
    assert gone.cancelled()
    assert shard.order == ["p0", "p2"]
    assert len(gate) == 0


async def test_a_failed_post_hands_its_turn_on():
    gate = PostGate(in_flight=1, waiting=10)

    async def fail():
        await asyncio.sleep(0)
        raise ChatRelayError(Reason.UNAVAILABLE, "relay shard unavailable")

    async def fine():
        return "ok"

    results = await asyncio.gather(gate("g", fail()), gate("g", fine()), return_exceptions=True)
    assert isinstance(results[0], ChatRelayError) and results[0].reason is Reason.UNAVAILABLE
    assert results[1] == "ok"
    assert len(gate) == 0


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError, match="in_flight 1 or more, waiting 0 or more"):
        PostGate(in_flight=0, waiting=1)
    with pytest.raises(ValueError, match="in_flight 1 or more, waiting 0 or more"):
        PostGate(in_flight=1, waiting=-1)
