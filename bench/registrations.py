"""Registrations per second on a relay whose registry is etcd, against raw `aetcd`
transactions of the same shape (create-if-absent of the group record, its address and
its placement) in the same run, on the same etcd.

    python bench/registrations.py [--groups 2000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from etcd_server import Etcd  # noqa: E402

from chatrelay import client, group  # noqa: E402
from chatrelay.group import GroupKind  # noqa: E402


async def bounded(n: int, concurrency: int, one) -> float:
    semaphore = asyncio.Semaphore(concurrency)

    async def run(i):
        async with semaphore:
            await one(i)

    start = time.perf_counter()
    await asyncio.gather(*(run(i) for i in range(n)))
    return time.perf_counter() - start


async def raw_aetcd(url: str, n: int, concurrency: int) -> float:
    import aetcd

    from chatrelay.cluster.registry_etcd import parse_endpoint

    host, port = parse_endpoint(url)
    etcd = aetcd.Client(host=host, port=port)
    t = etcd.transactions

    async def one(i):
        key = b"/raw/groups/%d" % i
        await etcd.transaction(
            compare=[t.create(key) == 0],
            success=[t.put(key, os.urandom(400)), t.put(b"/raw/addresses/%d" % i, b"x" * 64),
                     t.put(b"/raw/placement/%d" % i, b"0")],
            failure=[t.get(key)],
        )

    try:
        return await bounded(n, concurrency, one)
    finally:
        await etcd.close()


async def relay_registrations(url: str, n: int, concurrency: int) -> float:
    from chatrelay.cluster import up
    from chatrelay.settings import Settings

    relay = await asyncio.to_thread(
        up.start, Settings(data_dir=tempfile.mkdtemp(prefix="chatrelay-bench-"), listen="127.0.0.1:0", etcd=url)
    )
    try:
        info = await client.relay_info(relay.link)
        made = [group.create_group(GroupKind.GROUP, f"g{i}") for i in range(n)]  # keys before the clock
        channel = client.RelayClient(info.target)

        async def one(i):
            secrets, signed = made[i]
            await client.register(channel, info, signed, secrets.group_id)

        try:
            return await bounded(n, concurrency, one)
        finally:
            await channel.close()
    finally:
        await asyncio.to_thread(up.stop, relay)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    if not (1 <= args.groups <= 100_000 and 1 <= args.concurrency <= 1000):
        parser.error("--groups 1..100000, --concurrency 1..1000")
    print(f"registrations: {args.groups} groups, {args.concurrency} at a time, etcd on loopback")
    with Etcd() as etcd:
        raw = asyncio.run(raw_aetcd(etcd.url, args.groups, args.concurrency))
        raw_rate = args.groups / raw
        print(f"  raw aetcd transactions: {raw_rate:,.0f}/s ({raw:.2f} s)")
        mine = asyncio.run(relay_registrations(etcd.url, args.groups, args.concurrency))
        rate = args.groups / mine
        print(f"  chatrelay RegisterGroup: {rate:,.0f}/s ({mine:.2f} s)")
    print(f"  ratio chatrelay / raw aetcd: {rate / raw_rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
