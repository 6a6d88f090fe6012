"""A tail wakes its group's waiting streams for new posts at most once every `linger()`
(cluster/tail.py): 150 µs for each of its streams on the gateway, at most the relay's
--fanout-linger, so that a busy group's posts go out together. A post after a quiet
spell goes out at once; the tail reads each post as it comes, so a stream that comes back
from its last write finds it without waiting; every post still reaches every stream."""

from __future__ import annotations

import asyncio

import pytest

from chatrelay.actors.calls import TailRead
from chatrelay.cluster import tail as tails
from chatrelay.cluster.tail import LINGER_PER_STREAM_S, GroupTail
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.v1 import relay_pb2

from test_tail_idle import PollRouter  # each poll takes the next answer given


def posts(*seqs: int) -> TailRead:
    return TailRead([relay_pb2.Delivery(seq=s) for s in seqs])


def seqs(deliveries) -> list[int]:
    return [d.seq for d in deliveries]


async def until(predicate) -> None:
    while not predicate():
        await asyncio.sleep(0.005)


def test_the_wait_grows_with_the_streams_up_to_the_relays_bound():
    tail = GroupTail.__new__(GroupTail)  # no loop needed: the figure alone
    tail.linger_s = tails.LINGER_MAX_S
    for streams, wait in ((0, 0.0), (1, LINGER_PER_STREAM_S), (100, 0.015), (1000, 0.15), (10_000, 0.25)):
        tail.subscribers = streams
        assert abs(tail.linger() - wait) < 1e-9, streams
    tail.linger_s = 0.0
    assert tail.linger() == 0.0


async def test_a_post_after_a_quiet_spell_wakes_the_streams_at_once_the_next_waits():
    router = PollRouter()
    tail = GroupTail(router, "g", start_after=5, linger_s=10.0)
    tail.subscribers = 100_000  # a wait of 10 s: no wake in this test comes from it running out
    first = asyncio.create_task(tail.after_seq(5))
    router.answers.put_nowait(posts(6))
    assert seqs(await asyncio.wait_for(first, 5.0)) == [6]
    waiting = asyncio.create_task(tail.after_seq(6))
    await asyncio.sleep(0.01)
    router.answers.put_nowait(posts(7))
    await asyncio.wait_for(until(lambda: tail.after == 7), 5.0)  # read at once
    await asyncio.sleep(0.2)
    assert not waiting.done()  # not woken yet
    assert seqs(await asyncio.wait_for(tail.after_seq(6), 5.0)) == [7]  # a stream back from a write finds it
    pending = tail._waking
    tail.close()
    assert pending is not None and pending.cancelled()
    waiting.cancel()


async def test_posts_that_came_while_it_waited_reach_each_stream_together():
    router = PollRouter()
    tail = GroupTail(router, "g", start_after=5, linger_s=0.5)
    tail.subscribers = 100_000  # 15 s for 100,000 streams, bounded at 0.5 s here
    streams = [asyncio.create_task(tail.after_seq(5)) for _ in range(3)]
    router.answers.put_nowait(posts(6))
    assert [seqs(g) for g in await asyncio.wait_for(asyncio.gather(*streams), 5.0)] == [[6]] * 3
    streams = [asyncio.create_task(tail.after_seq(6)) for _ in range(3)]
    router.answers.put_nowait(posts(7))
    await asyncio.wait_for(until(lambda: tail.after == 7), 5.0)
    await asyncio.sleep(0.01)
    assert not any(s.done() for s in streams)  # read, and not woken for it yet
    router.answers.put_nowait(posts(8, 9))  # read while the wake waits
    await asyncio.wait_for(until(lambda: tail.after == 9), 5.0)
    got = await asyncio.wait_for(asyncio.gather(*streams), 5.0)
    assert [seqs(g) for g in got] == [[7, 8, 9]] * 3
    assert router.polls == 4  # a read for each answer; the next is under way
    tail.close()


async def test_a_removal_or_the_groups_end_wakes_the_streams_at_once_while_a_wake_waits():
    router = PollRouter()
    tail = GroupTail(router, "g", start_after=5, linger_s=10.0)
    tail.subscribers = 100_000
    first = asyncio.create_task(tail.after_seq(5, b"kept"))
    router.answers.put_nowait(posts(6))
    assert seqs(await asyncio.wait_for(first, 5.0)) == [6]
    removed = asyncio.create_task(tail.after_seq(6, b"gone", opened=0.0))
    kept = asyncio.create_task(tail.after_seq(6, b"kept", opened=0.0))
    router.answers.put_nowait(posts(7))  # its wake waits 10 s
    await asyncio.wait_for(until(lambda: tail.after == 7), 5.0)
    router.answers.put_nowait(TailRead([], removed=(b"gone",), removals=1))
    with pytest.raises(ChatRelayError) as refused:
        await asyncio.wait_for(removed, 5.0)
    assert (refused.value.reason, refused.value.message) == (
        Reason.NOT_MEMBER, "removed from this group by its owners or moderators")
    assert seqs(await asyncio.wait_for(kept, 5.0)) == [7]  # woken by the removal, it finds the post
    waiting = asyncio.create_task(tail.after_seq(7, b"kept"))
    router.answers.put_nowait(posts(8))
    await asyncio.wait_for(until(lambda: tail.after == 8), 5.0)
    router.answers.put_nowait(ChatRelayError(Reason.TAKEN_DOWN, "taken down by the relay's operator: spam"))
    with pytest.raises(ChatRelayError) as ended:
        await asyncio.wait_for(waiting, 5.0)
    assert (ended.value.reason, ended.value.message) == (Reason.TAKEN_DOWN, "taken down by the relay's operator: spam")
    tail.close()


async def test_with_no_linger_each_post_wakes_the_streams_at_once():
    router = PollRouter()
    tail = GroupTail(router, "g", start_after=5, linger_s=0.0)
    tail.subscribers = 100_000
    for seq in (6, 7, 8):
        waiting = asyncio.create_task(tail.after_seq(seq - 1))
        await asyncio.sleep(0)
        router.answers.put_nowait(posts(seq))
        assert seqs(await asyncio.wait_for(waiting, 5.0)) == [seq]
    tail.close()


class Silent:
    """A group's shard with nothing new: each long poll waits for ever."""

    async def call_address(self, address, call):
        await asyncio.Event().wait()


async def test_the_relays_setting_reaches_the_tails_of_its_gateways_streams():
    from chatrelay import settings
    from chatrelay.actors.policy import RelayLimits, RelayPolicy
    from chatrelay.cluster.stream import Streams

    limits = RelayLimits.of(settings.load({"fanout_linger_s": "0.05"}, environ={}), RelayPolicy())
    assert limits.fanout_linger_s == 0.05
    streams = Streams(Silent(), linger_s=limits.fanout_linger_s)
    following = streams.follow("g", 0, last_seq=1, first=(relay_pb2.Delivery(seq=1),))
    await anext(following)
    tail = streams.tails["g"]
    assert (tail.linger_s, tail.subscribers) == (0.05, 1)
    assert tail.linger() == LINGER_PER_STREAM_S  # one stream: far below the bound
    await following.aclose()
    assert streams.tails == {}
