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
process of its own (`ChannelReference`, below), whose Join checks each request as the
relay does (its signature, the joining key, the group and its address) and answers it
accepted, storing nothing.

Latency: a new member resolves the channel's link, joins and opens its stream, until the
channel's post arrives (`client.join`, `client.follow`, over one connection in
`client.one_member`, as a client app that streams what it joined), `--samples` times:
paced at 10 joins/s with nothing else going on, back to back, then during the full-rate
joins. Its reference, paced and back to back: the same client code joining a channel
whose one relay is that server (the link data and the post in memory, each call checked
as a relay checks it, nothing stored). On a machine where a pause makes the next
milliseconds of any process slower, the paced reference shows that floor.

CPU a join, by process (bench/cpu.py), over the reference's joins and over the relay's
full-rate joins (the latency samples taken meanwhile counted as joins too), and the rate
at which that cost would keep every core busy: the ceiling of each on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from types import SimpleNamespace

import cpu
from reference import spawned
from members import add_members, join_many, join_requests, join_to_first_delivery, members_profile, percentile

from nacl.signing import SigningKey

from chatrelay import client, group, links, members, tls
from chatrelay import envelope as env
from chatrelay.cluster.harness import serve_relay_service
from chatrelay.cluster.servicer import abort, guard, peek
from chatrelay.connection import RelayClient
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.group import GroupKind
from chatrelay.v1 import core_pb2, relay_pb2, relay_pb2_grpc

PACE_S = 0.1  # 10 joins/s
REFERENCE_ADDRESS = "reference-address"  # the group address of the reference's channel


class ChannelReference(relay_pb2_grpc.RelayServiceServicer):
    """One channel on a bare RelayService, the joins' reference: its link data and
    posts in memory; each call with the check a relay makes of it (the signature, the
    join's key and group, the reader's credential) and refused as a relay refuses it;
    nothing stored, no member looked up."""

    def __init__(self) -> None:
        self.links: dict[bytes, bytes] = {}
        self.posts: list[relay_pb2.Delivery] = []

    async def StoreLink(self, request, context):
        async def run():
            _, body = env.verify_message(request.envelope, env.Domain.LINK_STORE, relay_pb2.StoreLinkBody, "link store")
            self.links[body.lookup_id] = body.ciphertext
            return relay_pb2.StoreLinkResponse(created=True)
        return await guard(context, run())

    async def ResolveLink(self, request, context):
        async def run():
            if request.lookup_id not in self.links:
                raise ChatRelayError(Reason.UNKNOWN_ADDRESS, "no link data here for this link")
            return relay_pb2.ResolveLinkResponse(ciphertext=self.links[request.lookup_id])
        return await guard(context, run())

    async def Post(self, request, context):
        async def run():
            env.verify(request.envelope, env.Domain.POST)
            self.posts.append(relay_pb2.Delivery(
                seq=len(self.posts) + 1, post=request.envelope, message_id=members.message_id(request.envelope),
                relay_ts=int(time.time() * 1000)))
            return relay_pb2.PostAck(seq=len(self.posts))
        return await guard(context, run())

    async def Join(self, request, context):
        async def run():
            body = peek(request.envelope, core_pb2.JoinBody, env.Domain.JOIN, "join request")
            if members.verify_join(request.envelope, body.group_id).group_address != REFERENCE_ADDRESS:
                raise ChatRelayError(Reason.GROUP_MISMATCH, "join request is for another group address")
            return relay_pb2.JoinResponse(status=relay_pb2.JOIN_STATUS_ACCEPTED)
        return await guard(context, run())

    async def Subscribe(self, request, context):
        try:
            _, body = env.verify_message(
                request.credential, env.Domain.SUBSCRIBE, relay_pb2.SubscribeBody, "credential")
            if body.group_address != REFERENCE_ADDRESS:
                raise ChatRelayError(Reason.GROUP_MISMATCH, "credential is for another group address")
        except ChatRelayError as exc:
            await abort(context, exc)
            return
        old = self.posts[request.since_seq:]
        if old:
            yield relay_pb2.DeliveryBatch(deliveries=old, last_seq=old[-1].seq)
        await asyncio.Event().wait()  # open until the reader goes


