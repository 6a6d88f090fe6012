"""Posts of several groups bound for one shard cross the Ray seam in one call
(`ShardPosts`): the gateway's router gathers the batches sent in one turn of its loop, the
shard answers each as it would have alone, and a group that moved is followed on its own."""

from __future__ import annotations

import asyncio

from chatrelay.actors import records
from chatrelay.actors.calls import Done, MovedAway, PostBatch, Refused, ShardPosts, pack, unpack
from chatrelay.actors.registry import Entry
from chatrelay.actors.shard import MAX_SHARD_BATCHES
from chatrelay.cluster.router import ShardRouter
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.v1 import core_pb2

import pytest
from test_shard_calls import shard


def batch(address: str, posts: int = 1, carried: tuple = ()) -> PostBatch:
    return PostBatch(address, tuple(core_pb2.SignedEnvelope(body=b"%d" % i) for i in range(posts)), carried)


# ---- the shard ----------------------------------------------------------------------------

async def test_shard_posts_of_no_batch_too_many_or_not_batches_are_refused():
    refused = Refused(Reason.MALFORMED, f"shard posts carry 1 to {MAX_SHARD_BATCHES} post batches")
    assert await shard().serve(ShardPosts(())) == refused
    assert await shard().serve(ShardPosts((batch("a"),) * (MAX_SHARD_BATCHES + 1))) == refused
    assert await shard().serve(ShardPosts((batch("a"), core_pb2.SignedEnvelope()))) == refused
    assert await shard().serve(pack(ShardPosts(("not a batch",)))) == refused


async def test_each_batch_of_shard_posts_is_answered_as_it_would_be_alone():
    bad = batch("a", 2, ({},))  # refused before anything is loaded: one context for two posts
    alone = await shard().serve(bad)
    assert alone == Refused(Reason.MALFORMED, "a post batch carries one trace context a post, or none")
    assert await shard().serve(ShardPosts((bad, batch("b", 1, ({}, {}))))) == Done((alone, alone))


def test_shard_posts_cross_the_seam_packed_and_come_back_the_same():
    call = ShardPosts((batch("a", 2), batch("b", 1, ({"traceparent": "x"},))))
    assert unpack(pack(call)) == call


# ---- the gateway's router ---------------------------------------------------------------------

class Placements:
    """The registry as the router reads placements from it."""

    def __init__(self, table: dict[str, int]) -> None:
        self.table = table

    async def get(self, key: bytes):
        index = self.table.get(key[len(records.PLACEMENT_PREFIX):].decode())
        return None if index is None else Entry(key, str(index).encode(), 1, 1, 1)


class FakeShard:
    """A shard handle: records the calls it is sent and answers each of a call's `items`
    (ShardPosts' batches, ShardCalls' calls) by `answer`."""

    def __init__(self, answer, items: str = "batches") -> None:
        self.calls: list = []
        self.answer = answer
        self.items = items
        self.serve = self

    def remote(self, packed: bytes):
        call = unpack(packed)
        self.calls.append(call)

        async def answered():
            await asyncio.sleep(0)
            items = getattr(call, self.items)
            return Done(tuple(self.answer(b) for b in items)[: self.answered(len(items))])
        return answered()

    def answered(self, n: int) -> int:
        """How many of n items it answers (all, unless a test says otherwise)."""
        return n


def router(placed: dict[str, int], *shards: FakeShard) -> ShardRouter:
    found = ShardRouter(Placements(placed), list(shards))
    found.table.update(placed)
    return found


def ack(b: PostBatch):
    return Done([f"{b.address}:{len(b.posts)}"])


async def test_batches_sent_in_one_turn_go_to_each_shard_in_one_call():
    zero, one = FakeShard(ack), FakeShard(ack)
    placed = {f"g{i}": i % 2 for i in range(10)}
    routed = router(placed, zero, one)
    answers = await asyncio.gather(*(routed.post(batch(f"g{i}", i + 1)) for i in range(10)))
    assert answers == [[f"g{i}:{i + 1}"] for i in range(10)]
    assert [[b.address for b in c.batches] for c in zero.calls] == [[f"g{i}" for i in range(0, 10, 2)]]
    assert [[b.address for b in c.batches] for c in one.calls] == [[f"g{i}" for i in range(1, 10, 2)]]


async def test_a_refused_batch_is_refused_to_its_own_caller_only():
    def answer(b: PostBatch):
        return Refused(Reason.NOT_ACTIVE, "group is frozen, not active") if b.address == "bad" else ack(b)
    routed = router({"bad": 0, "good": 0}, FakeShard(answer))
    bad, good = await asyncio.gather(routed.post(batch("bad")), routed.post(batch("good")), return_exceptions=True)
    assert isinstance(bad, ChatRelayError)
    assert (bad.reason, bad.message) == (Reason.NOT_ACTIVE, "group is frozen, not active")
    assert good == ["good:1"]


async def test_a_batch_whose_group_moved_follows_it_and_the_others_are_not_sent_again():
    placements = Placements({"moving": 1, "staying": 0})
    zero = FakeShard(lambda b: MovedAway() if b.address == "moving" else ack(b))
    one = FakeShard(ack)
    routed = ShardRouter(placements, [zero, one])
    routed.table.update({"moving": 0, "staying": 0})  # stale: the group went to shard 1
    answers = await asyncio.gather(routed.post(batch("moving", 2)), routed.post(batch("staying")))
    assert answers == [["moving:2"], ["staying:1"]]
    assert [[b.address for b in c.batches] for c in zero.calls] == [["moving", "staying"]]
    assert [[b.address for b in c.batches] for c in one.calls] == [["moving"]]
    assert routed.table["moving"] == 1


async def test_a_group_with_no_placement_is_refused_and_sends_nothing():
    zero = FakeShard(ack)
    with pytest.raises(ChatRelayError) as caught:
        await router({}, zero).post(batch("nowhere"))
    assert (caught.value.reason, caught.value.message) == (Reason.UNKNOWN_ADDRESS, "no group at this address")
    assert zero.calls == []


async def test_a_shard_answering_too_few_batches_fails_each_caller_and_leaves_none_waiting():
    class Short(FakeShard):
        def remote(self, packed: bytes):
            async def answered():
                return Done((ack(unpack(packed).batches[0]),))
            return answered()
    routed = router({"a": 0, "b": 0}, Short(ack))
    answers = await asyncio.wait_for(
        asyncio.gather(routed.post(batch("a")), routed.post(batch("b")), return_exceptions=True), 5)
    for answer in answers:
        assert isinstance(answer, ChatRelayError)
        assert (answer.reason, answer.message) == (Reason.UNAVAILABLE, "relay shard 0 answered 1 of 2 post batches")
