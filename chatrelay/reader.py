"""The member's side of the SDK: post, and read what relays deliver, checking every item
again (chatrelay/checker.py) and applying the owners' newer profile versions (joining:
chatrelay/joining.py)."""

from __future__ import annotations

import asyncio
import random
from typing import AsyncIterator, Callable

import grpc
from nacl.signing import SigningKey

from chatrelay import members
from chatrelay import envelope as env
from chatrelay.checker import (
    Moderated, PostChecker, ProfileChange, ReceivedPost, StreamCredential, credential, item_name, reader_key,
    relay_name,
)
from chatrelay.connection import MAX_PAGES, RelayClient, diagnose, target_of_link
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.items import Checked, Skipped, take_async
from chatrelay.joining import ensure_joined
from chatrelay.links import ShortLink
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
    shown = StreamCredential(reader_key(who), entry.address)
    last = since_seq
    waits = RECONNECTS.waits()
    reconnects = 0
    while True:
        client = RelayClient(entry.target)
        error = None  # why the stream ended, where it failed
        try:
            await ensure_joined(who, entry)
            await client.open()
            stream = client.subscribe(shown.current(), last)
            async for batch in stream:
                waits = RECONNECTS.waits()  # it streamed: the next reconnect waits little again
                for delivery in batch.deliveries:
                    if delivery.seq <= last:
                        continue
                    await queue.put((entry, delivery))
                    last = delivery.seq
        except (grpc.aio.AioRpcError, ChatRelayError) as exc:
            error = exc if isinstance(exc, ChatRelayError) else from_rpc_error(exc)
            if error.reason is Reason.BEHIND or shown.refused(error):  # cut off for reading slowly, or a
                continue  # credential shown again that the relay's clock finds too old: try again at once
            if error.reason is Reason.UNAVAILABLE and not getattr(error, "retry_after_ms", 0):
                error = await diagnose(entry.target) or error  # another key on the address: give up
            if error.reason is not Reason.UNAVAILABLE:
                await queue.put((entry, error))
                return
        finally:
            await client.close(broken=error is not None and error.reason is Reason.UNAVAILABLE)
        reconnects += 1
        if max_reconnects is not None and reconnects > max_reconnects:
            await queue.put((entry, ChatRelayError(Reason.UNAVAILABLE, f"relay {entry.target} unreachable; gave up reconnecting")))
            return
        await asyncio.sleep(reconnect_wait(waits, error))


def reconnect_wait(waits, error: ChatRelayError | None) -> float:
    """Seconds before a stream's next try: the next of its backoff, or, where the relay
    said when to come back (a gateway opening many streams at once), that, spread over
    half as long again so that a crowd told the same does not come back at once."""
    hint_s = getattr(error, "retry_after_ms", 0) / 1000
    return max(next(waits), hint_s * random.uniform(1.0, 1.5))
