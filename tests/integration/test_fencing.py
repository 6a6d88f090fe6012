"""Fencing (issue 17): a shard that was paused (SIGSTOP) while its group was loaded by
another shard cannot append to it once it runs again, however late its own lease logic
would notice: the store refuses the write, in the same transaction, because the other
shard claimed the group since. The paused shard is a group relay in a process of its own
(tests/integration/paused_shard.py), the code a shard runs for each group, without the
lease check in front of it: that is the case fencing is for."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import pathlib

from nacl.signing import SigningKey

from chatrelay import envelope as env
from chatrelay import group, members
from chatrelay.actors import records
from chatrelay.actors.group_relay import GroupRelay, RelayContext
from chatrelay.actors.records import GroupRecord, GroupState
from chatrelay.cluster.member_store_postgres import PostgresMemberStore
from chatrelay.cluster.message_log_postgres import PostgresMessageLog
from chatrelay.cluster.registry_sqlite import SqliteRegistry
from chatrelay.group import GroupKind

from realparts import Lines

HERE = pathlib.Path(__file__).resolve().parent


async def test_a_shard_paused_while_its_group_moves_cannot_append(postgres_server, tmp_path):
    schema, registry_file = "fencing", str(tmp_path / "registry.db")
    secrets, signed = group.create_group(GroupKind.CHANNEL, "Fenced")
    record = GroupRecord(group_id=secrets.group_id, address="fenced-group", state=GroupState.ACTIVE,
                         registration_key=bytes(32), profile=env.encode(signed))
    registry = SqliteRegistry(registry_file)
    await registry.put(records.group_key(secrets.group_id), record.dumps())
    ctx = RelayContext(identity=SigningKey.generate(), registry=registry,
                       log=PostgresMessageLog(postgres_server.dsn, schema),
                       members=PostgresMemberStore(postgres_server.dsn, schema))
    paused = subprocess.Popen(
        [sys.executable, str(HERE / "paused_shard.py"), postgres_server.dsn, schema, registry_file,
         secrets.group_id.hex(), bytes(secrets.owner_key).hex()],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        lines = Lines(paused.stdout)
        assert lines.take(1, 60) == ["ready 1\n"]
        os.kill(paused.pid, signal.SIGSTOP)
        # Meanwhile the group is loaded by another shard, which posts.
        entry = await registry.get(records.group_key(secrets.group_id))
        mover = GroupRelay(ctx, GroupRecord.loads(entry.value), entry.mod_revision)
        await mover.start()
        ack = await mover.post(members.sign_post(secrets.owner_key, secrets.group_id, b"from the shard it moved to"))
        assert ack.seq == 2
        os.kill(paused.pid, signal.SIGCONT)
        paused.stdin.write("late, from the paused shard\n")
        paused.stdin.flush()
        assert lines.take(1, 60) == ["moved: group fenced-group was claimed again (epoch 2, this shard holds 1)\n"]
        posts = await ctx.log.read(records.post_stream("fenced-group"))
        assert [members.verify_post(env.decode(p.data), secrets.group_id).body for p in posts] == [
            b"first, from the paused shard", b"from the shard it moved to"]
        await mover.stop()
    finally:
        paused.kill()
        paused.wait(timeout=30)
        await ctx.members.close()
        await ctx.log.close()
        await registry.close()
