"""The member's side of the SDK: join by a link or an invite code, post, and read what
relays deliver, checking every item again (chatrelay/checker.py) and applying the
owners' newer profile versions."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Callable

import grpc
from nacl.signing import SigningKey

from chatrelay import admission, group, invites, members
from chatrelay import envelope as env
from chatrelay.checker import (
    Moderated, PostChecker, ProfileChange, ReceivedPost, credential, item_name, reader_key, relay_name, shown_members,
)
from chatrelay.connection import MAX_PAGES, RETRY_S, RelayClient, diagnose, resolve_link, target_of_link
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.items import Checked, Skipped, take_async
from chatrelay.links import LinkKind, ShortLink
from chatrelay.members import MemberIdentity
from chatrelay.retry import Backoff
from chatrelay.state import Membership, OwnedGroup, RelayEntry, b64, unb64
from chatrelay.status import from_rpc_error
from chatrelay.v1 import core_pb2, relay_pb2

POST_RETRIES = Backoff(first_s=0.1, max_s=1.0)
RECONNECTS = Backoff(first_s=0.2, max_s=2.0)


async def post(owned: OwnedGroup | Membership, text: str, *, retry_for_s: float = 0.0) -> Checked:
    """Sign once, send to every relay of the group: members dedupe by message id. Every
    relay is tried, whatever another answered: the acks, with each relay that refused or
    was down in `.skipped`; a refusal is raised only when no relay took the post.

    While no relay has acked, retries for up to `retry_for_s` seconds with the same
    signed post, so an ack lost on the way (a relay restarting) never makes a second post.
    """
    data = text.encode("utf-8")
    key = SigningKey(unb64(owned.owner_seed if isinstance(owned, OwnedGroup) else owned.sign_seed))
    envelope = members.sign_post(key, bytes.fromhex(owned.group_id), data)

    async def to_every_relay() -> Checked:
        acks, errors = Checked(), []
        for entry in owned.relays:
            async with RelayClient(entry.target) as client:
                try:
                    acks.append(await client.post(entry.address, envelope))
                except ChatRelayError as exc:
                    errors.append(exc)
                    acks.skipped.append(Skipped(f"relay {relay_name(entry)}", exc.reason, exc.message))
        if not acks:  # an unavailable one first: worth another try
            errors.sort(key=lambda exc: exc.reason is not Reason.UNAVAILABLE)
            raise errors[0] if errors else ChatRelayError(Reason.UNAVAILABLE, "the group has no relays")
        return acks
    return await POST_RETRIES.within(retry_for_s).run(
        to_every_relay, lambda exc: isinstance(exc, ChatRelayError) and exc.reason is Reason.UNAVAILABLE
    )


async def join(link_text: str, display_name: str = "", *, known: list[Membership] = ()) -> Membership:
    """Join by a group or channel link, or by an invite code (which carries the link and
    passes INVITE_ONLY and APPROVAL gates while every owner is offline). A group of
    `known` (memberships held already) is joined again with the same keys: the group
    knows the member as it was (a banned key stays refused)."""
    invite = None
    if link_text.strip().startswith(invites.PREFIX):
        invite = invites.parse_invite(link_text)
        link = invite.group_link
    else:
        link = ShortLink.parse(link_text)
    if link.kind not in (LinkKind.GROUP, LinkKind.CHANNEL):
        raise ChatRelayError(Reason.LINK_KIND_MISMATCH, "only group (g) and channel (c) links can be joined")
    resolved = await resolve_link(link)
    profile = resolved.profile
    if invite is not None and invite.grant.group_id != profile.group_id:
        raise ChatRelayError(Reason.BAD_INVITE, "invite code is for another group than its link")
    if not profile.profile.relays:
        raise ChatRelayError(Reason.NOT_ACTIVE, "this group has no relays yet")
    again = next((m for m in known if m.group_id == profile.group_id.hex()), None)
    member = (MemberIdentity.generate() if again is None  # a new identity per group: groups stay unlinked
              else MemberIdentity(sign_seed=unb64(again.sign_seed), box_secret=unb64(again.box_secret)))
    entries = []
    status = "member"
    for ref in profile.profile.relays:
        entry, response = await join_relay(member, profile, ref, display_name, invite)
        if response.status == relay_pb2.JOIN_STATUS_PENDING_APPROVAL:
            status = "pending"
        elif response.status == relay_pb2.JOIN_STATUS_HELD and status == "member":
            status = "held"
        entries.append(entry)
    return Membership(
        group_id=profile.group_id.hex(),
        kind="channel" if profile.profile.kind == core_pb2.GROUP_KIND_CHANNEL else "group",
        name=profile.profile.name, link=str(link), sign_seed=b64(member.sign_seed),
        box_secret=b64(member.box_secret), display_name=display_name,
        profile=b64(env.encode(profile.envelope)), relays=entries, status=status,
    )


async def join_relay(member: MemberIdentity, profile: group.VerifiedProfile, ref: core_pb2.RelayRef,
                     display_name: str, invite=None, *, proof: core_pb2.InviteProof | None = None,
                     approval: core_pb2.SignedEnvelope | None = None) -> tuple[RelayEntry, relay_pb2.JoinResponse]:
    """Join the group at one of its relays; the entry for the state file and the answer.
    `invite`: the code joined with; `proof`, `approval`: what admitted this member at
    another relay of the group, where it joined before this one was added."""
    entry = RelayEntry(
        relay_link=ref.relay_link, relay_key=b64(ref.relay_key), address=ref.group_address,
        target=target_of_link(ShortLink.parse(ref.relay_link)),
    )
    if invite is not None:
        proof = invites.prove(invite, member.public.sign_key)

    def request() -> relay_pb2.JoinRequest:  # signed anew each try
        return relay_pb2.JoinRequest(envelope=members.join_request(
            member, profile.group_id, ref.group_address, profile.profile.intake_key, display_name, invite=proof,
            approval=approval,
        ))
    async with RelayClient(entry.target) as client:  # a join is by member key: asking again is safe
        response = await client.call("Join", request, retry_for_s=RETRY_S)
    if response.status == relay_pb2.JOIN_STATUS_REJECTED:
        raise ChatRelayError(Reason.REFUSED, f"the owners refused the join: {response.reason}" if response.reason
                             else "the owners refused the join")
    entry.state = "joined"
    return entry, response


async def _read_relay(who, entry: RelayEntry, key: SigningKey) -> list[relay_pb2.Delivery]:
    pages: list[list[relay_pb2.Delivery]] = []
    before = 0
    async with RelayClient(entry.target) as client:
        for _ in range(MAX_PAGES):  # bounded: each page moves `before` back
            request = relay_pb2.HistoryRequest(credential=credential(key, entry.address), before_seq=before, limit=500)
            page = list((await client.call("History", request)).deliveries)
            if not page:
                break
            pages.append(page)
            before = page[0].seq
            if before <= 1:
                break
    return [d for page in reversed(pages) for d in page]


def apply_change(who: OwnedGroup | Membership, change: ProfileChange) -> list[RelayEntry]:
    """The reader's state follows the owners' newer version: its profile and name; for a
    member, its relays too: an entry of a removed relay goes, an added relay gets an
    entry, joined when it is first read (`ensure_joined`). The entries added. An owner's
    relays are what its own commands made them."""
    who.profile = b64(env.encode(change.profile.envelope))
    who.name = change.profile.profile.name
    if not isinstance(who, Membership):
        return []
    listed = {(r.relay_key, r.group_address): r for r in change.profile.profile.relays}
    who.relays = [e for e in who.relays if (unb64(e.relay_key), e.address) in listed]
    have = {(unb64(e.relay_key), e.address) for e in who.relays}
    added = []
    for key, ref in listed.items():
        if key in have:
            continue
        try:
            target = target_of_link(ShortLink.parse(ref.relay_link))
        except ChatRelayError:
            continue  # an owner listed a relay no one can dial: it says so to every member alike
        entry = RelayEntry(relay_link=ref.relay_link, relay_key=b64(ref.relay_key), address=ref.group_address,
                           target=target, state="new")
        who.relays.append(entry)
        added.append(entry)
    return added


async def ensure_joined(who: OwnedGroup | Membership, entry: RelayEntry) -> None:
    """A member joins a relay the owners added since it joined, with the keys it joined
    with, before it reads there."""
    if not isinstance(who, Membership) or entry.state == "joined":
        return
    member = MemberIdentity(sign_seed=unb64(who.sign_seed), box_secret=unb64(who.box_secret))
    profile = group.verify_profile(env.decode(unb64(who.profile)), group_id=bytes.fromhex(who.group_id))
    ref = core_pb2.RelayRef(relay_key=unb64(entry.relay_key), relay_link=entry.relay_link, group_address=entry.address)
    proof = approval = None
    if profile.profile.settings.join != core_pb2.JOIN_POLICY_OPEN:  # what let it in elsewhere lets it in here
        joined, shown = await _own_admission(who, profile)
        if joined is not None:
            proof = joined.invite if joined.HasField("invite") else None
            approval = shown.approval if shown.HasField("approval") else None
    _, response = await join_relay(member, profile, ref, who.display_name, proof=proof, approval=approval)
    if response.status == relay_pb2.JOIN_STATUS_HELD:  # not active there yet: joined again on the next try
        raise ChatRelayError(Reason.UNAVAILABLE, "the relay holds the join until the group is active there")
    if response.status == relay_pb2.JOIN_STATUS_PENDING_APPROVAL:  # asked again on the next read
        raise ChatRelayError(Reason.NOT_MEMBER, "the join waits for the owners' approval at this relay")
    entry.state = "joined"


async def _own_admission(who: Membership, profile: group.VerifiedProfile
                         ) -> tuple[core_pb2.JoinBody | None, relay_pb2.MemberAdmission | None]:
    """This member's join and approval, as a relay it joined before shows them, checked
    (chatrelay/admission.py): a relay that shows something else is passed over."""
    key = reader_key(who)
    me = bytes(key.verify_key)
    for other in who.relays:
        if other.state != "joined":
            continue
        try:
            shown = await shown_members(key, other, member=me)
            found = next((m for m in shown if m.join.signer == me), None)
            joined = admission.check(profile, me, found)
        except ChatRelayError:
            continue  # down, forgot it, or shows what does not check out: another may show it
        if joined is not None:
            return joined, found
    return None, None


async def read_all(who: OwnedGroup | Membership) -> Checked:
    """Every post the group's relays keep for this reader, oldest first, each once
    (posts reach every relay; the message id tells copies apart). A post that does not
    check out is skipped with its reason (`.skipped`), and so is a relay that refuses or
    is down, while another answers; only when none does is its refusal raised.

    A newer profile version met on the way is applied (`apply_change`): a relay the
    owners added is joined and read too, a removed one is read no more. A post an
    owner or moderator deleted is not shown. `.changes`: those versions and the
    moderations met, in order."""
    key = reader_key(who)
    checker = PostChecker(who)
    out: list[tuple[int, int, ReceivedPost]] = []
    skipped: list[Skipped] = []
    changes: list[ProfileChange] = []
    refused: list[tuple[RelayEntry, Skipped]] = []
    errors = []
    todo, done = list(who.relays), set()
    rank = 0
    while todo:  # bounded: an entry is read once, and entries come only from the profile
        entry = todo.pop(0)
        if entry not in who.relays or (entry.relay_key, entry.address, entry.target) in done:
            continue  # a change removed it, or it was read
        done.add((entry.relay_key, entry.address, entry.target))
        rank += 1
        try:
            await ensure_joined(who, entry)
            deliveries = await _read_relay(who, entry, key)
        except ChatRelayError as exc:
            errors.append(exc)
            refused.append((entry, Skipped(f"relay {relay_name(entry)}", exc.reason, exc.message)))
            continue

        async def check(delivery, entry=entry, rank=rank):
            got = await checker.check(delivery, entry)
            if isinstance(got, (ProfileChange, Moderated)):
                if isinstance(got, ProfileChange):
                    todo.extend(apply_change(who, got))
                changes.append(got)
                return None
            return None if got is None else (core_pb2.PostBody.FromString(delivery.post.body).client_ts, rank, got)
        taken = await take_async(deliveries, check, lambda d, entry=entry: item_name(d, entry))
        out.extend(taken)
        skipped.extend(taken.skipped)
    if errors and len(errors) == len(done):
        raise errors[0]
    # A relay that refused, and that a change read later removed from the group, is no news.
    skipped = [s for entry, s in refused if entry in who.relays] + skipped
    if len(done) > 1:  # copies from several relays: the authors' clocks order them
        out.sort(key=lambda item: (item[0], item[1], item[2].seq))
    shown = [p for ts, _, p in out if p.message_id not in checker.deleted and not checker.purges(p.author, ts)]
    result = Checked(shown, skipped)
    result.changes = changes
    return result


async def follow(
    who: OwnedGroup | Membership, since_seq: int = 0, *, max_reconnects: int | None = None,
    on_skip: Callable[[Skipped], None] | None = None,
    on_change: Callable[[ProfileChange | Moderated], None] | None = None,
) -> AsyncIterator[ReceivedPost]:
    """Stream posts from every relay of the group, each post once. Each relay's stream
    resumes after its own last post when it reconnects, so nothing is lost or repeated,
    and a relay that is down or refuses does not stop the others. A post that does not
    check out, or a relay that gave up, goes to `on_skip` with its reason, and the
    stream goes on; the last relay's refusal is raised.

    A newer profile version in the stream is applied (`apply_change`) and goes to
    `on_change`: a relay the owners added is joined and streamed from its start, a
    removed one's stream ends. So does a moderation (a post shown before was deleted,
    a member removed)."""
    checker = PostChecker(who)
    queue: asyncio.Queue = asyncio.Queue(maxsize=1000)
    tasks: dict[int, asyncio.Task] = {}  # id of the entry: its stream

    def start(entry: RelayEntry, since: int) -> None:
        tasks[id(entry)] = asyncio.create_task(_follow_relay(who, entry, since, max_reconnects, queue))
    for entry in who.relays:
        start(entry, since_seq)
    try:
        while tasks:
            entry, item = await queue.get()
            if isinstance(item, BaseException):
                if tasks.pop(id(entry), None) is None:
                    continue  # a relay dropped by a change already
                if not tasks or not isinstance(item, ChatRelayError):
                    raise item
                if on_skip is not None:
                    on_skip(Skipped(f"relay {relay_name(entry)}", item.reason, item.message))
                continue
            if id(entry) not in tasks:
                continue  # from a relay dropped by a change
            try:
                got = await checker.check(item, entry)
            except ChatRelayError as exc:
                if on_skip is not None:
                    on_skip(Skipped(item_name(item, entry), exc.reason, exc.message))
                continue
            if isinstance(got, (ProfileChange, Moderated)):
                if isinstance(got, ProfileChange):
                    added = apply_change(who, got)
                    listed = {id(e) for e in who.relays}
                    for gone in [k for k in tasks if k not in listed]:
                        tasks.pop(gone).cancel()
                    for new in added:
                        start(new, 0)
                if on_change is not None:
                    on_change(got)
            elif got is not None:
                yield got
    finally:
        for task in tasks.values():
            task.cancel()


async def _follow_relay(who, entry: RelayEntry, since_seq: int, max_reconnects, queue: asyncio.Queue) -> None:
    key = reader_key(who)
    last = since_seq
    waits = RECONNECTS.waits()
    reconnects = 0
    while True:
        client = RelayClient(entry.target)
        try:
            await ensure_joined(who, entry)
            await client.open()
            stream = client.subscribe(credential(key, entry.address), last)
            async for batch in stream:
                waits = RECONNECTS.waits()  # it streamed: the next reconnect waits little again
                for delivery in batch.deliveries:
                    if delivery.seq <= last:
                        continue
                    await queue.put((entry, delivery))
                    last = delivery.seq
        except (grpc.aio.AioRpcError, ChatRelayError) as exc:
            error = exc if isinstance(exc, ChatRelayError) else from_rpc_error(exc)
            if error.reason is Reason.BEHIND:  # cut off for reading slowly: resume at once
                continue
            if error.reason is Reason.UNAVAILABLE:
                error = await diagnose(entry.target) or error  # another key on the address: give up
            if error.reason is not Reason.UNAVAILABLE:
                await queue.put((entry, error))
                return
        finally:
            await client.close()
        reconnects += 1
        if max_reconnects is not None and reconnects > max_reconnects:
            await queue.put((entry, ChatRelayError(Reason.UNAVAILABLE, f"relay {entry.target} unreachable; gave up reconnecting")))
            return
        await asyncio.sleep(next(waits))
