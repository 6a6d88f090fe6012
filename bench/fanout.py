"""Fan-out: deliveries per second to N subscribers of one channel, against a bare
grpc.aio server-streaming baseline and nats-server (bench/nats_peer.py: core pub/sub, N
subscriptions over 10 nats-py connections, the same signed posts' bytes, the publisher
paced by a round trip after each message) run in the same invocation.

Both sides use the same client (N streams in one asyncio loop of this process), the
same payloads (signed posts) and the same pacing (one poster awaiting each ack). The
relay runs as `chatrelay up` does (local Ray on loopback, shards, gateway, embedded
registry and log); the baseline is a grpc.aio server in a child process that keeps the
posts in memory and streams them to every subscriber.

The ceiling where a post goes out alone (few subscribers): the poster awaits each ack, so
no more than one post per ack round trip goes out, whatever the fan-out does; the relay's
round trip is timed alone (ACK_SAMPLES posts, no stream open yet) and subscribers / that
time printed beside the peer.

Each side's time runs from the first post to the last subscriber's last post, so it
holds the time the last post takes to reach every subscriber after its ack, printed
beside (at 1,000 subscribers about a tenth of a second for the relay, whose streams are
woken one after another, and a few milliseconds for nats-server). That is why the
default is 500 posts: over 100 (under a second at 1,000 subscribers) it was a fifth of
the relay's time, and the figure more its delivery latency than its throughput.

With --tls the relay runs twice, over plaintext (`--insecure` on both sides, as the
baseline) and over TLS pinned in its link (the default of `chatrelay up`), and the
ratio TLS / plaintext is printed too.

With --gateways N the relay runs N gateway processes on its node, sharing its port (the
kernel spreads the subscribers' connections, one for each 100 streams, over them), as
`chatrelay up --gateways N` does; 0 is one per CPU.

With --in-flight K the poster sends K posts, then awaits their K acks, and so on, and
the peer's publisher K messages, then a round trip (the default, 1, is the pacing above).
With --interval MS each post (or round of K) starts no sooner than MS after the one
before, on every side: a steady rate below what the relay can take, where what counts is
how long a post takes to reach the subscribers.

Each side prints, beside its rate, how long after its ack the last post reached every
subscriber, and each post's delivery (from its sending to its arrival at every 7th
stream: median and 99th percentile). The relay's tails wait up to --fanout-linger
between wakes of a busy group's waiting streams (cluster/tail.py), which sets its
latency under load; `--fanout-linger 0` runs the relay without that wait.

    python bench/fanout.py [--subscribers 1000] [--posts 500] [--tls] [--gateways 1] [--in-flight 1]
                           [--interval MS] [--fanout-linger SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import statistics
import sys
import time

import grpc

from chatrelay import client, connection, members
from chatrelay import envelope as env
from chatrelay.group import GroupKind
from chatrelay.settings import DEFAULTS, MAX_GATEWAYS
from chatrelay.state import unb64
from chatrelay.v1 import relay_pb2, relay_pb2_grpc
from nacl.signing import SigningKey
from isolation import percentile
from nats_peer import Pace, core_fanout
from reference import run_bare_server, spawned

DEADLINE_S = 600
WARMUP_EVERY_S = 2.0
OPEN_BATCH = 200
STREAM_ATTEMPTS = 20
ACK_SAMPLES = 50  # posts timed alone, one after another, for the ceiling
SAMPLE_EVERY = 7  # every 7th stream notes when each post reaches it, for the delivery latency (7: prime
# to the connections' count, 10 at 1,000 streams, so the sampled streams are on every connection)


# ---- the measurement, the same for both --------------------------------------------------


async def measure(target: str, credentials: list, post_fn, posts: int,
                  in_flight: int = 1, when_open=None,
                  interval: float = 0.0) -> tuple[float, int, float, int, list[float]]:
    """Open one stream per credential, post `posts` times (`in_flight` at once, then their
    acks awaited, and so on; with `interval`, each round of them no sooner than `interval`
    seconds after the one before began), wait until every stream has every post. Returns (seconds
    from first post to last delivery, deliveries counted, seconds from the last post's ack
    to its last delivery, stream messages that carried them, seconds from each post's
    sending to its arrival at every SAMPLE_EVERY-th stream).

    Streams open at their own pace (10,000 take a while), and the baseline keeps no
    history, so warm-up posts go first, one every WARMUP_EVERY_S, until every stream
    has had one; only posts after the warm-up are counted. `when_open()` is awaited
    then, every stream open.
    """
    channels = [await connection.open_channel(target) for _ in range(max(1, len(credentials) // 100))]
    n = len(credentials)
    last_seen = [0] * n
    counted = [0] * n
    messages = [0]  # stream messages that carried counted posts
    sent: dict[int, float] = {}  # seq: when the measured post was sent
    arrived: list[tuple[int, int, float]] = []  # (first seq, last seq, when) of each message at the sampled streams
    first_counted = [0]  # seq of the first measured post, once the warm-up is over
    final_seq = [0]  # seq of the last measured post, once it is acked
    warm = asyncio.Event()
    done = asyncio.Event()
    waiting_warm = [n]

    def check_done() -> None:
        if final_seq[0] and all(s >= final_seq[0] for s in last_seen):
            done.set()

    failures: collections.Counter = collections.Counter()

    async def subscriber(i: int, credential) -> None:
        """One stream; a stream that fails is opened again after its last post, as a
        client would, and the failure is counted and reported."""
        stub = relay_pb2_grpc.RelayServiceStub(channels[i % len(channels)])
        for _ in range(STREAM_ATTEMPTS):
            try:
                request = relay_pb2.SubscribeRequest(credential=credential, since_seq=last_seen[i])
                async for batch in stub.Subscribe(request):
                    if last_seen[i] == 0:
                        waiting_warm[0] -= 1
                        if waiting_warm[0] == 0:
                            warm.set()
                    if first_counted[0] and batch.deliveries[-1].seq >= first_counted[0]:
                        messages[0] += 1  # seqs rise through a batch: most are counted whole, at no cost a post
                        counted[i] += len(batch.deliveries) if batch.deliveries[0].seq >= first_counted[0] else sum(
                            1 for d in batch.deliveries if d.seq >= first_counted[0])
                        if i % SAMPLE_EVERY == 0:  # a step a message, not a post: seqs rise through it
                            arrived.append((batch.deliveries[0].seq, batch.deliveries[-1].seq, time.perf_counter()))
                    last_seen[i] = batch.deliveries[-1].seq
                    if final_seq[0] and last_seen[i] >= final_seq[0]:
                        check_done()
                        return
            except grpc.aio.AioRpcError as exc:
                failures[f"{exc.code().name}: {exc.details()}"] += 1
                await asyncio.sleep(1.0)

    tasks = []
    for i, c in enumerate(credentials):  # a few hundred at a time: a burst of 10,000 call
        tasks.append(asyncio.create_task(subscriber(i, c)))  # starts gets them cancelled
        if i % OPEN_BATCH == OPEN_BATCH - 1:
            await asyncio.sleep(0.2)
    warm_deadline = time.monotonic() + DEADLINE_S
    while True:  # one warm-up post at least: the streams may all be open on the history already
        if time.monotonic() > warm_deadline:
            raise TimeoutError(f"only {n - waiting_warm[0]} of {n} streams opened")
        warm_seq = await post_fn(-1)
        try:
            await asyncio.wait_for(warm.wait(), WARMUP_EVERY_S)
            break
        except asyncio.TimeoutError:
            print(f"    {n - waiting_warm[0]}/{n} streams open; failed streams: {dict(failures)}", file=sys.stderr)
    await asyncio.sleep(0.5)  # the last warm-up posts reach everyone
    if when_open is not None:
        await when_open()
    first_counted[0] = warm_seq + 1

    async def timed(i: int) -> int:
        at = time.perf_counter()
        seq = await post_fn(i)
        sent[seq] = at
        return seq
    pace = Pace(interval)
    start = time.perf_counter()
    for first in range(0, posts, in_flight):
        await pace.next()
        seq = max(await asyncio.gather(*(timed(i) for i in range(first, min(posts, first + in_flight)))))
    final_seq[0] = seq
    acked = time.perf_counter()
    check_done()
    await asyncio.wait_for(done.wait(), DEADLINE_S)
    end = time.perf_counter()
    if failures:
        print(f"    streams that failed and were opened again: {dict(failures)}", file=sys.stderr)
    for t in tasks:
        t.cancel()
    for ch in channels:
        await ch.close()
    latencies = [at - sent[seq] for first, last, at in arrived for seq in range(first, last + 1) if seq in sent]
    return end - start, sum(counted), end - acked, messages[0], latencies


async def bench_relay(n: int, posts: int, payload: bytes, tls: bool = False, gateways: int = 1, in_flight: int = 1,
                      linger: float | None = None, interval: float = 0.0) -> tuple[float, int, float, int, list, float]:
    """(seconds, deliveries, last post's delivery, messages, latencies) as `measure` has them, and the median
    seconds of a post's ack alone, before any stream is open."""
    from chatrelay.cluster import harness, up

    connection.set_insecure(not tls)
    relay = await asyncio.to_thread(harness.start_relay, insecure=not tls, gateways=gateways,
                                    **({} if linger is None else {"fanout_linger_s": linger}))
    try:
        owned = await client.create_group([relay.link], "Bench", GroupKind.CHANNEL)
        owner = SigningKey(unb64(owned.owner_seed))
        group_id = bytes.fromhex(owned.group_id)
        address = owned.relays[0].address
        async with client.RelayClient(relay.target) as c:
            acks = []
            for _ in range(ACK_SAMPLES + 5):  # the first five open the connection and warm up
                envelope = members.sign_post(owner, group_id, payload)
                sent = time.perf_counter()
                await c.post(address, envelope)
                acks.append(time.perf_counter() - sent)
            ack_alone = statistics.median(acks[5:])
            print(f"  relay up at {relay.target}; joining {n} members", file=sys.stderr)
            joined = []
            for start in range(0, n, 100):
                joined += await asyncio.gather(*(client.join(owned.link, f"m{i}") for i in range(start, min(n, start + 100))))
            credentials = [client.credential(SigningKey(unb64(m.sign_seed)), m.relays[0].address) for m in joined]

            async def post(i):
                return (await c.post(address, members.sign_post(owner, group_id, payload))).seq
            async def spread():  # how the kernel spread the connections, and their streams, over the gateways
                import ray

                if len(relay.gateways) > 1:
                    stats = await asyncio.to_thread(ray.get, [g.stats.remote() for g in relay.gateways.values()])
                    print(f"  streams on each gateway: {', '.join(str(s.subscribers) for s in stats)}")
            return (*await measure(relay.target, credentials, post, posts, in_flight, spread, interval), ack_alone)
    finally:
        await asyncio.to_thread(up.stop, relay)


async def bench_baseline(n: int, posts: int, payload: bytes, in_flight: int = 1,
                         interval: float = 0.0) -> tuple[float, int, float, int, list]:
    connection.set_insecure(True)
    async with spawned(run_bare_server, 0, 1) as port:
        target = f"127.0.0.1:{port}"
        owner = SigningKey.generate()
        credential = env.sign_message(owner, env.Domain.SUBSCRIBE, relay_pb2.SubscribeBody(group_address="x"))
        channel = grpc.aio.insecure_channel(target)
        stub = relay_pb2_grpc.RelayServiceStub(channel)

        async def post(i):
            return (await stub.Post(relay_pb2.PostRequest(group_address="x", envelope=members.sign_post(owner, bytes(32), payload)))).seq

        try:
            return await measure(target, [credential] * n, post, posts, in_flight, interval=interval)
        finally:
            await channel.close()


def last_post(seconds: float, latencies: list[float]) -> str:
    """The last post's delivery after its ack, and each post's from its sending to a
    subscriber (every SAMPLE_EVERY-th stream), median and 99th percentile."""
    p50, p99 = (1000 * percentile(latencies, q) for q in (0.5, 0.99))
    return (f" (the last post at every subscriber {1000 * seconds:,.0f} ms after its ack;"
            f" a post's delivery {p50:,.0f} ms median, {p99:,.0f} ms p99)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--posts", type=int, default=500)
    parser.add_argument("--payload", type=int, default=200, help="post size in bytes")
    parser.add_argument("--tls", action="store_true", help="also run the relay over TLS, and compare")
    parser.add_argument("--gateways", type=int, default=1, help="the relay's gateways on its node, 0 = one per CPU")
    parser.add_argument("--fanout-linger", type=float, default=None, metavar="SECONDS",
                        help=f"the relay's --fanout-linger (default: the relay's own, {DEFAULTS.fanout_linger_s:g})")
    parser.add_argument("--interval", type=float, default=0.0, metavar="MS",
                        help="milliseconds from one post (or round of --in-flight posts) to the next at least; "
                             "0 = as soon as the acks are back")
    parser.add_argument("--in-flight", type=int, default=1,
                        help="posts the poster sends before awaiting their acks (nats: before a round trip)")
    args = parser.parse_args()
    if not (1 <= args.subscribers <= 20_000 and 1 <= args.posts <= 10_000 and 0 <= args.gateways <= MAX_GATEWAYS
            and 1 <= args.in_flight <= 64 and (args.fanout_linger is None or 0 <= args.fanout_linger <= 10)
            and 0 <= args.interval <= 10_000):
        parser.error(f"--subscribers 1..20000, --posts 1..10000, --gateways 0..{MAX_GATEWAYS}, --in-flight 1..64, "
                     "--fanout-linger 0..10, --interval 0..10000")
    interval = args.interval / 1000
    payload = os.urandom(args.payload // 2).hex().encode()[: args.payload]

    print(f"fan-out: {args.subscribers} subscribers, {args.posts} posts of {args.payload} bytes"
          + (f", {args.in_flight} in flight at a time" if args.in_flight > 1 else "")
          + (f", one every {args.interval:g} ms at most" if args.interval else ""))
    post_bytes = members.sign_post(SigningKey.generate(), bytes(32), payload).SerializeToString()
    n_time, n_count, n_last, n_latencies = asyncio.run(
        core_fanout(args.subscribers, args.posts, post_bytes, in_flight=args.in_flight, interval=interval,
                    sample_every=SAMPLE_EVERY))
    n_rate = n_count / n_time
    print(f"  nats-server core (Go), nats-py subscribers: {n_count} deliveries in {n_time:.2f} s = {n_rate:,.0f} deliveries/s"
          f"{last_post(n_last, n_latencies)}")
    b_time, b_count, b_last, _, b_latencies = asyncio.run(
        bench_baseline(args.subscribers, args.posts, payload, args.in_flight, interval))
    b_rate = b_count / b_time
    print(f"  bare grpc.aio streaming: {b_count} deliveries in {b_time:.2f} s = {b_rate:,.0f} deliveries/s"
          f"{last_post(b_last, b_latencies)}")
    r_time, r_count, r_last, r_messages, r_latencies, ack_alone = asyncio.run(
        bench_relay(args.subscribers, args.posts, payload, gateways=args.gateways, in_flight=args.in_flight,
                    linger=args.fanout_linger, interval=interval))
    r_rate = r_count / r_time
    gateways = "" if args.gateways == 1 else f", {args.gateways} gateways" if args.gateways else ", a gateway per CPU"
    if args.fanout_linger is not None:
        gateways += f", --fanout-linger {args.fanout_linger:g}"
    print(f"  chatrelay, plaintext{gateways}:     {r_count} deliveries in {r_time:.2f} s = {r_rate:,.0f} deliveries/s"
          f"{last_post(r_last, r_latencies)}; {r_count / max(1, r_messages):.1f} posts a stream message")
    print(f"  ratio chatrelay / bare grpc.aio: {r_rate / b_rate:.2f}")
    print(f"  ratio chatrelay / nats-server:   {r_rate / n_rate:.2f}")
    # One write a delivery, as bare grpc.aio makes them: what any Python gRPC server gets
    # where each post goes out alone (few subscribers, so no batching), against the peer.
    print(f"  ratio bare grpc.aio / nats-server: {b_rate / n_rate:.2f}")
    # However the fan-out goes, a poster awaiting each ack sends one post a round trip.
    top = args.subscribers / ack_alone
    if args.in_flight == 1:
        print(f"  ceiling, one poster awaiting each ack ({1000 * ack_alone:.1f} ms alone, no stream open): "
              f"{top:,.0f} deliveries/s ({top / n_rate:.2f} of nats-server)")
    if args.tls:
        t_time, t_count, *_ = asyncio.run(
            bench_relay(args.subscribers, args.posts, payload, tls=True, gateways=args.gateways,
                        in_flight=args.in_flight, linger=args.fanout_linger, interval=interval))
        t_rate = t_count / t_time
        print(f"  chatrelay over TLS:      {t_count} deliveries in {t_time:.2f} s = {t_rate:,.0f} deliveries/s")
        print(f"  ratio TLS / plaintext: {t_rate / r_rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
