"""Which shard serves a group: its home shard, chosen at registration by its id, or a
shard of its own while it is hot. The placement record in the registry says which."""

from __future__ import annotations

import zlib

OWN_SHARDS = 1 << 20


def home_shard(group_id: bytes, shards: int) -> int:
    """The shard a group is placed on when it registers (and returns to when it cools)."""
    return zlib.crc32(group_id) % shards


def own_shard_index(shards: int, address: str) -> int:
    """The shard a hot group moves to: one of its own, named after its address."""
    return shards + zlib.crc32(address.encode()) % OWN_SHARDS
