"""Short links' data (DESIGN.md section 4): the relay keeps ciphertext under a lookup id
it cannot derive a link from, and only the key that stored it may replace it."""

from __future__ import annotations

from chatrelay import envelope as env
from chatrelay import links
from chatrelay.actors import records
from chatrelay.actors.records import LinkRecord
from chatrelay.actors.registry import Get, Put, Registry, absent, unchanged_since
from chatrelay.errors import ChatRelayError, MalformedError, Reason
from chatrelay.v1 import core_pb2, relay_pb2


class LinkStore:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def store(self, envelope: core_pb2.SignedEnvelope) -> bool:
        """Store signed link data; True if it is new, False if it replaced the signer's own."""
        checked, body = env.verify_message(envelope, env.Domain.LINK_STORE, relay_pb2.StoreLinkBody, "link store request")
        if len(body.lookup_id) != links.LOOKUP_ID_SIZE:
            raise MalformedError("link store request", f"lookup id must be {links.LOOKUP_ID_SIZE} bytes")
        if len(body.ciphertext) > links.MAX_CIPHERTEXT:
            raise ChatRelayError(Reason.TOO_LARGE, f"link data is over {links.MAX_CIPHERTEXT} bytes")
        return await self.put(body.lookup_id, LinkRecord(owner=checked.signer, data=body.ciphertext))

    async def put(self, lookup_id: bytes, record: LinkRecord) -> bool:
        key = records.link_key(lookup_id)
        entry = await self.registry.get(key)
        if entry is None:
            result = await self.registry.transaction([absent(key)], [Put(key, record.dumps())], [Get(key)])
            if result.succeeded:
                return True
            entry = result.gets[0]
        if LinkRecord.loads(entry.value).owner != record.owner:
            raise ChatRelayError(Reason.NOT_ALLOWED, "this link's data belongs to another key")
        result = await self.registry.transaction([unchanged_since(key, entry.mod_revision)], [Put(key, record.dumps())])
        if not result.succeeded:
            raise ChatRelayError(Reason.BUSY, "link data changed concurrently; retry")
        return False

    async def resolve(self, lookup_id: bytes) -> bytes:
        if len(lookup_id) != links.LOOKUP_ID_SIZE:
            raise MalformedError("lookup id", f"must be {links.LOOKUP_ID_SIZE} bytes")
        entry = await self.registry.get(records.link_key(lookup_id))
        if entry is None:
            raise ChatRelayError(Reason.UNKNOWN_ADDRESS, "no link data here for this link")
        return LinkRecord.loads(entry.value).data
