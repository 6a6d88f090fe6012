"""A channel of many members (default 100,000): the registry's size before and after
(members are in the store, so it stays flat), the time for the channel to serve again
after its shard is killed, and join-to-first-delivery latency p50/p99 with 100 members
and with all of them.

    python bench/members.py [--members 100000] [--store postgresql|sqlite] [--samples 50] [--concurrency 64]

How the members are made: each is a new member identity whose signed join request (its
keys, its sealed announcement to the owners) goes to the relay through the Join call,
`--concurrency` at a time over one connection, exactly as `chatrelay join` sends it; the
relay checks each and keeps it in its store. Join-to-first-delivery: a new member
resolves the channel's link, joins and opens its stream (`client.join`, `client.follow`),
until the channel's one post arrives. The store is a throwaway PostgreSQL
(`cluster/harness.py`) or the embedded SQLite; the registry is the embedded one, whose
keys and bytes are counted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from chatrelay import client, group, members
from chatrelay.group import GroupKind
from chatrelay.members import MemberIdentity
from chatrelay.v1 import relay_pb2

SERVE_AGAIN_LIMIT_S = 120


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def registry_size(relay) -> tuple[int, int]:
    """Keys in the embedded registry, and their bytes (keys and values)."""
    import sqlite3

    with sqlite3.connect(f"{relay.config.data_dir}/registry.db") as conn:
        return conn.execute("SELECT count(*), coalesce(sum(length(key) + length(value)), 0) FROM kv").fetchone()


async def join_to_first_delivery(owned, samples: int) -> list[float]:
    out = []
    for i in range(samples):
        began = time.perf_counter()
        async with client.one_member():  # as a client app that streams the channel it joined
            member = await client.join(owned.link, f"sample {i}")
            async for _ in client.follow(member, max_reconnects=5):
                break
        out.append(time.perf_counter() - began)
    return out


async def add_members(relay, owned, count: int, concurrency: int) -> float:
    """Joins/s of `count` new members through the Join call."""
    profile = group.verify_profile(members_profile(owned)).profile
    return await join_many(relay.target, bytes.fromhex(owned.group_id), owned.relays[0].address,
                           profile.intake_key, count, concurrency)


def join_requests(gid: bytes, address: str, intake_key: bytes, count: int) -> list:
    """`count` join requests of new members, made and signed as `chatrelay join` does."""
    return [members.join_request(MemberIdentity.generate(), gid, address, intake_key, f"m{i}") for i in range(count)]


async def join_many(target: str, gid: bytes, address: str, intake_key: bytes, count: int, concurrency: int,
                    made: list | None = None) -> float:
    """Joins/s of `count` new members (each a new identity, its join request made and
    signed as `chatrelay join` does, on the way or `made` before) sent through the Join
    call to `target`, `concurrency` at a time over one connection."""
    numbers = iter(range(count))
    done = 0

    async def joiner(c):
        nonlocal done
        for i in numbers:
            request = made[i] if made else members.join_request(MemberIdentity.generate(), gid, address, intake_key, f"m{i}")
            answer = await c.call("Join", relay_pb2.JoinRequest(envelope=request), retry_for_s=60)
            assert answer.status == relay_pb2.JOIN_STATUS_ACCEPTED, answer
            done += 1
            if done % 10_000 == 0:
                print(f"  {done} members", flush=True)
    began = time.perf_counter()
    async with client.RelayClient(target) as c:
        await asyncio.gather(*(joiner(c) for _ in range(concurrency)))
    return count / (time.perf_counter() - began)


def members_profile(owned):
    from chatrelay import envelope as env
    from chatrelay.state import unb64

    return env.decode(unb64(owned.profile))


async def serve_again_after_kill(relay, owned, member) -> float:
    """Seconds from killing the channel's shard until a member's read is answered."""
    import ray

    from chatrelay.actors.placement import home_shard

    shard = relay.shards[home_shard(bytes.fromhex(owned.group_id), len(relay.shards))]
    entry = member.relays[0]
    credential = client.credential(client.reader_key(member), entry.address)
    began = time.perf_counter()
    ray.kill(shard, no_restart=False)
    async with client.RelayClient(entry.target) as c:
        while time.perf_counter() - began < SERVE_AGAIN_LIMIT_S:
            try:
                await c.call("History", relay_pb2.HistoryRequest(credential=credential, limit=1), timeout=10)
                return time.perf_counter() - began
            except Exception:  # restarting: not yet
                await asyncio.sleep(0.05)
    raise TimeoutError(f"not served again within {SERVE_AGAIN_LIMIT_S} s")


async def main(args) -> None:
    from chatrelay.cluster import harness, up
    from chatrelay.cluster.harness import PostgresServer

    up.init_local_ray()
    server = PostgresServer() if args.store == "postgresql" else None
    if server:
        server.start()
    relay = await asyncio.to_thread(harness.start_relay, **harness.NO_QUOTAS,
                                    **({"store": server.dsn} if server else {}))
    try:
        keys_before, bytes_before = await registry_size(relay)
        owned = await client.create_group([relay.link], "Big channel", GroupKind.CHANNEL)
        await client.post(owned, "welcome")
        first = await client.join(owned.link, "first")
        await add_members(relay, owned, 100 - 1, min(args.concurrency, 16))
        small = await join_to_first_delivery(owned, args.samples)
        keys_small, bytes_small = await registry_size(relay)
        rate = await add_members(relay, owned, args.members - 100 - args.samples, args.concurrency)
        large = await join_to_first_delivery(owned, args.samples)
        keys_after, bytes_after = await registry_size(relay)
        again = await serve_again_after_kill(relay, owned, first)
    finally:
        await asyncio.to_thread(up.stop, relay, ray_shutdown=False)
        if server:
            server.stop()
    print(f"store: {args.store}; members made through the Join call, {args.concurrency} at a time: {rate:.0f} joins/s")
    print(f"registry before the channel:   {keys_before:6d} keys {bytes_before:9d} bytes")
    print(f"registry at 100 members:       {keys_small:6d} keys {bytes_small:9d} bytes")
    print(f"registry at {args.members} members: {keys_after:6d} keys {bytes_after:9d} bytes")
    print(f"join to first delivery, 100 members:     p50 {1000 * statistics.median(small):7.1f} ms"
          f"  p99 {1000 * percentile(small, 0.99):7.1f} ms")
    print(f"join to first delivery, {args.members} members: p50 {1000 * statistics.median(large):7.1f} ms"
          f"  p99 {1000 * percentile(large, 0.99):7.1f} ms")
    print(f"ratio p50 at {args.members} / at 100: {statistics.median(large) / statistics.median(small):.2f}")
    print(f"served again {again:.2f} s after its shard was killed (Ray restarts it; it takes the lease over)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--store", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=64)
    asyncio.run(main(parser.parse_args()))
