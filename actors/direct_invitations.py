"""Members find each other (DESIGN.md section 6, direct connections on demand): a
member's own signed join, which binds its keys, and direct invitations sealed to one
member, forwarded through the group where its settings allow. Part of GroupRelay."""

from __future__ import annotations

import hashlib

from chatrelay import envelope as env
from chatrelay.actors import records
from chatrelay.actors.message_log import READ_LIMIT, fit
from chatrelay.actors.records import MemberRecord
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.v1 import core_pb2, relay_pb2

MAX_SEALED = 32 * 1024



def admission_of(member: MemberRecord) -> relay_pb2.MemberAdmission:
    """A member's own signed join, which binds its keys, and the owner's approval that
    admitted it."""
    admission = relay_pb2.MemberAdmission(join=env.decode(member.join))
    if member.approval:
        admission.approval.CopyFrom(env.decode(member.approval))
    return admission

class DirectInvitations:
    async def member_admissions(self, sign_key: bytes, display_name: str) -> list[relay_pb2.MemberAdmission]:
        """The member with this key, or the members with this display name (a page of
        them): each one's own signed join, which binds its keys, and the owner's approval
        that admitted it."""
        if sign_key:
            record = await self.ctx.members.get(self.address, sign_key) if self.is_member(sign_key) else None
            found = [(sign_key, record)] if record is not None else []
        else:
            found = await self.ctx.members.find(self.address, name=display_name) if display_name else []
        found = [(k, m) for k, m in found if self.is_member(k) and m.join]
        if not found:
            raise ChatRelayError(Reason.NOT_MEMBER, "no such member in this group")
        return [admission_of(member) for _, member in found]

    async def direct_invitation(self, envelope: core_pb2.SignedEnvelope) -> relay_pb2.DirectInvitationResponse:
        checked, body = env.verify_message(
            envelope, env.Domain.DIRECT_INVITATION, relay_pb2.DirectInvitationBody, "direct invitation"
        )
        if body.group_address != self.address:
            raise ChatRelayError(Reason.GROUP_MISMATCH, "direct invitation is for another group address")
        self.check_not_taken_down()
        if not self.profile.profile.settings.direct_messages:
            raise ChatRelayError(Reason.NOT_ALLOWED, "direct messages are off in this group")
        fence = await self.fence()  # before the members are looked at
        if checked.signer not in self.profile.authorities() and not self.is_member(checked.signer):
            raise ChatRelayError(Reason.NOT_MEMBER, "sender is not a member of this group")
        if not self.is_member(body.to_member):
            raise ChatRelayError(Reason.NOT_MEMBER, "recipient is not a member of this group")
        if len(body.sealed) > MAX_SEALED:
            raise ChatRelayError(Reason.TOO_LARGE, f"direct invitation is over {MAX_SEALED} bytes")
        key = hashlib.sha256(checked.signer + body.nonce).digest()[:16]
        appended = await self.ctx.log.append(
            records.direct_stream(self.address, body.to_member), [env.encode(envelope)], keys=[key], fence=fence)
        return relay_pb2.DirectInvitationResponse(seq=appended.seqs[0])

    async def direct_inbox(self, reader: bytes, after_seq: int) -> list[relay_pb2.DirectInvitationDelivery]:
        rows = fit(await self.ctx.log.read(records.direct_stream(self.address, reader), after_seq, READ_LIMIT))
        return [relay_pb2.DirectInvitationDelivery(seq=r.seq, invitation=env.decode(r.data)) for r in rows]
