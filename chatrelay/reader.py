"""The member's side of the SDK: join by a link or an invite code, post, and read what
relays deliver, checking every post again against the group's profile."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import AsyncIterator, Callable

import grpc
from nacl.signing import SigningKey

from chatrelay import admission, codec, group, invites, members
from chatrelay import envelope as env
from chatrelay.connection import MAX_PAGES, NONCE, RETRY_S, RelayClient, diagnose, resolve_link, target_of_link
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.items import Checked, Skipped, take_async
from chatrelay.links import LinkKind, ShortLink
from chatrelay.members import MemberIdentity
from chatrelay.retry import Backoff
from chatrelay.state import Membership, OwnedGroup, RelayEntry, b64, unb64
from chatrelay.status import from_rpc_error
from chatrelay.tls import split_target
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


async def join(link_text: str, display_name: str = "") -> Membership:
    """Join by a group or channel link, or by an invite code (which carries the link and
    passes INVITE_ONLY and APPROVAL gates while every owner is offline)."""
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
    member = MemberIdentity.generate()  # a new identity per group: groups stay unlinked
    entries = []
    status = "member"
    for ref in profile.profile.relays:
        relay_link = ShortLink.parse(ref.relay_link)
        entry = RelayEntry(
            relay_link=ref.relay_link, relay_key=b64(ref.relay_key), address=ref.group_address,
            target=target_of_link(relay_link),
        )
        proof = invites.prove(invite, member.public.sign_key) if invite is not None else None

        def request(address=ref.group_address) -> relay_pb2.JoinRequest:  # signed anew each try
            return relay_pb2.JoinRequest(envelope=members.join_request(
                member, profile.group_id, address, profile.profile.intake_key, display_name, invite=proof
            ))
        async with RelayClient(entry.target) as client:  # a join is by member key: asking again is safe
            response = await client.call("Join", request, retry_for_s=RETRY_S)
        if response.status == relay_pb2.JOIN_STATUS_PENDING_APPROVAL:
            status = "pending"
        elif response.status == relay_pb2.JOIN_STATUS_HELD and status == "member":
            status = "held"
        entry.state = "joined"
        entries.append(entry)
    return Membership(
        group_id=profile.group_id.hex(),
        kind="channel" if profile.profile.kind == core_pb2.GROUP_KIND_CHANNEL else "group",
        name=profile.profile.name, link=str(link), sign_seed=b64(member.sign_seed),
        box_secret=b64(member.box_secret), display_name=display_name,
        profile=b64(env.encode(profile.envelope)), relays=entries, status=status,
    )


@dataclass(frozen=True, slots=True)
class ReceivedPost:
    seq: int
    author: bytes
    text: str
    message_id: bytes
    relay_ts: int

    def to_json(self) -> dict:
        return {
            "seq": self.seq, "author": codec.b64url(self.author), "text": self.text,
            "message_id": codec.b64url(self.message_id), "relay_ts": self.relay_ts,
        }


def reader_key(who: OwnedGroup | Membership) -> SigningKey:
    return SigningKey(unb64(who.owner_seed if isinstance(who, OwnedGroup) else who.sign_seed))


def credential(key: SigningKey, address: str) -> core_pb2.SignedEnvelope:
    """A reader's signed credential for one group address (Subscribe, History, …)."""
    body = relay_pb2.SubscribeBody(group_address=address, nonce=os.urandom(NONCE), timestamp=int(time.time()))
    return env.sign_message(key, env.Domain.SUBSCRIBE, body)


class PostChecker:
    """A member's own check of what relays deliver; dedupes across relays. In a channel
    only the owners author; in a group every author is shown admitted by what it and the
    owners signed (chatrelay/admission.py), asked of the relay that delivered its post,
    once an author."""

    def __init__(self, who: OwnedGroup | Membership) -> None:
        self.profile = group.verify_profile(env.decode(unb64(who.profile)), group_id=bytes.fromhex(who.group_id))
        self.group_id = bytes.fromhex(who.group_id)
        self.channel = self.profile.profile.kind == core_pb2.GROUP_KIND_CHANNEL
        self.key = reader_key(who)
        self.seen: set[bytes] = set()
        self.admitted: set[bytes] = set(self.profile.authorities())
        self.refused: dict[tuple[bytes, str], ChatRelayError] = {}  # (author, relay address): why

    async def check(self, delivery: relay_pb2.Delivery, entry: RelayEntry) -> ReceivedPost | None:
        allowed = self.profile.authorities() if self.channel else None
        body = members.verify_post(delivery.post, self.group_id, allowed=allowed)
        mid = members.message_id(delivery.post)
        if mid in self.seen:
            return None
        await self.admit(delivery.post.signer, entry)
        self.seen.add(mid)
        return ReceivedPost(
            seq=delivery.seq, author=delivery.post.signer, text=body.body.decode("utf-8", "replace"),
            message_id=mid, relay_ts=delivery.relay_ts,
        )

    async def admit(self, author: bytes, entry: RelayEntry) -> None:
        """`not_a_member` unless `author` is shown admitted (once it is, it stays so)."""
        if author in self.admitted:
            return
        refused = self.refused.get((author, entry.address))
        if refused is None:
            try:
                admission.check(self.profile, author, await self._admission(author, entry))
                self.admitted.add(author)
                return
            except ChatRelayError as exc:
                refused = self.refused[(author, entry.address)] = exc
        raise refused

    async def _admission(self, author: bytes, entry: RelayEntry) -> relay_pb2.MemberAdmission | None:
        try:
            shown = await shown_members(self.key, entry, member=author)
        except ChatRelayError as exc:
            if exc.reason is Reason.UNAVAILABLE:
                raise
            return None  # the relay shows nothing: never joined, as far as anyone can check
        return next((m for m in shown if m.join.signer == author), None)


