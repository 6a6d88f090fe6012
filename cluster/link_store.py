"""Short links' data (DESIGN.md section 4): the relay keeps ciphertext under a lookup id
it cannot derive a link from. Only the key that stored it (or a writer its last store
named: a group's other owners) may replace it, only with a
version as new or newer, and only with a request signed within the freshness window: a
captured store replayed later can neither roll the data back nor come back after it."""

from __future__ import annotations

import time

from chatrelay import envelope as env
from chatrelay import links
from chatrelay.actors import records
from chatrelay.actors.records import LinkRecord
from chatrelay.actors.registry import Get, Put, Registry, absent, unchanged_since
from chatrelay.errors import ChatRelayError, MalformedError, Reason
from chatrelay.settings import DEFAULTS
from chatrelay.v1 import core_pb2, relay_pb2


MAX_WRITERS = 32  # a group's owners at most (chatrelay/group.py MAX_OWNERS)


class LinkStore:
    def __init__(self, registry: Registry, freshness_s: float = DEFAULTS.freshness_s) -> None:
        self.registry = registry
        self.freshness_s = freshness_s

    async def store(self, envelope: core_pb2.SignedEnvelope, now: float | None = None) -> bool:
        """Store signed link data; True if it is new, False if it replaced the signer's own."""
        checked, body = env.verify_message(envelope, env.Domain.LINK_STORE, relay_pb2.StoreLinkBody, "link store request")
        now = time.time() if now is None else now
        if abs(now - body.timestamp) > self.freshness_s:
            raise ChatRelayError(Reason.STALE, (
                f"link store request was signed more than {self.freshness_s:g} s from now; check the clock"))
        if len(body.lookup_id) != links.LOOKUP_ID_SIZE:
            raise MalformedError("link store request", f"lookup id must be {links.LOOKUP_ID_SIZE} bytes")
        if len(body.ciphertext) > links.MAX_CIPHERTEXT:
            raise ChatRelayError(Reason.TOO_LARGE, f"link data is over {links.MAX_CIPHERTEXT} bytes")
        if len(body.writers) > MAX_WRITERS or any(len(w) != env.KEY_SIZE for w in body.writers):
            raise MalformedError("link store request", f"at most {MAX_WRITERS} writers, each a 32-byte key")
        return await self.put(body.lookup_id, LinkRecord(owner=checked.signer, data=body.ciphertext, version=body.version,
                                                          writers=tuple(dict.fromkeys(body.writers))))

    async def put(self, lookup_id: bytes, record: LinkRecord) -> bool:
        key = records.link_key(lookup_id)
        entry = await self.registry.get(key)
        if entry is None:
            result = await self.registry.transaction([absent(key)], [Put(key, record.dumps())], [Get(key)])
            if result.succeeded:
                return True
            entry = result.gets[0]
        stored = LinkRecord.loads(entry.value)
        if record.owner != stored.owner and record.owner not in stored.writers:
            raise ChatRelayError(Reason.NOT_ALLOWED, "this link's data belongs to another key")
        record = LinkRecord(owner=stored.owner, data=record.data, version=record.version, writers=record.writers)
        if record.version < stored.version:
            raise ChatRelayError(Reason.STALE, (
                f"link data version {record.version} is older than the stored version {stored.version}"))
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
