"""Moderation at a relay (issue 18): an owner's or moderator's signed deletion or removal
is checked (chatrelay/moderation.py), put in the group's stream once, where members check
it again, and applied: a deleted post is served no more, a removed member's streams end,
a banned key is refused at its next join. Part of GroupRelay."""

from __future__ import annotations

import time

from chatrelay import envelope as env
from chatrelay import members, moderation
from chatrelay.actors.message_log import READ_LIMIT, Fence
from chatrelay.actors.records import GroupState, MemberRecord, MemberStatus
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.v1 import core_pb2, relay_pb2

ERASE_BATCH = 500  # keys erased in one store call, when a member's posts go


class Moderating:
    async def moderate(self, envelope: core_pb2.SignedEnvelope) -> relay_pb2.ModerateResponse:
        return await self.call(self._moderate, envelope)

    async def _moderate(self, envelope: core_pb2.SignedEnvelope) -> relay_pb2.ModerateResponse:
        """Checked, in the stream once, then applied. The same signed moderation sent
        again (its answer lost) is applied again, which changes nothing more."""
        self.check_not_taken_down()
        if self.record.state is GroupState.REMOVED:
            raise ChatRelayError(Reason.NOT_ACTIVE, "this relay no longer serves this group")
        done = moderation.verify(envelope, self.profile)
        if done.role == moderation.MODERATOR and not self.is_member(done.signer):
            raise ChatRelayError(Reason.NOT_ALLOWED, "a moderator that is no member of the group moderates no more")
        fence = await self.fence()
        item = members.item_id(envelope)
        held = await self.ctx.log.find(self.stream, [item])
        if item in held:
            seq = held[item]
        else:
            window = self.ctx.limits.freshness_s
            if abs(time.time() - done.body.timestamp) > window:
                raise ChatRelayError(Reason.STALE, f"moderation was signed more than {window:g} s from now; check the clock")
            await self._check_target(done)
            seq = await self.announce(envelope)
        await self._apply(done, fence)
        return relay_pb2.ModerateResponse(seq=seq, applied_before=item in held)

    async def _check_target(self, done: moderation.Moderation) -> None:
        body = done.body
        if body.kind == core_pb2.MODERATION_KIND_DELETE_POST:
            found = await self.ctx.log.find(self.stream, [body.message_id])
            seq = found.get(body.message_id)
            rows = await self.ctx.log.read(self.stream, seq - 1, 1) if seq else []
            if not rows or rows[0].seq != seq:
                raise ChatRelayError(Reason.NOT_FOUND, "no such post in the group (deleted, or never here)")
            post = env.decode(rows[0].data)
            if post.domain != env.Domain.POST.value:
                raise ChatRelayError(Reason.NOT_ALLOWED, "only posts are deleted")
            moderation.check_deletion(done, self.profile, post.signer)
        elif self.members.get(body.member) not in (MemberStatus.MEMBER, MemberStatus.PENDING) and not body.ban:
            raise ChatRelayError(Reason.NOT_MEMBER, "no member with this key in the group")  # a key may be banned before it joins

    async def _apply(self, done: moderation.Moderation, fence: Fence) -> None:
        body = done.body
        if body.kind == core_pb2.MODERATION_KIND_DELETE_POST:
            await self.ctx.log.erase(self.stream, [body.message_id])
            return
        key = body.member
        if body.ban:
            record = await self.ctx.members.get(self.address, key)
            banned = MemberRecord(box_key=record.box_key if record else b"",
                                  display_name=record.display_name if record else "",
                                  status=MemberStatus.BANNED, joined_ms=int(time.time() * 1000))
            await self.ctx.members.put(self.address, key, banned, fence)
            self.remove_member(key)
            self.members[key] = MemberStatus.BANNED
        else:
            await self.forget_member(key, fence)
        if body.delete_posts:
            await self._erase_posts_of(key)

    async def _erase_posts_of(self, author: bytes) -> int:
        """Every post of `author` the group's stream holds, erased; how many."""
        keys, after, erased = [], 0, 0
        for _ in range(self.last_seq // READ_LIMIT + 2):  # bounded: each page moves on
            rows = await self.ctx.log.read(self.stream, after, READ_LIMIT)
            if not rows:
                break
            for row in rows:
                item = env.decode(row.data)
                if item.signer == author and item.domain == env.Domain.POST.value and row.key:
                    keys.append(row.key)
            after = rows[-1].seq
            while len(keys) >= ERASE_BATCH:
                erased += await self.ctx.log.erase(self.stream, keys[:ERASE_BATCH])
                del keys[:ERASE_BATCH]
        return erased + await self.ctx.log.erase(self.stream, keys)