async def shown_members(key: SigningKey, entry: RelayEntry, *, member: bytes = b"",
                        display_name: str = "") -> list[relay_pb2.MemberAdmission]:
    """What one relay shows of the member with this key, or of every member of this name
    (their joins and approvals, to be checked: chatrelay/admission.py)."""
    request = relay_pb2.MemberKeysRequest(credential=credential(key, entry.address), member=member,
                                          display_name=display_name)
    async with RelayClient(entry.target) as client:
        return list((await client.call("MemberKeys", request)).members)


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


def relay_name(entry: RelayEntry) -> str:
    """A relay as a user can tell it apart: its HOST:PORT."""
    return split_target(entry.target)[1]


async def read_all(who: OwnedGroup | Membership) -> Checked:
    """Every post the group's relays keep for this reader, oldest first, each once
    (posts reach every relay; the message id tells copies apart). A post that does not
    check out is skipped with its reason (`.skipped`), and so is a relay that refuses or
    is down, while another answers; only when none does is its refusal raised."""
    key = reader_key(who)
    checker = PostChecker(who)
    out: list[tuple[int, int, ReceivedPost]] = []
    skipped: list[Skipped] = []
    errors = []
    for rank, entry in enumerate(who.relays):
        try:
            deliveries = await _read_relay(who, entry, key)
        except ChatRelayError as exc:
            errors.append(exc)
            skipped.append(Skipped(f"relay {relay_name(entry)}", exc.reason, exc.message))
            continue

        async def check(delivery, entry=entry, rank=rank):
            post_ = await checker.check(delivery, entry)
            return None if post_ is None else (core_pb2.PostBody.FromString(delivery.post.body).client_ts, rank, post_)
        taken = await take_async(deliveries, check, lambda d, entry=entry: f"post {d.seq} at {relay_name(entry)}")
        out.extend(taken)
        skipped.extend(taken.skipped)
    if errors and len(errors) == len(who.relays):
        raise errors[0]
    if len(who.relays) > 1:  # copies from several relays: the authors' clocks order them
        out.sort(key=lambda item: (item[0], item[1], item[2].seq))
    return Checked([post_ for _, _, post_ in out], skipped)


async def follow(
    who: OwnedGroup | Membership, since_seq: int = 0, *, max_reconnects: int | None = None,
    on_skip: Callable[[Skipped], None] | None = None,
) -> AsyncIterator[ReceivedPost]:
    """Stream posts from every relay of the group, each post once. Each relay's stream
    resumes after its own last post when it reconnects, so nothing is lost or repeated,
    and a relay that is down or refuses does not stop the others. A post that does not
    check out, or a relay that gave up, goes to `on_skip` with its reason, and the
    stream goes on; the last relay's refusal is raised."""
    checker = PostChecker(who)
    queue: asyncio.Queue = asyncio.Queue(maxsize=1000)
    tasks = [
        asyncio.create_task(_follow_relay(who, entry, since_seq, max_reconnects, queue))
        for entry in who.relays
    ]
    alive = len(tasks)
    try:
        while alive:
            entry, item = await queue.get()
            if isinstance(item, BaseException):
                alive -= 1
                if alive == 0 or not isinstance(item, ChatRelayError):
                    raise item
                if on_skip is not None:
                    on_skip(Skipped(f"relay {relay_name(entry)}", item.reason, item.message))
                continue
            try:
                post_ = await checker.check(item, entry)
            except ChatRelayError as exc:
                if on_skip is not None:
                    on_skip(Skipped(f"post {item.seq} at {relay_name(entry)}", exc.reason, exc.message))
                continue
            if post_ is not None:
                yield post_
    finally:
        for task in tasks:
            task.cancel()


async def _follow_relay(who, entry: RelayEntry, since_seq: int, max_reconnects, queue: asyncio.Queue) -> None:
    key = reader_key(who)
    last = since_seq
    waits = RECONNECTS.waits()
    reconnects = 0
    while True:
        client = RelayClient(entry.target)
        try:
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
