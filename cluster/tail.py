"""Fan-out: one tail per group with subscribers on this gateway.

A GroupTail long-polls the group's shard for the posts after the newest it holds and
keeps a window of the newest posts, shared by every stream of the group here: a post
costs one shard call per gateway, not one per subscriber. A stream that fell out of the
window reads from the log instead; what it read there joins the window where it reaches it.

A tail that has just woken its waiting streams for new posts wakes them again no sooner
than LINGER_PER_STREAM_S for each of its streams later (at most the relay's
--fanout-linger), so that a busy group's posts go out together, each stream writing them
in one message: each message costs the gateway, and the subscriber, gRPC's own work, and
woken at every post, 1,000 streams kept the gateway's loop busy writing messages of a
few posts, the poster's acks waiting behind them (README, "The fan-out linger"). It
still reads each post as it comes, so a stream coming back from a write finds what came
meanwhile without waiting. A post after a quiet spell goes out at once; a removal or the
group's end wakes them at once too.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import time
import logging

from google.protobuf.message import DecodeError

from chatrelay import envelope as env
from chatrelay.actors import tracing
from chatrelay.actors.calls import ReadPosts, TailRead
from chatrelay.cluster.router import ShardRouter
from chatrelay.cluster.waiters import Waiters
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.settings import DEFAULTS
from chatrelay.v1 import core_pb2, relay_pb2

log = logging.getLogger(__name__)

TAIL_WAIT_S = 5.0  # how long one poll of the shard waits for a new post
BATCH = 200  # posts a poll or a catch-up read returns at most (200 posts of 16 KiB: 3.3 MB, below 4 MiB)
# Refusals that end a group's streams here: the relay no longer serves it, or its operator
# took it down (a stream opened after a restore reads from a new tail).
ENDS = (Reason.NOT_ACTIVE, Reason.TAKEN_DOWN)
TAIL_WINDOW = 4096  # newest posts of a group kept in a gateway for its subscribers
ENCODED_KEPT = 64  # encoded batches a tail keeps for the streams behind the first
LINGER_PER_STREAM_S = 150e-6  # a tail's wait between wakes of a busy group's streams, for each of them here
LINGER_MAX_S = DEFAULTS.fanout_linger_s  # the most it waits (--fanout-linger)


def _seq(delivery: relay_pb2.Delivery) -> int:
    return delivery.seq


class Traced:
    """Span contexts of posts this gateway took, by message id, until its tail of the
    group receives them for delivery (bounded: the oldest are let go)."""

    LIMIT = 10_000

    def __init__(self) -> None:
        self.contexts: collections.OrderedDict[bytes, object] = collections.OrderedDict()

    def put(self, message_id: bytes, span_context) -> None:
        self.contexts[message_id] = span_context
        while len(self.contexts) > self.LIMIT:
            self.contexts.popitem(last=False)

    def delivered(self, deliveries, subscribers: int) -> None:
        """A `chatrelay.deliver` span, child of the post's, for each post traced here."""
        from opentelemetry import trace
        from opentelemetry.trace import NonRecordingSpan, SpanKind

        for d in deliveries:
            span_context = self.contexts.pop(d.message_id, None)
            if span_context is None:
                continue
            parent = trace.set_span_in_context(NonRecordingSpan(span_context))
            tracing.tracer().start_span("chatrelay.deliver", context=parent, kind=SpanKind.PRODUCER, attributes={
                "messaging.system": "chatrelay", "messaging.operation.name": "deliver",
                "chatrelay.seq": d.seq, "chatrelay.subscribers": subscribers,
            }).end()


