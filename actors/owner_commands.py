"""Owners' commands and reads (DESIGN.md section 5, step 6): signed, idempotent by command
id, each appended once to the group's service log. Part of GroupRelay; the group's state
changes only through `records.transition`."""

from __future__ import annotations

import time

from chatrelay import envelope as env
from chatrelay import group
from chatrelay.actors import records
from chatrelay.actors.message_log import READ_LIMIT, RECORD_OVERHEAD, fit
from chatrelay.actors.records import STATE_PB, Change, GroupRecord, GroupState, MemberStatus
from chatrelay.actors.registry import Delete, Get, Put, unchanged_since
from chatrelay.actors.direct_invitations import admission_of
from chatrelay.actors.takedowns import MAX_REASON, NOTICE_KEY, command_record, service_entry
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.v1 import core_pb2, relay_pb2

CREDENTIAL_SKEW_S = 600
CHANGES = {
    relay_pb2.OWNER_COMMAND_KIND_SUSPEND: Change.SUSPEND,
    relay_pb2.OWNER_COMMAND_KIND_RESUME: Change.RESUME,
    relay_pb2.OWNER_COMMAND_KIND_REMOVE_RELAY: Change.REMOVE,
    relay_pb2.OWNER_COMMAND_KIND_DELETE_GROUP: Change.REMOVE,
}


