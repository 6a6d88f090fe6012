"""Scale: many registered groups on one node. Memory per idle group beyond the empty
cluster, and the time until every group is served again after a restart.

1. `chatrelay up` on the embedded defaults (or `--etcd`: a throwaway etcd on loopback).
2. N channels are registered, activated and given one post each, through the gateway.
3. The relay is stopped (Ray too) and started again on the same data dir.
4. The empty cluster's memory is read (shards and gateway; groups load on first use).
5. A few channels never touched since the restart are called first, one after another:
   the time from the relay being up to each one's first answer. The restart's own time
   is printed beside that of step 1's start, when nothing was registered.
6. Every channel gets a new post, retried while the relay comes back; the time from the
   start of step 3's `start` to the last ack is the recovery time.
7. The memory is read again, with every group loaded and idle.
8. The shards let go of the idle groups (`--unload-idle`, short here so that the run is
   short; 300 s by default), and the memory is read once more.

The baseline, measured in the same run, is the empty cluster of step 4: the ratio
printed is memory with N idle groups / memory of the empty cluster.

    python bench/scale.py [--groups 10000] [--concurrency 64] [--etcd] [--unload-idle 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import random
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
FIRST_CALLS = 20  # groups whose first call after the restart is timed


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


async def first_answers(rc, channels: Channels, sample: list[int], up_at: float) -> list[float]:
    """Seconds from the relay being up to the first answer of each channel in `sample`,
    called one after another (none touched since the restart)."""
    waited = []
    for i in sample:
        await channels.post(rc, i, b"first after restart")
        waited.append(time.perf_counter() - up_at)
    return waited


async def unloaded(relay, within_s: float) -> tuple[int, list[int]]:
    """Memory once the shards have let go of every idle group (or `within_s` passed)."""
    deadline = time.monotonic() + within_s
    while sum((await asyncio.to_thread(relay_memory, relay))[1]) and time.monotonic() < deadline:
        await asyncio.sleep(1.0)
    return await settle(relay)


async def run(n: int, concurrency: int, etcd_url: str | None, unload_idle_s: float) -> dict:
    from chatrelay.cluster import harness, up

    data_dir = tempfile.mkdtemp(prefix="chatrelay-scale-")
    print(f"  making {n} channels' keys", file=sys.stderr)
    channels = Channels(n)
    options = dict(etcd=etcd_url, unload_idle_s=unload_idle_s, **harness.NO_QUOTAS)
    began = time.perf_counter()
    relay = await asyncio.to_thread(harness.start_relay, data_dir, **options)
    fresh_up_s = time.perf_counter() - began  # the start's own time, with nothing registered
    try:
        fresh = await settle(relay)  # nothing registered yet
        info = await client.relay_info(relay.link)
        async with client.RelayClient(info.target) as rc:
            made = await bounded(n, concurrency, lambda i: channels.create(rc, info, i), "registered and activated")
            await bounded(n, concurrency, lambda i: channels.post(rc, i, b"first"), "first posts")
        loaded_before = await settle(relay)
    finally:
        await asyncio.to_thread(up.stop, relay)

    started = time.perf_counter()
    relay = await asyncio.to_thread(harness.start_relay, data_dir, **options)
    try:
        up_at = time.perf_counter()
        up_s = up_at - started
        empty = await asyncio.to_thread(relay_memory, relay)
        sample = random.Random(22).sample(range(n), min(n, FIRST_CALLS))
        async with client.RelayClient(relay.target) as rc:
            first = await first_answers(rc, channels, sample, up_at)
            await bounded(n, concurrency, lambda i: channels.post(rc, i, b"after restart"), "served after restart")
        recovered_s = time.perf_counter() - started
        loaded = await settle(relay)
        print(f"  waiting for the shards to let go of the idle groups (--unload-idle {unload_idle_s:g})", file=sys.stderr)
        let_go = await unloaded(relay, unload_idle_s * 3 + 120)
    finally:
        await asyncio.to_thread(up.stop, relay)
    return {
        "made_s": made, "up_s": up_s, "fresh_up_s": fresh_up_s, "recovered_s": recovered_s, "first": first,
        "fresh": fresh, "empty": empty, "loaded": loaded, "loaded_before": loaded_before, "let_go": let_go,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--etcd", action="store_true", help="a throwaway etcd on loopback as the registry")
    parser.add_argument("--unload-idle", type=float, default=10.0,
                        help="seconds before a shard lets go of an idle group (chatrelay up's default: 300)")
    args = parser.parse_args()
    if not (1 <= args.groups <= 100_000 and 1 <= args.concurrency <= 1000):
        parser.error("--groups 1..100000, --concurrency 1..1000")
    if not 1 <= args.unload_idle <= 600:
        parser.error("--unload-idle 1..600")
    registry = "etcd on loopback" if args.etcd else "embedded registry"
    print(f"scale: {args.groups} channels on one node, {registry}, {args.concurrency} requests at a time")
    with contextlib.ExitStack() as stack:
        url = None
        if args.etcd:
            from chatrelay.cluster.harness import EtcdServer

            url = stack.enter_context(EtcdServer(name="bench")).url
        r = asyncio.run(run(args.groups, args.concurrency, url, args.unload_idle))
    n = args.groups
    empty, counts = r["empty"]
    loaded, loaded_counts = r["loaded"]
    before, _ = r["loaded_before"]
    mib = 1024 * 1024
    print(f"  registered and activated: {n / r['made_s']:,.0f} channels/s ({r['made_s']:.1f} s)")
    fresh, _ = r["fresh"]
    let_go, let_go_counts = r["let_go"]
    count = sum(loaded_counts)
    print(f"  a new relay, nothing registered: {fresh / mib:,.1f} MiB in shards and gateway")
    print(f"  after a restart, {n} groups registered, none loaded (baseline): {empty / mib:,.1f} MiB, "
          f"{(empty - fresh) / n / 1024:,.2f} KiB per idle group")
    print(f"  with {count} groups loaded and idle ({loaded_counts} per shard): {loaded / mib:,.1f} MiB, "
          f"{(loaded - empty) / max(1, count) / 1024:,.2f} KiB per loaded group")
    print(f"  (before the restart, after registering them all: {(before - empty) / n / 1024:,.2f} KiB per group)")
    print(f"  after the shards let go of the idle groups ({sum(let_go_counts)} still loaded): {let_go / mib:,.1f} MiB, "
          f"{(let_go - empty) / n / 1024:,.2f} KiB per group above the baseline (pages of the peak that the "
          f"processes' allocators keep)")
    first = sorted(r["first"])
    print(f"  restart: relay up in {r['up_s']:.1f} s (a new relay with nothing registered: {r['fresh_up_s']:.1f} s); "
          f"first answers of {len(first)} groups untouched since, one after another, from the relay up: "
          f"first {first[0]:.2f} s, last {first[-1]:.2f} s")
    print(f"  every group served again {r['recovered_s']:.1f} s after start")
    print(f"  ratio memory with groups / empty cluster: {loaded / empty:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
