"""1:1 connections through a relay (seed: open connections), client side.

- An owner makes a contact address (`a`, multi-use) or a one-time invitation (`i`): a
  queue on the relay and a short link whose fixed data holds the queue id and an X25519
  key.
- A joiner creates its own reply queue and sends a request (CONF) boxed to that key:
  its name, its reply queue, its X25519 key and a first message. It waits on the relay,
  however long the owner is offline.
- The owner accepts (a queue of its own for this contact, CON sent to the reply queue)
  or rejects. From then on both sides send NaCl Box messages to each other's queue;
  the relay stores only ciphertext.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

from nacl.exceptions import CryptoError
from nacl.public import Box, PrivateKey, PublicKey
from nacl.signing import SigningKey

from chatrelay import codec, links
from chatrelay import envelope as env
from chatrelay.connection import MAX_PAGES, RelayClient, relay_info, resolve_link, target_of_link
from chatrelay.errors import ChatRelayError, MalformedError, Reason
from chatrelay.items import Checked, take, take_async
from chatrelay.links import LinkKind, ShortLink
from chatrelay.state import Address, Contact, DirectInvitation, b64, unb64
from chatrelay.v1 import core_pb2, relay_pb2

MAX_TEXT = 16 * 1024


def _box_open(secret: bytes, sender_key: bytes, boxed: bytes, what: str = "a message") -> dict:
    try:
        payload = json.loads(Box(PrivateKey(secret), PublicKey(sender_key)).decrypt(boxed))
    except (CryptoError, ValueError, TypeError):
        raise ChatRelayError(Reason.BAD_SIGNATURE, f"{what} does not open with the expected keys") from None
    return _object(payload, what)


def _object(payload, what: str, text_fields: tuple[str, ...] = (), required: tuple[str, ...] = ()) -> dict:
    """A JSON object whose `text_fields` are strings where present and whose `required`
    ones are strings, or a refusal."""
    if not isinstance(payload, dict):
        raise MalformedError(what, "not a JSON object")
    for name in required:
        if not isinstance(payload.get(name), str):
            raise MalformedError(what, f"it holds no {name}")
    for name in text_fields:
        if name in payload and not isinstance(payload[name], str):
            raise MalformedError(what, f"{name} is not text")
    return payload


def _box(secret: bytes, recipient_key: bytes, payload: dict) -> bytes:
    return bytes(Box(PrivateKey(secret), PublicKey(recipient_key)).encrypt(json.dumps(payload).encode()))


async def _create_queue(client: RelayClient, owner: SigningKey, kind: int) -> str:
    body = relay_pb2.CreateQueueBody(kind=kind, queue_id=os.urandom(16), nonce=os.urandom(16), timestamp=int(time.time()))
    envelope = env.sign_message(owner, env.Domain.QUEUE_CREATE, body)
    response = await client.call("CreateQueue", relay_pb2.CreateQueueRequest(envelope=envelope))
    return response.queue_address


async def create_address(relay_link: str, display_name: str, one_time: bool = False) -> Address:
    relay = await relay_info(relay_link)
    owner, e2e = SigningKey.generate(), PrivateKey.generate()
    kind = LinkKind.INVITATION if one_time else LinkKind.CONTACT
    async with RelayClient(relay.target) as client:
        queue = await _create_queue(client, owner, kind.pb)
        bundle = links.contact_link(
            kind, owner, codec.unb64url(queue, "queue address"), bytes(e2e.public_key), display_name, relay.link.hosts,
            pins=relay.link.pins,
        )
        await client.store_link(owner, bundle)
    return Address(
        kind=kind.value, link=str(bundle.link), queue=queue, target=relay.target,
        owner_seed=b64(bytes(owner)), e2e_secret=b64(bytes(e2e)), display_name=display_name,
    )


async def connect(link_text: str, display_name: str, message: str = "") -> Contact:
    """Send a connection request to an address or one-time invitation."""
    if len(message.encode()) > MAX_TEXT:
        raise ChatRelayError(Reason.TOO_LARGE, f"first message is over {MAX_TEXT} bytes")
    link = ShortLink.parse(link_text)
    if link.kind not in (LinkKind.CONTACT, LinkKind.INVITATION):
        raise ChatRelayError(Reason.LINK_KIND_MISMATCH, "connect takes a contact address (a) or invitation (i) link")
    resolved = await resolve_link(link)
    their_queue = codec.b64url(resolved.fixed.entity_id)
    target = target_of_link(link)
    mine, box_key = SigningKey.generate(), PrivateKey.generate()
    async with RelayClient(target) as client:
        reply_queue = await _create_queue(client, mine, core_pb2.LINK_KIND_CONTACT)
        payload = {"type": "conf", "name": display_name, "queue": reply_queue, "target": target, "message": message}
        body = relay_pb2.ConnectionRequestBody(
            queue_address=their_queue, sender_key=bytes(box_key.public_key),
            boxed=_box(bytes(box_key), resolved.fixed.e2e_key, payload), nonce=os.urandom(16),
        )
        await client.call("RequestConnection", relay_pb2.ConnectionRequest(body=body))
    return Contact(
        name=resolved.mutable.contact.display_name or "contact", my_queue=reply_queue, my_target=target,
        my_seed=b64(bytes(mine)), my_box_secret=b64(bytes(box_key)),
        first_box_key=b64(resolved.fixed.e2e_key),
    )


async def _read(target: str, owner: SigningKey, queue: str, since: int) -> list[relay_pb2.QueueMessage]:
    body = relay_pb2.QueueReadBody(queue_address=queue, since_seq=since, nonce=os.urandom(16), timestamp=int(time.time()))
    envelope = env.sign_message(owner, env.Domain.QUEUE_READ, body)
    out = []
    async with RelayClient(target) as client:
        try:
            await client.open()
            async for batch in client.stub.ReadQueue(relay_pb2.ReadQueueRequest(envelope=envelope), timeout=60):
                out.extend(batch.messages)
        except Exception as exc:  # grpc errors carry the relay's reason
            import grpc

            from chatrelay.status import from_rpc_error

            if isinstance(exc, grpc.aio.AioRpcError):
                raise from_rpc_error(exc) from None
            raise
    return out


async def requests(address: Address) -> Checked:
    """Connection requests waiting at an address for me to decide, decrypted: those read
    before (kept in `address.waiting`, as the relay deletes what I have read) and the new
    ones. One that does not open, or is not a request, is skipped with its reason
    (`.skipped`), once. The state holding `address` must be saved after: the next read
    tells the relay to delete what this one read."""
    def check(message) -> None:
        address.read_seq = max(address.read_seq, message.seq)
        request_id = message.request_id.hex()  # hex: safe as a command-line argument
        if not message.request_id or request_id in address.handled or request_id in address.waiting:
            return None
        payload = _box_open(unb64(address.e2e_secret), message.sender_key, message.boxed, "a connection request")
        _object(payload, "a connection request", ("name", "message"), required=("queue", "target"))
        address.waiting[request_id] = {
            "name": payload.get("name", ""), "message": payload.get("message", ""), "payload": payload,
            "sender_key": b64(message.sender_key),
        }
        return None
    messages = await _read(address.target, SigningKey(unb64(address.owner_seed)), address.queue, address.read_seq)
    taken = take(messages, check, lambda message: f"request {message.request_id.hex()}")
    return Checked(({"id": request_id, "status": "waiting", **request} for request_id, request in address.waiting.items()),
                   taken.skipped)


async def accept(address: Address, request_id: str) -> Contact:
    await requests(address)
    if request_id in address.handled:
        raise ChatRelayError(Reason.REFUSED, f"request {request_id} was {address.handled[request_id]} already")
    request = address.waiting.get(request_id)
    if request is None:
        raise ChatRelayError(Reason.UNKNOWN_ADDRESS, f"no connection request {request_id} at this address")
    payload = request["payload"]
    mine, box_key = SigningKey.generate(), PrivateKey.generate()
    async with RelayClient(address.target) as client:
        my_queue = await _create_queue(client, mine, core_pb2.LINK_KIND_CONTACT)
    contact = Contact(
        name=payload.get("name") or "contact", my_queue=my_queue, my_target=address.target,
        my_seed=b64(bytes(mine)), my_box_secret=b64(bytes(box_key)),
        their_queue=payload["queue"], their_target=payload["target"],
        their_box_key=request["sender_key"], status="connected",
    )
    # CON, boxed from the address key the joiner knows from the link.
    con = {"type": "con", "name": address.display_name, "queue": my_queue, "target": address.target,
           "box_key": b64(bytes(box_key.public_key))}
    await _send(contact, _box(unb64(address.e2e_secret), unb64(request["sender_key"]), con))
    address.handled[request_id] = "accepted"
    del address.waiting[request_id]
    return contact


def reject(address: Address, request_id: str) -> None:
    address.handled[request_id] = "rejected"
    address.waiting.pop(request_id, None)


async def _send(contact: Contact, boxed: bytes) -> int:
    body = relay_pb2.QueueSendBody(queue_address=contact.their_queue, boxed=boxed, nonce=os.urandom(16),
                                   timestamp=int(time.time()))
    envelope = env.sign_message(SigningKey(unb64(contact.my_seed)), env.Domain.QUEUE_SEND, body)
    async with RelayClient(contact.their_target) as client:
        response = await client.call("SendQueue", relay_pb2.SendQueueRequest(envelope=envelope))
    return response.seq


async def send(contact: Contact, text: str) -> int:
    if contact.status != "connected":
        raise ChatRelayError(Reason.NOT_ACTIVE, f"{contact.name} has not accepted the connection yet")
    if len(text.encode()) > MAX_TEXT:
        raise ChatRelayError(Reason.TOO_LARGE, f"message is over {MAX_TEXT} bytes")
    boxed = _box(unb64(contact.my_box_secret), unb64(contact.their_box_key), {"type": "msg", "text": text})
    return await _send(contact, boxed)


async def inbox(contact: Contact) -> Checked:
    """New messages in my queue for this contact (moves its read position past every
    one, and skips, with its reason, one that does not open or make sense)."""
    def check(message) -> str | None:
        contact.read_seq = max(contact.read_seq, message.seq)
        if contact.status == "waiting":
            payload = _box_open(unb64(contact.my_box_secret), unb64(contact.first_box_key), message.boxed)
            if payload.get("type") == "con":
                _object(payload, "an acceptance", ("name",), required=("queue", "target", "box_key"))
                contact.their_queue, contact.their_target = payload["queue"], payload["target"]
                contact.their_box_key, contact.status = payload["box_key"], "connected"
                contact.name = payload.get("name") or contact.name
                return f"{contact.name} accepted the connection"
            return None
        payload = _box_open(unb64(contact.my_box_secret), unb64(contact.their_box_key), message.boxed)
        if payload.get("type") == "msg":
            return str(payload.get("text", ""))
        return None
    messages = await _read(contact.my_target, SigningKey(unb64(contact.my_seed)), contact.my_queue, contact.read_seq)
    return take(messages, check, lambda message: f"message #{message.seq} from {contact.name}")


# ---- direct connections on demand, negotiated through a group ----------------------------


def _group_profile(who):
    from chatrelay import group

    return group.verify_profile(env.decode(unb64(who.profile)), group_id=bytes.fromhex(who.group_id))


INVITATION_ID = 16  # hex digits of a direct invitation's id
FINGERPRINT = 12  # base64url characters of a member key that name it where names collide


def fingerprint(sign_key: bytes) -> str:
    return codec.b64url(sign_key)[:FINGERPRINT]


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
    from chatrelay import admission, reader

    key, name, prefix = _asked(member)
    profile = _group_profile(who)
    found: dict[bytes, core_pb2.JoinBody] = {}
    refusals: list[ChatRelayError] = []
    for entry in who.relays:
        request = relay_pb2.MemberKeysRequest(credential=reader.credential(reader.reader_key(who), entry.address))
        if key:
            request.member = key
        else:
            request.display_name = name
        try:
            async with RelayClient(entry.target) as c:
                response = await c.call("MemberKeys", request)
        except ChatRelayError as exc:
            refusals.append(exc)
            continue
        for shown in response.members:
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

    from chatrelay import reader

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
    envelope = env.sign_message(reader.reader_key(who), env.Domain.DIRECT_INVITATION, body)
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

    from chatrelay import members, reader

    entry = membership.relays[0]
    credential = reader.credential(reader.reader_key(membership), entry.address)
    received: list[relay_pb2.DirectInvitationDelivery] = []
    async with RelayClient(entry.target) as c:
        for _ in range(MAX_PAGES):  # pages are sized in bytes: read on until one comes empty
            after = received[-1].seq if received else membership.direct_seq
            page = (await c.call("DirectInbox", relay_pb2.DirectInboxRequest(credential=credential, after_seq=after)))
            if not page.invitations:
                break
            received.extend(page.invitations)
    allowed = _group_profile(membership).profile.settings.direct_messages
    senders = reader.PostChecker(membership)  # who is a member, checked as for posts
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
