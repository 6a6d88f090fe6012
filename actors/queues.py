"""Queues for 1:1 connections (seed: open connections): contact addresses (multi-use),
one-time invitations (locked on first use) and the queues of established connections.

The relay holds what is sent to a queue durably until its owner reads it, however long
the owner is offline, and deletes it once the owner acknowledges it (a read signed to
start past it: the owner has it then). It sees only ciphertext: requests and messages
are NaCl Box encrypted end to end. A queue address is a capability: whoever holds it may
send, only the owner's key may read.
"""

from __future__ import annotations

import hashlib
import json

from chatrelay import codec
from chatrelay import envelope as env
from chatrelay.actors import records
from chatrelay.actors.message_log import fit
from chatrelay.actors.registry import Get, Put, Target, Compare, absent
from chatrelay.errors import ChatRelayError, MalformedError, Reason
from chatrelay.v1 import core_pb2, relay_pb2

QUEUE_ID_SIZE = 16
MAX_BOXED = 32 * 1024
READ_LIMIT = 500
REQUEST, MESSAGE = b"R", b"M"  # what a stored record is: a connection request or a message


def queue_key(address: str) -> bytes:
    return b"queues/" + address.encode()


def queue_stream(address: str) -> str:
    return "queue/" + address


def request_id(body: relay_pb2.ConnectionRequestBody) -> bytes:
    """What identifies a connection request: its address, sender key and box. The body
    is unsigned, so its nonce (anyone on the way may change it) is left out: the same
    request with another nonce is the same request, taken once."""
    return hashlib.sha256(b"\0".join((body.queue_address.encode(), body.sender_key, body.boxed))).digest()[:16]


