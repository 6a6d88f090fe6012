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

Members of a group reach each other the same way, on demand: chatrelay/direct.py.
"""

from __future__ import annotations

import json
import os
import time

from nacl.exceptions import CryptoError
from nacl.public import Box, PrivateKey, PublicKey
from nacl.signing import SigningKey

from chatrelay import codec, links
from chatrelay import envelope as env
from chatrelay.connection import RelayClient, relay_info, resolve_link, target_of_link
from chatrelay.errors import ChatRelayError, MalformedError, Reason
from chatrelay.items import Checked, take
from chatrelay.links import LinkKind, ShortLink
from chatrelay.state import Address, Contact, b64, unb64
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
