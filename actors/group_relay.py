"""GroupRelay: one group's relay, a virtual actor inside a RelayShard.

Each group has its own bounded mailbox and worker task: serial inside the group,
concurrent across groups. A full mailbox refuses that group's senders with BUSY and
touches no other group. Posts are verified, appended durably (then acked) and announced
to readers waiting on the group.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from nacl.signing import SigningKey

from chatrelay import codec
from chatrelay import envelope as env
from chatrelay import group, invites, members
from chatrelay.actors.message_log import MessageLog
from chatrelay.actors.registry import Get, Put, Registry, absent, unchanged_since
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.v1 import core_pb2, relay_pb2
from chatrelay.actors import records
from chatrelay.actors.policy import RelayLimits
from chatrelay.actors.records import GroupRecord, GroupState, MemberRecord

class Moved(Exception):
    """This shard does not (or no longer) serve the group: the caller reads its placement
    again and calls the shard that does."""


MAX_TURN = 64  # requests a group's worker takes per turn, so one group cannot hog a shard
READ_LIMIT = 500
CREDENTIAL_SKEW_S = 600


@dataclass(frozen=True, slots=True)
class RelayContext:
    """What every group relay of one relay shares."""

    identity: SigningKey
    registry: Registry
    log: MessageLog
    limits: RelayLimits = RelayLimits()
    tally: collections.Counter = field(default_factory=collections.Counter)  # the shard's counts, for metrics

    @property
    def relay_key(self) -> bytes:
        return bytes(self.identity.verify_key)


STATE_PB = {
    GroupState.PENDING: relay_pb2.GROUP_STATE_PENDING,
    GroupState.ACTIVE: relay_pb2.GROUP_STATE_ACTIVE,
    GroupState.SUSPENDED: relay_pb2.GROUP_STATE_SUSPENDED,
    GroupState.REMOVED: relay_pb2.GROUP_STATE_REMOVED,
}


class GroupRelay:
    def __init__(self, ctx: RelayContext, record: GroupRecord, mod_revision: int) -> None:
        self.ctx = ctx
        self.record = record
        self.mod_revision = mod_revision
        self.profile = group.verify_profile(env.decode(record.profile), group_id=record.group_id)
        self.members: dict[bytes, MemberRecord] = {}
        self.last_seq = 0
        # An idle group holds no mailbox, worker or waiters: they are made when needed
        # and let go when done, so that a shard can hold many thousands of idle groups.
        self.mailbox: collections.deque | None = None
        self.closing = False  # handing the group to another shard: no new requests
        self._new_posts: asyncio.Event | None = None
        self.posts_accepted = 0
        self.trimmed_through = 0
        self.held_refused: list[tuple[bytes, str]] = []
        self.recent_posts: dict[bytes, collections.deque] = {}
        self._worker: asyncio.Task | None = None

    def __str__(self) -> str:
        return f"group relay {self.address} ({self.record.state})"

    @property
    def address(self) -> str:
        return self.record.address

    @property
    def stream(self) -> str:
        return records.post_stream(self.address)

    async def start(self) -> None:
        self.last_seq = await self.ctx.log.last_seq(self.stream)
        for entry in await self.ctx.registry.get_prefix(records.member_prefix(self.address)):
            sign_key = _unb64(entry.key.rsplit(b"/", 1)[1].decode())
            self.members[sign_key] = MemberRecord.loads(entry.value)
        if self.record.state is GroupState.ACTIVE:
            self._schedule_drain()  # joins held before a restart are not forgotten

    async def close_for_move(self) -> None:
        """Take no new requests and finish those in the mailbox: after this, nothing of
        this group is appended by this relay."""
        self.closing = True
        while self._worker is not None:
            await asyncio.wait({self._worker})

    def wake_readers(self) -> None:
        """Readers waiting here for new posts return now (to find the group elsewhere)."""
        event, self._new_posts = self._new_posts, None
        if event is not None:
            event.set()

    async def stop(self) -> None:
        if self._worker:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass

    # ---- the mailbox ----------------------------------------------------------------

    async def call(self, kind: str, fn: Callable[..., Awaitable], *args):
        """Run fn serially with this group's other requests; BUSY when the mailbox is full."""
        if self.closing:
            raise Moved()
        future = asyncio.get_running_loop().create_future()
        if not self._enqueue((kind, fn, args, future)):
            raise ChatRelayError(Reason.BUSY, "this group's mailbox is full; retry in a moment")
        return await future

    def _enqueue(self, item) -> bool:
        """Into the mailbox, starting the worker if it is not running; False when full."""
        if self.closing:
            return False
        if self.mailbox is None:
            self.mailbox = collections.deque()
        if len(self.mailbox) >= self.ctx.limits.mailbox_size:
            return False
        self.mailbox.append(item)
        if self._worker is None:
            self._worker = asyncio.create_task(self._work(), name=f"group-{self.address}")
        return True

    async def _work(self) -> None:
        try:
            while self.mailbox:
                turn = []
                while self.mailbox and len(turn) < MAX_TURN:
                    turn.append(self.mailbox.popleft())
                posts = [item for item in turn if item[0] == "post"]
                others = [item for item in turn if item[0] != "post"]
                for kind, fn, args, future in others:
                    await _settle(future, fn, *args)
                if posts:
                    await self._append_posts(posts)
                await asyncio.sleep(0)  # let other groups' workers run: fair turns
        finally:
            # No await between the last look at the mailbox and here: a request that
            # arrives later starts a new worker.
            self._worker = None
            if not self.mailbox:
                self.mailbox = None

    # ---- posts ----------------------------------------------------------------------

    def _check_post(self, envelope: core_pb2.SignedEnvelope) -> bytes:
        if self.record.state is not GroupState.ACTIVE:
            raise ChatRelayError(Reason.NOT_ACTIVE, f"group is {self.record.state.value}, not active")
        body = members.verify_post(envelope, self.record.group_id)
        signer = envelope.signer
        if signer in self.profile.authorities():
            return body
        if self.profile.profile.kind == core_pb2.GROUP_KIND_CHANNEL:
            raise ChatRelayError(Reason.NOT_ALLOWED, "only owners post in a channel")
        member = self.members.get(signer)
        if member is None or member.status != "member":
            raise ChatRelayError(Reason.NOT_MEMBER, "post author is not a member of this group")
        self._rate_limit(signer)
        return body

    def _rate_limit(self, signer: bytes) -> None:
        """Members post at most `post_limit` times per `post_window_s` (owners are free)."""
        limit, window = self.ctx.limits.post_limit, self.ctx.limits.post_window_s
        now = time.monotonic()
        times = self.recent_posts.setdefault(signer, collections.deque())
        while times and now - times[0] >= window:
            times.popleft()
        if len(times) >= limit:
            retry = int(window - (now - times[0])) + 1
            raise ChatRelayError(
                Reason.RATE_LIMITED, f"at most {limit} posts per {window:g} s; retry in {retry} s"
            )
        times.append(now)

    async def post(self, envelope: core_pb2.SignedEnvelope) -> relay_pb2.PostAck:
        return await self.call("post", None, envelope)

    async def _append_posts(self, items) -> None:
        accepted = []
        for _, _, (envelope,), future in items:
            try:
                self._check_post(envelope)
            except ChatRelayError as exc:
                if not future.done():
                    future.set_exception(exc)
                continue
            accepted.append((envelope, future))
        if not accepted:
            return
        ids = [members.message_id(e) for e, _ in accepted]
        try:
            appended = await self.ctx.log.append(self.stream, [env.encode(e) for e, _ in accepted], keys=ids)
        except Exception as exc:  # nothing is acked unless durable
            for _, future in accepted:
                if not future.done():
                    future.set_exception(ChatRelayError(Reason.UNAVAILABLE, f"message log failed: {exc}"))
            return
        self.last_seq = max(self.last_seq, max(appended.seqs))
        fresh = sum(1 for d in appended.duplicates if not d)
        self.posts_accepted += fresh
        self.ctx.tally["posts"] += fresh
        self.wake_readers()  # readers waiting for posts after their seq
        for (_, future), seq, mid in zip(accepted, appended.seqs, ids):
            if not future.done():
                future.set_result(relay_pb2.PostAck(seq=seq, message_id=mid))
        await self._apply_retention()

    async def _apply_retention(self) -> None:
        """Keep the newest `retention` posts; trim in steps so it costs little per post."""
        keep = self.ctx.limits.retention
        if not keep:
            return
        through = self.last_seq - keep
        if through - self.trimmed_through >= max(1, keep // 10):
            await self.ctx.log.trim(self.stream, through)
            self.trimmed_through = through

    # ---- reading --------------------------------------------------------------------

    def check_reader(self, credential: core_pb2.SignedEnvelope, now: float | None = None) -> bytes:
        checked, body = env.verify_message(
            credential, env.Domain.SUBSCRIBE, relay_pb2.SubscribeBody, "subscribe credential"
        )
        if body.group_address != self.address:
            raise ChatRelayError(Reason.GROUP_MISMATCH, "credential is for another group address")
        now = time.time() if now is None else now
        if abs(now - body.timestamp) > CREDENTIAL_SKEW_S:
            raise ChatRelayError(Reason.BAD_SIGNATURE, "credential is too old or from the future; check the clock")
        if checked.signer in self.profile.authorities():
            return checked.signer
        member = self.members.get(checked.signer)
        if member is None or member.status != "member":
            raise ChatRelayError(Reason.NOT_MEMBER, "reader is not a member of this group")
        return checked.signer

    def history_floor(self, reader: bytes) -> int:
        limit = self.profile.profile.settings.history_limit
        if not limit or reader in self.profile.authorities():
            return 0
        return max(0, self.last_seq - limit)

    async def read(self, after_seq: int, limit: int = READ_LIMIT, wait_s: float = 0.0) -> list[relay_pb2.Delivery]:
        """Posts after `after_seq`; waits up to `wait_s` for the first one when none is there."""
        if wait_s > 0 and not await self._wait_for_posts(after_seq, wait_s):
            return []
        return _deliveries(await self.ctx.log.read(self.stream, after_seq, min(limit, READ_LIMIT)))

    async def _wait_for_posts(self, after_seq: int, wait_s: float) -> bool:
        """Whether a post after `after_seq` came within `wait_s` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while self.last_seq <= after_seq:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            if self._new_posts is None:
                self._new_posts = asyncio.Event()
            try:
                await asyncio.wait_for(self._new_posts.wait(), remaining)
            except asyncio.TimeoutError:
                return self.last_seq > after_seq
        return True

    async def history(self, reader: bytes, before_seq: int, limit: int) -> list[relay_pb2.Delivery]:
        floor = self.history_floor(reader)
        rows = await self.ctx.log.read_before(self.stream, before_seq, min(max(limit, 1), READ_LIMIT))
        return [d for d in _deliveries(rows) if d.seq > floor]

    # ---- joining --------------------------------------------------------------------

    async def join(self, envelope: core_pb2.SignedEnvelope) -> relay_pb2.JoinResponse:
        return await self.call("join", self._join, envelope)

    async def _join(self, envelope: core_pb2.SignedEnvelope) -> relay_pb2.JoinResponse:
        body = members.verify_join(envelope, self.record.group_id)
        if body.group_address != self.address:
            raise ChatRelayError(Reason.GROUP_MISMATCH, "join request is for another group address")
        state = self.record.state
        if state is GroupState.SUSPENDED:
            raise ChatRelayError(Reason.REFUSED, "the owners have suspended new members for now")
        if state is GroupState.REMOVED:
            raise ChatRelayError(Reason.NOT_ACTIVE, "this relay no longer serves this group")
        if state is GroupState.PENDING:
            # Registration step 5: held durably, processed by the worker after activation.
            request_id = _request_id(envelope)
            await self.ctx.log.append(records.held_stream(self.address), [env.encode(envelope)], keys=[request_id])
            return relay_pb2.JoinResponse(status=relay_pb2.JOIN_STATUS_HELD, request_id=request_id)
        return await self._admit(envelope, body)

    async def _admit(self, envelope: core_pb2.SignedEnvelope, body: core_pb2.JoinBody) -> relay_pb2.JoinResponse:
        sign_key = body.keys.sign_key
        existing = self.members.get(sign_key)
        if existing is not None:  # a repeated join: same answer, nothing new stored
            return relay_pb2.JoinResponse(status=_JOIN_PB[existing.status], request_id=existing.request_id)
        policy = self.profile.profile.settings.join
        status = "member"
        if body.HasField("invite"):
            await self._consume_invite(body, sign_key)
        elif policy == core_pb2.JOIN_POLICY_INVITE_ONLY:
            raise ChatRelayError(Reason.NOT_ALLOWED, "this group takes members by invite only")
        elif policy == core_pb2.JOIN_POLICY_APPROVAL:
            status = "pending"
        record = MemberRecord(
            box_key=body.keys.box_key, display_name=body.profile.display_name, status=status,
            joined_ms=int(time.time() * 1000), request_id=_request_id(envelope),
            join=env.encode(envelope),  # owners decide on it; members fetch keys from it
        )
        await self.ctx.registry.put(records.member_key(self.address, sign_key), record.dumps())
        self.members[sign_key] = record
        return relay_pb2.JoinResponse(status=_JOIN_PB[status], request_id=record.request_id)

    async def _drain_held(self) -> int:
        """Admit the joins held while PENDING, each once: the cursor moves after each."""
        if self.record.state is not GroupState.ACTIVE:
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
                cursor = rec.seq
                await self.ctx.registry.put(key, str(cursor).encode())
                done += 1
        return done

    def _schedule_drain(self) -> None:
        async def drain():
            return await self._drain_held()
        # When the mailbox is full, the worker drains at the next activation or start.
        self._enqueue(("drain", drain, (), asyncio.get_running_loop().create_future()))

    async def _consume_invite(self, body: core_pb2.JoinBody, sign_key: bytes) -> None:
        grant = invites.verify_invite(body.invite, self.profile, sign_key)
        key = records.invite_key(self.address, grant.invite_key)
        for _ in range(16):  # compare-and-swap on the use count
            entry = await self.ctx.registry.get(key)
            used = int(entry.value) if entry else 0
            if used >= grant.uses:
                raise ChatRelayError(Reason.BAD_INVITE, "this invite has been used up")
            compare = absent(key) if entry is None else unchanged_since(key, entry.mod_revision)
            result = await self.ctx.registry.transaction([compare], [Put(key, str(used + 1).encode())])
            if result.succeeded:
                return
        raise ChatRelayError(Reason.BUSY, "invite is being used concurrently; retry")

    # ---- members find each other; direct invitations --------------------------------

    def member_join(self, sign_key: bytes, display_name: str) -> core_pb2.SignedEnvelope:
        """A member's own signed join request: its keys, bound by its signature."""
        if sign_key:
            found = [self.members.get(sign_key)]
        else:
            found = [m for m in self.members.values() if display_name and m.display_name == display_name]
        found = [m for m in found if m is not None and m.status == "member" and m.join]
        if not found:
            raise ChatRelayError(Reason.NOT_MEMBER, "no such member in this group")
        if len(found) > 1:
            raise ChatRelayError(Reason.MALFORMED, "several members have this name; name one by its key")
        return env.decode(found[0].join)

    async def direct_invitation(self, envelope: core_pb2.SignedEnvelope) -> relay_pb2.DirectInvitationResponse:
        checked, body = env.verify_message(
            envelope, env.Domain.DIRECT_INVITATION, relay_pb2.DirectInvitationBody, "direct invitation"
        )
        if body.group_address != self.address:
            raise ChatRelayError(Reason.GROUP_MISMATCH, "direct invitation is for another group address")
        if not self.profile.profile.settings.direct_messages:
            raise ChatRelayError(Reason.NOT_ALLOWED, "direct messages are off in this group")
        sender = self.members.get(checked.signer)
        if checked.signer not in self.profile.authorities() and (sender is None or sender.status != "member"):
            raise ChatRelayError(Reason.NOT_MEMBER, "sender is not a member of this group")
        recipient = self.members.get(body.to_member)
        if recipient is None or recipient.status != "member":
            raise ChatRelayError(Reason.NOT_MEMBER, "recipient is not a member of this group")
        if len(body.sealed) > 32 * 1024:
            raise ChatRelayError(Reason.TOO_LARGE, "direct invitation is over 32768 bytes")
        key = hashlib.sha256(checked.signer + body.nonce).digest()[:16]
        appended = await self.ctx.log.append(
            records.direct_stream(self.address, body.to_member), [env.encode(envelope)], keys=[key]
        )
        return relay_pb2.DirectInvitationResponse(seq=appended.seqs[0])

    async def direct_inbox(self, reader: bytes, after_seq: int) -> list[relay_pb2.DirectInvitationDelivery]:
        rows = await self.ctx.log.read(records.direct_stream(self.address, reader), after_seq, READ_LIMIT)
        return [relay_pb2.DirectInvitationDelivery(seq=r.seq, invitation=env.decode(r.data)) for r in rows]

    # ---- owners ---------------------------------------------------------------------

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
        rows = await self.ctx.log.read(records.service_stream(self.address), since_seq, READ_LIMIT)
        return [
            relay_pb2.ServiceLogEntry(seq=r.seq, command=env.decode(r.data), applied_at=r.ts, outcome="applied")
            for r in rows
        ]

    def pending(self) -> list[relay_pb2.JoinPending]:
        return [
            relay_pb2.JoinPending(request_id=m.request_id, join=env.decode(m.join), received_at=m.joined_ms)
            for m in sorted(self.members.values(), key=lambda m: m.joined_ms)
            if m.status == "pending"
        ]

    async def owner_command(self, envelope: core_pb2.SignedEnvelope) -> relay_pb2.OwnerCommandResponse:
        return await self.call("command", self._owner_command, envelope)

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
        stream = records.service_stream(self.address)
        seen = await self.ctx.registry.get(records.command_key(self.address, body.command_id))
        if seen is not None:  # idempotent: the same command id is applied once
            return relay_pb2.OwnerCommandResponse(
                state=STATE_PB[self.record.state], applied_before=True, log_seq=int(seen.value)
            )
        kind = body.kind
        if kind == relay_pb2.OWNER_COMMAND_KIND_UPDATE_PROFILE:
            await self._update_profile(body.profile)
        elif kind == relay_pb2.OWNER_COMMAND_KIND_SUSPEND:
            self._require(GroupState.ACTIVE, GroupState.SUSPENDED)
            await self._save(GroupState.SUSPENDED, self.record.profile, self.profile)
        elif kind == relay_pb2.OWNER_COMMAND_KIND_RESUME:
            self._require(GroupState.ACTIVE, GroupState.SUSPENDED)
            await self._save(GroupState.ACTIVE, self.record.profile, self.profile)
        elif kind in (relay_pb2.OWNER_COMMAND_KIND_REMOVE_RELAY, relay_pb2.OWNER_COMMAND_KIND_DELETE_GROUP):
            await self._save(GroupState.REMOVED, self.record.profile, self.profile)
            if kind == relay_pb2.OWNER_COMMAND_KIND_DELETE_GROUP and self.last_seq:
                await self.ctx.log.trim(self.stream, self.last_seq)
        elif kind in (relay_pb2.OWNER_COMMAND_KIND_APPROVE_JOIN, relay_pb2.OWNER_COMMAND_KIND_REJECT_JOIN):
            await self._decide(body.request_id, kind == relay_pb2.OWNER_COMMAND_KIND_APPROVE_JOIN)
        else:
            raise ChatRelayError(Reason.MALFORMED, f"unknown owner command kind {kind}")
        appended = await self.ctx.log.append(stream, [env.encode(envelope)], keys=[body.command_id])
        seq = appended.seqs[0]
        await self.ctx.registry.put(records.command_key(self.address, body.command_id), str(seq).encode())
        return relay_pb2.OwnerCommandResponse(
            state=STATE_PB[self.record.state], applied_before=appended.duplicates[0], log_seq=seq
        )

    def _require(self, *states: GroupState) -> None:
        if self.record.state not in states:
            raise ChatRelayError(Reason.NOT_ACTIVE, f"group is {self.record.state.value} here")

    async def _decide(self, request_id: bytes, approve: bool) -> None:
        for sign_key, member in self.members.items():
            if member.request_id == request_id and member.status == "pending":
                key = records.member_key(self.address, sign_key)
                if approve:
                    member.status = "member"
                    await self.ctx.registry.put(key, member.dumps())
                else:
                    await self.ctx.registry.delete(key)
                    del self.members[sign_key]
                return
        raise ChatRelayError(Reason.UNKNOWN_ADDRESS, "no pending join request with this id")

    async def _update_profile(self, profile_envelope: core_pb2.SignedEnvelope) -> None:
        new = group.verify_profile(profile_envelope, group_id=self.record.group_id)
        group.check_update(self.profile, new)
        mine = any(
            r.relay_key == self.ctx.relay_key and r.group_address == self.address
            for r in new.profile.relays
        )
        state = self.record.state
        if state is GroupState.PENDING and mine:
            state = GroupState.ACTIVE
        await self._save(state, env.encode(profile_envelope), new)
        if state is GroupState.ACTIVE:
            self._schedule_drain()

    async def _save(self, state: GroupState, profile_bytes: bytes, profile: group.VerifiedProfile) -> None:
        updated = GroupRecord(
            group_id=self.record.group_id, address=self.address, state=state,
            registration_key=self.record.registration_key, profile=profile_bytes,
        )
        key = records.group_key(self.record.group_id)
        result = await self.ctx.registry.transaction(
            [unchanged_since(key, self.mod_revision)], [Put(key, updated.dumps()), Get(key)]
        )
        if not result.succeeded:
            raise ChatRelayError(Reason.BUSY, "group record changed concurrently; retry")
        self.record, self.profile, self.mod_revision = updated, profile, result.gets[0].mod_revision

    def stats(self) -> dict:
        return {
            "address": self.address,
            "held_refused": len(self.held_refused),
            "state": self.record.state.value,
            "last_seq": self.last_seq,
            "members": len(self.members),
            "mailbox_depth": len(self.mailbox or ()),
            "posts_accepted": self.posts_accepted,
        }


def _deliveries(rows) -> list[relay_pb2.Delivery]:
    return [
        relay_pb2.Delivery(seq=r.seq, post=env.decode(r.data), message_id=r.key or b"", relay_ts=r.ts)
        for r in rows
    ]


def _unb64(text: str) -> bytes:
    return codec.unb64url(text, "registry key")


def _request_id(envelope: core_pb2.SignedEnvelope) -> bytes:
    return hashlib.sha256(env.encode(envelope)).digest()[:16]


_JOIN_PB = {"member": relay_pb2.JOIN_STATUS_ACCEPTED, "pending": relay_pb2.JOIN_STATUS_PENDING_APPROVAL}


async def _settle(future: asyncio.Future, fn, *args) -> None:
    try:
        result = await fn(*args)
    except ChatRelayError as exc:
        if not future.done():
            future.set_exception(exc)
    except Exception as exc:  # a bug must fail the request, not the group's worker
        if not future.done():
            future.set_exception(ChatRelayError(Reason.UNAVAILABLE, f"relay error: {type(exc).__name__}: {exc}"))
    else:
        if not future.done():
            future.set_result(result)
