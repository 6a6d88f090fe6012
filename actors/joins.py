"""Joining a group (DESIGN.md sections 5 and 6): open joins, joins waiting for an owner's
approval, invite codes, and joins held while the group is pending, admitted once it is
active. Part of GroupRelay."""

from __future__ import annotations

import hashlib
import time

from chatrelay import envelope as env
from chatrelay import admission, invites, members
from chatrelay.actors import records
from chatrelay.actors.message_log import READ_LIMIT, Fence, Fenced
from chatrelay.actors.records import GroupState, MemberRecord, MemberStatus
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.v1 import core_pb2, relay_pb2

JOIN_PB = {MemberStatus.MEMBER: relay_pb2.JOIN_STATUS_ACCEPTED, MemberStatus.PENDING: relay_pb2.JOIN_STATUS_PENDING_APPROVAL,
           MemberStatus.REJECTED: relay_pb2.JOIN_STATUS_REJECTED}


def request_id(envelope: core_pb2.SignedEnvelope) -> bytes:
    return hashlib.sha256(env.encode(envelope)).digest()[:16]


class _Unwritten:
    """A join admitted in a run whose member row is not written yet: its answer (or the
    write's failure) once the run's rows are."""

    __slots__ = ("record", "body", "outcome")

    def __init__(self, record: MemberRecord, body: core_pb2.JoinBody) -> None:
        self.record = record
        self.body = body
        self.outcome: relay_pb2.JoinResponse | Exception | None = None


