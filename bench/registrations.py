"""Registrations per second on a relay whose registry is etcd, against raw `aetcd`
transactions of the same shape (create-if-absent of the group record, its address and
its placement) in the same run, on the same etcd.

The baseline runs before and after the relay (etcd's own rate drifts from one to the
other), and the ratio is against the mean of the two. For reference it also prints two
rates with no relay and no etcd, against a server in a process of its own: bare grpc.aio
RegisterGroup round trips answered with a canned response (what one Python gRPC hop
costs), and the same with the protocol's signature work on both sides (the client makes
and signs with a registration key and checks the grant; the server checks the three
signatures and signs the grant) but nothing stored.

Over that hop and over the relay's registrations it reads the CPU a registration costs
each process (bench/cpu.py), and the rate at which that cost would keep every core busy:
the ceiling of each on this machine, in the same run.

    python bench/registrations.py [--groups 2000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

import cpu  # noqa: E402
from chatrelay import client, group  # noqa: E402
from chatrelay.cluster.harness import EtcdServer  # noqa: E402
from reference import spawned  # noqa: E402
from chatrelay.group import GroupKind  # noqa: E402


async def bounded(n: int, concurrency: int, one, meter: cpu.Meter | None = None) -> float:
    """Seconds for `one(i)`, i < n, `concurrency` at a time; `meter` reads the CPU used."""
    semaphore = asyncio.Semaphore(concurrency)

    async def run(i):
        async with semaphore:
            await one(i)

    if meter is not None:
        meter.start()
    start = time.perf_counter()
    await asyncio.gather(*(run(i) for i in range(n)))
    elapsed = time.perf_counter() - start
    if meter is not None:
        meter.stop()
    return elapsed


async def raw_aetcd(url: str, n: int, concurrency: int, run: str) -> float:
    import aetcd

    from chatrelay.cluster.registry_etcd import parse_endpoint

    host, port = parse_endpoint(url)
    etcd = aetcd.Client(host=host, port=port)
    t = etcd.transactions

    async def one(i):
        key = b"/raw/%s/groups/%d" % (run.encode(), i)
        await etcd.transaction(
            compare=[t.create(key) == 0],
            success=[t.put(key, os.urandom(400)), t.put(b"/raw/%s/addresses/%d" % (run.encode(), i), b"x" * 64),
                     t.put(b"/raw/%s/placement/%d" % (run.encode(), i), b"0")],
            failure=[t.get(key)],
        )

    try:
        return await bounded(n, concurrency, one)
    finally:
        await etcd.close()


def run_canned_server(port_queue, answer: bytes, seed: bytes = b"") -> None:
    """A RelayService whose RegisterGroup answers `answer` to everything; with `seed`,
    one that checks each registration and answers a grant signed with that relay key,
    storing nothing. Over TLS, as a relay serves: it puts `PIN@127.0.0.1:PORT`."""
    from nacl.signing import SigningKey

    from chatrelay.actors.registration import Registrar, fresh_record, checked_registration
    from chatrelay.cluster.harness import serve_relay_service
    from chatrelay.v1 import relay_pb2, relay_pb2_grpc

    signer = Registrar(SigningKey(seed), registry=None) if seed else None

    class Canned(relay_pb2_grpc.RelayServiceServicer):
        async def RegisterGroup(self, request, context):
            if signer is None:
                return relay_pb2.RegisterGroupResponse.FromString(answer)
            body, profile = checked_registration(request.envelope)
            return signer.granted(fresh_record(body, profile))

    serve_relay_service(Canned(), port_queue)


async def bare_grpc(n: int, concurrency: int) -> float:
    """RegisterGroup requests of the real size, each answered with a grant of the real
    size; nothing is verified on either side."""
    from nacl.signing import SigningKey

    from chatrelay import envelope as env
    from chatrelay.v1 import relay_pb2, relay_pb2_grpc

    secrets, signed = group.create_group(GroupKind.GROUP, "g")
    key = SigningKey.generate()
    body = relay_pb2.RegisterGroupBody(profile=signed, registration_key=bytes(key.verify_key),
                                       nonce=os.urandom(16), timestamp=int(time.time()))
    request = relay_pb2.RegisterGroupRequest(envelope=env.sign_message(key, env.Domain.REGISTER, body))
    grant = relay_pb2.AddressGrant(group_id=secrets.group_id, group_address="a" * 22,
                                   relay_key=bytes(key.verify_key), registration_key=bytes(key.verify_key))
    answer = relay_pb2.RegisterGroupResponse(address=env.sign_message(key, env.Domain.ADDRESS, grant), state=1)
    async with spawned(run_canned_server, answer.SerializeToString()) as target:
        from chatrelay.connection import open_channel

        async with await open_channel(target) as channel:
            stub = relay_pb2_grpc.RelayServiceStub(channel)
            await stub.RegisterGroup(request)  # connected before the clock
            return await bounded(n, concurrency, lambda i: stub.RegisterGroup(request))


async def checked_no_storage(n: int, concurrency: int, meter: cpu.Meter) -> float:
    """`client.register` (a registration key made, signed, the grant checked) against a
    server that checks each registration and signs its grant, in a process of its own,
    with nothing stored: the protocol's signature work and one gRPC hop, nothing else."""
    from nacl.signing import SigningKey

    seed = os.urandom(32)
    info = client.RelayInfo(link=None, relay_key=bytes(SigningKey(seed).verify_key))
    made = [group.create_group(GroupKind.GROUP, f"g{i}") for i in range(n + 1)]  # keys before the clock
    async with spawned(run_canned_server, b"", seed) as target:
        channel = client.RelayClient(target)
        try:
            async def one(i):
                secrets, signed = made[i]
                await client.register(channel, info, signed, secrets.group_id)

            await one(n)  # connected before the clock
            return await bounded(n, concurrency, one, meter)
        finally:
            await channel.close()