class GroupTail:
    """The newest posts of one group, shared by every subscriber of it on this gateway."""

    def __init__(self, router: ShardRouter, address: str, start_after: int, traced: "Traced | None" = None,
                 linger_s: float = LINGER_MAX_S) -> None:
        self.router = router
        self.linger_s = linger_s
        self.traced = traced
        self.address = address
        self.after = start_after
        self.buffer: collections.deque[relay_pb2.Delivery] = collections.deque(maxlen=TAIL_WINDOW)
        self.changed = Waiters()  # the streams waiting for the next post
        self.subscribers = 0
        self.delivered = 0  # posts written to this gateway's streams of the group
        self.ended: ChatRelayError | None = None  # why its streams end, once they do
        self.removed: dict[bytes, float] = {}  # readers removed from the group: when learned (monotonic); their streams end
        self.loaded, self.removals = b"", 0  # the shard's count of removals this tail has seen
        self._encoded: dict[tuple[int, int], bytes] = {}  # recent batches from the window, encoded once
        self.forgets = 0  # moderations that deleted posts from the window
        self._catching_up: dict[int, asyncio.Future] = {}  # reads from the log under way, by the seq they read after
        self._woke = float("-inf")  # when its waiting streams were last woken for new posts (monotonic)
        self._waking: asyncio.TimerHandle | None = None  # their next wake, when it waits for it
        self._untraced: list[relay_pb2.Delivery] = []  # posts read since that wake, when tracing
        self.task = asyncio.create_task(self._run(), name=f"tail-{address}")

    async def _read(self, after: int, wait_s: float) -> list[relay_pb2.Delivery]:
        read: TailRead = await self.router.call_address(
            self.address, ReadPosts(self.address, after, BATCH, wait_s, self.loaded, self.removals))
        if read.removed or read.loaded != self.loaded:
            now = time.monotonic()  # streams of removed readers end now
            for key in read.removed:
                self.removed[key] = now
            self.loaded, self.removals = read.loaded, read.removals
            self.changed.notify_all()
        return read.deliveries

    def linger(self) -> float:
        """Seconds this tail waits, after waking its streams for new posts, before it wakes them again."""
        return min(self.linger_s, self.subscribers * LINGER_PER_STREAM_S)

    def _posted(self) -> None:
        """New posts are in the window: the waiting streams are woken now, or, when the
        last wake was less than `linger()` ago, that long after it (once for all the posts
        that come meanwhile). Streams not waiting find them when they come back."""
        if self._waking is not None:
            return
        wait = self._woke + self.linger() - time.monotonic()
        if wait > 0:
            self._waking = asyncio.get_running_loop().call_later(wait, self._wake)
        else:
            self._wake()

    def _wake(self) -> None:
        self._waking = None
        self._woke = time.monotonic()
        if self._untraced:  # their `chatrelay.deliver` spans: the streams have them now
            self.traced.delivered(self._untraced, self.subscribers)
            self._untraced = []
        self.changed.notify_all()

    async def _run(self) -> None:
        while True:
            try:
                deliveries = await self._read(self.after, TAIL_WAIT_S)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # whatever else broke, the subscribers wait on this loop
                if isinstance(exc, ChatRelayError) and exc.reason in ENDS:
                    self.ended = exc  # every stream of the group here ends, with the reason
                    self.changed.notify_all()
                    return
                log.warning("tail of a group failed, retrying: %s", exc)
                await asyncio.sleep(0.5)
                continue
            if deliveries:
                if self.traced is not None and tracing.enabled():
                    self._untraced += deliveries
                self.buffer.extend(deliveries)
                self._forget_deleted(deliveries)
                self.after = deliveries[-1].seq
                self._posted()

    def _forget_deleted(self, deliveries: list[relay_pb2.Delivery]) -> None:
        """Posts a moderation in `deliveries` deleted (the shard checked and applied it
        before it was in the stream) are served from this window no more either."""
        posts, authors = set(), set()
        for d in deliveries:
            if d.post.domain != env.Domain.MODERATION.value:
                continue
            try:
                body = core_pb2.ModerationBody.FromString(d.post.body)
            except DecodeError:  # the shard checked it before it was in the stream: never here
                continue
            if body.kind == core_pb2.MODERATION_KIND_DELETE_POST:
                posts.add(body.message_id)
            elif body.delete_posts:
                authors.add(body.member)
        if posts or authors:
            self.forgets += 1
            kept = [d for d in self.buffer if not (d.post.domain == env.Domain.POST.value and (
                d.message_id in posts or d.post.signer in authors))]
            self.buffer = collections.deque(kept, maxlen=TAIL_WINDOW)

    async def after_seq(self, seq: int, reader: bytes = b"", opened: float = 0.0,
                        wait_s: float | None = None) -> list[relay_pb2.Delivery]:
        """Posts after `seq`, for `reader`: from memory when recent, from the shard's log
        when older; when there are none yet, waits for the next (at most `wait_s`, then
        none). Refused once the group is gone from the relay, or the reader from it since
        `opened` (monotonic: when its shard was asked whether it is a member; one removed
        before, and admitted again, reads on).

        A live stream waits without a timer: it is woken by a post, a removal or the end
        of the group. A timeout each wait made the streams' idle cost grow with their
        number: 100,000 streams idle, re-waiting every 5 s, kept more than a core busy
        (README, the reconnect storm)."""
        self._check(reader, opened)
        if not self.holds(seq):  # fell behind the window: catch up from the log
            return await self._catch_up(seq)
        if self.after <= seq:
            woken = self._until(lambda: self.after > seq or self.ended or self.removed.get(reader, 0) > opened)
            try:
                await (woken if wait_s is None else asyncio.wait_for(woken, wait_s))
            except asyncio.TimeoutError:
                return []
            self._check(reader, opened)
        return self._window_after(seq)

    async def _until(self, predicate) -> None:
        while not predicate():
            await self.changed.wait()

    async def _catch_up(self, seq: int) -> list[relay_pb2.Delivery]:
        """The posts after `seq` from the log, in one read for every stream that asks for
        them while it is under way (a channel's new subscribers all start from its first
        post; a stream that goes away leaves the read to the others)."""
        read = self._catching_up.get(seq)
        if read is None:
            read = self._catching_up[seq] = asyncio.ensure_future(self._read(seq, 0.0))
            forgets = self.forgets
            read.add_done_callback(lambda done: self._read_done(seq, done, forgets))
        return await asyncio.shield(read)

    def _read_done(self, seq: int, read: asyncio.Future, forgets: int) -> None:
        if self._catching_up.get(seq) is read:
            del self._catching_up[seq]
        if not read.cancelled() and read.exception() is None:  # retrieved here: every waiter may have gone
            if forgets == self.forgets:  # no post deleted from the window while it read
                self.keep_older(read.result())

    def keep_older(self, deliveries: list[relay_pb2.Delivery]) -> None:
        """Posts read from the log for streams behind (every post after some seq, up to the
        last of `deliveries`): those older than the window, kept in it where they reach it
        and as far as it has room, so that the next streams as far behind read them from
        here, not from the log again (every subscriber of a channel coming back after its
        gateway restarted, each a post or so behind the new tail)."""
        oldest = self.buffer[0].seq if self.buffer else self.after + 1
        room = TAIL_WINDOW - len(self.buffer)
        if not deliveries or deliveries[-1].seq + 1 < oldest or room <= 0:
            return  # a gap between them and the window, or no room
        older = [d for d in deliveries if d.seq < oldest][-room:]
        self.buffer.extendleft(reversed(older))

    def _window_after(self, seq: int) -> list[relay_pb2.Delivery]:
        """At most BATCH posts of the window after `seq`: found by bisection (seqs rise
        through the window), so a wake of every stream costs what it returns, not the
        window's length."""
        buffer = self.buffer
        start = bisect.bisect_right(buffer, seq, key=_seq)
        return [buffer[i] for i in range(start, min(len(buffer), start + BATCH))]

    def encoded(self, deliveries: list[relay_pb2.Delivery]) -> bytes:
        """The DeliveryBatch of `deliveries`, as its stream writes it. Streams at the same
        place in the window get the same posts: the batch is encoded once for all of them
        (a post's seq names it for good, so the first and last seq name the batch)."""
        key = (deliveries[0].seq, deliveries[-1].seq)
        data = self._encoded.get(key)
        if data is None:
            if len(self._encoded) >= ENCODED_KEPT:
                self._encoded.clear()
            data = self._encoded[key] = relay_pb2.DeliveryBatch(
                deliveries=deliveries, last_seq=deliveries[-1].seq).SerializeToString()
        return data

    def _check(self, reader: bytes, opened: float = 0.0) -> None:
        if self.ended is not None:
            raise self.ended
        if self.removed.get(reader, 0) > opened:
            raise ChatRelayError(Reason.NOT_MEMBER, "removed from this group by its owners or moderators")

    def holds(self, seq: int) -> bool:
        """Whether a stream at `seq` reads from this window (not from the log)."""
        oldest = self.buffer[0].seq if self.buffer else self.after + 1
        return seq + 1 >= oldest

    def close(self) -> None:
        self.task.cancel()
        if self._waking is not None:
            self._waking.cancel()
        for read in self._catching_up.values():
            read.cancel()
