"""Subscribers: N subscribers of one channel (default 100,000), their streams spread over
several client processes (bench/subscriber_procs.py), against a bare grpc.aio server
measured in the same run with the same client processes.

1. The relay runs as `chatrelay up` does (local Ray on loopback, two shards, the gateway,
   the embedded registry and store), plaintext on a fixed loopback port, as the baseline.
   The channel's owner posts once; N members join through the Join call.
2. Every subscriber opens its stream from the start: the time until all have the first
   post, and the gateway's memory before and after, per open stream.
3. The owner posts `--posts` posts, each awaiting its ack: deliveries/s until every
   subscriber has the last.
4. The reconnect storm: the gateway is killed (Ray restarts it and the relay's supervisor
   has it serve again); the owner posts once, retrying until it is acked. The time from
   the kill until every subscriber has that post (each stream back, resumed after its
   last post), then `--posts` more, and every subscriber's count: nothing lost, nothing
   repeated. The storm's CPU, by process role a stream (bench/cpu.py), and how busy it
   kept the machine's cores: the subscribers' processes share them with the server.

The baseline is a grpc.aio server keeping the posts in a list (no checks, nothing
stored), the storm its process killed and started again on the same port. Each client
stream behaves as the SDK's `follow` (its reconnect backoff, its credential shown again
while fresh); the SDK opens a connection per stream, these share one per
`--per-connection` streams.
The client processes run CLIENT_NICE steps of niceness below the server they measure
(real subscribers are on other machines; here they share two cores with it, and Ray runs
the relay's processes at 15: clients at 0 starved the gateway they measured).

    python bench/subscribers.py [--subscribers 100000] [--processes 4] [--posts 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import multiprocessing
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import grpc  # noqa: E402
import psutil  # noqa: E402
from nacl.signing import SigningKey  # noqa: E402

from chatrelay import client, connection, group, members  # noqa: E402
from chatrelay.connection import retryable  # noqa: E402
from chatrelay.group import GroupKind  # noqa: E402
from chatrelay.members import MemberIdentity  # noqa: E402
from chatrelay.retry import Backoff  # noqa: E402
from chatrelay.state import unb64  # noqa: E402
from chatrelay.v1 import relay_pb2, relay_pb2_grpc  # noqa: E402
import cpu  # noqa: E402
from members import join_many, members_profile  # noqa: E402
from reference import run_bare_server, spawned  # noqa: E402
from subscriber_procs import run_subscribers  # noqa: E402

COMING_BACK = Backoff(first_s=0.05, max_s=0.5, within_s=120.0)
CLIENT_NICE = 4  # the client processes' niceness above the server's
STOP_S = 30
IDLE_S = 10.0  # how long the server's CPU is watched while every stream is open and no post comes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Subscribers:
    """The client processes, each with its slice of the subscribers' keys."""

    def __init__(self, target: str, address: str, seeds: list[bytes], processes: int, per_connection: int,
                 nice: int) -> None:
        spawn = multiprocessing.get_context("spawn")
        self.pipes, self.procs = [], []
        share = -(-len(seeds) // processes)
        for p in range(processes):
            ours, theirs = spawn.Pipe()
            proc = spawn.Process(target=run_subscribers, daemon=True,
                                 args=(theirs, target, address, seeds[p * share:(p + 1) * share], per_connection, True, nice))
            proc.start()
            self.pipes.append(ours)
            self.procs.append(proc)

    async def until(self, seq: int) -> tuple[float, dict]:
        """When the last subscriber had `seq` (time.monotonic()), and their figures summed."""
        for pipe in self.pipes:
            pipe.send(("until", seq))
        answers = [await asyncio.to_thread(pipe.recv) for pipe in self.pipes]
        total: dict = {"failures": {}}
        for _, _, figures in answers:
            for k, v in figures.items():
                if k == "failures":
                    for reason, n in v.items():
                        total["failures"][reason] = total["failures"].get(reason, 0) + n
                else:
                    total[k] = total.get(k, 0) + v
        if any(kind != "reached" for kind, _, _ in answers):
            print(f"  not every subscriber had post {seq} in time: {total}", flush=True)
            raise RuntimeError(f"not every subscriber had post {seq} in time")
        return max(when for _, when, _ in answers), total

    def stop(self) -> None:
        for pipe, proc in zip(self.pipes, self.procs):
            with contextlib.suppress(OSError):
                pipe.send(("stop",))
            proc.join(STOP_S)
            if proc.is_alive():
                proc.terminate()


async def measure(name: str, poster, restart, target: str, address: str, seeds: list[bytes], args,
                  nice: int, memory=None, cpu_used=None, server: str = "children") -> dict:
    """Steps 2 to 4 against one server; `poster(i)` posts and returns the seq acked,
    `restart()` kills the server (it comes back by itself or is started again); the
    client processes run at niceness `nice`; `memory()` the server's resident bytes and
    `cpu_used()` its CPU seconds so far, where known. The storm's CPU is metered by role
    (bench/cpu.py): the client processes as "subscribers", this one as "poster", and
    `server` the role of processes of this benchmark's own that are not Ray's (a
    reference server)."""
    n = len(seeds)
    out: dict = {}
    before = await memory() if memory else 0
    began = time.monotonic()
    subs = Subscribers(target, address, seeds, args.processes, args.per_connection, nice)
    try:
        opened_at, _ = await subs.until(1)
        out["open_s"] = opened_at - began
        print(f"    {name}: {n} streams open in {out['open_s']:.1f} s", file=sys.stderr)
        if memory:
            out["per_stream"] = (await memory() - before) / n
        if cpu_used:
            used, began_idle = cpu_used(), time.monotonic()
            await asyncio.sleep(IDLE_S)
            out["idle_cpu"] = (cpu_used() - used) / (time.monotonic() - began_idle)
        start = time.monotonic()
        for i in range(args.posts):
            seq = await poster(i)
        done_at, figures = await subs.until(seq)
        out["rate"] = n * args.posts / (done_at - start)
        roles = {os.getpid(): "poster", **{proc.pid: "subscribers" for proc in subs.procs}}
        meter = cpu.Meter(children=server, named=roles)
        meter.start()
        killed = time.monotonic()
        await restart()
        seq = await poster(-1)
        out["serving_s"] = time.monotonic() - killed
        back_at, figures = await subs.until(seq)
        out["storm_cpu"] = meter.stop()  # read once every stream is back: the clients' last work is in it
        out["back_s"] = back_at - killed
        print(f"    {name}: every stream back {out['back_s']:.1f} s after the kill", file=sys.stderr)
        for i in range(args.posts):
            seq = await poster(i)
        _, out["figures"] = await subs.until(seq)
        out["last_seq"] = seq
    finally:
        await asyncio.to_thread(subs.stop)
    return out


def cpu_seconds(pid: int) -> float:
    """The CPU time a process used so far (user and system)."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


async def gateway_memory(relay) -> int:
    import ray

    await asyncio.sleep(2.0)
    await asyncio.to_thread(ray.get, relay.gateway.__ray_call__.remote(lambda self: gc.collect()))
    return (await asyncio.to_thread(ray.get, relay.gateway.stats.remote())).process.rss_bytes


async def relay_figures(args, payload: bytes) -> dict:
    import ray

    from chatrelay.cluster import harness, up

    connection.set_insecure(True)
    relay = await asyncio.to_thread(harness.start_relay, insecure=True, listen=f"127.0.0.1:{free_port()}")
    try:
        owned = await client.create_group([relay.link], "Subscribers", GroupKind.CHANNEL)
        await client.post(owned, "welcome")  # seq 1: every stream's first
        gid, address = bytes.fromhex(owned.group_id), owned.relays[0].address
        intake_key = group.verify_profile(members_profile(owned)).profile.intake_key
        identities = [MemberIdentity.generate() for _ in range(args.subscribers)]
        made = [members.join_request(m, gid, address, intake_key, f"s{i}") for i, m in enumerate(identities)]
        print(f"  relay up at {relay.target}; {args.subscribers} members joining", file=sys.stderr)
        joins = await join_many(relay.target, gid, address, intake_key, len(made), args.concurrency, made)
        print(f"    {joins:,.0f} joins/s", file=sys.stderr)
        owner = SigningKey(unb64(owned.owner_seed))
        async with client.RelayClient(relay.target) as c:
            async def poster(i):
                envelope = members.sign_post(owner, gid, payload)  # signed once: a retry is the same post
                return (await COMING_BACK.run(lambda: c.post(address, envelope), retryable)).seq

            async def restart():
                await asyncio.to_thread(ray.kill, relay.gateway, no_restart=False)

            gateway = await asyncio.to_thread(ray.get, relay.gateway.stats.remote())
            return await measure("chatrelay", poster, restart, relay.target, address, [m.sign_seed for m in identities],
                                 args, min(19, os.getpriority(os.PRIO_PROCESS, gateway.process.pid) + CLIENT_NICE),
                                 lambda: gateway_memory(relay), lambda: cpu_seconds(gateway.process.pid))
    finally:
        await asyncio.to_thread(up.stop, relay, ray_shutdown=False)


async def bare_figures(args, payload: bytes) -> dict:
    port = free_port()
    target = f"127.0.0.1:{port}"
    owner = SigningKey.generate()
    servers = contextlib.AsyncExitStack()
    await servers.enter_async_context(spawned(run_bare_server, port, 1))
    channel = grpc.aio.insecure_channel(target)
    stub = relay_pb2_grpc.RelayServiceStub(channel)
    last = [0]

    async def poster(i):
        envelope = members.sign_post(owner, bytes(32), payload)
        ack = await COMING_BACK.run(lambda: stub.Post(relay_pb2.PostRequest(group_address="x", envelope=envelope)),
                                    lambda exc: isinstance(exc, grpc.aio.AioRpcError))
        last[0] = ack.seq
        return ack.seq

    async def restart():
        await servers.aclose()  # the process killed
        await servers.enter_async_context(spawned(run_bare_server, port, last[0] + 1))

    try:
        await poster(0)  # seq 1
        seeds = [bytes(SigningKey.generate()) for _ in range(args.subscribers)]
        return await measure("bare grpc.aio", poster, restart, target, "x", seeds, args,
                             min(19, os.nice(0) + CLIENT_NICE), server="bare server")
    finally:
        await channel.close()
        await servers.aclose()


def show(name: str, r: dict) -> None:
    f = r["figures"]
    print(f"  {name}: {r['rate']:,.0f} deliveries/s; streams open in {r['open_s']:.1f} s; after the kill, "
          f"serving in {r['serving_s']:.1f} s, every stream back in {r['back_s']:.1f} s")
    print(f"    posts 1..{r['last_seq']}: {f['got']:,} received, {f['lost']} lost, {f['repeated']} repeated, "
          f"{f['gave_up']} streams gave up")
    used, n = r["storm_cpu"], f["subscribers"]
    print(f"    CPU in the storm, a stream: {cpu.per_operation(used, n)}; {sum(used.values()):.1f} s in all, "
          f"{sum(used.values()) / (cpu.cores() * r['back_s']):.0%} of the {cpu.cores()} cores over the "
          f"{r['back_s']:.1f} s")
    worst = sorted(f["failures"].items(), key=lambda kv: -kv[1])[:3]
    if worst:
        print(f"    stream failures, most common: {worst}")


async def main(args) -> int:
    payload = os.urandom(args.payload // 2).hex().encode()[: args.payload]
    print(f"subscribers: {args.subscribers} of one channel over {args.processes} client processes, "
          f"{args.posts} posts of {args.payload} bytes, then a reconnect storm and {args.posts} more")
    bare = await bare_figures(args, payload)
    show("bare grpc.aio", bare)
    relay = await relay_figures(args, payload)
    show("chatrelay", relay)
    print(f"  memory per open stream (the gateway's resident bytes): {relay['per_stream'] / 1024:.1f} KiB")
    print(f"  the gateway's CPU while every stream is open and idle: {relay['idle_cpu']:.2f} s a second")
    print(f"  ratio chatrelay / bare grpc.aio, deliveries/s: {relay['rate'] / bare['rate']:.2f}")
    print(f"  ratio chatrelay / bare grpc.aio, every stream back: {relay['back_s'] / bare['back_s']:.2f}")
    expected = args.subscribers * relay["last_seq"]
    whole = relay["figures"]["got"] == expected and not relay["figures"]["lost"] and not relay["figures"]["repeated"]
    print(f"  every post delivered to every subscriber once: {'yes' if whole else 'NO'} "
          f"({relay['figures']['got']:,} of {expected:,})")
    return 0 if whole else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--processes", type=int, default=4, help="client processes the streams are spread over")
    parser.add_argument("--per-connection", type=int, default=500, help="streams sharing one client connection")
    parser.add_argument("--posts", type=int, default=20)
    parser.add_argument("--payload", type=int, default=200, help="post size in bytes")
    parser.add_argument("--concurrency", type=int, default=64, help="joins sent at a time")
    parsed = parser.parse_args()
    if not (100 <= parsed.subscribers <= 200_000 and 1 <= parsed.processes <= 16 and 1 <= parsed.posts <= 1000
            and 10 <= parsed.per_connection <= 16_384 and 10 <= parsed.payload <= 60_000
            and 1 <= parsed.concurrency <= 1000):
        parser.error("--subscribers 100..200000, --processes 1..16, --posts 1..1000, --per-connection 10..16384, "
                     "--payload 10..60000, --concurrency 1..1000")
    sys.exit(asyncio.run(main(parsed)))
