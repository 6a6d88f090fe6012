"""Reading a group at its relay: who may read (a member, or an owner; the history a new
member may page back), the posts after a seq (waiting for one, or for a removal, as a
gateway's tail asks), and history pages. Part of GroupRelay."""

from __future__ import annotations

import asyncio
import time

from chatrelay import envelope as env
from chatrelay.actors.calls import ReadPosts, TailRead
from chatrelay.actors.message_log import READ_LIMIT, fit
from chatrelay.actors.owner_commands import CREDENTIAL_SKEW_S
from chatrelay.actors.records import GroupState, MemberStatus
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.v1 import core_pb2, relay_pb2


class Reading:
    def serving(self) -> None:
        """Readers are served until the group is removed from this relay (or while it is
        taken down here)."""
        if self.record.state is GroupState.REMOVED:
            raise ChatRelayError(Reason.NOT_ACTIVE, "group is removed, not active")
        self.check_not_taken_down()

    def check_reader(self, credential: core_pb2.SignedEnvelope, now: float | None = None) -> bytes:
        """The reader's key, once its credential is good for this group now and the key
        may read it. The credential of a reader let in before (the same bytes, for this
        group) is not verified again; its age and the reader's standing are checked every
        time. Only readers let in are remembered: a stranger's credentials cannot push
        them out of the shard's memory."""
        self.serving()
        verified = self.ctx.readers
        key = verified.key(self.address, credential)
        known = verified.get(key)
        if known is None:
            checked, body = env.verify_message(
                credential, env.Domain.SUBSCRIBE, relay_pb2.SubscribeBody, "subscribe credential"
            )
            if body.group_address != self.address:
                raise ChatRelayError(Reason.GROUP_MISMATCH, "credential is for another group address")
            signer, timestamp = checked.signer, body.timestamp
        else:
            signer, timestamp = known
        now = time.time() if now is None else now
        if abs(now - timestamp) > CREDENTIAL_SKEW_S:
            raise ChatRelayError(Reason.BAD_SIGNATURE, "credential is too old or from the future; check the clock")
        if signer not in self.profile.authorities():
            status = self.members.get(signer)
            if status is MemberStatus.BANNED:
                raise ChatRelayError(Reason.BANNED, "this key is banned from the group")
            if status is MemberStatus.REJECTED:
                raise ChatRelayError(Reason.NOT_MEMBER, "the owners rejected this key's join")
            if status is not MemberStatus.MEMBER:
                raise ChatRelayError(Reason.NOT_MEMBER, "reader is not a member of this group")
        if known is None:
            verified.put(key, signer, timestamp)
        return signer

    def history_floor(self, reader: bytes) -> int:
        limit = self.profile.profile.settings.history_limit
        if not limit or reader in self.profile.authorities():
            return 0
        return max(0, self.last_seq - limit)

    async def tail_read(self, call: ReadPosts) -> TailRead:
        """A tail's read: the posts after its seq (waiting for one, or for a removal), and
        the members removed since its count (all of this load's, for another load)."""
        start = call.removed_after if call.loaded == self.loaded else 0
        deliveries = await self.read(call.after_seq, call.limit, call.wait_s, removed_after=start)
        return TailRead(deliveries, tuple(self.removals[start:]), len(self.removals), self.loaded)

    async def read(self, after_seq: int, limit: int = READ_LIMIT, wait_s: float = 0.0, *,
                   removed_after: int | None = None) -> list[relay_pb2.Delivery]:
        """Posts after `after_seq`; waits up to `wait_s` for the first one when none is there.
        Once the group is removed from this relay, refused: the tails reading it end their
        streams with that reason."""
        self.serving()
        if wait_s > 0 and not await self._wait_for_posts(after_seq, wait_s, removed_after):
            self.serving()
            return []
        return _deliveries(fit(await self.ctx.log.read(self.stream, after_seq, min(limit, READ_LIMIT))))

    async def _wait_for_posts(self, after_seq: int, wait_s: float, removed_after: int | None = None) -> bool:
        """Whether a post after `after_seq` came within `wait_s` seconds (or, where
        `removed_after` is given, a removal past it; or the group was removed)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while (self.last_seq <= after_seq and self.record.state is not GroupState.REMOVED
               and not self.record.taken_down
               and (removed_after is None or len(self.removals) <= removed_after)):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            if self._new_posts is None:
                self._new_posts = asyncio.Event()
            self.waiting_readers += 1  # a group with a reader waiting is not idle
            try:
                await asyncio.wait_for(self._new_posts.wait(), remaining)
            except asyncio.TimeoutError:
                return self.last_seq > after_seq
            finally:
                self.waiting_readers -= 1
        return True

    async def history(self, reader: bytes, before_seq: int, limit: int) -> list[relay_pb2.Delivery]:
        floor = self.history_floor(reader)
        rows = await self.ctx.log.read_before(self.stream, before_seq, min(max(limit, 1), READ_LIMIT))
        return [d for d in _deliveries(fit(rows, newest=True)) if d.seq > floor]


def _deliveries(rows) -> list[relay_pb2.Delivery]:
    return [
        relay_pb2.Delivery(seq=r.seq, post=env.decode(r.data), message_id=r.key or b"", relay_ts=r.ts)
        for r in rows
    ]
