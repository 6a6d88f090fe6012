"""1:1 connections through a relay (seed: open connections), client side.

- An owner makes a contact address (`a`, multi-use) or a one-time invitation (`i`): a
  queue with one id on each of its relays and one short link naming every relay's hosts,
  whose fixed data holds the queue id and an X25519 key.
- A joiner creates its own reply queue and sends a request (CONF) boxed to that key to
  every relay of the link it reaches: its name, its reply queue, its X25519 key, a first
  message and a request id of its own, by which the owner takes it once whichever relays
  carried it. It waits on the relays, however long the owner is offline, and one relay
  down loses nothing.
- The owner accepts (a queue of its own for this contact, CON sent to the reply queue)
  or rejects. A one-time invitation is used up by its first accepted request: each relay
  takes one request on it, so several people may reach it through different relays, and
  the owner's client refuses every later one (REJ, boxed like CON). From then on both
  sides send NaCl Box messages to each other's queue; the relay stores only ciphertext.

Members of a group reach each other the same way, on demand: chatrelay/direct.py.
"""

from __future__ import annotations

import json
import os
import time

from nacl.exceptions import CryptoError
from nacl.public import Box, PrivateKey, PublicKey
from nacl.signing import SigningKey

from chatrelay import codec, links, tls
from chatrelay import envelope as env
from chatrelay.connection import RelayClient, relay_info, resolve_link, target_of
from chatrelay.errors import ChatRelayError, MalformedError, Reason
from chatrelay.items import Checked, Skipped, take
from chatrelay.links import LinkKind, ShortLink
from chatrelay.tls import split_target
from chatrelay.state import Address, Contact, b64, unb64
from chatrelay.v1 import core_pb2, relay_pb2

MAX_TEXT = 16 * 1024
USED_UP = "this one-time invitation was used already"


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


async def _create_queue(client: RelayClient, owner: SigningKey, kind: int, queue_id: bytes | None = None) -> str:
    body = relay_pb2.CreateQueueBody(kind=kind, queue_id=queue_id or os.urandom(16), nonce=os.urandom(16),
                                     timestamp=int(time.time()))
    envelope = env.sign_message(owner, env.Domain.QUEUE_CREATE, body)
    response = await client.call("CreateQueue", relay_pb2.CreateQueueRequest(envelope=envelope))
    return response.queue_address


async def create_address(relay_links: list[str] | str, display_name: str, one_time: bool = False) -> Address:
    """A queue with one id and one owner key on each relay, and one link naming every
    relay's hosts (with their pins), stored on each: a request reaches the owner through
    whichever relay is up."""
    if isinstance(relay_links, str):
        relay_links = [relay_links]
    if not relay_links:
        raise ChatRelayError(Reason.MALFORMED, "an address needs at least one relay")
    relays = [await relay_info(r) for r in dict.fromkeys(relay_links)]
    owner, e2e = SigningKey.generate(), PrivateKey.generate()
    kind = LinkKind.INVITATION if one_time else LinkKind.CONTACT
    queue_id = os.urandom(16)
    endpoints = [e for relay in relays for e in relay.link.endpoints()]
    pins = [pin or b"" for _, pin in endpoints]
    bundle = links.contact_link(kind, owner, queue_id, bytes(e2e.public_key), display_name,
                                [host for host, _ in endpoints], pins=pins if any(pins) else ())
    for relay in relays:
        async with RelayClient(relay.target) as client:
            queue = await _create_queue(client, owner, kind.pb, queue_id)
            await client.store_link(owner, bundle)
    return Address(
        kind=kind.value, link=str(bundle.link), queue=queue, target=relays[0].target,
        owner_seed=b64(bytes(owner)), e2e_secret=b64(bytes(e2e)), display_name=display_name,
        others={relay.target: 0 for relay in relays[1:]},
    )


