"""Ingest: acked posts/s into G channels with P concurrent posters each (defaults 50 × 4,
200-byte posts), against nats-server JetStream in the same run, same shape.

    python bench/ingest.py [--groups 50] [--posters 4] [--posts 4000] [--size 200] [--shards 2]

chatrelay: a relay as `chatrelay up` runs it on the embedded defaults (local Ray on
loopback, shards, one gateway over TLS, the embedded registry and SQLite store), one
gRPC connection, every post signed before the clock starts, each poster awaiting its
ack before the next (an ack means verified and committed). The peer (bench/nats_peer.py):
JetStream with file storage, G streams, P publishers on each over one connection, each
awaiting its ack; with `sync_interval: always` (an fsync before each ack: the
like-for-like figure) and with the server's default sync (printed for reference).

The ceiling of any relay in Python on this machine, in the same run (as bench/store.py
measures it): the same posts, posters and connection against one grpc.aio server over
TLS, in a process of its own, that checks each post's signature and answers its ack,
storing nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from nats_peer import jetstream_ingest
from store import ceiling_rate, post_all, signed_posts

from chatrelay import client
from chatrelay.group import GroupKind


async def relay_rate(groups: int, posters: int, per_poster: int, size: int, shards: int) -> float:
    from chatrelay.cluster import harness, up

    relay = await asyncio.to_thread(harness.start_relay, **harness.NO_QUOTAS, shards=shards)
    try:
        channels = []
        for i in range(groups):
            owned = await client.create_group([relay.link], f"Ingest {i}", GroupKind.CHANNEL)
            channels.append((client.reader_key(owned), bytes.fromhex(owned.group_id), owned.relays[0].address))
        return await post_all(relay.target, signed_posts(channels, posters, per_poster + 1, size))
    finally:
        await asyncio.to_thread(up.stop, relay, ray_shutdown=False)


async def main(args) -> None:
    from chatrelay.cluster.up import init_local_ray

    per_poster = max(1, args.posts // (args.groups * args.posters))
    payloads = [os.urandom(args.size // 2).hex().encode()[: args.size] for _ in range(64)]
    print(f"ingest: {args.groups} channels x {args.posters} posters, {per_poster * args.groups * args.posters} "
          f"posts of {args.size} bytes, each acked before the next")
    js_always = await jetstream_ingest("always", args.groups, args.posters, per_poster, payloads)
    print(f"  nats-server JetStream, file, sync always:  {js_always:9,.0f} msgs/s")
    js_default = await jetstream_ingest("default", args.groups, args.posters, per_poster, payloads)
    print(f"  nats-server JetStream, file, default sync: {js_default:9,.0f} msgs/s  (for reference)")
    init_local_ray()
    relay = await relay_rate(args.groups, args.posters, per_poster, args.size, args.shards)
    print(f"  chatrelay (embedded store, {args.shards} shards):     {relay:9,.0f} posts/s")
    print(f"  ratio chatrelay / JetStream sync always:   {relay / js_always:.2f}")
    print(f"  ratio chatrelay / JetStream default sync:  {relay / js_default:.2f}")
    ceiling = await ceiling_rate(args.groups, args.posters, per_poster * args.groups * args.posters, args.size)
    print(f"  ceiling: one Python gRPC server (TLS) checking each post, storing nothing: {ceiling:9,.0f} posts/s")
    print(f"  ratio ceiling / JetStream sync always:     {ceiling / js_always:.2f}")
    print(f"  ratio chatrelay / ceiling:                 {relay / ceiling:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--posters", type=int, default=4)
    parser.add_argument("--posts", type=int, default=4000)
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--shards", type=int, default=2, help="the relay's shards (chatrelay up's default: 2)")
    args = parser.parse_args()
    if not (1 <= args.groups <= 10_000 and 1 <= args.posters <= 64 and 1 <= args.posts <= 1_000_000
            and 16 <= args.size <= 60_000 and 1 <= args.shards <= 16):
        parser.error("--groups 1..10000, --posters 1..64, --posts 1..1000000, --size 16..60000, --shards 1..16")
    asyncio.run(main(args))
