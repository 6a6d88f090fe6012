"""1,000 groups registered by one owner: nothing the relay stores ties two of them
together. Every record in the registry and every row of the message log is searched for
every group's identifiers (keys and ids, raw, hex and base64)."""

from __future__ import annotations

import asyncio
import base64
import sqlite3

from chatrelay import client, codec, group
from chatrelay import envelope as env
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.group import GroupKind
from chatrelay.state import unb64

GROUPS = 1000


def forms(value: bytes) -> list[bytes]:
    return [value, value.hex().encode(), base64.b64encode(value), codec.b64url(value).encode()]


def stored_blobs(data_dir: str) -> list[bytes]:
    """Everything the relay keeps, one blob per record."""
    blobs = []
    for name in ("registry.db", "messages.db"):
        with sqlite3.connect(f"{data_dir}/{name}") as conn:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for table in tables:
                for row in conn.execute(f"SELECT * FROM {table}"):
                    blobs.append(b"\x00".join(
                        v if isinstance(v, bytes) else str(v).encode() for v in row
                    ))
    return blobs


async def test_groups_of_one_owner_are_unrelated_in_everything_the_relay_stores(relay):
    semaphore = asyncio.Semaphore(16)

    async def make(i):
        async with semaphore:
            return await client.create_group([relay.link], f"group {i}", GroupKind.GROUP)

    owned = await asyncio.gather(*(make(i) for i in range(GROUPS)))
    identifiers: dict[int, list[bytes]] = {}
    for i, g in enumerate(owned):
        profile = group.verify_profile(env.decode(unb64(g.profile))).profile
        values = [
            bytes.fromhex(g.group_id), profile.root_key, profile.intake_key,
            unb64(g.owner_id), profile.owners[0].owner_key, g.relays[0].address.encode(),
        ]
        identifiers[i] = [f for v in values for f in forms(v)]
    # Per-group keys: no identifier is shared by two groups.
    owner_of: dict[bytes, int] = {}
    for i, values in identifiers.items():
        for v in values:
            assert owner_of.setdefault(v, i) == i, "two groups share an identifier"
    # No stored record mentions two groups.
    blobs = stored_blobs(relay.config.data_dir)
    assert len(blobs) > GROUPS
    # Every identifier form is at least 12 bytes: look up each 12-byte window of a record.
    probes = {v[:12]: i for v, i in owner_of.items()}
    assert min(len(v) for v in owner_of) >= 12
    mixed, mentioned = 0, set()
    for blob in blobs:
        groups_seen = {probes[blob[k:k + 12]] for k in range(len(blob) - 11) if blob[k:k + 12] in probes}
        mentioned |= groups_seen
        mixed += len(groups_seen) > 1
    assert mixed == 0
    assert len(mentioned) == GROUPS  # the search does find each group's own records


async def test_a_relay_can_neither_find_nor_decrypt_nor_squat_a_groups_link_record(relay):
    """With everything the relay stores of a group (its registration and profile, in the
    registry and the log), the relay computes the link key it could: that key finds no
    link record, opens none of those it keeps, and the owner's own record is there."""
    import pytest

    from chatrelay import links
    from chatrelay.actors import records
    from chatrelay.actors.records import GroupRecord, LinkRecord
    from chatrelay.cluster.storage import open_registry
    from chatrelay.links import LinkKind, ShortLink

    owned = await client.create_group([relay.link], "Unfindable", GroupKind.CHANNEL)
    registry = open_registry(relay.config)
    try:
        stored = await registry.get(records.group_key(bytes.fromhex(owned.group_id)))
        profile = group.verify_profile(env.decode(GroupRecord.loads(stored.value).profile)).profile
        fixed = links.core_pb2.FixedLinkData(
            kind=LinkKind.CHANNEL.pb, root_key=profile.root_key, entity_id=bytes.fromhex(owned.group_id))
        guessed_key = links.link_key_of(fixed.SerializeToString(deterministic=True))
        guessed = links.derive(guessed_key)
        kept = {e.key: LinkRecord.loads(e.value) for e in await registry.get_prefix(b"links/")}
        real = links.derive(ShortLink.parse(owned.link).link_key)
        assert records.link_key(real.lookup_id) in kept  # the owner's record is where the link says
        assert records.link_key(guessed.lookup_id) not in kept
        for record in kept.values():
            with pytest.raises(ChatRelayError) as caught:
                links.decrypt(guessed_key, record.data)
            assert caught.value.reason is Reason.LINK_DECRYPT_FAILED
    finally:
        await registry.close()
