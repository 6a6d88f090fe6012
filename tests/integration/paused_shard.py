"""A group relay in a process of its own, for tests/integration/test_fencing.py: it loads
one group from the registry and the PostgreSQL store, posts once, says `ready SEQ`, then
for each line it reads posts that line's text and says `acked SEQ` or `moved: WHY`.

    python3 paused_shard.py DSN SCHEMA REGISTRY_FILE GROUP_ID_HEX OWNER_SEED_HEX
"""

from __future__ import annotations

import asyncio
import sys

from nacl.signing import SigningKey

from chatrelay import members
from chatrelay.actors import records
from chatrelay.actors.calls import Moved
from chatrelay.actors.group_relay import GroupRelay, RelayContext
from chatrelay.actors.records import GroupRecord
from chatrelay.cluster.member_store_postgres import PostgresMemberStore
from chatrelay.cluster.message_log_postgres import PostgresMessageLog
from chatrelay.cluster.registry_sqlite import SqliteRegistry


async def main(dsn: str, schema: str, registry_file: str, group_id: bytes, owner: SigningKey) -> None:
    ctx = RelayContext(identity=SigningKey.generate(), registry=SqliteRegistry(registry_file),
                       log=PostgresMessageLog(dsn, schema), members=PostgresMemberStore(dsn, schema))
    entry = await ctx.registry.get(records.group_key(group_id))
    relay = GroupRelay(ctx, GroupRecord.loads(entry.value), entry.mod_revision)
    await relay.start()
    ack = await relay.post(members.sign_post(owner, group_id, b"first, from the paused shard"))
    print(f"ready {ack.seq}", flush=True)
    for line in sys.stdin:  # the test's lines, until it closes stdin
        try:
            ack = await relay.post(members.sign_post(owner, group_id, line.strip().encode()))
            print(f"acked {ack.seq}", flush=True)
        except Moved as exc:
            print(f"moved: {exc}", flush=True)


if __name__ == "__main__":
    dsn, schema, registry_file, group_hex, seed_hex = sys.argv[1:6]
    asyncio.run(main(dsn, schema, registry_file, bytes.fromhex(group_hex), SigningKey(bytes.fromhex(seed_hex))))
