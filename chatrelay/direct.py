"""Direct connections on demand, negotiated through a group (seed: groups without direct
connections), client side: a member finds another's keys as that member signed them and
shown admitted, sends it a one-time invitation sealed to its key through the group, and
the other member's client lists it until its user consents. Then the two talk 1:1 as
contacts do (chatrelay/contacts.py)."""

from __future__ import annotations

import hashlib
import json
import os
import time

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey

from chatrelay import codec
from chatrelay import envelope as env
from chatrelay.connection import MAX_PAGES, RelayClient, target_of_link
from chatrelay.contacts import _object, accept, connect, create_address, requests
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.items import Checked, take_async
from chatrelay.links import LinkKind, ShortLink
from chatrelay.members import fingerprint
from chatrelay.state import Address, Contact, DirectInvitation, b64, unb64
from chatrelay.v1 import core_pb2, relay_pb2



def _group_profile(who):
    from chatrelay import group

    return group.verify_profile(env.decode(unb64(who.profile)), group_id=bytes.fromhex(who.group_id))


INVITATION_ID = 16  # hex digits of a direct invitation's id


def _asked(member: str) -> tuple[bytes, str, str]:
    """`MEMBER` as a user gives it: a member key (base64url, as `read --json` shows
    authors), `NAME#FINGERPRINT`, or a NAME -> (key, name, fingerprint)."""
    if len(member) == 43:
        try:
            return codec.unb64url(member, "member key"), "", ""
        except ChatRelayError:
            pass
    name, sep, prefix = member.rpartition("#")
    return (b"", name, prefix) if sep and name else (b"", member, "")


async def member_keys(who, member: str) -> core_pb2.MemberKeys:
    """Another member's keys, as the member signed them, shown admitted to the group
    (chatrelay/admission.py). Every relay of the group is asked, so one that hides a
    member of the same name cannot make a name point at its own; where several admitted
    members have the name, none is picked: they are listed by fingerprint, to name one."""
    from chatrelay import admission, checker

    key, name, prefix = _asked(member)
    profile = _group_profile(who)
    found: dict[bytes, core_pb2.JoinBody] = {}
    refusals: list[ChatRelayError] = []
    for entry in who.relays:
        try:
            members = await checker.shown_members(checker.reader_key(who), entry, member=key, display_name=name)
        except ChatRelayError as exc:
            refusals.append(exc)
            continue
        for shown in members:
            try:
                body = admission.check(profile, shown.join.signer, shown)
            except ChatRelayError:
                continue  # not shown admitted: as if the relay had said nothing of it
            if body is None or (key and body.keys.sign_key != key) or (name and body.profile.display_name != name):
                continue
            if not fingerprint(body.keys.sign_key).startswith(prefix):
                continue
            found[body.keys.sign_key] = body
    if not found:
        if refusals and len(refusals) == len(who.relays):
            raise refusals[0]
        raise ChatRelayError(Reason.NOT_MEMBER, f"no member {member!r} in this group that checks out")
    if len(found) > 1:
        named = ", ".join(sorted(f"{b.profile.display_name}#{fingerprint(k)}" for k, b in found.items()))
        raise ChatRelayError(Reason.REFUSED, f"several members are named {name!r} ({named}): name one of them so")
    return next(iter(found.values())).keys


async def send_direct_invitation(who, member: str, text: str) -> Address:
    """Member A to member B: a one-time invitation, sealed to B's X25519 key, through
    the group address. No direct connection exists before this; the group must allow it."""
    from nacl.public import SealedBox

    from chatrelay import checker

    if not _group_profile(who).profile.settings.direct_messages:
        raise ChatRelayError(Reason.NOT_ALLOWED, "direct messages are off in this group")
    keys = await member_keys(who, member)
    entry = who.relays[0]
    name = getattr(who, "display_name", "") or "owner"  # the name this member uses in the group
    invitation = await create_address(entry.relay_link, name, one_time=True)
    invitation.auto_accept = b64(keys.sign_key)
    sealed = SealedBox(PublicKey(keys.box_key)).encrypt(json.dumps(
        {"link": invitation.link, "name": name, "message": text, "group": who.group_id}
    ).encode())
    body = relay_pb2.DirectInvitationBody(
        group_address=entry.address, to_member=keys.sign_key, sealed=bytes(sealed),
        nonce=os.urandom(16), timestamp=int(time.time()),
    )
    envelope = env.sign_message(checker.reader_key(who), env.Domain.DIRECT_INVITATION, body)
    async with RelayClient(entry.target) as c:
        await c.call("SendDirectInvitation", relay_pb2.DirectInvitationRequest(envelope=envelope))
    return invitation