class Joins:
    _unwritten: dict[bytes, _Unwritten] | None = None  # during a run of joins: its new members by key

    async def join(self, envelope: core_pb2.SignedEnvelope) -> relay_pb2.JoinResponse:
        """Joins waiting next to each other in the mailbox are taken as a run: each checked
        in turn as if alone, the new members' rows written together in one transaction."""
        try:
            return await self.mailbox.batched(self._join_run, envelope)
        except Fenced as exc:
            raise self.let_go(exc)

    async def _join_run(self, envelopes: list[core_pb2.SignedEnvelope]) -> list:
        self._unwritten = {}
        results: list = []
        try:
            for envelope in envelopes:
                try:
                    results.append(await self._join(envelope))
                except Exception as exc:  # this join's refusal; the run goes on
                    results.append(exc)
            await self._write_members()
        finally:
            self._unwritten = None
        return [r.outcome if isinstance(r, _Unwritten) else r for r in results]

    async def _write_members(self) -> None:
        """The run's new members so far, in one transaction: each admitted once it is in."""
        rows, self._unwritten = self._unwritten, {}
        if not rows:
            return
        try:
            await self.ctx.members.put_many(self.address, [(k, u.record) for k, u in rows.items()], await self.fence())
        except Exception as exc:  # nobody of them is in: each is answered so
            for u in rows.values():
                u.outcome = exc
            return
        for key, u in rows.items():
            self.members[key] = u.record.status
            u.outcome = self._answer(u.record, u.body)

    async def _join(self, envelope: core_pb2.SignedEnvelope) -> relay_pb2.JoinResponse:
        body = members.verify_join(envelope, self.record.group_id)
        if body.group_address != self.address:
            raise ChatRelayError(Reason.GROUP_MISMATCH, "join request is for another group address")
        self.check_not_taken_down()
        state = self.record.state
        if state is GroupState.SUSPENDED:
            refused = ChatRelayError(Reason.REFUSED, "the owners have suspended new members for now")
            await self.note_refusal("join_refused", refused)
            raise refused
        if state is GroupState.REMOVED:
            raise ChatRelayError(Reason.NOT_ACTIVE, "this relay no longer serves this group")
        if state is GroupState.PENDING:
            # Registration step 5: held durably, processed by the worker after activation.
            held = request_id(envelope)
            await self.ctx.log.append(
                records.held_stream(self.address), [env.encode(envelope)], keys=[held], fence=await self.fence())
            return relay_pb2.JoinResponse(status=relay_pb2.JOIN_STATUS_HELD, request_id=held)
        try:
            return await self._admit(envelope, body)
        except ChatRelayError as exc:  # the group's policy refused it: the owners hear of it
            await self.note_refusal("join_refused", exc)
            raise

    async def _admit(self, envelope: core_pb2.SignedEnvelope, body: core_pb2.JoinBody) -> relay_pb2.JoinResponse:
        sign_key = body.keys.sign_key
        fence = await self.fence()
        if self._unwritten and sign_key in self._unwritten:
            await self._write_members()  # the same key twice in a run: the second sees the first
        known = self.members.get(sign_key)
        if known is MemberStatus.BANNED:
            raise ChatRelayError(Reason.BANNED, "this key is banned from the group")
        if known is not None and known is not MemberStatus.REMOVED:  # a repeated join: same answer, nothing new stored
            existing = await self.ctx.members.get(self.address, sign_key)
            if existing is not None:
                stored = core_pb2.JoinBody.FromString(env.decode(existing.join).body) if existing.join else None
                return self._answer(existing, stored)  # its join was checked when it came
        policy = self.profile.profile.settings.join
        status = MemberStatus.MEMBER
        if body.HasField("invite"):
            await self._consume_invite(body, sign_key, fence)
        elif policy == core_pb2.JOIN_POLICY_INVITE_ONLY:
            raise ChatRelayError(Reason.NOT_ALLOWED, "this group takes members by invite only")
        elif policy == core_pb2.JOIN_POLICY_APPROVAL:
            again = known is MemberStatus.REMOVED  # removed or gone: the owners decide anew
            status = MemberStatus.MEMBER if not again and self._approved_elsewhere(body) else MemberStatus.PENDING
        record = MemberRecord(
            box_key=body.keys.box_key, display_name=body.profile.display_name, status=status,
            joined_ms=int(time.time() * 1000), request_id=request_id(envelope),
            join=env.encode(envelope),  # owners decide on it; members fetch keys from it
            approval=env.encode(body.approval) if status is MemberStatus.MEMBER and body.HasField("approval") else b"",
        )
        if self._unwritten is not None:  # in a run: written with the run's others
            unwritten = self._unwritten[sign_key] = _Unwritten(record, body)
            return unwritten
        await self.ctx.members.put(self.address, sign_key, record, fence)
        self.members[sign_key] = status
        return self._answer(record, body)

    def _answer(self, record: MemberRecord, body: core_pb2.JoinBody | None) -> relay_pb2.JoinResponse:
        """A member admitted by an invite gets a receipt for the group's other relays."""
        answer = relay_pb2.JoinResponse(status=JOIN_PB[record.status], request_id=record.request_id,
                                        reason=record.note)
        if record.status is MemberStatus.MEMBER and body is not None and body.HasField("invite"):
            grant = core_pb2.InviteGrant.FromString(body.invite.grant.body)
            answer.invite_receipt.CopyFrom(invites.receipt(self.ctx.identity, grant, body.keys.sign_key))
        return answer

    def _approved_elsewhere(self, body: core_pb2.JoinBody) -> bool:
        """Whether the join carries the owners' approval of this member at a relay of the
        group (one added after the member joined takes it so); refused if it does not
        check out."""
        if not body.HasField("approval"):
            return False
        try:
            admission.check_approval(self.profile, body.keys.sign_key, body.approval)
        except ChatRelayError as exc:
            raise ChatRelayError(Reason.NOT_ALLOWED, f"the approval in the join does not check out: {exc.message}") from None
        approved_at = relay_pb2.OwnerCommandBody.FromString(body.approval.body).group_address
        if approved_at not in {r.group_address for r in self.profile.profile.relays}:
            raise ChatRelayError(Reason.NOT_ALLOWED, "the approval in the join is for an address of another group")
        return True

    async def _drain_held(self) -> int:
        """Admit the joins held while PENDING, each once: the cursor moves after each.
        Not while the group is taken down here: they wait for the restore."""
        if self.record.state is not GroupState.ACTIVE or self.record.taken_down:
            return 0
        key = records.held_cursor_key(self.address)
        entry = await self.ctx.registry.get(key)
        cursor = int(entry.value) if entry else 0
        done = 0
        for _ in range(10_000):  # bounded: each round consumes a page or stops
            page = await self.ctx.log.read(records.held_stream(self.address), cursor, READ_LIMIT)
            if not page:
                break
            for rec in page:
                envelope = env.decode(rec.data)
                try:
                    await self._admit(envelope, members.verify_join(envelope, self.record.group_id))
                except ChatRelayError as exc:  # e.g. a used-up invite: that join is refused
                    if exc.reason in (Reason.UNAVAILABLE, Reason.BUSY):
                        raise  # not decided (the registry unreachable): it stays held, the cursor stays
                    self.held_refused.append((rec.key, exc.reason.value))
                    await self.note_refusal("join_refused", exc)
                cursor = rec.seq
                await self.ctx.registry.put(key, str(cursor).encode())
                done += 1
        return done

    def _schedule_drain(self) -> None:
        # When the mailbox is full, the worker drains at the next activation or start.
        self.mailbox.schedule(self._drain_held)

    async def _consume_invite(self, body: core_pb2.JoinBody, sign_key: bytes, fence: Fence) -> None:
        """Count a use of the invite against this relay's share of it, or admit the member
        another relay of the group counted (its receipt); a revoked code admits nobody."""
        grant = invites.verify_invite(body.invite, self.profile, sign_key)
        if body.HasField("invite_receipt"):
            await self._refuse_revoked(grant)
            invites.check_receipt(body.invite_receipt, grant, sign_key, self.profile)
            return
        share = invites.share_at(grant, self.ctx.relay_key)
        if share == 0:
            await self._refuse_revoked(grant)
            raise ChatRelayError(Reason.BAD_INVITE, "this invite's uses are at the group's other relays: join there")
        # Uses counted in the registry by an earlier version still count (they are no more).
        earlier = await self.ctx.registry.get(records.invite_key(self.address, grant.invite_key))
        uses = share - (int(earlier.value) if earlier else 0)
        if uses < 1 or not await self.ctx.members.use_invite(self.address, grant.invite_key, uses, fence):
            await self._refuse_revoked(grant)  # a revoked code counts no use either: said as revoked
            raise ChatRelayError(Reason.BAD_INVITE, "this invite has been used up" if share == grant.uses
                                 else "this invite's uses at this relay are used up")

    async def _refuse_revoked(self, grant: core_pb2.InviteGrant) -> None:
        if any(u.revoked_ms for u in await self.ctx.members.invite_uses(self.address, grant.invite_key)):
            raise ChatRelayError(Reason.REVOKED, "the owners revoked this invite")

    async def invite_uses(self) -> list[relay_pb2.InviteUses]:
        """The uses of the group's invite codes counted here, for the owners."""
        return [relay_pb2.InviteUses(invite_key=u.key, used=u.used, revoked_at=u.revoked_ms)
                for u in await self.ctx.members.invite_uses(self.address)]

    async def revoke_invite(self, invite_key: bytes, fence: Fence) -> str:
        if len(invite_key) != env.KEY_SIZE:
            raise ChatRelayError(Reason.MALFORMED, f"an invite key is {env.KEY_SIZE} bytes, got {len(invite_key)}")
        await self.ctx.members.revoke_invite(self.address, invite_key, int(time.time() * 1000), fence)
        return "invite revoked"
