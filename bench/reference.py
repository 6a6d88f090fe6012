"""A benchmark's reference server, in a process of its own (spawned, so that nothing of
the benchmark's process goes with it): `serve(port_queue, *args)` puts where it serves on
the queue once it does."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing

START_S = 60
STOP_S = 10


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
