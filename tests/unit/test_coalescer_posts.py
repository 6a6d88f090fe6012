"""The gateway's Coalescer as posts use it: a group's posts take turns, those that wait go
on together, and other groups never wait for them."""

from __future__ import annotations

import asyncio

import pytest

from chatrelay.cluster.coalescer import Coalescer
from chatrelay.errors import ChatRelayError, Reason


def PostGate(send, in_flight, waiting, batch=64):
    """The rules posts have at a gateway."""
    return Coalescer(send, in_flight=in_flight, waiting=waiting, batch=batch, refuse=lambda: ChatRelayError(
        Reason.BUSY, "this group has too many posts waiting; retry in a moment"))


class Shard:
    """Stands in for the shard call: records each call's posts, answers each post with
    its text upper-cased (or refuses those starting with "bad") once released."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.going_on: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.release: dict[str, asyncio.Event] = {}

    async def send(self, address: str, items: list) -> list:
        self.calls.append((address, list(items)))
        self.going_on[address] = self.going_on.get(address, 0) + 1
        self.most[address] = max(self.most.get(address, 0), self.going_on[address])
        try:
            await self.release.setdefault(address, asyncio.Event()).wait()
        finally:
            self.going_on[address] -= 1
        return [
            ChatRelayError(Reason.REFUSED, f"no {request}") if request.startswith("bad") else request.upper()
            for request in items
        ]

    def open(self, address: str) -> None:
        self.release.setdefault(address, asyncio.Event()).set()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_flooded_group_has_at_most_in_flight_calls_and_the_waiting_posts_go_on_together_in_order():
    shard = Shard()
    gate = PostGate(shard.send, in_flight=2, waiting=10)
    posts = [asyncio.create_task(gate("hot", f"p{i}")) for i in range(8)]
    await settle()
    assert shard.calls == [("hot", ["p0"]), ("hot", ["p1"])]  # two go on, six wait
    shard.open("hot")
    assert await asyncio.gather(*posts) == [f"P{i}" for i in range(8)]
    assert shard.calls[2] == ("hot", ["p2", "p3", "p4", "p5", "p6", "p7"])  # one call for all that waited
    assert len(shard.calls) == 3
    assert shard.most == {"hot": 2}
    assert len(gate) == 0  # nothing is kept for a group with no posts going on


async def test_a_call_carries_at_most_batch_posts():
    shard = Shard()
    gate = PostGate(shard.send, in_flight=1, waiting=10, batch=3)
    posts = [asyncio.create_task(gate("hot", f"p{i}")) for i in range(8)]
    await settle()
    shard.open("hot")
    assert await asyncio.gather(*posts) == [f"P{i}" for i in range(8)]
    assert [requests for _, requests in shard.calls] == [["p0"], ["p1", "p2", "p3"], ["p4", "p5", "p6"], ["p7"]]


async def test_another_group_goes_on_at_once_while_a_flooded_one_waits():
    shard = Shard()
    gate = PostGate(shard.send, in_flight=1, waiting=10)
    hot = [asyncio.create_task(gate("hot", f"h{i}")) for i in range(5)]
    await settle()
    shard.open("quiet")
    assert await asyncio.wait_for(gate("quiet", "q"), 5) == "Q"
    assert shard.calls == [("hot", ["h0"]), ("quiet", ["q"])]
    shard.open("hot")
    assert await asyncio.gather(*hot) == [f"H{i}" for i in range(5)]


async def test_past_the_waiting_bound_only_that_groups_senders_are_refused_busy():
    shard = Shard()
    gate = PostGate(shard.send, in_flight=1, waiting=2)
    posts = [asyncio.create_task(gate("hot", f"p{i}")) for i in range(3)]
    await settle()
    with pytest.raises(ChatRelayError) as caught:
        await gate("hot", "p3")
    assert (caught.value.reason, caught.value.message) == (
        Reason.BUSY, "this group has too many posts waiting; retry in a moment"
    )
    assert gate.refused == 1
    shard.open("quiet")
    assert await gate("quiet", "q") == "Q"
    shard.open("hot")
    assert await asyncio.gather(*posts) == ["P0", "P1", "P2"]
    assert all("p3" not in requests for _, requests in shard.calls)


async def test_past_the_gateways_bound_of_all_waiting_posts_new_waiters_are_refused():
    """What waits at a gateway is held in its memory: a bound over all groups together,
    while a call that finds its group free still goes on at once."""
    shard = Shard()
    gate = Coalescer(shard.send, in_flight=1, waiting=10, total=2, refuse=lambda: ChatRelayError(
        Reason.BUSY, "this gateway holds too many posts waiting; retry in a moment"))
    first = [asyncio.create_task(gate(g, f"{g}{i}")) for g in ("a", "b") for i in range(2)]
    await settle()
    assert gate.waiting_total == 2  # one call going on in each group, one post waiting in each
    with pytest.raises(ChatRelayError) as caught:
        await gate("a", "a2")
    assert (caught.value.reason, caught.value.message) == (
        Reason.BUSY, "this gateway holds too many posts waiting; retry in a moment")
    shard.open("c")
    assert await gate("c", "c0") == "C0"  # a free group does not wait: nothing held
    shard.open("a")
    shard.open("b")
    assert await asyncio.gather(*first) == ["A0", "A1", "B0", "B1"]
    assert gate.waiting_total == 0


async def test_a_waiting_post_whose_caller_goes_away_is_not_sent():
    shard = Shard()
    gate = PostGate(shard.send, in_flight=1, waiting=10)
    first = asyncio.create_task(gate("hot", "p0"))
    gone = asyncio.create_task(gate("hot", "p1"))
    last = asyncio.create_task(gate("hot", "p2"))
    await settle()
    gone.cancel()
    await settle()
    shard.open("hot")
    assert await asyncio.gather(first, last) == ["P0", "P2"]
    assert gone.cancelled()
    assert [requests for _, requests in shard.calls] == [["p0"], ["p2"]]
    assert len(gate) == 0


async def test_refusals_reach_their_own_callers_and_a_failed_call_fails_its_posts_only():
    shard = Shard()
    gate = PostGate(shard.send, in_flight=1, waiting=10)
    shard.open("g")
    good, bad = await asyncio.gather(gate("g", "fine"), gate("g", "bad one"), return_exceptions=True)
    assert good == "FINE"
    assert isinstance(bad, ChatRelayError) and (bad.reason, bad.message) == (Reason.REFUSED, "no bad one")

    unavailable = ChatRelayError(Reason.UNAVAILABLE, "relay shard unavailable")
    failures = iter([unavailable])

    async def flaky(address, items):
        error = next(failures, None)
        if error is not None:
            await asyncio.sleep(0)
            raise error
        return [request.upper() for request in items]

    gate = PostGate(flaky, in_flight=1, waiting=10)
    results = await asyncio.gather(gate("g", "a"), gate("g", "b"), return_exceptions=True)
    assert results == [unavailable, "B"]  # the next turn goes on after a failed one
    assert len(gate) == 0


def test_bad_bounds_are_refused():
    for bounds in ({"in_flight": 0, "waiting": 1}, {"in_flight": 1, "waiting": -1},
                   {"in_flight": 1, "waiting": 1, "batch": 0}):
        with pytest.raises(ValueError, match="in_flight 1 or more, waiting and total 0 or more, batch 1 or more"):
            PostGate(None, **bounds)
