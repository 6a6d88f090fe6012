"""Members find each other (DESIGN.md section 6, direct connections on demand): a
member's own signed join, which binds its keys, and direct invitations sealed to one
member, forwarded through the group where its settings allow. Part of GroupRelay."""

from __future__ import annotations

import hashlib

from chatrelay import envelope as env
from chatrelay.actors import records
from chatrelay.actors.message_log import READ_LIMIT, fit
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.v1 import core_pb2, relay_pb2

MAX_SEALED = 32 * 1024


class DirectInvitations:
    def member_admissions(self, sign_key: bytes, display_name: str) -> list[relay_pb2.MemberAdmission]:
        """The member with this key, or every member with this display name: each one's own
        signed join, which binds its keys, and the owner's approval that admitted it."""
        if sign_key:
            found = [sign_key] if sign_key in self.members else []
        else:
            found = [k for k, m in self.members.items() if display_name and m.display_name == display_name]
        found = [k for k in found if self.is_member(k) and self.members[k].join]
        if not found:
            raise ChatRelayError(Reason.NOT_MEMBER, "no such member in this group")
        out = []
        for k in found:
            admission = relay_pb2.MemberAdmission(join=env.decode(self.members[k].join))
            if self.members[k].approval:
                admission.approval.CopyFrom(env.decode(self.members[k].approval))
            out.append(admission)
        return out

    async def direct_invitation(self, envelope: core_pb2.SignedEnvelope) -> relay_pb2.DirectInvitationResponse:
        checked, body = env.verify_message(
            envelope, env.Domain.DIRECT_INVITATION, relay_pb2.DirectInvitationBody, "direct invitation"
        )
        if body.group_address != self.address:
            raise ChatRelayError(Reason.GROUP_MISMATCH, "direct invitation is for another group address")
        if not self.profile.profile.settings.direct_messages:
            raise ChatRelayError(Reason.NOT_ALLOWED, "direct messages are off in this group")
        if checked.signer not in self.profile.authorities() and not self.is_member(checked.signer):
            raise ChatRelayError(Reason.NOT_MEMBER, "sender is not a member of this group")
        if not self.is_member(body.to_member):
            raise ChatRelayError(Reason.NOT_MEMBER, "recipient is not a member of this group")
        if len(body.sealed) > MAX_SEALED:
            raise ChatRelayError(Reason.TOO_LARGE, f"direct invitation is over {MAX_SEALED} bytes")
        key = hashlib.sha256(checked.signer + body.nonce).digest()[:16]
        appended = await self.ctx.log.append(
            records.direct_stream(self.address, body.to_member), [env.encode(envelope)], keys=[key]
        )
        return relay_pb2.DirectInvitationResponse(seq=appended.seqs[0])

    async def direct_inbox(self, reader: bytes, after_seq: int) -> list[relay_pb2.DirectInvitationDelivery]:
        rows = fit(await self.ctx.log.read(records.direct_stream(self.address, reader), after_seq, READ_LIMIT))
        return [relay_pb2.DirectInvitationDelivery(seq=r.seq, invitation=env.decode(r.data)) for r in rows]
