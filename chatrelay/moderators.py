"""The SDK side of moderation (issue 18): the owners list the members and name
moderators; owners and moderators delete posts and remove (or ban) members; the owners
set the group's rules. Each deletion or removal is signed once and sent as signed to
every relay of the group (chatrelay/moderation.py says who may sign what)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from chatrelay import admission, direct, group, members, moderation
from chatrelay import envelope as env
from chatrelay.connection import MAX_PAGES, NONCE, RelayClient
from chatrelay.errors import ChatRelayError, Reason, TooLargeError
from chatrelay.items import Checked, Skipped, take
from chatrelay.owner import _owner_read, current_profile, latest_profile, publish
from chatrelay.checker import credential, reader_key, relay_name, shown_members
from chatrelay.state import Membership, OwnedGroup, unb64
from chatrelay.v1 import core_pb2, relay_pb2


@dataclass(frozen=True, slots=True)
class ListedMember:
    sign_key: bytes
    display_name: str
    role: str  # "moderator" or "member"
    joined_at: int  # milliseconds since the epoch

    def __str__(self) -> str:
        import datetime

        since = datetime.datetime.fromtimestamp(self.joined_at / 1000, datetime.timezone.utc)
        return (f"{direct.fingerprint(self.sign_key)} {self.display_name or '(no name)'} {self.role} "
                f"{since:%Y-%m-%dT%H:%M:%SZ}")


@dataclass(frozen=True, slots=True)
class RelayCounts:
    relay: str  # its relay link
    members: int
    subscribers: int


async def list_members(owned: OwnedGroup) -> Checked:
    """The members as the group's relays show them, each checked (a member a relay made
    up is skipped with its reason), once, with its role; `.counts`: members and open
    read streams per relay."""
    profile = current_profile(owned)
    found: dict[bytes, ListedMember] = {}
    skipped: list[Skipped] = []
    counts: list[RelayCounts] = []
    for entry in owned.relays:
        try:
            async with RelayClient(entry.target) as client:
                response = await client.call(
                    "ListMembers", relay_pb2.ListMembersRequest(envelope=_owner_read(owned, entry.address)))
        except ChatRelayError as exc:
            skipped.append(Skipped(f"relay {relay_name(entry)}", exc.reason, exc.message))
            continue
        counts.append(RelayCounts(entry.relay_link, response.total, response.subscribers))

        def check(listed: relay_pb2.ListedMember) -> ListedMember:
            body = admission.check(profile, listed.admission.join.signer, listed.admission)
            if body is None:
                raise ChatRelayError(Reason.NOT_MEMBER, "an owner is listed as a member")
            key = body.keys.sign_key
            return ListedMember(key, body.profile.display_name,
                                moderation.role_of(profile, key) or "member", listed.joined_at)
        taken = take(response.members, check,
                     lambda m: f"member {direct.fingerprint(m.admission.join.signer)} at {relay_name(entry)}")
        for member in taken:
            found.setdefault(member.sign_key, member)
        skipped.extend(taken.skipped)
    out = Checked(sorted(found.values(), key=lambda m: m.joined_at), skipped)
    out.counts = counts
    return out


async def relay_counts(owned: OwnedGroup) -> list[RelayCounts | Skipped]:
    """Members and open read streams at each relay of the group, as each counts them (a
    relay that refuses or is down: its refusal)."""
    out: list[RelayCounts | Skipped] = []
    for entry in owned.relays:
        request = relay_pb2.ListMembersRequest(envelope=_owner_read(owned, entry.address), counts_only=True)
        try:
            async with RelayClient(entry.target) as client:
                response = await client.call("ListMembers", request)
        except ChatRelayError as exc:
            out.append(Skipped(f"relay {relay_name(entry)}", exc.reason, exc.message))
            continue
        out.append(RelayCounts(entry.relay_link, response.total, response.subscribers))
    return out


async def set_role(owned: OwnedGroup, member: str, role: str) -> Checked:
    """Make a member a moderator, or a member again: a new profile version, published.
    The member is named as `chatrelay members` shows it (NAME, NAME#FINGERPRINT or key).
    Its fingerprint, and the relays that did not take the version in `.skipped`."""
    keys = await direct.member_keys(owned, member)
    profile = await latest_profile(owned)
    moderators = [k for k in profile.profile.moderators if k != keys.sign_key]
    if role == moderation.MODERATOR:
        moderators.append(keys.sign_key)
    elif role != "member":
        raise ChatRelayError(Reason.MALFORMED, f"a role is moderator or member, not {role!r}")
    sent = Checked()
    if moderators != list(profile.profile.moderators):
        sent = await publish(owned, group.next_version(reader_key(owned), profile, moderators=moderators))
    return Checked([direct.fingerprint(keys.sign_key)], sent.skipped)


async def _send(who: OwnedGroup | Membership, signed, method: str) -> Checked:
    """A request to every relay of the group: a moderation as signed once (`signed` an
    envelope), or one signed for each relay's address (`signed(entry)`). The answers,
    with each relay that refused or was down in `.skipped`; the refusal is raised when
    no relay took it."""
    answers, errors = Checked(), []
    for entry in who.relays:
        envelope = signed(entry) if callable(signed) else signed
        request = (relay_pb2.ModerateRequest(group_address=entry.address, envelope=envelope) if method == "Moderate"
                   else getattr(relay_pb2, f"{method}Request")(envelope=envelope))
        try:
            async with RelayClient(entry.target) as client:
                answers.append(await client.call(method, request))
        except ChatRelayError as exc:
            errors.append(exc)
            answers.skipped.append(Skipped(f"relay {relay_name(entry)}", exc.reason, exc.message))
    if not answers:
        raise errors[0] if errors else ChatRelayError(Reason.UNAVAILABLE, "the group has no relays")
    return answers


async def remove(who: OwnedGroup | Membership, member: str, *, ban: bool = False, delete_posts: bool = False,
                 reason: str = "") -> Checked:
    """Remove a member (by NAME, NAME#FINGERPRINT or key) on every relay: its open
    streams end at once; with `ban`, its key is refused at every later join; with
    `delete_posts`, its posts go too."""
    keys = await direct.member_keys(who, member)
    envelope = moderation.sign(reader_key(who), bytes.fromhex(who.group_id), core_pb2.MODERATION_KIND_REMOVE_MEMBER,
                               member=keys.sign_key, ban=ban, delete_posts=delete_posts, reason=reason)
    return await _send(who, envelope, "Moderate")


async def delete_post(who: OwnedGroup | Membership, seq: int, reason: str = "") -> Checked:
    """Delete the post this reader sees as #`seq` (as `chatrelay read --json` shows it,
    from the first relay that has it) on every relay of the group."""
    found = await _post_at(who, seq)
    envelope = moderation.sign(reader_key(who), bytes.fromhex(who.group_id), core_pb2.MODERATION_KIND_DELETE_POST,
                               message_id=members.message_id(found.post), reason=reason)
    answers = await _send(who, envelope, "Moderate")
    answers.post = found.post  # what was deleted
    return answers


async def _post_at(who: OwnedGroup | Membership, seq: int) -> relay_pb2.Delivery:
    """The post this reader sees as #`seq` (as `read` numbers it: from the first relay
    that answers; the CLI shows its author and text, so what is signed is what was meant)."""
    if seq < 1:
        raise ChatRelayError(Reason.MALFORMED, f"a post's seq is a number from 1, got {seq}")
    key = reader_key(who)
    found, errors = None, []
    for entry in who.relays:
        request = relay_pb2.HistoryRequest(credential=credential(key, entry.address), before_seq=seq + 1, limit=1)
        try:
            async with RelayClient(entry.target) as client:
                page = (await client.call("History", request)).deliveries
        except ChatRelayError as exc:
            errors.append(exc)  # down, or not joined there yet: the next may answer
            continue
        found = next((d for d in page if d.seq == seq), None)
        break
    else:
        if errors:
            raise errors[0]
    if found is None or found.post.domain != env.Domain.POST.value:
        raise ChatRelayError(Reason.NOT_FOUND, f"no post #{seq} in the group")
    members.verify_post(found.post, bytes.fromhex(who.group_id))
    return found


def describe_post(post: core_pb2.SignedEnvelope) -> str:
    """A post as a moderator tells it apart: its author's fingerprint and its start."""
    text = core_pb2.PostBody.FromString(post.body).body.decode("utf-8", "replace").replace("\n", " ")
    return f"{members.fingerprint(post.signer)}: {text if len(text) <= 60 else text[:59] + '…'}"