async def direct_invitations(membership) -> Checked:
    """Direct invitations received in a group, new since the last read: each checked
    (signed by a member shown admitted, allowed by the group's profile whatever the relay
    did, sealed to me, for this group, its link on one of the group's relays) and kept in
    `membership.invitations` until I accept one (`accept_invitation`). Nothing is dialled
    here: the link inside was chosen by the other member."""
    from nacl.public import SealedBox

    from chatrelay import checker, members

    entry = membership.relays[0]
    credential = checker.credential(checker.reader_key(membership), entry.address)
    received: list[relay_pb2.DirectInvitationDelivery] = []
    async with RelayClient(entry.target) as c:
        for _ in range(MAX_PAGES):  # pages are sized in bytes: read on until one comes empty
            after = received[-1].seq if received else membership.direct_seq
            page = (await c.call("DirectInbox", relay_pb2.DirectInboxRequest(credential=credential, after_seq=after)))
            if not page.invitations:
                break
            received.extend(page.invitations)
    allowed = _group_profile(membership).profile.settings.direct_messages
    senders = checker.PostChecker(membership)  # who is a member, checked as for posts
    relays = {r.target for r in membership.relays}

    async def check(item) -> DirectInvitation | None:
        membership.direct_seq = max(membership.direct_seq, item.seq)  # past it, whatever it holds
        checked, body = env.verify_message(
            item.invitation, env.Domain.DIRECT_INVITATION, relay_pb2.DirectInvitationBody, "direct invitation"
        )
        if not allowed:
            raise ChatRelayError(Reason.NOT_ALLOWED, "refused a direct invitation: direct messages are off in this group")
        await senders.admit(checked.signer, entry)
        if body.to_member != members.MemberIdentity(
            sign_seed=unb64(membership.sign_seed), box_secret=unb64(membership.box_secret)
        ).public.sign_key:
            return None
        try:
            payload = json.loads(SealedBox(PrivateKey(unb64(membership.box_secret))).decrypt(body.sealed))
        except (CryptoError, ValueError):
            raise ChatRelayError(Reason.BAD_SIGNATURE, "a direct invitation does not open with my key") from None
        _object(payload, "a direct invitation", ("name", "message", "group"), required=("link",))
        if payload.get("group") != membership.group_id:
            raise ChatRelayError(Reason.GROUP_MISMATCH, "a direct invitation names another group")
        link = ShortLink.parse(payload["link"])
        if link.kind is not LinkKind.INVITATION or target_of_link(link) not in relays:
            raise ChatRelayError(Reason.NOT_ALLOWED, "a direct invitation names a host that is not one of the group's relays")
        invitation = DirectInvitation(
            id=hashlib.sha256(env.encode(item.invitation)).hexdigest()[:INVITATION_ID], name=str(payload.get("name", "")),
            message=str(payload.get("message", "")), link=payload["link"], member=b64(checked.signer))
        if any(i.id == invitation.id for i in membership.invitations):
            return None
        membership.invitations.append(invitation)
        return invitation
    return await take_async(received, check, lambda item: f"direct invitation #{item.seq}")


async def accept_invitation(membership, invitation_id: str) -> Contact:
    """I consent: connect to the one-time invitation inside, with the name I use in the
    group. It stays waiting where the connection fails, to try again."""
    found = [i for i in membership.invitations if i.id == invitation_id]
    if not found:
        waiting = ", ".join(i.id for i in membership.invitations) or "none"
        raise ChatRelayError(Reason.UNKNOWN_ADDRESS,
                             f"no direct invitation {invitation_id!r} waiting in this group (waiting: {waiting})")
    invitation = found[0]
    contact = await connect(invitation.link, membership.display_name)
    membership.invitations.remove(invitation)
    contact.name = invitation.name or contact.name
    contact.member = invitation.member
    return contact


async def accept_direct(address: Address) -> list[Contact]:
    """The inviting side: accept the connection the invited member asked for."""
    made = []
    for request in await requests(address):
        if request["status"] == "waiting":
            contact = await accept(address, request["id"])
            contact.member = address.auto_accept
            made.append(contact)
    return made
