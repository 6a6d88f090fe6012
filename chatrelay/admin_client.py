"""The operator's side of the AdminService: signed requests, and answers as plain dicts
(what `chatrelay status --json` and `chatrelay top --json` print)."""

from __future__ import annotations

import os
import time

from google.protobuf.message import Message
from nacl.signing import SigningKey

from chatrelay import envelope as env
from chatrelay.v1 import relay_pb2, relay_pb2_grpc

NONCE = 16
CALL_TIMEOUT_S = 30
RETRY_S = 10


def request(key: SigningKey, method: str, **fields) -> relay_pb2.StatusRequest:
    body = relay_pb2.AdminBody(nonce=os.urandom(NONCE), timestamp=int(time.time()), method=method, **fields)
    return env.sign_message(key, env.Domain.ADMIN, body)


class AdminClient:
    """The AdminService at `[PIN@]HOST:PORT` (the relay link's pin: see chatrelay.tls)."""

    def __init__(self, target: str, key: SigningKey) -> None:
        from chatrelay.connection import RelayClient

        self.client = RelayClient(target, stub=relay_pb2_grpc.AdminServiceStub)
        self.key = key

    async def __aenter__(self) -> "AdminClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.client.close()

    async def _call(self, method: str, message):
        # Reading figures is safe to repeat, and so is a move (to the same shard), a
        # takedown (for the same reason) or a restore: a gateway that just went away is
        # replaced by the next one of the relay link.
        return await self.client.call(method, message, CALL_TIMEOUT_S, RETRY_S)

    async def status(self, window_s: float = 1.0) -> dict:
        envelope = request(self.key, "Status", window_ms=round(window_s * 1000))
        return as_dict(await self._call("Status", relay_pb2.StatusRequest(envelope=envelope)))

    async def top(self, limit: int = 10, window_s: float = 1.0) -> dict:
        envelope = request(self.key, "Top", window_ms=round(window_s * 1000), limit=limit)
        return as_dict(await self._call("Top", relay_pb2.TopRequest(envelope=envelope, limit=limit)))

    async def take_down(self, address: str, reason: str) -> dict:
        envelope = request(self.key, "TakeDown", group_address=address, reason=reason)
        return as_dict(await self._call("TakeDown", relay_pb2.TakeDownRequest(envelope=envelope)))

    async def restore(self, address: str) -> dict:
        envelope = request(self.key, "Restore", group_address=address)
        return as_dict(await self._call("Restore", relay_pb2.TakeDownRequest(envelope=envelope)))

    async def move(self, address: str, to_shard: int) -> dict:
        envelope = request(self.key, "MoveGroup", group_address=address, to_shard=to_shard)
        return as_dict(await self._call("MoveGroup", relay_pb2.MoveGroupRequest(envelope=envelope)))


def as_dict(message) -> dict:
    """Every field, zeros included, under its proto name; counts stay numbers."""
    out = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.message_type is not None:
            if isinstance(value, Message):
                out[field.name] = as_dict(value)
            else:  # repeated messages
                out[field.name] = [as_dict(v) for v in value]
        elif isinstance(value, (str, bytes, bool, int, float)):
            out[field.name] = value
        else:  # repeated scalars
            out[field.name] = list(value)
    return out
