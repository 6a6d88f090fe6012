"""The first stream of a group on a gateway brings its first page with its reader's check
(one shard call, not a check and then a read from the log: resolve + join + first
delivery took about 27 ms, then about 20): the shard reads it after the reader's seq and
floor, and the stream sends it before anything of the tail's."""

from __future__ import annotations

import asyncio

from chatrelay.actors.calls import CheckReader, Done, ReaderInfo, TailRead
from chatrelay.cluster.stream import Streams
from chatrelay.v1 import core_pb2, relay_pb2

from test_shard_calls import shard


def posts(*seqs: int) -> list[relay_pb2.Delivery]:
    return [relay_pb2.Delivery(seq=s, message_id=bytes([s])) for s in seqs]


class Group:
    """A loaded group as the shard's reader check sees it: reader `r`, floor 5, newest 8."""

    last_seq = 8

    def __init__(self) -> None:
        self.reads: list[tuple[int, int]] = []

    def check_reader(self, credential):
        return b"r"

    def history_floor(self, reader):
        return 5

    async def read(self, after, limit):
        self.reads.append((after, limit))
        return posts(*range(after + 1, min(self.last_seq, after + limit) + 1))


class Groups:
    def __init__(self, group) -> None:
        self.group = group

    async def get(self, address):
        return self.group


async def test_the_page_starts_past_the_readers_floor_and_seq():
    relay, group = shard(), Group()
    relay.groups = Groups(group)
    credential = core_pb2.SignedEnvelope()
    assert await relay.serve(CheckReader("g", credential, since_seq=0, page_limit=2)) == Done(
        ReaderInfo(reader=b"r", floor=5, last_seq=8, page=tuple(posts(6, 7))))
    assert await relay.serve(CheckReader("g", credential, since_seq=6, page_limit=200)) == Done(
        ReaderInfo(reader=b"r", floor=5, last_seq=8, page=tuple(posts(7, 8))))
    assert group.reads == [(5, 2), (6, 200)]
    for since, limit in ((8, 200), (9, 200), (0, 0)):  # nothing newer, or no page asked: no read
        assert await relay.serve(CheckReader("g", credential, since_seq=since, page_limit=limit)) == Done(
            ReaderInfo(reader=b"r", floor=5, last_seq=8))
    assert len(group.reads) == 2


class Router:
    """A tail's shard: the long poll waits for ever; a read from the log answers the posts
    after its seq up to `last`."""

    def __init__(self, last: int) -> None:
        self.last = last
        self.reads: list[int] = []

    async def call_address(self, address, call):
        if call.wait_s > 0:
            await asyncio.Event().wait()
        self.reads.append(call.after_seq)
        return TailRead(posts(*range(call.after_seq + 1, self.last + 1)))


def seqs(batch: bytes) -> list[int]:
    return [d.seq for d in relay_pb2.DeliveryBatch.FromString(batch).deliveries]


async def test_the_first_page_goes_first_and_the_stream_reads_on_after_it():
    router = Router(last=3)
    streams = Streams(router)
    whole = streams.follow("g", 0, last_seq=3, first=tuple(posts(1, 2, 3)))
    assert seqs(await anext(whole)) == [1, 2, 3]
    partial = streams.follow("g", 0, last_seq=3, first=tuple(posts(1)))  # a page short of the newest
    assert seqs(await anext(partial)) == [1]
    assert seqs(await asyncio.wait_for(anext(partial), 5)) == [2, 3]
    assert router.reads == [1]  # only the short page's stream read the log
    assert streams.deliveries == 6 and streams.tails["g"].delivered == 6
    await whole.aclose()
    await partial.aclose()
    assert streams.tails == {}


async def test_one_opening_stream_of_a_group_with_no_tail_asks_for_the_page():
    streams = Streams(Router(last=1))
    assert streams.page_wanted("g")
    assert not streams.page_wanted("g")  # asked already: this one catches up with the tail
    assert streams.page_wanted("h")
    streams.page_asked("g")
    opened = streams.follow("g", 0, last_seq=1, first=tuple(posts(1)))
    await anext(opened)
    assert not streams.page_wanted("g")  # a tail is here now
    await opened.aclose()
    assert streams.page_wanted("g")
