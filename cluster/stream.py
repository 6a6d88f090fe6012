"""Subscriber streams of one gateway: each reads its group's tail here, catching up from
the log as long as it needs to. Once it has read from the shared window it may lag at
most `subscriber_lag` posts, or it is cut off with its position, so that a slow reader
costs its group nothing."""

from __future__ import annotations

from typing import AsyncIterator

from chatrelay.actors.figures import GatewayStats, ProcessInfo, StreamFigures
from chatrelay.cluster.router import ShardRouter
from chatrelay.cluster.tail import LINGER_MAX_S, TAIL_WINDOW, GroupTail, Traced
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.v1 import relay_pb2


class CutOff(ChatRelayError):
    """A stream that fell too far behind: subscribe again after `resume_after_seq`."""

    def __init__(self, behind: int, resume_after_seq: int) -> None:
        super().__init__(
            Reason.BEHIND, f"this stream fell {behind} posts behind; subscribe again after seq {resume_after_seq}"
        )
        self.resume_after_seq = resume_after_seq


class Streams:
    """The tails of the groups with subscribers here, and the figures of their streams."""

    def __init__(self, router: ShardRouter, subscriber_lag: int = TAIL_WINDOW, metrics=None,
                 traced: Traced | None = None, linger_s: float = LINGER_MAX_S) -> None:
        self.router = router
        self.linger_s = linger_s  # the most a tail waits between wakes of a busy group's streams
        self.subscriber_lag = subscriber_lag
        self.metrics = metrics  # a GatewayMetrics, or None
        self.traced = traced
        self.tails: dict[str, GroupTail] = {}
        self.paging: set[str] = set()  # groups with no tail here whose first stream's check brings its page
        self.subscribers = 0
        self.deliveries = 0
        self.cut_off = 0

    def page_wanted(self, address: str) -> bool:
        """Whether a stream of the group opening now should bring its first page with its
        reader's check: the group has no tail here and no other opening stream asks
        already (a crowd of new streams catches up together, from the log, as before).
        The one answered True says `page_asked` once its check is back."""
        if address in self.tails or address in self.paging:
            return False
        self.paging.add(address)
        return True

    def page_asked(self, address: str) -> None:
        self.paging.discard(address)

    async def follow(self, address: str, seq: int, last_seq: int, reader: bytes = b"",
                     opened: float = 0.0, first: tuple = ()) -> AsyncIterator[bytes]:
        """The batches of a checked reader's stream, after `seq`, each an encoded
        DeliveryBatch (one encoding for every stream at the same place in the window);
        `last_seq`: the group's newest post when the reader was checked (where a new tail
        starts); `first`: the posts after `seq` read with that check, sent first. It ends
        with `not_a_member` once the owners remove `reader`."""
        tail = self.tails.get(address)
        if tail is None or tail.task.done():
            tail = self.tails[address] = GroupTail(self.router, address, last_seq, self.traced, self.linger_s)
        tail.subscribers += 1
        self.subscribers += 1
        was_live = False
        try:
            if first:
                seq = first[-1].seq
                self._delivered(tail, len(first))
                yield relay_pb2.DeliveryBatch(deliveries=first, last_seq=seq).SerializeToString()
            while True:
                behind = tail.after - seq
                if was_live and behind > self.subscriber_lag:
                    self.cut_off += 1
                    if self.metrics is not None:
                        self.metrics.cut_off.add(1)
                    raise CutOff(behind, seq)
                from_window = tail.holds(seq)  # else from the log, each catching-up stream its own read
                deliveries = await tail.after_seq(seq, reader, opened)
                was_live = was_live or tail.holds(seq)
                if not deliveries:
                    continue
                seq = deliveries[-1].seq
                self._delivered(tail, len(deliveries))
                yield tail.encoded(deliveries) if from_window else relay_pb2.DeliveryBatch(
                    deliveries=deliveries, last_seq=seq).SerializeToString()
        finally:
            self.subscribers -= 1
            tail.subscribers -= 1
            if tail.subscribers == 0 and self.tails.get(address) is tail:
                tail.close()
                del self.tails[address]

    def _delivered(self, tail: GroupTail, count: int) -> None:
        self.deliveries += count
        tail.delivered += count
        if self.metrics is not None:
            self.metrics.deliveries.add(count)

    def group_subscribers(self, address: str) -> int:
        tail = self.tails.get(address)
        return tail.subscribers if tail is not None else 0

    def stats(self, process: ProcessInfo, groups: bool = False) -> GatewayStats:
        """This gateway's streams; with `groups`, by group address (those with streams)."""
        return GatewayStats(
            subscribers=self.subscribers, deliveries=self.deliveries, tails=len(self.tails), cut_off=self.cut_off,
            process=process, groups=tuple(
                (address, StreamFigures(subscribers=t.subscribers, deliveries=t.delivered))
                for address, t in self.tails.items()
            ) if groups else (),
        )

    def close(self) -> None:
        for tail in self.tails.values():
            tail.close()
        self.tails.clear()