class OwnerCommands:
    def check_owner_read(self, envelope: core_pb2.SignedEnvelope) -> relay_pb2.OwnerReadBody:
        checked, body = env.verify_message(envelope, env.Domain.OWNER_READ, relay_pb2.OwnerReadBody, "owner read")
        if checked.signer not in self.profile.authorities():
            raise ChatRelayError(Reason.UNKNOWN_SIGNER, "only owners of the group may read this")
        if body.group_address != self.address:
            raise ChatRelayError(Reason.GROUP_MISMATCH, "owner read is for another group address")
        if abs(time.time() - body.timestamp) > CREDENTIAL_SKEW_S:
            raise ChatRelayError(Reason.BAD_SIGNATURE, "owner read is too old or from the future; check the clock")
        return body

    async def service_log(self, since_seq: int) -> list[relay_pb2.ServiceLogEntry]:
        rows = fit(await self.ctx.log.read(records.service_stream(self.address), since_seq, READ_LIMIT))
        return [service_entry(r) for r in rows]

    async def pending(self) -> list[relay_pb2.JoinPending]:
        """The oldest joins waiting, a page of them: the next come as owners decide."""
        waiting = [m for _, m in await self.ctx.members.find(self.address, status=MemberStatus.PENDING)]
        return [
            relay_pb2.JoinPending(request_id=m.request_id, join=env.decode(m.join), received_at=m.joined_ms)
            for m in fit(waiting, lambda m: len(m.join) + RECORD_OVERHEAD)
        ]

    async def listed_members(self, counts_only: bool = False) -> relay_pb2.ListMembersResponse:
        """The members, oldest join first, a page of them, and how many there are."""
        if counts_only:
            return relay_pb2.ListMembersResponse(total=self.member_count())
        found = await self.ctx.members.find(self.address, status=MemberStatus.MEMBER)
        listed = [relay_pb2.ListedMember(admission=admission_of(m), joined_at=m.joined_ms) for _, m in found if m.join]
        return relay_pb2.ListMembersResponse(
            members=fit(listed, lambda m: m.ByteSize() + RECORD_OVERHEAD), total=self.member_count())

    async def owner_command(self, envelope: core_pb2.SignedEnvelope) -> relay_pb2.OwnerCommandResponse:
        return await self.call(self._owner_command, envelope)

    async def _owner_command(self, envelope: core_pb2.SignedEnvelope) -> relay_pb2.OwnerCommandResponse:
        checked, body = env.verify_message(
            envelope, env.Domain.OWNER_COMMAND, relay_pb2.OwnerCommandBody, "owner command"
        )
        if checked.signer not in self.profile.authorities():
            raise ChatRelayError(Reason.UNKNOWN_SIGNER, "owner command is not signed by an owner of the group")
        if body.group_address != self.address:
            raise ChatRelayError(Reason.GROUP_MISMATCH, "owner command is for another group address")
        if not body.command_id or len(body.command_id) > 64:
            raise ChatRelayError(Reason.MALFORMED, "owner command needs a command id of 1 to 64 bytes")
        if body.command_id.startswith(NOTICE_KEY):  # the relay's own entries are keyed so
            raise ChatRelayError(Reason.MALFORMED, "an owner command id may not start with 'notice/'")
        stream = records.service_stream(self.address)
        seen = await self.ctx.log.find(stream, [body.command_id])
        if seen:  # idempotent: the same command id is applied once
            return relay_pb2.OwnerCommandResponse(
                state=STATE_PB[self.record.state], applied_before=True, log_seq=seen[body.command_id]
            )
        if len(body.reason) > MAX_REASON:
            raise ChatRelayError(Reason.MALFORMED, f"a reason is at most {MAX_REASON} characters, got {len(body.reason)}")
        fence = await self.fence()
        kind = body.kind
        if kind == relay_pb2.OWNER_COMMAND_KIND_UPDATE_PROFILE:
            outcome = await self._update_profile(body.profile)
        elif kind in CHANGES:
            await self._save(records.transition(self.record.state, CHANGES[kind]), self.record.profile, self.profile)
            if kind == relay_pb2.OWNER_COMMAND_KIND_DELETE_GROUP and self.last_seq:
                await self.ctx.log.trim(self.stream, self.last_seq)
            outcome = f"group {self.record.state.value}"
        elif kind in (relay_pb2.OWNER_COMMAND_KIND_APPROVE_JOIN, relay_pb2.OWNER_COMMAND_KIND_REJECT_JOIN):
            outcome = await self._decide(body, envelope)
        elif kind == relay_pb2.OWNER_COMMAND_KIND_REVOKE_INVITE:
            outcome = await self.revoke_invite(body.invite_key, fence)
        elif kind == relay_pb2.OWNER_COMMAND_KIND_REMOVE_MEMBER:
            if not self.is_member(body.member):
                raise ChatRelayError(Reason.NOT_MEMBER, "no member with this key in the group")
            await self.forget_member(body.member, fence)
            outcome = "member removed"
        else:
            raise ChatRelayError(Reason.MALFORMED, f"unknown owner command kind {kind}")
        appended = await self.ctx.log.append(stream, [command_record(envelope, outcome)], keys=[body.command_id],
                                             fence=fence)
        seq = appended.seqs[0]
        return relay_pb2.OwnerCommandResponse(
            state=STATE_PB[self.record.state], applied_before=appended.duplicates[0], log_seq=seq
        )

    async def _decide(self, body: relay_pb2.OwnerCommandBody, envelope: core_pb2.SignedEnvelope) -> str:
        """Approve or reject a pending join; what it did. An approval names the member's
        key, and is kept with the member: it is what shows other members the owners let
        this one in. A rejection is kept too, with the owners' reason: the member asking
        again is answered with it."""
        approve = body.kind == relay_pb2.OWNER_COMMAND_KIND_APPROVE_JOIN
        found = await self.ctx.members.find(self.address, request_id=body.request_id, status=MemberStatus.PENDING, limit=1)
        if not found:
            raise ChatRelayError(Reason.UNKNOWN_ADDRESS, "no pending join request with this id")
        [(sign_key, member)] = found
        fence = await self.fence()
        if approve:
            if body.member != sign_key:
                raise ChatRelayError(Reason.MALFORMED, "an approval must name the key of the member it admits")
            member.status = MemberStatus.MEMBER
            member.approval = env.encode(envelope)
            await self.ctx.members.put(self.address, sign_key, member, fence)
            self.members[sign_key] = MemberStatus.MEMBER
            return "member admitted"
        member.status, member.note = MemberStatus.REJECTED, body.reason
        await self.ctx.members.put(self.address, sign_key, member, fence)
        self.members[sign_key] = MemberStatus.REJECTED
        return f"join rejected: {body.reason}" if body.reason else "join rejected"

    async def _update_profile(self, profile_envelope: core_pb2.SignedEnvelope) -> str:
        """Apply a new profile version, then put it in the group's stream, where members
        find it (and check it themselves: chatrelay/reader.py). The same version sent
        again (its answer lost, or the stream not reached) is applied once and put in
        the stream once. The version that activates the group here is not: no member
        reads here before, and those who join after have it from the link."""
        new = group.verify_profile(profile_envelope, group_id=self.record.group_id)
        activates = self.record.state is GroupState.PENDING
        if env.encode(new.envelope) != self.record.profile:
            group.check_update(self.profile, new)
            mine = any(
                r.relay_key == self.ctx.relay_key and r.group_address == self.address
                for r in new.profile.relays
            )
            state = records.transition(self.record.state, Change.ACTIVATE if mine else Change.PROFILE)
            await self._save(state, env.encode(profile_envelope), new)
            if state is GroupState.ACTIVE:
                self._schedule_drain()
        if not activates:
            await self.announce(new.envelope)
        return f"profile v{new.version}" + (f", group {self.record.state.value}" if activates else "")

    async def _save(self, state: GroupState, profile_bytes: bytes, profile: group.VerifiedProfile,
                    taken_down: str | None = None) -> None:
        """The group record, compared against the revision this load read; with
        `taken_down`, the operator's takedown (its reason, or "" when lifted) and its
        entry in the relay's list of them, in the same transaction."""
        updated = GroupRecord(
            group_id=self.record.group_id, address=self.address, state=state,
            registration_key=self.record.registration_key, profile=profile_bytes,
            taken_down=self.record.taken_down if taken_down is None else taken_down,
        )
        key = records.group_key(self.record.group_id)
        ops: list = [Put(key, updated.dumps())]
        if taken_down is not None:
            listed = records.takedown_key(self.address)
            ops.append(Put(listed, taken_down.encode()) if taken_down else Delete(listed))
        result = await self.ctx.registry.transaction([unchanged_since(key, self.mod_revision)], [*ops, Get(key)])
        if not result.succeeded:
            raise ChatRelayError(Reason.BUSY, "group record changed concurrently; retry")
        self.record, self.profile, self.mod_revision = updated, profile, result.gets[0].mod_revision
        if state is GroupState.REMOVED:
            self.wake_readers()  # they end now, with the reason
