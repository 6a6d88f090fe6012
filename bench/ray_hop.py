"""The hop between a gateway and a shard: what one Ray actor call costs on this machine,
against one grpc.aio unary call between two processes and one call over a shard's Unix
socket (`actors/shard_socket.py`, what a gateway uses for the shards on its node), in
the same run.

Both carry the same bytes (a signed post's size) and answer them back; the caller awaits
each answer before the next (one at a time, as a post's own path does), then keeps
`--in-flight` calls going (as a gateway carrying many groups' posts does). For each: the
round trip, and the CPU a call costs the caller and the callee (bench/cpu.py). Every post
that goes through the relay one at a time makes two such Ray calls (its own, and the
gateway tail's read of the group that it ends), so this is the floor under the relay's
single-post figures (fan-out at 100 subscribers, a quiet group's latency) when they go
through Ray.

    python bench/ray_hop.py [--calls 3000] [--in-flight 16] [--size 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

import grpc

import cpu
from reference import spawned

METHOD = "/bench.Echo/Call"


def run_echo_server(port_queue) -> None:
    """A grpc.aio server whose one unary method answers the bytes it gets."""
    async def main():
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Echo", {
            "Call": grpc.unary_unary_rpc_method_handler(lambda request, context: request),
        }),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        port_queue.put(f"127.0.0.1:{port}")
        await server.wait_for_termination()

    asyncio.run(main())


def run_socket_server(port_queue) -> None:
    """A shard's socket whose calls answer the bytes they carry."""
    from chatrelay.actors.shard_socket import ShardSocketServer

    async def echo(data: bytes) -> bytes:
        return data

    async def main():
        server = ShardSocketServer(echo)
        port_queue.put(await server.start())
        try:
            await asyncio.Event().wait()
        finally:
            await server.close()

    asyncio.run(main())


async def timed(call, calls: int, in_flight: int, meter: cpu.Meter) -> tuple[float, float]:
    """(median round trip one at a time, seconds for `calls` with `in_flight` going);
    `meter` reads the CPU of the one-at-a-time calls."""
    for _ in range(200):  # connected and warm
        await call()
    trips = []
    meter.start()
    for _ in range(calls):
        sent = time.perf_counter()
        await call()
        trips.append(time.perf_counter() - sent)
    meter.stop()
    semaphore = asyncio.Semaphore(in_flight)

    async def one():
        async with semaphore:
            await call()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(calls)))
    return statistics.median(trips), time.perf_counter() - start


async def ray_hop(calls: int, in_flight: int, payload: bytes, meter: cpu.Meter) -> tuple[float, float]:
    import ray

    @ray.remote
    class Echo:
        async def call(self, data: bytes) -> bytes:
            return data

    ray.init(include_dashboard=False, log_to_driver=False)
    try:
        echo = Echo.remote()
        return await timed(lambda: echo.call.remote(payload), calls, in_flight, meter)
    finally:
        ray.shutdown()


async def grpc_hop(calls: int, in_flight: int, payload: bytes, meter: cpu.Meter) -> tuple[float, float]:
    async with spawned(run_echo_server) as target:
        async with grpc.aio.insecure_channel(target) as channel:
            call = channel.unary_unary(METHOD)
            return await timed(lambda: call(payload), calls, in_flight, meter)


async def socket_hop(calls: int, in_flight: int, payload: bytes, meter: cpu.Meter) -> tuple[float, float]:
    from chatrelay.actors.shard_socket import ShardSocketClient

    async with spawned(run_socket_server) as path:
        client = await ShardSocketClient.connect(path)
        try:
            return await timed(lambda: client.call(payload), calls, in_flight, meter)
        finally:
            client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--in-flight", type=int, default=16)
    parser.add_argument("--size", type=int, default=300, help="bytes each call carries")
    args = parser.parse_args()
    if not (100 <= args.calls <= 1_000_000 and 1 <= args.in_flight <= 1000 and 0 <= args.size <= 1 << 20):
        parser.error("--calls 100..1000000, --in-flight 1..1000, --size 0..1048576")
    payload = bytes(args.size)
    print(f"one hop: {args.calls} calls of {args.size} bytes, answered back")
    figures = {}
    for name, hop, meter in (("Ray actor call", ray_hop, cpu.Meter()),
                             ("grpc.aio unary call", grpc_hop, cpu.Meter(children="server")),
                             ("shard socket call", socket_hop, cpu.Meter(children="server"))):
        trip, spent = asyncio.run(hop(args.calls, args.in_flight, payload, meter))
        figures[name] = trip
        print(f"  {name}: {1e6 * trip:,.0f} us round trip one at a time; "
              f"{args.calls / spent:,.0f} calls/s with {args.in_flight} in flight")
        print(f"    CPU a call, one at a time: {cpu.per_operation(meter.used, args.calls)}")
    print(f"  ratio of round trips, Ray / grpc.aio: {figures['Ray actor call'] / figures['grpc.aio unary call']:.2f}")
    print(f"  ratio of round trips, Ray / shard socket: {figures['Ray actor call'] / figures['shard socket call']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
