"""A benchmark's reference server, in a process of its own (spawned, so that nothing of
the benchmark's process goes with it): `serve(port_queue, *args)` puts where it serves on
the queue once it does. And the bare grpc.aio streaming server that the fan-out and
subscriber benchmarks measure the relay against."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing

import grpc

from chatrelay.v1 import relay_pb2, relay_pb2_grpc

START_S = 60
STOP_S = 10
# The gateway's bound on calls waiting for the loop (cluster/server.py's QUEUE_OPTIONS),
# spelled again so that a restarted bare server does not import the relay (and Ray).
QUEUE_OPTIONS = [
    ("grpc.server.max_pending_requests", 100_000),
    ("grpc.server.max_pending_requests_hard_limit", 200_000),
    ("grpc.server_max_unrequested_time_in_server", 120),
]


@contextlib.asynccontextmanager
async def spawned(serve, *args):
    """What the server put on its queue (its target or port), while it runs."""
    spawn = multiprocessing.get_context("spawn")
    ports = spawn.Queue()
    server = spawn.Process(target=serve, args=(ports, *args), daemon=True)
    server.start()
    try:
        yield await asyncio.to_thread(ports.get, True, START_S)
    finally:
        server.terminate()
        server.join(STOP_S)


class BareServer(relay_pb2_grpc.RelayServiceServicer):
    """What a Python gRPC server does at least: the posts in a list, a queue per stream,
    a stream resumed after its since_seq; no checks, nothing stored. `first_seq` lets a
    restarted one go on where the last one stopped (its history is gone with it)."""

    def __init__(self, first_seq: int) -> None:
        self.first = first_seq
        self.posts: list[relay_pb2.Delivery] = []
        self.queues: set[asyncio.Queue] = set()

    async def Post(self, request, context):
        delivery = relay_pb2.Delivery(seq=self.first + len(self.posts), post=request.envelope)
        self.posts.append(delivery)
        for q in self.queues:
            q.put_nowait(delivery)
        return relay_pb2.PostAck(seq=delivery.seq)

    async def Subscribe(self, request, context):
        q: asyncio.Queue = asyncio.Queue()
        self.queues.add(q)
        try:
            old = self.posts[max(0, request.since_seq + 1 - self.first):]
            if old:
                yield relay_pb2.DeliveryBatch(deliveries=old, last_seq=old[-1].seq)
            while True:
                batch = [await q.get()]
                while not q.empty():
                    batch.append(q.get_nowait())
                yield relay_pb2.DeliveryBatch(deliveries=batch, last_seq=batch[-1].seq)
        finally:
            self.queues.discard(q)


def run_bare_server(port_queue, port: int, first_seq: int) -> None:
    async def main():
        server = grpc.aio.server(options=[("grpc.max_concurrent_streams", 16_384), *QUEUE_OPTIONS])
        relay_pb2_grpc.add_RelayServiceServicer_to_server(BareServer(first_seq), server)
        bound = server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        port_queue.put(bound)
        await server.wait_for_termination()

    asyncio.run(main())
