"""Joins: members joining one channel as fast as the relay takes them (default 10,000),
against the same hop with the join's signature work and nothing stored, in the same run;
and resolve + join + first delivery latency, p50/p99, at 10 joins/s and at full rate,
with --members-before members already in the channel (default 100,000).

    python bench/joins.py [--joins 10000] [--members-before 100000] [--concurrency 64] [--samples 50]

The relay runs as `chatrelay up` does on the embedded defaults (local Ray, shards, one
gateway over TLS, the embedded registry and SQLite store). Each join is a new member
identity whose signed join request goes through the Join call, `--concurrency` at a time
over one connection, as `chatrelay join` sends it (bench/members.py, `join_many`); the
measured joins' requests are made before the clock (a new identity and a sealed
announcement take the client about 3 ms each, which would otherwise be what is measured).

The reference: the same client and requests against one grpc.aio server over TLS, in a
process of its own, whose Join checks each request as the relay does (its signature, the
joining key, the group) and answers it accepted, storing nothing.

Latency: a new member resolves the channel's link, joins and opens its stream, until the
channel's post arrives (`client.join`, `client.follow`, over one connection in
`client.one_member`, as a client app that streams what it joined), `--samples` times:
paced at 10 joins/s with nothing else going on, then during the full-rate joins.

CPU a join, by process (bench/cpu.py), over the reference's joins and over the relay's
full-rate joins (the latency samples taken meanwhile counted as joins too), and the rate
at which that cost would keep every core busy: the ceiling of each on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import cpu
from reference import spawned
from members import add_members, join_many, join_requests, join_to_first_delivery, members_profile, percentile

from chatrelay import client, group, members
from chatrelay.group import GroupKind

PACE_S = 0.1  # 10 joins/s


def run_checking_server(port_queue) -> None:
    """A RelayService whose Join checks the request and answers it accepted, storing
    nothing; over TLS, as a relay serves: it puts `PIN@127.0.0.1:PORT`."""
    from chatrelay.cluster.harness import serve_relay_service
    from chatrelay.v1 import core_pb2, relay_pb2, relay_pb2_grpc

    class Checking(relay_pb2_grpc.RelayServiceServicer):
        async def Join(self, request, context):
            members.verify_join(request.envelope, core_pb2.JoinBody.FromString(request.envelope.body).group_id)
            return relay_pb2.JoinResponse(status=relay_pb2.JOIN_STATUS_ACCEPTED)

    serve_relay_service(Checking(), port_queue)


async def reference_rate(count: int, concurrency: int) -> tuple[float, dict[str, float]]:
    """(joins/s, CPU seconds by process over them)."""
    secrets, signed = group.create_group(GroupKind.CHANNEL, "Reference")
    intake_key = group.verify_profile(signed).profile.intake_key
    meter = cpu.Meter(children="reference server")
    async with spawned(run_checking_server) as target:
        made = join_requests(secrets.group_id, "reference-address", intake_key, count)
        meter.start()
        rate = await join_many(target, secrets.group_id, "reference-address", intake_key, count, concurrency, made)
        return rate, meter.stop()


async def paced(owned, samples: int) -> list[float]:
    """Join-to-first-delivery latencies, one join starting every PACE_S (or at once after
    one that took longer)."""
    out = []
    start = time.perf_counter()
    for i in range(samples):
        await asyncio.sleep(max(0.0, start + i * PACE_S - time.perf_counter()))
        out.extend(await join_to_first_delivery(owned, 1))
    return out


async def relay_figures(args) -> dict:
    from chatrelay.cluster import harness, up

    up.init_local_ray()
    relay = await asyncio.to_thread(harness.start_relay, **harness.NO_QUOTAS)
    try:
        owned = await client.create_group([relay.link], "Big channel", GroupKind.CHANNEL)
        await client.post(owned, "welcome")
        if args.members_before:
            print(f"  {args.members_before} members joining before the measurement", flush=True)
            await add_members(relay, owned, args.members_before, args.concurrency)
        calm = await paced(owned, args.samples)
        intake_key = group.verify_profile(members_profile(owned)).profile.intake_key
        gid, address = bytes.fromhex(owned.group_id), owned.relays[0].address
        made = join_requests(gid, address, intake_key, args.joins)
        meter = cpu.Meter()
        meter.start()
        flood = asyncio.create_task(join_many(relay.target, gid, address, intake_key, args.joins, args.concurrency, made))
        await asyncio.sleep(1.0)  # the flood under way
        loaded = await join_to_first_delivery(owned, args.samples)
        if flood.done():
            raise RuntimeError("the full-rate joins ended before the samples did: take more --joins")
        rate = await flood
        used = meter.stop()
    finally:
        await asyncio.to_thread(up.stop, relay, ray_shutdown=False)
    return {"rate": rate, "calm": calm, "loaded": loaded, "cpu": used}


def show(label: str, values: list[float]) -> None:
    print(f"  {label}: p50 {1000 * statistics.median(values):7.1f} ms, p99 {1000 * percentile(values, 0.99):7.1f} ms")


async def main(args) -> None:
    print(f"joins: {args.joins} members joining one channel, {args.concurrency} at a time; "
          f"{args.members_before} members in it before")
    reference, reference_cpu = await reference_rate(args.joins, args.concurrency)
    print(f"  reference, one gRPC hop checking each join, storing nothing: {reference:,.0f} joins/s")
    r = await relay_figures(args)
    print(f"  chatrelay Join: {r['rate']:,.0f} joins/s")
    print(f"  ratio chatrelay / reference: {r['rate'] / reference:.2f}")
    joined = args.joins + args.samples
    top = cpu.ceiling(r["cpu"], joined)
    print(f"  CPU a join, reference: {cpu.per_operation(reference_cpu, args.joins)}")
    print(f"  CPU a join, chatrelay: {cpu.per_operation(r['cpu'], joined)}")
    print(f"  ceiling, all {cpu.cores()} cores busy at that cost: reference "
          f"{cpu.ceiling(reference_cpu, args.joins):,.0f} joins/s, chatrelay {top:,.0f} ({top / reference:.2f} of the reference)")
    show("resolve + join + first delivery at 10 joins/s", r["calm"])
    show("the same during the full-rate joins", r["loaded"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--joins", type=int, default=10_000)
    parser.add_argument("--members-before", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--samples", type=int, default=50)
    parsed = parser.parse_args()
    if not (100 <= parsed.joins <= 1_000_000 and 0 <= parsed.members_before <= 1_000_000
            and 1 <= parsed.concurrency <= 1000 and 1 <= parsed.samples <= 10_000):
        parser.error("--joins 100..1000000, --members-before 0..1000000, --concurrency 1..1000, --samples 1..10000")
    asyncio.run(main(parsed))
