"""Where a join's shard time goes: the CPU a join costs a group relay in one process, with
no Ray and no gateway (its mailbox, the signature check, the member rows and their
commit on the embedded store), against the CPU a join costs the relay's shards when the
same kind of joins come through the gateway, in the same run.

    python bench/group_joins.py [--joins 8000] [--concurrency 64] [--at-once 32]

In one process: `--joins` signed join requests, made before the clock as `chatrelay join`
makes them, handed to a GroupRelay on the embedded registry and store in a temporary
folder, `--at-once` at a time (about what a shard call carries under load); the CPU of
this process over them (its threads too: the store's writes run on one). Through the
relay: as bench/joins.py with no members before (local Ray, shards, one gateway over TLS,
the embedded defaults), `--concurrency` at a time over one connection, the CPU of each
process (bench/cpu.py). The difference between the shard's figure and the first is
what a join costs the shard for coming through Ray.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import tempfile
import time

import cpu
from members import join_many, join_requests, members_profile
from nacl.signing import SigningKey

from chatrelay import client, group
from chatrelay import envelope as env
from chatrelay.group import GroupKind


async def in_one_process(count: int, at_once: int) -> float:
    """CPU seconds of this process for `count` joins handed to a GroupRelay directly."""
    from chatrelay.actors import records
    from chatrelay.actors.group_relay import GroupRelay, RelayContext
    from chatrelay.actors.policy import RelayLimits
    from chatrelay.actors.records import GroupRecord, GroupState
    from chatrelay.cluster.member_store_sqlite import SqliteMemberStore
    from chatrelay.cluster.message_log_sqlite import SqliteMessageLog
    from chatrelay.cluster.registry_sqlite import SqliteRegistry
    from chatrelay.cluster.storage import STORE_FILE
    from chatrelay.v1 import relay_pb2

    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder)
        ctx = RelayContext(identity=SigningKey.generate(), registry=SqliteRegistry(path / "registry.db"),
                           log=SqliteMessageLog(path / STORE_FILE), members=SqliteMemberStore(path / STORE_FILE),
                           limits=RelayLimits(mailbox_size=max(1024, at_once)))
        secrets, signed = group.create_group(GroupKind.CHANNEL, "Joined in one process")
        record = GroupRecord(group_id=secrets.group_id, address="bench-address", state=GroupState.ACTIVE,
                             registration_key=bytes(32), profile=env.encode(signed))
        await ctx.registry.put(records.group_key(secrets.group_id), record.dumps())
        entry = await ctx.registry.get(records.group_key(secrets.group_id))
        relay = GroupRelay(ctx, record, entry.mod_revision)
        await relay.start()
        try:
            intake_key = group.verify_profile(signed).profile.intake_key
            made = join_requests(secrets.group_id, "bench-address", intake_key, count)
            began = time.process_time()
            for start in range(0, count, at_once):
                answers = await asyncio.gather(*(relay.join(e) for e in made[start:start + at_once]))
                if any(a.status != relay_pb2.JOIN_STATUS_ACCEPTED for a in answers):
                    raise RuntimeError("a join was not accepted")
            return time.process_time() - began
        finally:
            await relay.stop()
            await ctx.members.close()
            await ctx.log.close()
            await ctx.registry.close()


async def through_the_relay(count: int, concurrency: int) -> tuple[float, dict[str, float]]:
    """(joins/s, CPU seconds by process) for `count` joins through the gateway."""
    from chatrelay.cluster import harness, up

    up.init_local_ray()
    relay = await asyncio.to_thread(harness.start_relay, **harness.NO_QUOTAS)
    try:
        owned = await client.create_group([relay.link], "Joined through the relay", GroupKind.CHANNEL)
        intake_key = group.verify_profile(members_profile(owned)).profile.intake_key
        gid, address = bytes.fromhex(owned.group_id), owned.relays[0].address
        made = join_requests(gid, address, intake_key, count)
        meter = cpu.Meter()
        meter.start()
        rate = await join_many(relay.target, gid, address, intake_key, count, concurrency, made)
        return rate, meter.stop()
    finally:
        await asyncio.to_thread(up.stop, relay, ray_shutdown=False)


async def main(args) -> None:
    print(f"group joins: {args.joins} joins into a channel with no members before")
    alone = await in_one_process(args.joins, args.at_once)
    print(f"  in one process, no Ray ({args.at_once} at a time): {1e6 * alone / args.joins:,.0f} us of CPU a join")
    rate, used = await through_the_relay(args.joins, args.concurrency)
    print(f"  through the relay ({args.concurrency} at a time): {rate:,.0f} joins/s; {cpu.per_operation(used, args.joins)}")
    shards = used.get("shards", 0.0)
    print(f"  the shards' CPU a join beyond the group relay's own: {1e6 * (shards - alone) / args.joins:,.0f} us "
          f"({1e6 * shards / args.joins:,.0f} against {1e6 * alone / args.joins:,.0f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--joins", type=int, default=8000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--at-once", type=int, default=32)
    parsed = parser.parse_args()
    if not (100 <= parsed.joins <= 1_000_000 and 1 <= parsed.concurrency <= 1000 and 1 <= parsed.at_once <= 1000):
        parser.error("--joins 100..1000000, --concurrency 1..1000, --at-once 1..1000")
    asyncio.run(main(parsed))