# ---- reports --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Report:
    """A member's report, as the owners open and check it."""

    reporter: bytes
    author: bytes
    seq: int  # where the reporter read the post
    text: str
    reason: str
    received_at: int  # milliseconds since the epoch

    def __str__(self) -> str:
        excerpt = self.text if len(self.text) <= 60 else self.text[:59] + "…"
        return (f"{members.fingerprint(self.reporter)} reported #{self.seq} by {members.fingerprint(self.author)}: "
                f"{self.reason or '(no reason)'} | {excerpt}")


async def report(who: Membership, seq: int, reason: str) -> Checked:
    """Report post #`seq` to the owners, through every relay (one that drops it does not
    silence it): the post and the reason are sealed to the owners' intake key, so no
    relay reads them."""
    if len(reason) > moderation.MAX_REASON:
        raise TooLargeError("report reason", len(reason), moderation.MAX_REASON, "characters")
    found = await _post_at(who, seq)
    group_id = bytes.fromhex(who.group_id)
    content = core_pb2.ReportContent(group_id=group_id, post=found.post, seq=seq, reason=reason)
    intake = group.verify_profile(env.decode(unb64(who.profile)), group_id=group_id).profile.intake_key
    sealed = bytes(SealedBox(PublicKey(intake)).encrypt(content.SerializeToString()))
    key = reader_key(who)

    def signed(entry) -> core_pb2.SignedEnvelope:
        body = relay_pb2.ReportBody(group_address=entry.address, sealed=sealed, nonce=os.urandom(NONCE),
                                    timestamp=int(time.time()))
        return env.sign_message(key, env.Domain.REPORT, body)
    return await _send(who, signed, "Report")


