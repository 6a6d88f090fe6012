"""The client processes of bench/subscribers.py, each a slice of one channel's subscribers.

`run_subscribers` holds its subscribers' streams, several hundred to a connection. Each
stream resumes after its last post when it fails, as the SDK's `follow` does
(chatrelay/reader.py: its reconnect backoff or the relay's hint, its credential shown
again while fresh, at once when cut off for reading slowly); for each subscriber it
counts the posts received, lost (a seq skipped) and repeated. The parent sends ("until",
seq) and gets back ("reached", when, figures) once every stream has had that seq
(`time.monotonic()`, the same clock in every process here), or ("late", ...) at the
deadline; ("stop",) ends the process.
"""

from __future__ import annotations

import asyncio
import collections
import os
import sys
import time

import grpc
from nacl.signing import SigningKey

from chatrelay import connection
from chatrelay.checker import StreamCredential
from chatrelay.cluster.heap import HeapKeeper
from chatrelay.errors import Reason
from chatrelay.reader import RECONNECTS, reconnect_wait
from chatrelay.status import from_rpc_error
from chatrelay.v1 import relay_pb2, relay_pb2_grpc

OPEN_BATCH = 250  # streams started at a time, then a short pause
OPEN_PAUSE_S = 0.1
ATTEMPTS = 500  # a stream's tries, all told (each wait at most RECONNECTS' 2 s)
UNTIL_S = 600  # how long an ("until", seq) waits at most
PROGRESS_S = 15  # while waiting, how often it says how far it is
# A connection's own reconnects paced as the SDK's streams are (it opens a new one each time).
OPTIONS = [*connection.CHANNEL_OPTIONS, ("grpc.initial_reconnect_backoff_ms", 200),
           ("grpc.min_reconnect_backoff_ms", 200), ("grpc.max_reconnect_backoff_ms", 2000)]


class Subscriber:
    __slots__ = ("key", "last", "got", "lost", "repeated")

    def __init__(self, key: SigningKey) -> None:
        self.key = key
        self.last = 0
        self.got = self.lost = self.repeated = 0


class Slice:
    """This process's subscribers, and how many have reached the seq asked for."""

    def __init__(self, seeds: list[bytes]) -> None:
        self.subs = [Subscriber(SigningKey(s)) for s in seeds]
        self.target = 0
        self.reached = 0
        self.reached_at = 0.0
        self.event = asyncio.Event()
        self.failures: collections.Counter = collections.Counter()
        self.gave_up = 0

    def until(self, seq: int) -> None:
        self.target = seq
        self.reached = sum(1 for s in self.subs if s.last >= seq)
        self.event.clear()
        self._check()

    def advanced(self, before: int, after: int) -> None:
        if before < self.target <= after:
            self.reached += 1
            self._check()

    def _check(self) -> None:
        if self.reached == len(self.subs):
            self.reached_at = time.monotonic()
            self.event.set()

    def figures(self) -> dict:
        return {
            "subscribers": len(self.subs), "reached": self.reached,
            "got": sum(s.got for s in self.subs), "lost": sum(s.lost for s in self.subs),
            "repeated": sum(s.repeated for s in self.subs), "gave_up": self.gave_up,
            "failures": dict(self.failures),
        }


async def follow(sub: Subscriber, stub, address: str, state: Slice) -> None:
    waits = RECONNECTS.waits()
    shown = StreamCredential(sub.key, address)  # for the life of the stream, as the SDK's
    for _ in range(ATTEMPTS):
        try:
            request = relay_pb2.SubscribeRequest(credential=shown.current(), since_seq=sub.last)
            async for batch in stub.Subscribe(request):
                waits = RECONNECTS.waits()  # it streamed: the next reconnect waits little again
                before = sub.last
                for d in batch.deliveries:
                    if d.seq <= sub.last:
                        sub.repeated += 1
                        continue
                    sub.lost += d.seq - sub.last - 1
                    sub.last = d.seq
                    sub.got += 1
                state.advanced(before, sub.last)
        except grpc.aio.AioRpcError as exc:
            state.failures[f"{exc.code().name}: {exc.details()}"[:120]] += 1
            error = from_rpc_error(exc)
            if error.reason is Reason.BEHIND or shown.refused(error):
                continue  # cut off for reading slowly, or a credential shown again found too old: at once
            await asyncio.sleep(reconnect_wait(waits, error))  # as the SDK waits: its backoff, or the relay's hint
            continue
        await asyncio.sleep(next(waits))
    state.gave_up += 1


async def _serve(conn, target: str, address: str, seeds: list[bytes], per_channel: int, insecure: bool) -> None:
    connection.set_insecure(insecure)
    # One of these processes holds 25,000 subscribers' streams, as no real client does: its
    # collector walked them all again and again in the storm (40 % of the CPU of such a
    # process, 5.5 to 7.3 s of 14). Frozen, as a gateway's are (cluster/heap.py).
    keeper = HeapKeeper()
    keeper.start()
    state = Slice(seeds)
    channels = [await connection.open_channel(target, OPTIONS) for _ in range(-(-len(seeds) // per_channel))]
    tasks = []
    for i, sub in enumerate(state.subs):
        stub = relay_pb2_grpc.RelayServiceStub(channels[i // per_channel])
        tasks.append(asyncio.create_task(follow(sub, stub, address, state)))
        if i % OPEN_BATCH == OPEN_BATCH - 1:
            await asyncio.sleep(OPEN_PAUSE_S)
    try:
        while True:
            command = await asyncio.to_thread(conn.recv)
            if command[0] == "stop":
                return
            state.until(command[1])
            deadline = time.monotonic() + UNTIL_S
            while not state.event.is_set() and time.monotonic() < deadline:
                try:
                    await asyncio.wait_for(state.event.wait(), PROGRESS_S)
                except asyncio.TimeoutError:  # still waiting: say how far, and what fails
                    worst = state.failures.most_common(2)
                    print(f"      pid {os.getpid()}: {state.reached}/{len(state.subs)} have post {state.target}; "
                          f"stream failures so far {worst}", file=sys.stderr, flush=True)
            if state.event.is_set():
                conn.send(("reached", state.reached_at, state.figures()))
            else:
                conn.send(("late", time.monotonic(), state.figures()))
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for ch in channels:
            await ch.close()


def run_subscribers(conn, target: str, address: str, seeds: list[bytes], per_channel: int, insecure: bool,
                    nice: int) -> None:
    """`nice`: this process's niceness, set by the caller below the server's (clients on
    other machines take none of its CPU; Ray runs the relay's processes at 15)."""
    os.nice(nice - os.nice(0))
    asyncio.run(_serve(conn, target, address, seeds, per_channel, insecure))
