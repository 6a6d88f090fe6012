"""What a member checks of what relays deliver (issue 16, issue 18): every post against
the group's profile (who may author it, its rules, deletions met), every service item
(a profile version, a moderation) against the owners' and moderators' keys, so that a
relay can neither forge nor alter what a reader shows."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from nacl.signing import SigningKey

from chatrelay import admission, codec, group, members, moderation
from chatrelay import envelope as env
from chatrelay.connection import NONCE, RelayClient
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.state import Membership, OwnedGroup, RelayEntry, unb64
from chatrelay.tls import split_target
from chatrelay.v1 import core_pb2, relay_pb2

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


@dataclass(frozen=True, slots=True)
class Moderated:
    """A deletion or removal an owner or a moderator signed, read in the group's stream:
    the reader hides what it names, and says who did it."""

    seq: int
    what: str  # "post #3 deleted", "member AbC… banned with their posts"
    by: str  # "owner AbC…: the reason"
    message_id: bytes = b""  # the deleted post
    member: bytes = b""  # the member whose posts went

    def __str__(self) -> str:
        return f"{self.what} by {self.by}"

    def to_json(self) -> dict:
        return {"moderation": {"seq": self.seq, "what": self.what, "by": self.by}}


@dataclass(frozen=True, slots=True)
class ProfileChange:
    """A newer profile version the owners signed, read in the group's stream: the reader
    applies it (its name, settings, relays) and says so."""

    seq: int
    profile: group.VerifiedProfile
    added: tuple[str, ...]  # relay links
    removed: tuple[str, ...]

    def __str__(self) -> str:
        said = [f"profile v{self.profile.version}: {self.profile.profile.name!r}"]
        said += [f"relay added {link}" for link in self.added]
        said += [f"relay removed {link}" for link in self.removed]
        return "; ".join(said)

    def to_json(self) -> dict:
        return {"profile": {
            "seq": self.seq, "version": self.profile.version, "name": self.profile.profile.name,
            "relays_added": list(self.added), "relays_removed": list(self.removed),
        }}


def reader_key(who: OwnedGroup | Membership) -> SigningKey:
    return SigningKey(unb64(who.owner_seed if isinstance(who, OwnedGroup) else who.sign_seed))


def credential(key: SigningKey, address: str) -> core_pb2.SignedEnvelope:
    """A reader's signed credential for one group address (Subscribe, History, …)."""
    body = relay_pb2.SubscribeBody(group_address=address, nonce=os.urandom(NONCE), timestamp=int(time.time()))
    return env.sign_message(key, env.Domain.SUBSCRIBE, body)


REUSE_S = 300.0  # a stream reopens with the credential it had while it is younger than this (half the skew)


