"""The SDK's RelayClient opens its channel at the first call; calls that come at once
before it is open share the one channel the first of them opens (they used to open one
each, and all but the last were dropped under them: 64 concurrent first joins stalled
for about 30 s, retrying, in bench/joins.py)."""

from __future__ import annotations

import asyncio

from chatrelay import connection


async def test_concurrent_first_calls_open_one_channel(monkeypatch):
    opened = []

    async def open_channel(target):
        await asyncio.sleep(0.01)  # the TLS handshake: the other callers arrive meanwhile
        channel = object()
        opened.append((target, channel))
        return channel

    monkeypatch.setattr(connection, "open_channel", open_channel)
    c = connection.RelayClient("127.0.0.1:1", stub=lambda channel: ("stub of", channel))
    await asyncio.gather(*(c.open() for _ in range(64)))
    assert len(opened) == 1
    assert c.channel is opened[0][1] and c.stub == ("stub of", opened[0][1])
    await c.open()  # open already: nothing new
    assert len(opened) == 1


async def test_a_failed_open_leaves_it_closed_for_the_next_call(monkeypatch):
    tries = []

    async def open_channel(target):
        tries.append(target)
        if len(tries) == 1:
            raise ConnectionError("refused")
        return object()

    monkeypatch.setattr(connection, "open_channel", open_channel)
    c = connection.RelayClient("127.0.0.1:1", stub=lambda channel: channel)
    results = await asyncio.gather(c.open(), c.open(), return_exceptions=True)
    assert isinstance(results[0], ConnectionError) and results[1] is c  # the second opened it anew
    assert len(tries) == 2 and c.channel is not None
