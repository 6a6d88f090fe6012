"""Live streams of a group waiting at a gateway for its next post hold no timer (cluster/
tail.py, GroupTail.after_seq): they are woken by a post, a removal or the group's end, so
that 100,000 idle streams cost nothing while nothing happens. A timeout on each wait kept
more than a core busy at 100,000 (README, the reconnect storm)."""

from __future__ import annotations

import asyncio

import pytest

from chatrelay.actors.calls import TailRead
from chatrelay.cluster.tail import GroupTail
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.v1 import relay_pb2


class PollRouter:
    """The router as a tail's long poll calls it: each poll waits until `answer` is given."""

    def __init__(self) -> None:
        self.answers: asyncio.Queue = asyncio.Queue()
        self.polls = 0

    async def call_address(self, address, call):
        self.polls += 1
        answer = await self.answers.get()
        if isinstance(answer, Exception):
            raise answer
        return answer


def timers() -> int:
    return len(asyncio.get_running_loop()._scheduled)  # the loop's pending call_at handles


async def test_a_thousand_waiting_streams_hold_no_timer_and_the_next_post_wakes_them_all():
    router = PollRouter()
    tail = GroupTail(router, "g", start_after=5)
    await asyncio.sleep(0)
    before = timers()
    waiting = [asyncio.create_task(tail.after_seq(5, b"r%d" % i)) for i in range(1000)]
    await asyncio.sleep(0.05)
    assert timers() == before
    assert not any(w.done() for w in waiting)
    router.answers.put_nowait(TailRead([relay_pb2.Delivery(seq=6), relay_pb2.Delivery(seq=7)]))
    answers = await asyncio.wait_for(asyncio.gather(*waiting), 5.0)
    assert {tuple(d.seq for d in a) for a in answers} == {(6, 7)}
    assert router.polls == 2  # the next poll is under way, one for all of them
    tail.close()


async def test_a_removal_ends_only_the_removed_readers_stream():
    router = PollRouter()
    tail = GroupTail(router, "g", start_after=5)
    removed = asyncio.create_task(tail.after_seq(5, b"gone", opened=0.0))
    kept = asyncio.create_task(tail.after_seq(5, b"kept", opened=0.0))
    await asyncio.sleep(0.01)
    router.answers.put_nowait(TailRead([], removed=(b"gone",), removals=1))
    with pytest.raises(ChatRelayError) as refused:
        await asyncio.wait_for(removed, 5.0)
    assert (refused.value.reason, refused.value.message) == (
        Reason.NOT_MEMBER, "removed from this group by its owners or moderators")
    await asyncio.sleep(0.01)
    assert not kept.done()
    router.answers.put_nowait(TailRead([relay_pb2.Delivery(seq=6)]))
    assert [d.seq for d in await asyncio.wait_for(kept, 5.0)] == [6]
    tail.close()


async def test_the_groups_end_ends_every_waiting_stream():
    router = PollRouter()
    tail = GroupTail(router, "g", start_after=5)
    waiting = [asyncio.create_task(tail.after_seq(5)) for _ in range(3)]
    await asyncio.sleep(0.01)
    router.answers.put_nowait(ChatRelayError(Reason.TAKEN_DOWN, "taken down by the relay's operator: spam"))
    failed = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 5.0)
    assert [(f.reason, f.message) for f in failed] == [
        (Reason.TAKEN_DOWN, "taken down by the relay's operator: spam")] * 3


async def test_a_stream_that_goes_away_leaves_the_others_waiting():
    router = PollRouter()
    tail = GroupTail(router, "g", start_after=5)
    leaving = asyncio.create_task(tail.after_seq(5))
    staying = asyncio.create_task(tail.after_seq(5))
    await asyncio.sleep(0.01)
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert len(tail.changed) == 1
    router.answers.put_nowait(TailRead([relay_pb2.Delivery(seq=6)]))
    assert [d.seq for d in await asyncio.wait_for(staying, 5.0)] == [6]
    tail.close()


async def test_a_wait_with_a_bound_ends_empty_at_it():
    tail = GroupTail(PollRouter(), "g", start_after=5)
    assert await tail.after_seq(5, wait_s=0.05) == []
    tail.close()