class StreamCredential:
    """The credential a stream of one group opens with, signed once and shown again on
    each reopening while it is younger than REUSE_S. A relay takes a reader's credential
    for any read of its group while its time is within the relay's skew (ten minutes),
    and keeps no record of its use: showing it again tells the relay nothing it did not
    know, and spares the client a signature and the relay a check (a shard remembers the
    credentials it verified: actors/verified_readers.py), which counts when every
    subscriber of a channel reopens at once."""

    def __init__(self, key: SigningKey, address: str, reuse_s: float = REUSE_S) -> None:
        self.key, self.address, self.reuse_s = key, address, reuse_s
        self.signed: core_pb2.SignedEnvelope | None = None
        self.made = 0.0  # time.monotonic() when signed
        self.shown = 0  # times shown since

    def current(self) -> core_pb2.SignedEnvelope:
        if self.signed is None or time.monotonic() - self.made > self.reuse_s:
            self.signed, self.made, self.shown = credential(self.key, self.address), time.monotonic(), 0
        self.shown += 1
        return self.signed

    def refused(self, error: ChatRelayError) -> bool:
        """Whether the stream may try again at once with a new credential: the relay
        refused one shown before as too old (its clock ahead of ours). It is let go."""
        stale = error.reason is Reason.BAD_SIGNATURE and self.shown > 1
        if stale:
            self.signed = None
        return stale


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
        self.authors: dict[bytes, tuple[int, bytes]] = {}  # message id of a post shown: (seq, author)
        self.deleted: dict[bytes, moderation.Moderation] = {}  # message id: the deletion of it
        self.removed: dict[bytes, int] = {}  # members removed: when (signed time, ms)
        self.banned: dict[bytes, int] = {}  # members banned: their posts signed after are refused
        self.purged: dict[bytes, int] = {}  # members removed with their posts: those signed before go
        self.signed_times: dict[bytes, list[int]] = {}  # a member's posts' signed times, for the slow mode

    async def check(self, delivery: relay_pb2.Delivery, entry: RelayEntry) -> "ReceivedPost | ProfileChange | Moderated | None":
        """A post to show, a change to apply, or None (a copy seen already, an older
        profile version, a deleted post); a refusal with its reason for what does not
        check out (a forged item, a post against the group's rules)."""
        if delivery.post.domain == env.Domain.PROFILE.value:
            return self._profile(delivery)
        if delivery.post.domain == env.Domain.MODERATION.value:
            return self._moderation(delivery)
        allowed = self.profile.authorities() if self.channel else None
        body = members.verify_post(delivery.post, self.group_id, allowed=allowed)
        mid = members.message_id(delivery.post)
        author = delivery.post.signer
        if mid in self.seen or self.purges(author, body.client_ts) or self._deleted(mid, author):
            return None
        if body.client_ts >= self.banned.get(author, 1 << 63):
            raise ChatRelayError(Reason.NOT_MEMBER, "its author was banned from the group before")
        await self.admit(author, entry)
        self._check_rules(author, body)
        self.seen.add(mid)
        self.authors[mid] = (delivery.seq, author)
        return ReceivedPost(
            seq=delivery.seq, author=author, text=body.body.decode("utf-8", "replace"),
            message_id=mid, relay_ts=delivery.relay_ts,
        )

    def purges(self, author: bytes, client_ts: int) -> bool:
        """Whether a removal with its posts hides this post (one signed before it)."""
        return client_ts <= self.purged.get(author, -1)

    def _deleted(self, mid: bytes, author: bytes) -> bool:
        """Whether a deletion met before the post itself hides it: one by an owner, or by a
        moderator of a member's post (a moderator's deletion of an owner's or moderator's
        post hides nothing, whichever relay applied it)."""
        done = self.deleted.get(mid)
        if done is None:
            return False
        try:
            moderation.check_deletion(done, self.profile, author)
        except ChatRelayError:
            del self.deleted[mid]
            return False
        return True

    def _check_rules(self, author: bytes, body: core_pb2.PostBody) -> None:
        """The group's rules, for a member's post signed after the version that holds
        them was (one signed before was made under the rules of its time)."""
        if body.client_ts < self.profile.profile.signed_at * 1000:
            return
        moderation.check_rules(self.profile, author, body)
        times = self.signed_times.setdefault(author, [])
        slow = moderation.slow_mode_refusal(self.profile, author, body.client_ts, times)
        if slow is not None:
            raise slow
        times.append(body.client_ts)

    def _moderation(self, delivery: relay_pb2.Delivery) -> "Moderated":
        """A deletion or removal, checked against the group's profile: signed by an owner,
        or by a moderator within a moderator's right, so a relay can forge none."""
        done = moderation.verify(delivery.post, self.profile)
        body = done.body
        signed_ms = body.timestamp * 1000
        if done.role == moderation.MODERATOR and signed_ms >= self.removed.get(done.signer, 1 << 63):
            raise ChatRelayError(Reason.NOT_ALLOWED, "its moderator was removed from the group before")
        if body.kind == core_pb2.MODERATION_KIND_DELETE_POST:
            seq, author = self.authors.get(body.message_id, (0, b""))
            if author:
                moderation.check_deletion(done, self.profile, author)
            self.deleted[body.message_id] = done
            what = f"post #{seq} deleted" if seq else f"post {codec.b64url(body.message_id)[:12]} deleted"
        else:
            self.removed[body.member] = signed_ms
            self.admitted.discard(body.member)  # a later post of it is checked again
            if body.ban:
                self.banned[body.member] = signed_ms
            if body.delete_posts:
                self.purged[body.member] = signed_ms
            what = (f"member {members.fingerprint(body.member)} {'banned' if body.ban else 'removed'}"
                    + (" with their posts" if body.delete_posts else ""))
        return Moderated(seq=delivery.seq, what=what, by=moderation.describe(done, members.fingerprint),
                         message_id=body.message_id, member=body.member if body.delete_posts else b"")

    def _profile(self, delivery: relay_pb2.Delivery) -> ProfileChange | None:
        """A profile version in the stream: the owners' signature and chain are checked
        against the group's root key, so a relay can neither forge nor alter one; an
        older version than the one held is genuine, and changes nothing."""
        new = group.verify_profile(delivery.post, group_id=self.group_id)
        if new.version <= self.profile.version:
            return None
        group.check_removals(self.profile, new)
        old, self.profile = self.profile, new
        self.channel = new.profile.kind == core_pb2.GROUP_KIND_CHANNEL
        self.admitted |= new.authorities()
        before = {(r.relay_key, r.group_address): r.relay_link for r in old.profile.relays}
        after = {(r.relay_key, r.group_address): r.relay_link for r in new.profile.relays}
        return ProfileChange(
            seq=delivery.seq, profile=new,
            added=tuple(link for key, link in after.items() if key not in before),
            removed=tuple(link for key, link in before.items() if key not in after),
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


def relay_name(entry: RelayEntry) -> str:
    """A relay as a user can tell it apart: its HOST:PORT."""
    return split_target(entry.target)[1]


def item_name(delivery: relay_pb2.Delivery, entry: RelayEntry) -> str:
    what = "post" if delivery.post.domain == env.Domain.POST.value else "item"
    return f"{what} {delivery.seq} at {relay_name(entry)}"
