"""Several owners of a group (issue 19). An owner invites another over a 1:1 connection of
their own (a one-time invitation: chatrelay/contacts.py, end to end encrypted), never
through the group's stream; the invited person asks with an owner key made for this group
only; the owner signs that key into the chain in the next profile version, which every
relay and member checks against the group's root key, and hands over what an owner holds
(the shared intake key, the link's secret, the group's relays) over that connection.

An owner is removed by the root, or by an owner before it in the chain that it descends
from (chatrelay/group.py `may_remove`); the owners it signed in are signed in again by the
one removing it, so the chain holds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.public import PrivateKey
from nacl.signing import SigningKey, VerifyKey

from chatrelay import contacts, group, links, members
from chatrelay import envelope as env
from chatrelay.errors import ChatRelayError, MalformedError, Reason
from chatrelay.items import Checked, Skipped
from chatrelay.connection import target_of_link
from chatrelay.links import LinkKind, ShortLink
from chatrelay.owner import current_profile, latest_profile, publish
from chatrelay.state import Address, Contact, OwnedGroup, RelayEntry, State, b64, unb64
from chatrelay.v1 import core_pb2


async def invite(owned: OwnedGroup, relay_links: list[str], name: str = "") -> Address:
    """A one-time invitation to become an owner of `owned`, on `relay_links` (relays of
    one's own, or the group's: what crosses them is boxed end to end)."""
    address = await contacts.create_address(relay_links, name or owned.name, one_time=True)
    address.owner_for = owned.group_id
    return address


async def ask(link_text: str, display_name: str = "") -> Contact:
    """Ask to become an owner through an owner invitation: an owner key made for this
    group only travels in the request."""
    key = SigningKey.generate()
    proof = key.sign(_request_message(ShortLink.parse(link_text))).signature  # it holds the key it offers
    contact = await contacts.connect(link_text, display_name,
                                     extra={"owner_key": b64(bytes(key.verify_key)), "owner_proof": b64(proof)})
    contact.owner_seed = b64(bytes(key))
    return contact


async def complete(st: State) -> Checked:
    """The inviting owner's side, for each owner invitation someone asked at: the request
    accepted, its key signed into the chain and published, the group handed over. What
    was done, one line each; a request without a usable key, or a relay that did not
    answer, in `.skipped`."""
    done = Checked()
    for address in [a for a in st.addresses if a.owner_for and not a.used_up()]:
        owned = next((g for g in st.owned if g.group_id == address.owner_for), None)
        if owned is None:
            continue  # the group is gone
        try:
            found = await contacts.requests(address)
        except ChatRelayError as exc:
            done.skipped.append(Skipped(f"owner invitation for {owned.name}", exc.reason, exc.message))
            continue
        done.skipped.extend(found.skipped)
        for request in found:
            try:
                key = _owner_key(request["payload"], ShortLink.parse(address.link), owned)
            except ChatRelayError as exc:
                done.skipped.append(Skipped(f"request {request['id']}", exc.reason, exc.message))
                contacts.reject(address, request["id"])
                continue
            try:
                contact = await contacts.accept(address, request["id"])
            except ChatRelayError as exc:  # its relay down: asked again on the next run
                done.skipped.append(Skipped(f"request {request['id']}", exc.reason, exc.message))
                continue
            contact.name = st.unique_contact_name(contact.name)
            st.contacts.append(contact)
            owner_id, published = await add(owned, key)
            done.skipped.extend(published.skipped)
            await contacts.send_data(contact, _handover(owned, owner_id))
            done.append(f"{contact.name} is an owner of {owned.name} ({members.fingerprint(key)})")
            break  # one-time: the others were refused
    return done


def _request_message(invitation: ShortLink) -> bytes:
    return env.signed_message(env.Domain.OWNER_REQUEST.value, invitation.link_key)


def _owner_key(payload: dict, invitation: ShortLink, owned: OwnedGroup) -> bytes:
    """The key an owner request offers, once it shows it holds it (a signature over the
    invitation's link key) and it is no owner yet (the handover is for a new owner)."""
    texts = payload.get("owner_key"), payload.get("owner_proof")
    try:
        key, proof = (unb64(t) if isinstance(t, str) else b"" for t in texts)
    except ValueError:
        key, proof = b"", b""
    if len(key) != env.KEY_SIZE:
        raise MalformedError("an owner request", "it carries no 32-byte owner key")
    try:
        VerifyKey(key).verify(_request_message(invitation), proof)
    except (BadSignatureError, ValueError):
        raise ChatRelayError(Reason.BAD_SIGNATURE, "an owner request's key is not shown held by the asker") from None
    if key in current_profile(owned).owners:
        raise ChatRelayError(Reason.REFUSED, "an owner request offers the key of an owner already")
    return key


async def add(owned: OwnedGroup, key: bytes) -> tuple[bytes, Checked]:
    """Sign `key` into the owner chain in the next profile version, published; its owner
    id and the relays that did not take it. Asked again, nothing new is signed."""
    current = await latest_profile(owned)
    if key in current.owners:
        return current.owners[key], Checked()
    owner_id = os.urandom(group.OWNER_ID_SIZE)
    me = SigningKey(unb64(owned.owner_seed))
    auth = group.make_owner_auth(me, current.group_id, owner_id, key)
    updated = group.next_version(me, current, owners=[*current.profile.owners, auth])
    return owner_id, await publish(owned, updated)


def _handover(owned: OwnedGroup, owner_id: bytes) -> dict:
    return {
        "type": "owner", "group_id": owned.group_id, "kind": owned.kind, "name": owned.name, "link": owned.link,
        "owner_id": b64(owner_id), "intake_secret": owned.intake_secret, "link_secret": owned.link_secret,
        "profile": owned.profile,
    }


async def take_up(st: State) -> Checked:
    """The new owner's side: each pending ownership's connection read; a handover that
    came is checked (the profile against the root key, my key in its chain, the intake
    key and link secret against what the profile and link say) and kept as a group I
    own. What was done, one line each; a handover that does not check out in `.skipped`."""
    done = Checked()
    for contact in [c for c in st.contacts if c.owner_seed]:
        try:
            lines = await contacts.inbox(contact)
        except ChatRelayError as exc:  # its relay down: read again on the next run
            done.skipped.append(Skipped(f"the connection with {contact.name}", exc.reason, exc.message))
            continue
        done.extend(lines)
        done.skipped.extend(lines.skipped)
        if not contact.handover:
            continue
        handover, contact.handover = contact.handover, {}
        try:
            owned = _owned_from(handover, unb64(contact.owner_seed))
            if any(g.group_id == owned.group_id for g in st.owned):
                raise ChatRelayError(Reason.REFUSED, f"you own {owned.name!r} already: its keys stay as they are")
        except (ChatRelayError, KeyError, TypeError, ValueError, AttributeError) as exc:
            reason = exc.reason if isinstance(exc, ChatRelayError) else Reason.MALFORMED
            done.skipped.append(Skipped(f"the handover from {contact.name}", reason, getattr(exc, "message", str(exc))))
            continue
        contact.owner_seed = ""  # done: the key lives on in the group I own
        st.owned.append(owned)
    return done


def _owned_from(handover: dict, owner_seed: bytes) -> OwnedGroup:
    group_id = bytes.fromhex(handover["group_id"])
    profile = group.verify_profile(env.decode(unb64(handover["profile"])), group_id=group_id)
    mine = bytes(SigningKey(owner_seed).verify_key)
    owner_id = unb64(handover["owner_id"])
    if profile.owners.get(mine) != owner_id:
        raise ChatRelayError(Reason.BAD_OWNER_CHAIN, "the handover's profile does not list my owner key")
    intake_secret = unb64(handover["intake_secret"])
    if len(intake_secret) != 32 or bytes(PrivateKey(intake_secret).public_key) != profile.profile.intake_key:
        raise ChatRelayError(Reason.BAD_PROFILE, "the handover's intake key is not the group's")
    link = ShortLink.parse(handover["link"])
    secrets = group.OwnerSecrets(group_id=group_id, owner_id=owner_id, owner_seed=owner_seed,
                                 intake_secret=intake_secret, link_secret=unb64(handover["link_secret"]))
    if link.kind not in (LinkKind.GROUP, LinkKind.CHANNEL) or \
            links.group_link(secrets, profile.envelope, link.hosts).link.link_key != link.link_key:
        raise ChatRelayError(Reason.LINK_HASH_MISMATCH, "the handover's link is not the group's")
    relays = [RelayEntry(relay_link=r.relay_link, relay_key=b64(r.relay_key), address=r.group_address,
                         target=target_of_link(ShortLink.parse(r.relay_link)), state="active")
              for r in profile.profile.relays]  # as the profile says, not as the handover does
    return OwnedGroup(
        group_id=group_id.hex(), kind="channel" if profile.profile.kind == core_pb2.GROUP_KIND_CHANNEL else "group",
        name=profile.profile.name, link=str(link), owner_seed=b64(owner_seed), owner_id=b64(owner_id),
        intake_secret=b64(intake_secret), root_seed=None, profile=handover["profile"], relays=relays,
        link_secret=b64(secrets.link_secret),
    )


@dataclass(frozen=True, slots=True)
class Owner:
    owner_id: bytes
    key: bytes
    added_by: str  # "root", or the owner id (hex) of the owner who signed it in
    me: bool

    def __str__(self) -> str:
        return (f"{self.owner_id.hex()} {members.fingerprint(self.key)} added by {self.added_by}"
                + (" (you)" if self.me else ""))


async def list_owners(owned: OwnedGroup) -> list[Owner]:
    current = await latest_profile(owned)
    parents = group.owner_parents(current.profile)
    me = bytes(SigningKey(unb64(owned.owner_seed)).verify_key)
    return [Owner(owner_id=a.owner_id, key=a.owner_key, me=a.owner_key == me,
                  added_by="root" if parents[a.owner_key] == current.profile.root_key
                  else current.owners[parents[a.owner_key]].hex()) for a in current.profile.owners]


async def remove(owned: OwnedGroup, which: str) -> Checked:
    """Remove an owner (by the id or key fingerprint `chatrelay owners` shows): a new
    profile version without it, signed by me, where I have the right (I signed it in, or
    signed in one who did); the owners it signed in are signed in again by me. The relays
    that did not take it in `.skipped`."""
    current = await latest_profile(owned)
    target = next((a.owner_key for a in current.profile.owners
                   if which.lower() in (a.owner_id.hex(), members.fingerprint(a.owner_key).lower(),
                                        b64(a.owner_key).lower())), None)
    if target is None:
        raise ChatRelayError(Reason.UNKNOWN_ADDRESS, f"no owner {which!r} in the group; `chatrelay owners` lists them")
    me = SigningKey(unb64(owned.owner_seed))
    if target == bytes(me.verify_key):
        raise ChatRelayError(Reason.NOT_ALLOWED, "you cannot remove yourself: an owner before you in the chain can")
    parents = group.owner_parents(current.profile)
    if not group.may_remove(current.profile, bytes(me.verify_key), target, parents):
        raise ChatRelayError(Reason.NOT_ALLOWED, "only the owner who added that owner, or one before it in the chain, "
                                                 "may remove it")
    kept = []
    for auth in current.profile.owners:
        if auth.owner_key == target:
            continue
        if group.may_remove(current.profile, target, auth.owner_key, parents):  # it descends from the one removed
            auth = group.make_owner_auth(me, current.group_id, auth.owner_id, auth.owner_key)
        kept.append(auth)
    updated = group.next_version(me, current, owners=kept)
    return await publish(owned, updated)


def version(owned: OwnedGroup) -> int:
    return current_profile(owned).version
