"""Group calls bound for one shard cross the Ray seam in one call (`ShardCalls`), and so
do reader checks, in calls of their own: the gateway's router gathers those made in one
turn of its loop, the shard answers each as it would have alone, and a group that moved
is followed on its own."""

from __future__ import annotations

import asyncio

import pytest

from chatrelay.actors.calls import CheckReader, Done, GroupCall, MovedAway, Refused, ShardCalls, pack, unpack
from chatrelay.actors.shard import MAX_SHARD_CALLS
from chatrelay.cluster.router import ShardRouter
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.v1 import core_pb2, relay_pb2

from test_shard_calls import shard
from test_shard_posts import FakeShard, Placements, router


def join(address: str) -> GroupCall:
    return GroupCall(address, relay_pb2.JoinRequest(envelope=core_pb2.SignedEnvelope(body=address.encode())))


# ---- the shard ----------------------------------------------------------------------------

async def test_shard_calls_of_none_too_many_or_of_other_kinds_are_refused():
    refused = Refused(Reason.MALFORMED, f"shard calls carry 1 to {MAX_SHARD_CALLS} group calls or reader checks")
    assert await shard().serve(ShardCalls(())) == refused
    assert await shard().serve(ShardCalls((join("a"),) * (MAX_SHARD_CALLS + 1))) == refused
    assert await shard().serve(ShardCalls((join("a"), ShardCalls((join("b"),))))) == refused
    assert await shard().serve(pack(ShardCalls(("not a call",)))) == refused


async def test_each_call_of_shard_calls_is_answered_as_it_would_be_alone():
    odd = GroupCall("a", relay_pb2.StatusRequest())  # refused before any group is loaded
    alone = await shard().serve(odd)
    assert alone == Refused(Reason.MALFORMED, "no group request StatusRequest")
    assert await shard().serve(ShardCalls((odd, odd))) == Done((alone, alone))


def test_shard_calls_cross_the_seam_packed_and_come_back_the_same():
    call = ShardCalls((join("a"), CheckReader("b", core_pb2.SignedEnvelope(body=b"credential"))))
    assert unpack(pack(call)) == call


# ---- the gateway's router ---------------------------------------------------------------------

def CallsShard(answer) -> FakeShard:
    return FakeShard(answer, "calls")


def admitted(c) -> Done:
    return Done(f"{c.address}:{type(c).__name__}")


async def test_calls_made_in_one_turn_go_to_each_shard_in_one_call_and_checks_in_another():
    zero, one = CallsShard(admitted), CallsShard(admitted)
    routed = router({f"g{i}": i % 2 for i in range(10)}, zero, one)
    made = [join(f"g{i}") if i % 3 else CheckReader(f"g{i}", core_pb2.SignedEnvelope()) for i in range(10)]
    answers = await asyncio.gather(*(routed.gathered(c.address, c) for c in made))
    assert answers == [f"g{i}:{'GroupCall' if i % 3 else 'CheckReader'}" for i in range(10)]
    for to, first in ((zero, 0), (one, 1)):  # one call of the shard's group calls, one of its checks
        mine = made[first::2]
        checks = [c.address for c in mine if isinstance(c, CheckReader)]
        calls = [c.address for c in mine if isinstance(c, GroupCall)]
        assert sorted([c.address for c in sent.calls] for sent in to.calls) == sorted([checks, calls])
    assert routed.lane_figures() == {"posts": (0, 0), "calls": (2, 6), "checks": (2, 4)}  # (Ray calls, items)


def test_the_calls_to_the_shards_and_their_items_are_exported_by_kind():
    from test_chart import exported_lines

    shard_calls = {"posts": (3, 40), "calls": (2, 6), "checks": (5, 300)}
    assert exported_lines("chatrelay_shard_call", shard_calls=lambda: shard_calls) == {
        'chatrelay_shard_calls_total{chatrelay_call="posts"} 3.0',
        'chatrelay_shard_calls_total{chatrelay_call="calls"} 2.0',
        'chatrelay_shard_calls_total{chatrelay_call="checks"} 5.0',
        'chatrelay_shard_call_items_total{chatrelay_call="posts"} 40.0',
        'chatrelay_shard_call_items_total{chatrelay_call="calls"} 6.0',
        'chatrelay_shard_call_items_total{chatrelay_call="checks"} 300.0',
    }
    scope = 'otel_scope_name="test",otel_scope_schema_url="",otel_scope_version=""'
    assert exported_lines("chatrelay_shard_socket", socket_calls=lambda: 12) == {  # of them, through sockets
        "chatrelay_shard_socket_calls_total{" + scope + "} 12.0"}


async def test_a_refused_call_is_refused_to_its_own_caller_only():
    def answer(c):
        return Refused(Reason.BANNED, "this key is banned from the group") if c.address == "bad" else admitted(c)
    routed = router({"bad": 0, "good": 0}, CallsShard(answer))
    bad, good = await asyncio.gather(routed.gathered("bad", join("bad")), routed.gathered("good", join("good")),
                                     return_exceptions=True)
    assert isinstance(bad, ChatRelayError)
    assert (bad.reason, bad.message) == (Reason.BANNED, "this key is banned from the group")
    assert good == "good:GroupCall"


async def test_a_call_whose_group_moved_follows_it_and_the_others_are_not_sent_again():
    zero = CallsShard(lambda c: MovedAway() if c.address == "moving" else admitted(c))
    one = CallsShard(admitted)
    routed = ShardRouter(Placements({"moving": 1, "staying": 0}), [zero, one])
    routed.table.update({"moving": 0, "staying": 0})  # stale: the group went to shard 1
    answers = await asyncio.gather(routed.gathered("moving", join("moving")), routed.gathered("staying", join("staying")))
    assert answers == ["moving:GroupCall", "staying:GroupCall"]
    assert [[c.address for c in sent.calls] for sent in zero.calls] == [["moving", "staying"]]
    assert [[c.address for c in sent.calls] for sent in one.calls] == [["moving"]]


async def test_a_shard_answering_too_few_calls_fails_each_caller_and_leaves_none_waiting():
    class Short(FakeShard):
        def answered(self, n: int) -> int:
            return 1
    routed = router({"a": 0, "b": 0}, Short(admitted, "calls"))
    answers = await asyncio.wait_for(asyncio.gather(
        routed.gathered("a", join("a")), routed.gathered("b", join("b")), return_exceptions=True), 5)
    for answer in answers:
        assert isinstance(answer, ChatRelayError)
        assert (answer.reason, answer.message) == (Reason.UNAVAILABLE, "relay shard 0 answered 1 of 2 calls")


async def test_a_group_with_no_placement_is_refused_and_sends_nothing():
    zero = CallsShard(admitted)
    with pytest.raises(ChatRelayError) as caught:
        await router({}, zero).gathered("nowhere", join("nowhere"))
    assert (caught.value.reason, caught.value.message) == (Reason.UNKNOWN_ADDRESS, "no group at this address")
    assert zero.calls == []
