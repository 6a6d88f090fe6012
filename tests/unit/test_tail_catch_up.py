"""Streams behind a gateway's window of a group catch up from the log in one read for all
that ask while it is under way (cluster/tail.py, GroupTail._catch_up): a channel's new
subscribers, all starting from its first post, cost one shard call, not one each."""

from __future__ import annotations

import asyncio

import pytest

from chatrelay.actors.calls import TailRead
from chatrelay.cluster.tail import GroupTail
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.v1 import relay_pb2


class LogRouter:
    """The router as a tail calls it: the long poll waits for ever, a read from the log
    (wait 0) waits for `gate` and answers the posts after its seq, or `failure`."""

    def __init__(self, last: int) -> None:
        self.last = last
        self.reads: list[int] = []
        self.gate = asyncio.Event()
        self.failure: Exception | None = None

    async def call_address(self, address, call):
        if call.wait_s > 0:
            await asyncio.Event().wait()
        self.reads.append(call.after_seq)
        await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return TailRead([relay_pb2.Delivery(seq=s) for s in range(call.after_seq + 1, self.last + 1)])


async def test_streams_catching_up_from_the_same_seq_share_one_read():
    router = LogRouter(last=3)
    tail = GroupTail(router, "g", start_after=3)
    waiting = [asyncio.create_task(tail.after_seq(0, wait_s=1.0)) for _ in range(50)]
    behind = asyncio.create_task(tail.after_seq(1, wait_s=1.0))  # from elsewhere: a read of its own
    await asyncio.sleep(0.01)
    router.gate.set()
    answers = await asyncio.gather(*waiting)
    assert [[d.seq for d in a] for a in answers] == [[1, 2, 3]] * 50
    assert [d.seq for d in await behind] == [2, 3]
    assert sorted(router.reads) == [0, 1]
    assert tail._catching_up == {}
    tail.close()


async def test_a_stream_that_goes_away_leaves_the_read_to_the_others():
    router = LogRouter(last=2)
    tail = GroupTail(router, "g", start_after=2)
    leaving = asyncio.create_task(tail.after_seq(0, wait_s=1.0))
    staying = asyncio.create_task(tail.after_seq(0, wait_s=1.0))
    await asyncio.sleep(0.01)
    leaving.cancel()
    router.gate.set()
    assert [d.seq for d in await staying] == [1, 2]
    assert router.reads == [0]
    with pytest.raises(asyncio.CancelledError):
        await leaving
    tail.close()


async def test_a_failed_read_fails_each_stream_waiting_and_the_next_reads_again():
    router = LogRouter(last=2)
    router.failure = ChatRelayError(Reason.UNAVAILABLE, "relay shard unavailable: restarting")
    tail = GroupTail(router, "g", start_after=2)
    waiting = [asyncio.create_task(tail.after_seq(0, wait_s=1.0)) for _ in range(3)]
    await asyncio.sleep(0.01)
    router.gate.set()
    failed = await asyncio.gather(*waiting, return_exceptions=True)
    assert [(f.reason, f.message) for f in failed] == [
        (Reason.UNAVAILABLE, "relay shard unavailable: restarting")] * 3
    router.failure = None
    assert [d.seq for d in await tail.after_seq(0, wait_s=1.0)] == [1, 2]
    assert router.reads == [0, 0]
    tail.close()


async def test_closing_the_tail_ends_the_reads_under_way():
    router = LogRouter(last=2)
    tail = GroupTail(router, "g", start_after=2)
    waiting = asyncio.create_task(tail.after_seq(0, wait_s=1.0))
    await asyncio.sleep(0.01)
    tail.close()
    with pytest.raises(asyncio.CancelledError):
        await waiting


def seqs(deliveries) -> list[int]:
    return [d.seq for d in deliveries]


async def test_posts_read_for_streams_behind_are_kept_for_the_next_ones():
    router = LogRouter(last=3)
    router.gate.set()
    tail = GroupTail(router, "g", start_after=3)  # a new tail: nothing in its window
    assert seqs(await tail.after_seq(1, wait_s=1.0)) == [2, 3]
    assert seqs(tail.buffer) == [2, 3] and tail.holds(1) and not tail.holds(0)
    assert seqs(await tail.after_seq(1, wait_s=1.0)) == [2, 3]  # from the window now
    assert seqs(await tail.after_seq(2, wait_s=1.0)) == [3]
    assert seqs(await tail.after_seq(0, wait_s=1.0)) == [1, 2, 3]  # further behind: the log, once
    assert router.reads == [1, 0] and seqs(tail.buffer) == [1, 2, 3]
    tail.close()


async def test_posts_that_do_not_reach_the_window_or_race_a_deletion_are_not_kept():
    router = LogRouter(last=12)
    tail = GroupTail(router, "g", start_after=12)
    tail.buffer.extend(relay_pb2.Delivery(seq=s) for s in (10, 11, 12))
    tail.keep_older([relay_pb2.Delivery(seq=s) for s in (4, 5, 6, 7, 8)])  # 9 missing between
    assert seqs(tail.buffer) == [10, 11, 12]
    reading = asyncio.create_task(tail.after_seq(8, wait_s=1.0))
    await asyncio.sleep(0.01)
    tail.forgets += 1  # a moderation deleted a post from the window meanwhile
    router.gate.set()
    assert seqs(await reading) == [9, 10, 11, 12]
    assert seqs(tail.buffer) == [10, 11, 12]
    tail.close()


async def test_no_more_is_kept_than_the_window_has_room_for():
    from chatrelay.cluster.tail import TAIL_WINDOW

    router = LogRouter(last=TAIL_WINDOW + 10)
    tail = GroupTail(router, "g", start_after=TAIL_WINDOW + 10)
    tail.buffer.extend(relay_pb2.Delivery(seq=s) for s in range(13, TAIL_WINDOW + 11))  # room for 2
    tail.keep_older([relay_pb2.Delivery(seq=s) for s in range(5, 13)])
    assert len(tail.buffer) == TAIL_WINDOW
    assert seqs(tail.buffer)[:3] == [11, 12, 13] and tail.buffer[-1].seq == TAIL_WINDOW + 10
    tail.close()