async def relay_registrations(url: str, n: int, concurrency: int, meter: cpu.Meter) -> float:
    from chatrelay.cluster import harness, up

    relay = await asyncio.to_thread(harness.start_relay, etcd=url, **harness.NO_QUOTAS)
    try:
        info = await client.relay_info(relay.link)
        made = [group.create_group(GroupKind.GROUP, f"g{i}") for i in range(n)]  # keys before the clock
        channel = client.RelayClient(info.target)

        async def one(i):
            secrets, signed = made[i]
            await client.register(channel, info, signed, secrets.group_id)

        try:
            return await bounded(n, concurrency, one, meter)
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
    n, c = args.groups, args.concurrency
    bare = asyncio.run(bare_grpc(n, c))
    print(f"  reference, bare grpc.aio RegisterGroup round trips (canned answer): {n / bare:,.0f}/s ({bare:.2f} s)")
    checked_cpu, relay_cpu = cpu.Meter(children="reference server"), cpu.Meter()
    checked = asyncio.run(checked_no_storage(n, c, checked_cpu))
    print(f"  reference, the same with the signature work on both sides, nothing stored: {n / checked:,.0f}/s ({checked:.2f} s)")
    with EtcdServer(name="bench") as etcd:
        before = asyncio.run(raw_aetcd(etcd.url, n, c, "before"))
        print(f"  raw aetcd transactions, before: {n / before:,.0f}/s ({before:.2f} s)")
        mine = asyncio.run(relay_registrations(etcd.url, n, c, relay_cpu))
        rate = n / mine
        print(f"  chatrelay RegisterGroup: {rate:,.0f}/s ({mine:.2f} s)")
        after = asyncio.run(raw_aetcd(etcd.url, n, c, "after"))
        print(f"  raw aetcd transactions, after: {n / after:,.0f}/s ({after:.2f} s)")
    raw_rate = (n / before + n / after) / 2
    print(f"  ratio chatrelay / the signature work with nothing stored (issue 22's goal: 0.8): {rate / (n / checked):.2f}")
    print(f"  ratio chatrelay / raw aetcd (mean of before and after, {raw_rate:,.0f}/s): {rate / raw_rate:.2f}")
    top = cpu.ceiling(relay_cpu.used, n)
    print(f"  CPU a registration, the signature work with nothing stored: {cpu.per_operation(checked_cpu.used, n)}")
    print(f"  CPU a registration, chatrelay: {cpu.per_operation(relay_cpu.used, n)}")
    print(f"  ceiling, all {cpu.cores()} cores busy at that cost: the signature work {cpu.ceiling(checked_cpu.used, n):,.0f}/s, "
          f"chatrelay {top:,.0f}/s ({top / (n / checked):.2f} of the signature work's rate)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