class QueueStore:
    def __init__(self, ctx) -> None:
        self.ctx = ctx

    async def create(self, envelope: core_pb2.SignedEnvelope) -> relay_pb2.CreateQueueResponse:
        checked, body = env.verify_message(envelope, env.Domain.QUEUE_CREATE, relay_pb2.CreateQueueBody, "queue request")
        if body.kind not in (core_pb2.LINK_KIND_CONTACT, core_pb2.LINK_KIND_INVITATION):
            raise MalformedError("queue request", "kind must be contact or invitation")
        if len(body.queue_id) != QUEUE_ID_SIZE:
            raise MalformedError("queue request", f"queue id must be {QUEUE_ID_SIZE} bytes")
        address = codec.b64url(body.queue_id)
        record = json.dumps({"owner": codec.b64url(checked.signer), "kind": body.kind, "locked": False}).encode()
        result = await self.ctx.registry.transaction(
            [absent(queue_key(address))], [Put(queue_key(address), record)], [Get(queue_key(address))]
        )
        if not result.succeeded and json.loads(result.gets[0].value)["owner"] != codec.b64url(checked.signer):
            raise ChatRelayError(Reason.NOT_ALLOWED, "this queue id belongs to another key")
        return relay_pb2.CreateQueueResponse(queue_address=address)

    async def _queue(self, address: str):
        entry = await self.ctx.registry.get(queue_key(records.check_address(address, "queue")))
        if entry is None:
            raise ChatRelayError(Reason.UNKNOWN_ADDRESS, "no queue at this address")
        return entry, json.loads(entry.value)

    async def request(self, body: relay_pb2.ConnectionRequestBody) -> relay_pb2.ConnectionRequestAck:
        """A joiner's request to an address: held until the owner accepts or rejects."""
        if len(body.boxed) > MAX_BOXED:
            raise ChatRelayError(Reason.TOO_LARGE, f"connection request is over {MAX_BOXED} bytes")
        if len(body.sender_key) != env.KEY_SIZE:
            raise MalformedError("connection request", "sender key must be 32 bytes")
        entry, queue = await self._queue(body.queue_address)
        data = body.SerializeToString(deterministic=True)
        key = request_id(body)
        await self._room(body.queue_address, queue, len(data) + 1, key)
        if queue["kind"] == core_pb2.LINK_KIND_INVITATION:
            # One-time: the first request locks it, in one transaction with the check.
            locked = json.dumps({**queue, "locked": True}).encode()
            result = await self.ctx.registry.transaction(
                [Compare(queue_key(body.queue_address), Target.VALUE, entry.value)],
                [Put(queue_key(body.queue_address), locked)],
            )
            if not result.succeeded or queue["locked"]:
                if not await self.ctx.log.find(queue_stream(body.queue_address), [key]):  # a retry of the first use is fine
                    raise ChatRelayError(Reason.REFUSED, "this one-time invitation has already been used")
        await self.ctx.log.append(queue_stream(body.queue_address), [REQUEST + data], keys=[key])
        return relay_pb2.ConnectionRequestAck(request_id=key)

    async def send(self, envelope: core_pb2.SignedEnvelope) -> relay_pb2.SendQueueResponse:
        checked, body = env.verify_message(envelope, env.Domain.QUEUE_SEND, relay_pb2.QueueSendBody, "queue message")
        if len(body.boxed) > MAX_BOXED:
            raise ChatRelayError(Reason.TOO_LARGE, f"message is over {MAX_BOXED} bytes")
        _, queue = await self._queue(body.queue_address)
        if queue["kind"] == core_pb2.LINK_KIND_INVITATION:
            raise ChatRelayError(Reason.NOT_ALLOWED, "a one-time invitation takes one connection request only")
        message = relay_pb2.QueueMessage(sender_key=checked.signer, boxed=body.boxed)
        key = hashlib.sha256(checked.signer + body.nonce).digest()[:16]  # a retried send lands once
        await self._room(body.queue_address, queue, message.ByteSize() + 1, key)
        appended = await self.ctx.log.append(
            queue_stream(body.queue_address), [MESSAGE + message.SerializeToString()], keys=[key]
        )
        return relay_pb2.SendQueueResponse(seq=appended.seqs[0])

    async def _room(self, address: str, queue: dict, size: int, key: bytes) -> None:
        """Refuse what would take a queue past its bounds of unread records and bytes
        (those after the owner's read mark); a record it holds already (a retry) passes."""
        limits = self.ctx.limits
        if not (limits.queue_records or limits.queue_bytes):
            return
        held, held_bytes = await self.ctx.log.usage(queue_stream(address), queue.get("read_seq", 0))
        full = (limits.queue_records and held >= limits.queue_records) or (
            limits.queue_bytes and held_bytes + size > limits.queue_bytes)
        if full and not await self.ctx.log.find(queue_stream(address), [key]):
            raise ChatRelayError(Reason.QUOTA_EXCEEDED, (
                f"this queue holds {held} unread requests and messages ({held_bytes} bytes), its most "
                f"({limits.queue_records} or {limits.queue_bytes} bytes); its owner has to read first"
            ))

    async def _mark_read(self, address: str, entry, queue: dict, through_seq: int) -> None:
        """Move the owner's read mark (what the queue's bounds count from) up to the seq
        its signed read starts after: whatever the owner has, it no longer holds here."""
        if through_seq <= queue.get("read_seq", 0):
            return
        marked = json.dumps({**queue, "read_seq": through_seq}).encode()
        await self.ctx.registry.transaction(  # lost to a concurrent change: the next read moves it
            [Compare(queue_key(address), Target.VALUE, entry.value)], [Put(queue_key(address), marked)]
        )

    async def read(self, envelope: core_pb2.SignedEnvelope, after_seq: int = 0) -> list[relay_pb2.QueueMessage]:
        """The owner's read credential only ever reveals ciphertext, so it stays valid for
        the length of a follow; `after_seq` moves the cursor past the signed since_seq."""
        checked, body = env.verify_message(envelope, env.Domain.QUEUE_READ, relay_pb2.QueueReadBody, "queue read")
        entry, queue = await self._queue(body.queue_address)
        if codec.b64url(checked.signer) != queue["owner"]:
            raise ChatRelayError(Reason.NOT_ALLOWED, "only the queue's owner may read it")
        if body.since_seq > queue.get("read_seq", 0):  # the owner has these: they go
            last = await self.ctx.log.last_seq(queue_stream(body.queue_address))
            through = min(body.since_seq, last)
            await self._mark_read(body.queue_address, entry, queue, through)
            await self.ctx.log.trim(queue_stream(body.queue_address), through)
        rows = fit(await self.ctx.log.read(queue_stream(body.queue_address), max(body.since_seq, after_seq), READ_LIMIT))
        out = []
        for row in rows:
            kind, data = row.data[:1], row.data[1:]
            if kind == REQUEST:
                request = relay_pb2.ConnectionRequestBody.FromString(data)
                message = relay_pb2.QueueMessage(
                    request_id=row.key, sender_key=request.sender_key, boxed=request.boxed
                )
            else:
                message = relay_pb2.QueueMessage.FromString(data)
            message.seq, message.received_at = row.seq, row.ts
            out.append(message)
        return out