def run_channel_reference(port_queue) -> None:
    serve_relay_service(ChannelReference(), port_queue)


async def open_reference_channel(target: str) -> str:
    """A new channel whose one relay is the ChannelReference at `target`: its link data
    and a welcome post stored there as an owner stores them; its link."""
    pin, address = tls.split_target(target)
    secrets, signed = group.create_group(GroupKind.CHANNEL, "Reference")
    identity = SigningKey.generate()
    relay = links.relay_link(identity, "reference", [address], pin)
    refs = [core_pb2.RelayRef(relay_key=bytes(identity.verify_key), relay_link=str(relay),
                              group_address=REFERENCE_ADDRESS)]
    profile = group.next_version(secrets.owner_key, group.verify_profile(signed), relays=refs)
    bundle = links.group_link(secrets, profile, [address], pins=[pin])
    async with RelayClient(target) as c:
        await c.store_link(secrets.owner_key, bundle)
        await c.post(REFERENCE_ADDRESS, members.sign_post(secrets.owner_key, secrets.group_id, b"welcome"))
    return str(bundle.link)


async def reference_latency(samples: int) -> tuple[list[float], list[float]]:
    """The samples, paced and back to back, joining a channel on a ChannelReference with
    the same client code as the relay's samples."""
    async with spawned(run_channel_reference) as target:
        owned = SimpleNamespace(link=await open_reference_channel(target))
        return await paced(owned, samples), await paced(owned, samples, 0.0)


async def reference_rate(count: int, concurrency: int) -> tuple[float, dict[str, float]]:
    """(joins/s, CPU seconds by process over them)."""
    secrets, signed = group.create_group(GroupKind.CHANNEL, "Reference")
    intake_key = group.verify_profile(signed).profile.intake_key
    meter = cpu.Meter(children="reference server")
    async with spawned(run_channel_reference) as target:
        made = join_requests(secrets.group_id, REFERENCE_ADDRESS, intake_key, count)
        meter.start()
        rate = await join_many(target, secrets.group_id, REFERENCE_ADDRESS, intake_key, count, concurrency, made)
        return rate, meter.stop()


async def paced(owned, samples: int, pace_s: float = PACE_S) -> list[float]:
    """Join-to-first-delivery latencies, one join starting every `pace_s` (or at once after
    one that took longer; 0: back to back)."""
    out = []
    start = time.perf_counter()
    for i in range(samples):
        await asyncio.sleep(max(0.0, start + i * pace_s - time.perf_counter()))
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
        warm = await paced(owned, args.samples, 0.0)
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
    return {"rate": rate, "calm": calm, "warm": warm, "loaded": loaded, "cpu": used}


def show(label: str, values: list[float]) -> None:
    print(f"  {label}: p50 {1000 * statistics.median(values):7.1f} ms, p99 {1000 * percentile(values, 0.99):7.1f} ms")


async def main(args) -> None:
    print(f"joins: {args.joins} members joining one channel, {args.concurrency} at a time; "
          f"{args.members_before} members in it before")
    reference, reference_cpu = await reference_rate(args.joins, args.concurrency)
    print(f"  reference, one gRPC hop checking each join, storing nothing: {reference:,.0f} joins/s")
    calm_reference, warm_reference = await reference_latency(args.samples)
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
    show("the same, the reference (one grpc.aio server: the checks, nothing stored)", calm_reference)
    print(f"  ratio chatrelay / reference at 10 joins/s, p50: "
          f"{statistics.median(r['calm']) / statistics.median(calm_reference):.2f}")
    show("the same back to back (no pause between joins), chatrelay", r["warm"])
    show("the same back to back, the reference", warm_reference)
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
