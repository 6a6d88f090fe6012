"""Durable posts/s through a relay whose store is PostgreSQL (`chatrelay up --store`),
against raw batched asyncpg inserts of the same rows into the same server, in the same
run; and the same relay on the embedded SQLite store beside it.

    python bench/store.py [--groups 20] [--posters 4] [--posts 2000] [--size 200]

The relay: G channels, P concurrent posters each (one gRPC connection), every post
signed before the clock starts, each poster awaiting its ack before the next (an ack
means durable). The baseline: the same number of rows of the same size, inserted into a
table shaped as the log's (stream, seq, ts, key, data) by G×P concurrent writers, each
row its own transaction (the like-for-like figure: an ack after each commit), and then
in transactions of 64 rows each (what group commit can at most make of it). PostgreSQL is
a throwaway cluster of Debian's `postgresql` on a free loopback port
(`cluster/harness.py`, as the tests use).

The ceiling of any relay on this machine: the same posts, posters and connection against
a gRPC server (TLS, in a process of its own) that checks each post's signature and group
and answers its ack, storing nothing. A relay cannot take posts faster than that, whatever
its store; the ratio of the relay to it says how much of the rest the relay (store
included) costs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import asyncpg

from chatrelay import client, members
from chatrelay.group import GroupKind
from reference import spawned

BATCH = 64


def signed_posts(channels: list[tuple], posters: int, per_poster: int, size: int) -> list[tuple[str, list]]:
    """(address, posts) for each poster: `channels` are (owner key, group id, address)."""
    return [(address, [members.sign_post(key, gid, os.urandom(size // 2).hex().encode()) for _ in range(per_poster)])
            for key, gid, address in channels for _ in range(posters)]


async def post_all(target: str, work: list[tuple[str, list]]) -> float:
    """Posts/s, each poster sending its posts one after another, each acked first."""
    async with client.RelayClient(target) as c:
        await c.post(work[0][0], work[0][1][0])  # connected, and the group loaded, before the clock

        async def poster(address, envelopes):
            for envelope in envelopes[1:]:
                await c.post(address, envelope)
        start = time.perf_counter()
        await asyncio.gather(*(poster(a, e) for a, e in work))
        elapsed = time.perf_counter() - start
    return sum(len(e) - 1 for _, e in work) / elapsed


async def relay_rate(store: str | None, groups: int, posters: int, posts: int, size: int) -> float:
    """Acked posts/s."""
    from chatrelay.cluster import harness, up

    overrides = {"store": store} if store else {}
    relay = await asyncio.to_thread(harness.start_relay, **harness.NO_QUOTAS, **overrides)
    try:
        channels = []
        for i in range(groups):
            owned = await client.create_group([relay.link], f"Store {i}", GroupKind.CHANNEL)
            channels.append((client.reader_key(owned), bytes.fromhex(owned.group_id), owned.relays[0].address))
        return await post_all(relay.target, signed_posts(channels, posters, max(2, posts // (groups * posters)), size))
    finally:
        await asyncio.to_thread(up.stop, relay, ray_shutdown=False)


def run_checking_server(port_queue) -> None:
    """A RelayService whose Post checks the post (signature, group, size) and answers an
    ack, storing nothing; over TLS, as a relay serves: it puts `PIN@127.0.0.1:PORT`."""
    from chatrelay.cluster.harness import serve_relay_service
    from chatrelay.v1 import core_pb2, relay_pb2, relay_pb2_grpc

    class Checking(relay_pb2_grpc.RelayServiceServicer):
        seq = 0

        async def Post(self, request, context):
            group_id = core_pb2.PostBody.FromString(request.envelope.body).group_id
            members.verify_post(request.envelope, group_id)
            self.seq += 1
            return relay_pb2.PostAck(seq=self.seq, message_id=members.message_id(request.envelope))

    serve_relay_service(Checking(), port_queue)


async def ceiling_rate(groups: int, posters: int, posts: int, size: int) -> float:
    from chatrelay import group

    channels = []
    for i in range(groups):
        secrets, _ = group.create_group(GroupKind.CHANNEL, f"Ceiling {i}")
        channels.append((secrets.owner_key, secrets.group_id, f"address-{i}"))
    work = signed_posts(channels, posters, max(2, posts // (groups * posters)), size)
    async with spawned(run_checking_server) as target:
        return await post_all(target, work)


async def raw_rate(dsn: str, writers: int, rows: int, size: int, batch: int) -> float:
    """Rows/s inserted by `writers` concurrent connections, `batch` rows a transaction."""
    setup = await asyncpg.connect(dsn)
    await setup.execute("DROP TABLE IF EXISTS raw_records; CREATE TABLE raw_records (stream text NOT NULL, "
                        "seq bigint NOT NULL, ts bigint NOT NULL, key bytea, data bytea NOT NULL, PRIMARY KEY (stream, seq))")
    await setup.execute("CREATE UNIQUE INDEX raw_records_key ON raw_records (stream, key)")
    await setup.close()
    pool = await asyncpg.create_pool(dsn, min_size=writers, max_size=writers)
    per_writer = max(1, rows // writers)
    payloads = [[(f"posts/{w}", n + 1, 0, os.urandom(16), os.urandom(size)) for n in range(per_writer)]
                for w in range(writers)]

    async def writer(rows_of_one):
        async with pool.acquire() as conn:
            for start in range(0, len(rows_of_one), batch):
                async with conn.transaction():
                    await conn.executemany("INSERT INTO raw_records VALUES ($1, $2, $3, $4, $5)",
                                           rows_of_one[start:start + batch])
    began = time.perf_counter()
    await asyncio.gather(*(writer(p) for p in payloads))
    elapsed = time.perf_counter() - began
    await pool.close()
    return per_writer * writers / elapsed


async def main(args) -> None:
    from chatrelay.cluster.harness import PostgresServer
    from chatrelay.cluster.up import init_local_ray

    init_local_ray()
    writers = args.groups * args.posters
    with PostgresServer() as server:
        on_pg = await relay_rate(server.dsn, args.groups, args.posters, args.posts, args.size)
        raw_each = await raw_rate(server.dsn, writers, args.posts, args.size, 1)
        raw_batched = await raw_rate(server.dsn, min(writers, 8), args.posts, args.size, BATCH)
    on_sqlite = await relay_rate(None, args.groups, args.posters, args.posts, args.size)
    ceiling = await ceiling_rate(args.groups, args.posters, args.posts, args.size)
    print(f"{args.groups} channels x {args.posters} posters, {args.posts} posts of {args.size} bytes, each acked before the next")
    print(f"relay, PostgreSQL store:        {on_pg:9.0f} posts/s")
    print(f"relay, embedded SQLite store:  {on_sqlite:9.0f} posts/s")
    print(f"raw asyncpg, a commit a row:   {raw_each:9.0f} rows/s  ({writers} writers)")
    print(f"raw asyncpg, {BATCH} rows a commit: {raw_batched:9.0f} rows/s  ({min(writers, 8)} writers)")
    print(f"ratio relay(PostgreSQL) / raw, a commit a row:   {on_pg / raw_each:.2f}")
    print(f"ratio relay(PostgreSQL) / raw, {BATCH} rows a commit: {on_pg / raw_batched:.2f}")
    print(f"checked, stored nowhere (the ceiling): {ceiling:9.0f} posts/s")
    print(f"ratio relay(PostgreSQL) / relay(SQLite):         {on_pg / on_sqlite:.2f}")
    print(f"ratio relay(PostgreSQL) / the ceiling:           {on_pg / ceiling:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--posters", type=int, default=4)
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--size", type=int, default=200)
    asyncio.run(main(parser.parse_args()))
