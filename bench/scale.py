"""Scale: many registered groups on one node. Memory per idle group beyond the empty
cluster, and the time until every group is served again after a restart.

1. `chatrelay up` on the embedded defaults (or `--etcd`: a throwaway etcd on loopback).
2. N channels are registered, activated and given one post each, through the gateway.
3. The relay is stopped (Ray too) and started again on the same data dir.
4. The empty cluster's memory is read (shards and gateway; groups load on first use).
5. Every channel gets a new post, retried while the relay comes back; the time from the
   start of step 3's `start` to the last ack is the recovery time.
6. The memory is read again, with every group loaded and idle.

The baseline, measured in the same run, is the empty cluster of step 4: the ratio
printed is memory with N idle groups / memory of the empty cluster.

    python bench/scale.py [--groups 10000] [--concurrency 64] [--etcd]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


from chatrelay import client, group, members  # noqa: E402
from chatrelay.connection import retryable  # noqa: E402
from chatrelay.retry import Backoff  # noqa: E402
from chatrelay.group import GroupKind  # noqa: E402
from chatrelay.v1 import core_pb2, relay_pb2  # noqa: E402

DEADLINE_S = 1800  # the whole run, however large
PROGRESS_EVERY = 1000


async def bounded(n: int, concurrency: int, one, what: str) -> float:
    """Run one(i) for i < n, `concurrency` at a time, printing progress."""
    semaphore = asyncio.Semaphore(concurrency)
    done = [0]
    start = time.perf_counter()

    async def run(i):
        async with semaphore:
            await one(i)
        done[0] += 1
        if done[0] % PROGRESS_EVERY == 0 or done[0] == n:
            print(f"    {what}: {done[0]}/{n} ({time.perf_counter() - start:.1f} s)", file=sys.stderr)

    await asyncio.wait_for(asyncio.gather(*(run(i) for i in range(n))), DEADLINE_S)
    return time.perf_counter() - start


# A relay coming back answers UNAVAILABLE or BUSY for a while: the SDK's retry policy.
COMING_BACK = Backoff(first_s=0.05, max_s=1.0, within_s=120.0)


class Channels:
    """N channels of one relay, made through the gateway as `client.create_group` does
    (register, then the profile with the relay's address), without storing links."""

    def __init__(self, n: int) -> None:
        self.made = [group.create_group(GroupKind.CHANNEL, f"c{i}") for i in range(n)]
        self.addresses: list[str] = [""] * n

    async def create(self, rc: client.RelayClient, info: client.RelayInfo, i: int) -> None:
        secrets, signed = self.made[i]
        address, _ = await client.register(rc, info, signed, secrets.group_id)
        refs = [core_pb2.RelayRef(relay_key=info.relay_key, relay_link=str(info.link), group_address=address)]
        updated = group.next_version(secrets.owner_key, group.verify_profile(signed), relays=refs)
        response = await client.owner_command(
            rc, secrets.owner_key, address, relay_pb2.OWNER_COMMAND_KIND_UPDATE_PROFILE, profile=updated
        )
        if response.state != relay_pb2.GROUP_STATE_ACTIVE:
            raise RuntimeError(f"channel {i} is not active after its profile update")
        self.addresses[i] = address

    async def post(self, rc: client.RelayClient, i: int, text: bytes) -> None:
        secrets, _ = self.made[i]
        envelope = members.sign_post(secrets.owner_key, secrets.group_id, text)
        await COMING_BACK.run(lambda: rc.post(self.addresses[i], envelope), retryable)


def relay_memory(relay) -> tuple[int, list[int]]:
    """Resident bytes of the relay's processes (shards and gateway), and the group counts."""
    import ray

    shards = ray.get([s.stats.remote(False) for s in relay.shards])
    gateway = ray.get(relay.gateway.stats.remote())
    rss = sum(s.process.rss_bytes for s in shards) + gateway.process.rss_bytes
    return rss, [s.group_count for s in shards]


async def settle(relay) -> tuple[int, list[int]]:
    """Memory after a pause, so that finished work has been let go."""
    import ray

    await asyncio.sleep(3.0)
    for actor in [*relay.shards, relay.gateway]:
        await asyncio.to_thread(ray.get, actor.__ray_call__.remote(lambda self: gc.collect()))
    return await asyncio.to_thread(relay_memory, relay)


async def run(n: int, concurrency: int, etcd_url: str | None) -> dict:
    from chatrelay.cluster import harness, up

    data_dir = tempfile.mkdtemp(prefix="chatrelay-scale-")
    print(f"  making {n} channels' keys", file=sys.stderr)
    channels = Channels(n)
    relay = await asyncio.to_thread(harness.start_relay, data_dir, etcd=etcd_url, **harness.NO_QUOTAS)
    try:
        info = await client.relay_info(relay.link)
        async with client.RelayClient(info.target) as rc:
            made = await bounded(n, concurrency, lambda i: channels.create(rc, info, i), "registered and activated")
            await bounded(n, concurrency, lambda i: channels.post(rc, i, b"first"), "first posts")
        loaded_before = await settle(relay)
    finally:
        await asyncio.to_thread(up.stop, relay)

    started = time.perf_counter()
    relay = await asyncio.to_thread(harness.start_relay, data_dir, etcd=etcd_url, **harness.NO_QUOTAS)
    try:
        up_s = time.perf_counter() - started
        empty = await asyncio.to_thread(relay_memory, relay)
        async with client.RelayClient(relay.target) as rc:
            await bounded(n, concurrency, lambda i: channels.post(rc, i, b"after restart"), "served after restart")
        recovered_s = time.perf_counter() - started
        loaded = await settle(relay)
    finally:
        await asyncio.to_thread(up.stop, relay)
    return {
        "made_s": made, "up_s": up_s, "recovered_s": recovered_s,
        "empty": empty, "loaded": loaded, "loaded_before": loaded_before,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--etcd", action="store_true", help="a throwaway etcd on loopback as the registry")
    args = parser.parse_args()
    if not (1 <= args.groups <= 100_000 and 1 <= args.concurrency <= 1000):
        parser.error("--groups 1..100000, --concurrency 1..1000")
    registry = "etcd on loopback" if args.etcd else "embedded registry"
    print(f"scale: {args.groups} channels on one node, {registry}, {args.concurrency} requests at a time")
    with contextlib.ExitStack() as stack:
        url = None
        if args.etcd:
            from chatrelay.cluster.harness import EtcdServer

            url = stack.enter_context(EtcdServer(name="bench")).url
        r = asyncio.run(run(args.groups, args.concurrency, url))
    n = args.groups
    empty, counts = r["empty"]
    loaded, loaded_counts = r["loaded"]
    before, _ = r["loaded_before"]
    mib = 1024 * 1024
    print(f"  registered and activated: {n / r['made_s']:,.0f} channels/s ({r['made_s']:.1f} s)")
    print(f"  empty cluster after restart (baseline): {empty / mib:,.1f} MiB in shards and gateway")
    print(f"  with {sum(loaded_counts)} idle groups loaded ({loaded_counts} per shard): {loaded / mib:,.1f} MiB")
    print(f"  memory per idle group: {(loaded - empty) / n / 1024:,.2f} KiB")
    print(f"  (before the restart, after registering them all: {(before - empty) / n / 1024:,.2f} KiB per group)")
    print(f"  restart: relay up in {r['up_s']:.1f} s, every group served again {r['recovered_s']:.1f} s after start")
    print(f"  ratio memory with groups / empty cluster: {loaded / empty:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
