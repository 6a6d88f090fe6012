"""Isolation: post-to-delivery latency in quiet groups, without and then with one group
flooded at the highest rate the relay accepts, in the same run. Prints p50/p99 of both
and the ratio of the p99s (the design's promise: load in one group never stalls others).

    python bench/isolation.py [--groups 50] [--rounds 10] [--flooders 16] [--hot-posts N] [--post-in-flight 1]
                               [--traces DIR] [--flood posts|registrations]

The flood runs in a process of its own (another user's device), so that its work does
not delay this process's clock reads; the post-to-ack times are printed beside the
post-to-delivery ones.

With `--flood registrations` the flood registers new groups instead, as fast as the relay
takes them (registration happens at the gateway, the same process that delivers the
quiet groups' posts to their subscribers).

The ceiling, with `--flood posts`: a third round sends the same flood, paced at the rate
the relay accepted, to a bare grpc.aio server in a process of its own (it answers each
post, checks nothing and keeps the posts in memory), while the quiet groups are measured
on the relay as before. No relay can serve the flood with less than that server does, on
the same cores, so that round's p99 ratio is what the flood's mere presence costs here.

With `--hot-posts N` the relay moves a group past N posts/s to a shard of its own (as
`chatrelay up --hot-posts N` does); the flood then runs `--settle` seconds (default 12)
before the flooded round is measured, so that the move has happened.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time

from nacl.signing import SigningKey

from chatrelay import client, connection, members
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.group import GroupKind
from chatrelay.state import unb64

FLOOD_STOP_S = 30


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure_round(quiet, pending: dict, rounds: int, acks: list[float]) -> list[float]:
    """Each round: one post in every quiet group; wait until all are delivered. Returns
    the post-to-delivery latencies; the post-to-ack latencies go into `acks`."""
    latencies: list[float] = []
    for _ in range(rounds):
        waits = []
        for owned, key, group_id, address, c in quiet:
            envelope = members.sign_post(key, group_id, b"ping")
            mid = members.message_id(envelope)
            arrived = asyncio.get_running_loop().create_future()
            pending[mid] = arrived
            sent = time.perf_counter()
            await c.post(address, envelope)
            acks.append(time.perf_counter() - sent)
            waits.append((sent, arrived))
        for sent, arrived in waits:
            latencies.append(await asyncio.wait_for(arrived, 60) - sent)
    return latencies


async def run(
    n_groups: int, rounds: int, flooders: int, hot_posts: float, settle_s: float, traces, post_in_flight: int,
    kind: str = "posts",
) -> None:
    from chatrelay.cluster import harness, up

    relay = await asyncio.to_thread(
        harness.start_relay, hot_posts_per_s=hot_posts, traces=traces, post_in_flight=post_in_flight,
        **harness.NO_QUOTAS,
    )
    c = await client.RelayClient(relay.target).open()  # the streams use its stub from the start
    try:
        pending: dict[bytes, asyncio.Future] = {}
        quiet = []
        streams = []
        for i in range(n_groups):
            owned = await client.create_group([relay.link], f"quiet {i}", GroupKind.CHANNEL)
            member = await client.join(owned.link, "reader")
            entry = member.relays[0]
            credential = client.credential(SigningKey(unb64(member.sign_seed)), entry.address)
            streams.append(asyncio.create_task(subscriber(c, credential, pending)))
            quiet.append((owned, SigningKey(unb64(owned.owner_seed)), bytes.fromhex(owned.group_id),
                          owned.relays[0].address, c))
        hot = await client.create_group([relay.link], "hot", GroupKind.CHANNEL)
        hot_id, hot_address = bytes.fromhex(hot.group_id), hot.relays[0].address
        await asyncio.sleep(1.0)  # every stream is open

        calm_acks: list[float] = []
        calm = await measure_round(quiet, pending, rounds, calm_acks)

        stormy_acks: list[float] = []
        flood = FloodProcess(relay.target, hot.owner_seed, hot_id, hot_address, flooders, kind, relay.link)
        try:
            flood.start()
            await flood.started()  # a spawned process takes seconds to import its client
            await asyncio.sleep(settle_s)
            started = time.perf_counter()
            before = flood.accepted()
            stormy = await measure_round(quiet, pending, rounds, stormy_acks)
            flood_rate = (flood.accepted() - before) / (time.perf_counter() - started)
        finally:
            counts = await asyncio.to_thread(flood.stop)
        elsewhere, elsewhere_rate = await flood_elsewhere(
            quiet, pending, rounds, flooders, hot.owner_seed, hot_id, flood_rate, settle_s
        ) if kind == "posts" and flood_rate > 0 else ([], 0)
        for t in streams:
            t.cancel()

        def show(label, values):
            print(f"  {label}: p50 {percentile(values, 0.5) * 1000:.1f} ms, "
                  f"p99 {percentile(values, 0.99) * 1000:.1f} ms, mean {statistics.mean(values) * 1000:.1f} ms")

        print(f"isolation: {n_groups} quiet groups x {rounds} rounds; flood with {flooders} concurrent "
              + ("posters" if kind == "posts" else "registrations of new groups") + "; "
              f"{post_in_flight} call(s) of a group's posts in flight at the gateway"
              + (f"; hot groups move past {hot_posts:g} posts/s" if hot_posts else ""))
        moved = sum(s.moved_out for s in await asyncio.to_thread(
            lambda: __import__("ray").get([x.stats.remote(False) for x in relay.shards])))
        print(f"  groups moved to a shard of their own: {moved}")
        show("quiet groups, no flood  ", calm)
        show("quiet groups, hot group flooded" if kind == "posts" else "quiet groups, registrations flood", stormy)
        show("(post to ack) no flood    ", calm_acks)
        show("(post to ack) flooded     ", stormy_acks)
        print(f"  flood accepted {flood_rate:,.0f} {kind}/s (busy answers: {counts['busy']:,})")
        print(f"  p99 ratio flooded / calm: {percentile(stormy, 0.99) / percentile(calm, 0.99):.2f}")
        if elsewhere:
            show("quiet groups, the same flood sent to a bare server", elsewhere)
            print(f"  ceiling: p99 ratio with the flood ({elsewhere_rate:,.0f} posts/s) served by a bare grpc.aio "
                  f"server beside the relay: {percentile(elsewhere, 0.99) / percentile(calm, 0.99):.2f}")
    finally:
        await c.close()
        await asyncio.to_thread(up.stop, relay)


async def flood_elsewhere(quiet, pending, rounds, flooders, owner_seed, group_id, rate, settle_s):
    """The quiet groups' latencies on the relay while the flood, paced at `rate`, goes to
    a bare grpc.aio server in a process of its own; and the rate it went at."""
    from reference import run_bare_server, spawned

    async with spawned(run_bare_server, 0, 1) as port:
        flood = FloodProcess(f"127.0.0.1:{port}", owner_seed, group_id, "x", flooders, rate=rate, insecure=True)
        try:
            flood.start()
            await flood.started()
            await asyncio.sleep(settle_s)
            started, before = time.perf_counter(), flood.accepted()
            latencies = await measure_round(quiet, pending, rounds, [])
            return latencies, (flood.accepted() - before) / (time.perf_counter() - started)
        finally:
            await asyncio.to_thread(flood.stop)


class FloodProcess:
    """The flooding client: `flooders` posters in a process of their own, as another
    user's device would be, so that its work does not delay this process's clock reads
    and deliveries. It posts to the hot group as fast as the relay accepts; a BUSY answer
    makes that poster wait 10 ms (the flood stays at the highest accepted rate). With
    `kind` "registrations" it registers new groups instead, as fast as they are taken.
    With `rate` it posts at that many a second in all, no faster; `insecure` for a
    plaintext target."""

    def __init__(
        self, target: str, owner_seed: str, group_id: bytes, address: str, flooders: int,
        kind: str = "posts", relay_link: str = "", rate: float = 0.0, insecure: bool = False,
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.counts = ctx.Array("q", 2)  # accepted, busy
        self.stopping = ctx.Event()
        self.process = ctx.Process(
            target=flood_main,
            args=(target, owner_seed, group_id, address, flooders, self.counts, self.stopping, kind, relay_link,
                  rate, insecure),
            daemon=True,
        )

    def start(self) -> None:
        self.process.start()

    async def started(self, within_s: float = 60.0) -> None:
        """Once the flood's first request is answered."""
        deadline = time.monotonic() + within_s
        while self.counts[0] + self.counts[1] == 0:
            if time.monotonic() > deadline or not self.process.is_alive():
                raise RuntimeError(f"the flood process sent nothing within {within_s:g} s")
            await asyncio.sleep(0.1)

    def accepted(self) -> int:
        return self.counts[0]

    def stop(self) -> dict:
        self.stopping.set()
        self.process.join(FLOOD_STOP_S)
        if self.process.is_alive():
            self.process.kill()
            raise RuntimeError("the flood process did not stop")
        if self.process.exitcode != 0:
            raise RuntimeError(f"the flood process failed (exit code {self.process.exitcode})")
        return {"accepted": self.counts[0], "busy": self.counts[1]}


