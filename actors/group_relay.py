"""GroupRelay: one group's relay, a virtual actor inside a RelayShard.

Requests that change the group go through its mailbox (`actors/mailbox.py`): serial
inside the group, concurrent across groups. Posts are verified, appended durably (then
acked) and announced to readers waiting on the group. Reading, joins, owner commands,
moderation, reports, takedowns and direct invitations are in modules of their own, one
role each.
"""

from __future__ import annotations

import asyncio
import collections
import os
import time
from dataclasses import dataclass, field

from nacl.signing import SigningKey

from chatrelay import codec
from chatrelay import envelope as env
from chatrelay import group, members, moderation
from chatrelay.actors import records
from chatrelay.actors.calls import refusal
from chatrelay.actors.direct_invitations import DirectInvitations
from chatrelay.actors.figures import GroupFigures
from chatrelay.actors.joins import Joins
from chatrelay.actors.mailbox import Mailbox
from chatrelay.actors.member_store import MemberStore
from chatrelay.actors.moderating import Moderating
from chatrelay.actors.reports import REPORT_WINDOW_S, Reports
from chatrelay.actors.message_log import Fence, Fenced, MessageLog
from chatrelay.actors.owner_commands import OwnerCommands
from chatrelay.actors.reading import Reading
from chatrelay.actors.rate_window import RateWindow
from chatrelay.actors.takedowns import Takedowns
from chatrelay.actors.verified_readers import VerifiedReaders
from chatrelay.actors.policy import RelayLimits
from chatrelay.actors.records import GroupRecord, GroupState, MemberRecord, MemberStatus
from chatrelay.actors.registry import Registry
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.v1 import core_pb2, relay_pb2

VERIFY_APART = 8  # a turn of this many posts or more has their signatures checked on a worker thread


def _verify_posts(envelopes: list[core_pb2.SignedEnvelope], group_id: bytes) -> list:
    """Each post's body, or the ChatRelayError refusing it (`members.verify_post`); on a
    worker thread, where PyNaCl lets go of the GIL while it checks, so that the shard's
    loop serves its other groups meanwhile."""
    out: list = []
    for envelope in envelopes:
        try:
            out.append(members.verify_post(envelope, group_id))
        except ChatRelayError as exc:
            out.append(exc)
    return out


@dataclass(frozen=True, slots=True)
class RelayContext:
    """What every group relay of one relay shares."""

    identity: SigningKey
    registry: Registry
    log: MessageLog
    members: MemberStore
    limits: RelayLimits = RelayLimits()
    tally: collections.Counter = field(default_factory=collections.Counter)  # the shard's counts, for metrics
    readers: VerifiedReaders = field(default_factory=VerifiedReaders)  # reader credentials verified here

    @property
    def relay_key(self) -> bytes:
        return bytes(self.identity.verify_key)