async def list_reports(owned: OwnedGroup) -> Checked:
    """The reports members sent, from every relay, each once (oldest first); one that does
    not check out (not signed by its reporter, not opening, not of this group's post) is
    skipped with its reason."""
    group_id = bytes.fromhex(owned.group_id)
    profile = current_profile(owned)
    admitted: set[bytes] = set()
    opener = SealedBox(PrivateKey(unb64(owned.intake_secret)))
    found: dict[tuple[bytes, bytes], Report] = {}
    skipped: list[Skipped] = []
    for entry in owned.relays:
        since, page = 0, []
        try:
            async with RelayClient(entry.target) as client:
                for _ in range(MAX_PAGES):  # bounded: each page moves `since` on
                    page = (await client.call("ListReports", relay_pb2.ListReportsRequest(
                        envelope=_owner_read(owned, entry.address, since)))).reports
                    if not page:
                        break
                    since = page[-1].seq

                    def check(item: relay_pb2.ReceivedReport) -> tuple[int, tuple[bytes, bytes], Report]:
                        checked, body = env.verify_message(item.report, env.Domain.REPORT, relay_pb2.ReportBody, "report")
                        try:
                            content = core_pb2.ReportContent.FromString(opener.decrypt(body.sealed))
                        except (CryptoError, DecodeError):
                            raise ChatRelayError(Reason.MALFORMED, "report does not open with the owners' key") from None
                        if content.group_id != group_id:
                            raise ChatRelayError(Reason.GROUP_MISMATCH, "report is about another group")
                        if len(content.reason) > moderation.MAX_REASON:
                            raise TooLargeError("report reason", len(content.reason), moderation.MAX_REASON, "characters")
                        post = members.verify_post(content.post, group_id)
                        return item.seq, (checked.signer, body.sealed), Report(
                            checked.signer, content.post.signer, content.seq, post.body.decode("utf-8", "replace"),
                            content.reason, item.received_at)
                    taken = take(page, check, lambda item, entry=entry: f"report {item.seq} at {relay_name(entry)}")
                    for seq, key, item in taken:
                        try:
                            await _check_reporter(owned, profile, entry, item.reporter, admitted)
                        except ChatRelayError as exc:
                            skipped.append(Skipped(f"report {seq} at {relay_name(entry)}", exc.reason, exc.message))
                            continue
                        found.setdefault(key, item)
                    skipped.extend(taken.skipped)
        except ChatRelayError as exc:
            skipped.append(Skipped(f"relay {relay_name(entry)}", exc.reason, exc.message))
    return Checked(sorted(found.values(), key=lambda r: r.received_at), skipped)


async def _check_reporter(owned: OwnedGroup, profile, entry, reporter: bytes, admitted: set[bytes]) -> None:
    """A report counts only from a member shown admitted (chatrelay/admission.py): a relay
    can seal a report to the owners' public intake key, but not make up its reporter."""
    if reporter in admitted:
        return
    try:
        shown = await shown_members(reader_key(owned), entry, member=reporter)
    except ChatRelayError as exc:
        if exc.reason is Reason.UNAVAILABLE:
            raise
        shown = []
    found = next((m for m in shown if m.join.signer == reporter), None)
    try:
        admission.check(profile, reporter, found)
    except ChatRelayError as exc:
        raise ChatRelayError(Reason.NOT_MEMBER, f"its reporter is not a member: {exc.message}") from None
    admitted.add(reporter)


# ---- leaving --------------------------------------------------------------------------

async def leave(who: Membership) -> Checked:
    """End this membership on every relay of the group: each forgets the member."""
    key = reader_key(who)

    def signed(entry) -> core_pb2.SignedEnvelope:
        body = relay_pb2.LeaveBody(group_address=entry.address, nonce=os.urandom(NONCE), timestamp=int(time.time()))
        return env.sign_message(key, env.Domain.LEAVE, body)
    return await _send(who, signed, "Leave")