def flood_main(target, owner_seed, group_id, address, flooders, counts, stopping, kind="posts", relay_link="",
               rate=0.0, insecure=False) -> None:
    async def main():
        from chatrelay import group

        connection.set_insecure(insecure)
        c = client.RelayClient(target)
        key = SigningKey(unb64(owner_seed))
        info = await client.relay_info(relay_link) if kind == "registrations" else None

        async def one():
            if kind == "posts":
                await c.post(address, members.sign_post(key, group_id, b"flood" * 20))
            else:
                secrets, signed = group.create_group(GroupKind.GROUP, "flood")
                await client.register(c, info, signed, secrets.group_id)

        async def flood(i):
            every = flooders / rate if rate else 0.0  # each poster's share of the pace
            due = time.monotonic() + i * every / flooders  # the posters spread over the interval
            while not stopping.is_set():
                if every:
                    due += every
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                try:
                    await one()
                    counts[0] += 1
                except ChatRelayError as exc:
                    if exc.reason is not Reason.BUSY:
                        raise
                    counts[1] += 1
                    await asyncio.sleep(0.01)
        try:
            await asyncio.gather(*(flood(i) for i in range(flooders)))
        finally:
            await c.close()
    asyncio.run(main())


async def subscriber(c, credential, pending) -> None:
    from chatrelay.v1 import relay_pb2

    async for batch in c.stub.Subscribe(relay_pb2.SubscribeRequest(credential=credential)):
        now = time.perf_counter()
        for d in batch.deliveries:
            future = pending.pop(d.message_id, None)
            if future is not None and not future.done():
                future.set_result(now)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--flooders", type=int, default=16)
    parser.add_argument("--hot-posts", type=float, default=0.0, help="move groups past this many posts/s")
    parser.add_argument("--settle", type=float, default=None, help="seconds of flood before measuring")
    parser.add_argument("--traces", default=None, help="write the relay's trace spans to this folder")
    parser.add_argument("--flood", choices=("posts", "registrations"), default="posts",
                        help="what the flood sends: posts to one group, or registrations of new groups")
    parser.add_argument("--post-in-flight", type=int, default=1,
                        help="calls carrying one group's posts the gateway has going at a time (as `chatrelay up` takes)")
    args = parser.parse_args()
    settle = args.settle if args.settle is not None else (12.0 if args.hot_posts else 1.0)
    if args.hot_posts < 0 or not 0 <= settle <= 600:
        parser.error("--hot-posts 0 or more, --settle 0..600")
    if not 1 <= args.post_in_flight <= 1024:
        parser.error("--post-in-flight 1..1024")
    if not (1 <= args.groups <= 1000 and 1 <= args.rounds <= 1000 and 1 <= args.flooders <= 256):
        parser.error("--groups 1..1000, --rounds 1..1000, --flooders 1..256")
    asyncio.run(run(args.groups, args.rounds, args.flooders, args.hot_posts, settle, args.traces, args.post_in_flight,
                    args.flood))
    return 0


if __name__ == "__main__":
    sys.exit(main())