class GroupRelay(Joins, OwnerCommands, DirectInvitations, Takedowns, Moderating, Reports, Reading):
    def __init__(self, ctx: RelayContext, record: GroupRecord, mod_revision: int) -> None:
        self.ctx = ctx
        self.record = record
        self.mod_revision = mod_revision
        self.profile = group.verify_profile(env.decode(record.profile), group_id=record.group_id)
        self.members: dict[bytes, MemberStatus] = {}  # the records stay in the member store
        self.last_seq = 0
        self._fence: Fence | None = None  # claimed at this load's first write
        self.fenced = False  # another shard claimed the group since: this load is done
        self.mailbox = Mailbox(record.address, ctx.limits.mailbox_size, self._append_posts)
        self._new_posts: asyncio.Event | None = None  # made while someone waits for posts
        self.waiting_readers = 0  # reads waiting for posts now
        self.used = time.monotonic()  # its shard's last call for it
        self.loaded = os.urandom(8)  # this load of the group: tails count its removals
        self.removals: list[bytes] = []  # members removed since, in order
        self.posts_accepted = 0
        self.trimmed_through = 0
        self.held_refused: list[tuple[bytes, str]] = []
        self.recent_posts = RateWindow(ctx.limits.post_window_s)  # members' posts, for their rate
        self.slow_mode_last: dict[bytes, tuple[list[int], float]] = {}  # member: its posts' signed times, the last's relay time
        self.recent_reports = RateWindow(REPORT_WINDOW_S)  # members' reports, for their rate
        self.refusals: dict = {}  # (kind, reason): [refused since the last notice, when it was written]

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
        self.members = await self.ctx.members.statuses(self.address)
        if not self.members and await self.ctx.registry.get_prefix(records.member_prefix(self.address)):
            await self.fence()  # members kept in the registry by an earlier version: moved now
        if self.record.state is GroupState.ACTIVE:
            self._schedule_drain()  # joins held before a restart are not forgotten

    async def fence(self) -> Fence:
        """What this load's writes carry. At the first write the group is claimed in the
        store, which fences off any shard that served it before; what that shard wrote
        until then is read again here. A write asks for it before it checks anything
        against the members, so it checks what the store holds."""
        if self._fence is None:
            epoch = await self.ctx.log.claim(self.address)
            fence = Fence(self.address, epoch)
            self.last_seq = max(self.last_seq, await self.ctx.log.last_seq(self.stream))
            self.members = await self.ctx.members.statuses(self.address)
            for entry in await self.ctx.registry.get_prefix(records.member_prefix(self.address)):
                sign_key = codec.unb64url(entry.key.rsplit(b"/", 1)[1].decode(), "registry key")
                member = MemberRecord.loads(entry.value)
                await self.ctx.members.put(self.address, sign_key, member, fence)
                await self.ctx.registry.delete(entry.key)
                self.members[sign_key] = member.status
            self._fence = fence
        return self._fence

    def let_go(self, exc: Fenced) -> Fenced:
        """The store refused a write: another shard serves the group now. This load takes
        no more requests; the shard drops it (`ShardGroups.get`)."""
        self.fenced = True
        self.mailbox.closing = True
        self.wake_readers()
        return exc

    async def close_for_move(self) -> None:
        """Take no new requests and finish those in the mailbox: after this, nothing of
        this group is appended by this relay."""
        self.mailbox.closing = True
        await self.mailbox.wait_idle()

    def wake_readers(self) -> None:
        """Readers waiting here for new posts return now (to find the group elsewhere)."""
        event, self._new_posts = self._new_posts, None
        if event is not None:
            event.set()

    async def stop(self) -> None:
        await self.mailbox.stop()

    async def call(self, fn, *args):
        """fn(*args) serially with this group's other requests; BUSY when the mailbox is full."""
        try:
            return await self.mailbox.call(fn, *args)
        except Fenced as exc:
            raise self.let_go(exc)

    def is_member(self, key: bytes) -> bool:
        return self.members.get(key) is MemberStatus.MEMBER

    def member_count(self) -> int:
        """Admitted members (not those waiting for approval, nor banned keys)."""
        return sum(1 for status in self.members.values() if status is MemberStatus.MEMBER)

    # ---- posts ----------------------------------------------------------------------

    async def post_many(self, envelopes: list[core_pb2.SignedEnvelope]) -> list:
        """Posts of this group as one mailbox item: one result each, an ack or the
        ChatRelayError refusing it."""
        return await self.mailbox.posts(envelopes)

    async def post(self, envelope: core_pb2.SignedEnvelope) -> relay_pb2.PostAck:
        [result] = await self.post_many([envelope])
        if isinstance(result, Exception):
            raise result
        return result

    def _check_post(self, envelope: core_pb2.SignedEnvelope, verified=None) -> core_pb2.PostBody:
        """Signature, group and author's role; freshness and rate are checked only for a
        post this relay does not hold already (`_refusal_if_new`). `verified`: what
        `members.verify_post` gave for it already (its body, or its refusal)."""
        self.check_not_taken_down()
        if self.record.state is not GroupState.ACTIVE:
            raise ChatRelayError(Reason.NOT_ACTIVE, f"group is {self.record.state.value}, not active")
        if isinstance(verified, Exception):
            raise verified
        body = verified if verified is not None else members.verify_post(envelope, self.record.group_id)
        signer = envelope.signer
        if signer in self.profile.authorities():
            return body
        if self.profile.profile.kind == core_pb2.GROUP_KIND_CHANNEL:
            raise ChatRelayError(Reason.NOT_ALLOWED, "only owners post in a channel")
        if not self.is_member(signer):
            raise ChatRelayError(Reason.NOT_MEMBER, "post author is not a member of this group")
        return body

    def _refusal_if_new(self, envelope, body: core_pb2.PostBody, now: float, taken: collections.Counter,
                        turn_times: dict | None = None):
        """What refuses this post if this relay does not hold it already: signed outside
        the freshness window (a post replayed after retention trimmed it is older than
        that), against the group's rules (size, links, slow mode: chatrelay/moderation.py),
        or past its author's rate (members post at most `post_limit` times per
        `post_window_s`; owners are free; `taken`: the author's posts let through earlier
        in this turn; `turn_times`: their signed and relay times). None if it may go on."""
        window = self.ctx.limits.freshness_s
        if abs(now * 1000 - body.client_ts) > window * 1000:
            return ChatRelayError(Reason.STALE, f"post was signed more than {window:g} s from now; check the clock")
        signer = envelope.signer
        if signer in self.profile.authorities():
            return None
        limit, span = self.ctx.limits.post_limit, self.ctx.limits.post_window_s
        clock = time.monotonic()
        if self.recent_posts.count(signer, clock) + taken[signer] >= limit:  # the cheap check first
            wait_s = self.recent_posts.wait_s(signer, clock)
            retry = int(span) if wait_s is None else int(wait_s) + 1
            return ChatRelayError(Reason.RATE_LIMITED, f"at most {limit} posts per {span:g} s; retry in {retry} s")
        try:
            moderation.check_rules(self.profile, signer, body)
        except ChatRelayError as exc:
            return exc
        slow = self._slow_mode_refusal(signer, body, clock, {} if turn_times is None else turn_times)
        if slow is not None:
            return slow
        taken[signer] += 1
        return None

    def _slow_mode_refusal(self, signer: bytes, body: core_pb2.PostBody, clock: float, turn_times: dict):
        """The slow mode holds by the posts' signed times, against each of the member's
        posts that a new one could come near (signed within the freshness window and the
        gap of now), as members check it; and by this relay's clock (so posts signed
        ahead, for later, wait too)."""
        gap = self.profile.profile.settings.slow_mode_s
        if not gap or moderation.role_of(self.profile, signer):
            return None
        signed, at = turn_times.get(signer) or self.slow_mode_last.get(signer) or ([], None)
        oldest = time.time() * 1000 - (self.ctx.limits.freshness_s + gap) * 1000
        signed = [t for t in signed if t > oldest]
        why = moderation.slow_mode_refusal(self.profile, signer, body.client_ts, signed)
        if why is None and at is not None and clock - at < gap:
            why = ChatRelayError(Reason.RATE_LIMITED, f"the group's slow mode allows one post per {gap} s; "
                                                      f"retry in {int(gap - (clock - at)) + 1} s")
        if why is not None:
            return why
        turn_times[signer] = ([*signed, body.client_ts], clock)
        return None

    async def _append_posts(self, envelopes: list[core_pb2.SignedEnvelope]) -> list:
        """A turn's posts: each checked, the accepted ones appended together. A post sent
        again (the same signed post, so the same message id) is answered with the seq it
        has, and counts against neither the freshness window nor its author's rate."""
        try:
            fence = await self.fence()  # first: the checks below see what the store holds
        except Exception as exc:  # the store unreachable: nothing is acked
            return [refusal(exc)] * len(envelopes)
        results: list = [None] * len(envelopes)
        ids = [members.message_id(e) for e in envelopes]
        verified = [None] * len(envelopes)
        if len(envelopes) >= VERIFY_APART:  # the signatures on a worker thread: the other groups go on meanwhile
            verified = await asyncio.to_thread(_verify_posts, envelopes, self.record.group_id)
        now, taken, doubtful, turn_times = time.time(), collections.Counter(), {}, {}
        for i, envelope in enumerate(envelopes):
            try:
                why = self._refusal_if_new(envelope, self._check_post(envelope, verified[i]), now, taken, turn_times)
            except ChatRelayError as exc:
                results[i] = exc
                continue
            if why is not None:
                doubtful[i] = why  # refused, unless this relay holds it already
        try:
            # Rare: only for a post that would be refused is the log asked whether it is held.
            held = await self.ctx.log.find(self.stream, [ids[i] for i in doubtful]) if doubtful else {}
            for i, why in doubtful.items():
                if ids[i] not in held:
                    results[i] = why
            accepted = [i for i in range(len(envelopes)) if results[i] is None]
            if not accepted:
                await self._note_post_refusals(results)
                return results
            appended = await self.ctx.log.append(
                self.stream, [env.encode(envelopes[i]) for i in accepted], keys=[ids[i] for i in accepted],
                fence=fence)
        except Fenced as exc:  # served elsewhere now: the gateway sends them there
            raise self.let_go(exc)
        except Exception as exc:  # nothing is acked unless durable
            failed = refusal(exc)  # UNAVAILABLE, saying what failed but not where
            return [failed if r is None else r for r in results]
        await self._note_post_refusals(results)
        self.last_seq = max(self.last_seq, max(appended.seqs))
        fresh = sum(1 for d in appended.duplicates if not d)
        self.posts_accepted += fresh
        self.ctx.tally["posts"] += fresh
        self.wake_readers()  # readers waiting for posts after their seq
        if turn_times:  # the slow mode is on: the accepted posts' authors' times are kept
            self.slow_mode_last.update((envelopes[i].signer, turn_times[envelopes[i].signer]) for i in accepted
                                       if envelopes[i].signer in turn_times)
        authorities = self.profile.authorities()
        for i, seq, duplicate in zip(accepted, appended.seqs, appended.duplicates):
            results[i] = relay_pb2.PostAck(seq=seq, message_id=ids[i])
            if not duplicate and envelopes[i].signer not in authorities:
                self.recent_posts.add(envelopes[i].signer, time.monotonic())
        await self._apply_retention()
        return results

    async def _note_post_refusals(self, results: list) -> None:
        """Members' posts past their rate or against the group's rules: the owners hear of
        them (a notice a reason a minute at most: `note_refusal`)."""
        for why in {r.reason: r for r in results if isinstance(r, ChatRelayError)
                    and r.reason in (Reason.RATE_LIMITED, Reason.TOO_LARGE, Reason.NOT_ALLOWED)}.values():
            await self.note_refusal("post_refused", why)

    async def _apply_retention(self) -> None:
        """Keep the newest `retention` posts; trim in steps so it costs little per post."""
        keep = self.ctx.limits.retention
        if not keep:
            return
        through = self.last_seq - keep
        if through - self.trimmed_through >= max(1, keep // 10):
            await self.ctx.log.trim(self.stream, through)
            self.trimmed_through = through

    async def announce(self, envelope: core_pb2.SignedEnvelope) -> int:
        """A service item (a profile version, a moderation), signed by an owner or a
        moderator, into the group's stream, once: members read it among the posts and
        check it themselves. Its seq."""
        fence = await self.fence()
        appended = await self.ctx.log.append(
            self.stream, [env.encode(envelope)], keys=[members.item_id(envelope)], fence=fence)
        self.last_seq = max(self.last_seq, appended.seqs[0])
        self.wake_readers()
        return appended.seqs[0]

    # ---- members ----------------------------------------------------------------------

    def remove_member(self, key: bytes) -> None:
        """The member goes now: its open streams end (the tails learn of it at their next
        read, woken here), and it reads and posts nothing more."""
        self.members.pop(key, None)
        self.removals.append(key)
        self.wake_readers()

    async def forget_member(self, key: bytes, fence) -> None:
        """Removed, or gone by its own word: its record stays as REMOVED (a join again is
        a new one: an approval it carries admits it no more), and it goes now."""
        record = await self.ctx.members.get(self.address, key)
        if record is not None:
            record.status, record.approval = MemberStatus.REMOVED, b""
            await self.ctx.members.put(self.address, key, record, fence)
        self.remove_member(key)
        if record is not None:
            self.members[key] = MemberStatus.REMOVED

    def idle(self, clock: float, after_s: float) -> bool:
        """Whether this load may be let go from memory (a load made later reads the same
        from the registry and the store): no call for `after_s` seconds, nothing in its
        mailbox, no reader waiting, and nothing held only here still in force: members'
        posts and reports within their rate windows, or posts within the slow mode's gap
        and the freshness window."""
        if clock - self.used < after_s or not self.mailbox.idle or self.waiting_readers:
            return False
        if self.recent_posts.active(clock) or self.recent_reports.active(clock):
            return False
        held_s = self.profile.profile.settings.slow_mode_s + self.ctx.limits.freshness_s
        return all(clock - at >= held_s for _, at in self.slow_mode_last.values())

    def stats(self) -> GroupFigures:
        return GroupFigures(
            address=self.address, state=self.record.state.value, last_seq=self.last_seq, members=self.member_count(),
            mailbox_depth=len(self.mailbox), posts_accepted=self.posts_accepted, held_refused=len(self.held_refused),
        )