async def connect(link_text: str, display_name: str, message: str = "", extra: dict | None = None) -> Contact:
    """Send a connection request to an address or one-time invitation: the same request
    (one id of its own, one box) through every host of the link that takes it. `extra`:
    more fields for the request, boxed with it (an owner's key for the group it joins as
    an owner: chatrelay/co_owners.py)."""
    if len(message.encode()) > MAX_TEXT:
        raise ChatRelayError(Reason.TOO_LARGE, f"first message is over {MAX_TEXT} bytes")
    link = ShortLink.parse(link_text)
    if link.kind not in (LinkKind.CONTACT, LinkKind.INVITATION):
        raise ChatRelayError(Reason.LINK_KIND_MISMATCH, "connect takes a contact address (a) or invitation (i) link")
    resolved = await resolve_link(link)
    their_queue = codec.b64url(resolved.fixed.entity_id)
    mine, box_key = SigningKey.generate(), PrivateKey.generate()
    body, reply_queue, reply_target, sent, errors = None, "", "", 0, []
    for host, pin in link.endpoints():
        target = target_of(host, pin)
        try:
            async with RelayClient(target) as client:
                if body is None:  # my reply queue, on the first relay that answers
                    reply_queue, reply_target = await _create_queue(client, mine, core_pb2.LINK_KIND_CONTACT), target
                    payload = {"type": "conf", "name": display_name, "queue": reply_queue, "target": target,
                               "message": message, "rid": os.urandom(16).hex(), **(extra or {})}
                    body = relay_pb2.ConnectionRequestBody(
                        queue_address=their_queue, sender_key=bytes(box_key.public_key),
                        boxed=_box(bytes(box_key), resolved.fixed.e2e_key, payload), nonce=os.urandom(16),
                    )
                await client.call("RequestConnection", relay_pb2.ConnectionRequest(body=body))
            sent += 1
        except ChatRelayError as exc:
            errors.append(exc)
    if not sent:  # a relay's refusal says more than one that was down
        raise next((e for e in errors if e.reason is not Reason.UNAVAILABLE), errors[0])
    return Contact(
        name=resolved.mutable.contact.display_name or "contact", my_queue=reply_queue, my_target=reply_target,
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
    """Connection requests waiting at an address for me to decide, decrypted, each once
    however many of its relays carried it (by the id the joiner put in it): those read
    before (kept in `address.waiting`, as the relays delete what I have read) and the new
    ones. One that does not open, or is not a request, is skipped with its reason
    (`.skipped`), once; so is a relay that did not answer. On a one-time invitation used
    already, a new request is refused: its sender is told so. The state holding `address`
    must be saved after: the next read tells the relays to delete what this one read."""
    owner = SigningKey(unb64(address.owner_seed))
    skipped, refused = [], []
    for target, since in address.targets():
        def check(message, target=target) -> None:
            address.mark_read(target, message.seq)
            if not message.request_id:
                return None
            payload = _box_open(unb64(address.e2e_secret), message.sender_key, message.boxed, "a connection request")
            _object(payload, "a connection request", ("name", "message", "rid"), required=("queue", "target"))
            tls.check_target(payload["target"], "a connection request")
            request_id = _request_id(payload, message)
            if request_id in address.handled or request_id in address.waiting:
                return None  # carried by another relay too, or asked again
            address.waiting[request_id] = {
                "name": payload.get("name", ""), "message": payload.get("message", ""), "payload": payload,
                "sender_key": b64(message.sender_key),
            }
            if address.used_up():
                refused.append(request_id)
            return None
        try:
            messages = await _read(target, owner, address.queue, since)
        except ChatRelayError as exc:
            skipped.append(Skipped(f"relay {split_target(target)[1]}", exc.reason, exc.message))
            continue
        skipped.extend(take(messages, check, lambda message: f"request {message.request_id.hex()}").skipped)
    for request_id in refused:
        skipped.extend(await _refuse(address, request_id, USED_UP))
    return Checked(({"id": request_id, "status": "waiting", **request} for request_id, request in address.waiting.items()),
                   skipped)


def _request_id(payload: dict, message) -> str:
    """The id the joiner put in its request (hex: safe as a command-line argument), or
    the relay's for a request without one."""
    rid = payload.get("rid", "")
    if len(rid) == 32 and all(c in "0123456789abcdef" for c in rid):
        return rid
    return message.request_id.hex()


async def _refuse(address: Address, request_id: str, reason: str) -> list[Skipped]:
    """Tell a request's sender it is refused (REJ, boxed from the address key), and drop
    it; a sender that cannot be reached is said, and dropped all the same."""
    request = address.waiting.pop(request_id)
    address.handled[request_id] = "refused"
    payload = request["payload"]
    rej = {"type": "rej", "reason": reason}
    try:  # signed by a key made for it: the refusal is the address's, boxed from its key
        await _deliver(payload["queue"], payload["target"], SigningKey.generate(),
                       _box(unb64(address.e2e_secret), unb64(request["sender_key"]), rej))
    except ChatRelayError as exc:
        return [Skipped(f"refusal of request {request_id}", exc.reason, exc.message)]
    return []


async def accept(address: Address, request_id: str) -> Contact:
    await requests(address)
    if request_id in address.handled:
        raise ChatRelayError(Reason.REFUSED, f"request {request_id} was {address.handled[request_id]} already")
    request = address.waiting.get(request_id)
    if request is None:
        raise ChatRelayError(Reason.UNKNOWN_ADDRESS, f"no connection request {request_id} at this address")
    payload = request["payload"]
    mine, box_key = SigningKey.generate(), PrivateKey.generate()
    my_queue, my_target, errors = "", "", []
    for target, _ in address.targets():  # my queue for this contact, on the first relay that answers
        try:
            async with RelayClient(target) as client:
                my_queue, my_target = await _create_queue(client, mine, core_pb2.LINK_KIND_CONTACT), target
            break
        except ChatRelayError as exc:
            errors.append(exc)
    if not my_queue:
        raise errors[0]
    contact = Contact(
        name=payload.get("name") or "contact", my_queue=my_queue, my_target=my_target,
        my_seed=b64(bytes(mine)), my_box_secret=b64(bytes(box_key)),
        their_queue=payload["queue"], their_target=payload["target"],
        their_box_key=request["sender_key"], status="connected",
    )
    # CON, boxed from the address key the joiner knows from the link.
    con = {"type": "con", "name": address.display_name, "queue": my_queue, "target": my_target,
           "box_key": b64(bytes(box_key.public_key))}
    await _send(contact, _box(unb64(address.e2e_secret), unb64(request["sender_key"]), con))
    address.handled[request_id] = "accepted"
    del address.waiting[request_id]
    if address.used_up():  # the others who reached it through another relay are told
        for other in list(address.waiting):
            await _refuse(address, other, USED_UP)
    return contact


def reject(address: Address, request_id: str) -> None:
    address.handled[request_id] = "rejected"
    address.waiting.pop(request_id, None)


async def _send(contact: Contact, boxed: bytes) -> int:
    return await _deliver(contact.their_queue, contact.their_target, SigningKey(unb64(contact.my_seed)), boxed)


async def _deliver(queue: str, target: str, signer: SigningKey, boxed: bytes) -> int:
    """`boxed` into the queue at `target`, signed by `signer`; its place there."""
    body = relay_pb2.QueueSendBody(queue_address=queue, boxed=boxed, nonce=os.urandom(16), timestamp=int(time.time()))
    envelope = env.sign_message(signer, env.Domain.QUEUE_SEND, body)
    async with RelayClient(target) as client:
        response = await client.call("SendQueue", relay_pb2.SendQueueRequest(envelope=envelope))
    return response.seq


async def send_data(contact: Contact, payload: dict) -> int:
    """Structured data to a contact, boxed end to end like a message (an owner's handover
    of a group: chatrelay/co_owners.py)."""
    return await _send(contact, _box(unb64(contact.my_box_secret), unb64(contact.their_box_key), payload))


async def send(contact: Contact, text: str) -> int:
    if contact.status == "refused":
        raise ChatRelayError(Reason.REFUSED, f"{contact.name} refused the connection")
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
                tls.check_target(payload["target"], "an acceptance")
                contact.their_queue, contact.their_target = payload["queue"], payload["target"]
                contact.their_box_key, contact.status = payload["box_key"], "connected"
                contact.name = payload.get("name") or contact.name
                return f"{contact.name} accepted the connection"
            if payload.get("type") == "rej":
                _object(payload, "a refusal", ("reason",))
                contact.status = "refused"
                said = payload.get("reason", "")[:200]
                return f"{contact.name} refused the connection" + (f": {said}" if said else "")
            return None
        payload = _box_open(unb64(contact.my_box_secret), unb64(contact.their_box_key), message.boxed)
        if payload.get("type") == "msg":
            return str(payload.get("text", ""))
        if payload.get("type") == "owner" and contact.owner_seed and not contact.handover:
            _object(payload, "an owner's handover", required=("group_id",))
            contact.handover = payload  # taken up by chatrelay/co_owners.py, checked there
            return f"{contact.name} made you an owner of {str(payload.get('name', ''))[:100]!r}"
        return None
    messages = await _read(contact.my_target, SigningKey(unb64(contact.my_seed)), contact.my_queue, contact.read_seq)
    return take(messages, check, lambda message: f"message #{message.seq} from {contact.name}")
