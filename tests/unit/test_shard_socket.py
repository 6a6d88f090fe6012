"""A shard's calls over its Unix socket (`actors/shard_socket.py`): each answer reaches
its own caller, errors come back raised, and a hostile or broken peer costs the other
end its connection only."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import stat
import subprocess
import sys

import pytest

from chatrelay.actors.calls import Refused, pack, ShardPosts
from chatrelay.actors.shard import MAX_SHARD_BATCHES
from chatrelay.actors.shard_socket import (
    HEADER, MAX_FRAME, PREFIX, ShardSocketClient, ShardSocketServer, SocketGone, sweep,
)
from chatrelay.errors import Reason

from test_shard_calls import shard


async def echo(payload: bytes):
    if payload == b"boom":
        raise ValueError("bad call")
    if payload.startswith(b"slow"):
        await asyncio.sleep(0.05)
    if payload == b"forever":
        await asyncio.Event().wait()
    return payload[::-1]


@contextlib.asynccontextmanager
async def served(serve=echo):
    server = ShardSocketServer(serve)
    path = await server.start()
    client = await ShardSocketClient.connect(path)
    try:
        yield server, client
    finally:
        client.close()
        await server.close()


async def test_each_call_gets_its_own_answer_and_a_failure_comes_back_raised():
    async with served() as (_, client):
        answers = await asyncio.gather(client.call(b"slow one"), client.call(b"ab"), client.call(b"slow two"))
        assert answers == [b"eno wols", b"ba", b"owt wols"]  # the quick one was answered first
        with pytest.raises(ValueError, match="^bad call$"):
            await client.call(b"boom")
        assert await client.call(b"after") == b"retfa"
        assert client.calls == 5


async def test_the_socket_lies_in_a_directory_of_the_shards_user_only_and_goes_with_it():
    server = ShardSocketServer(echo)
    path = await server.start()
    folder = os.path.dirname(path)
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert os.path.basename(folder).startswith(f"{PREFIX}{os.getpid()}-")  # swept once this process is gone
    await server.close()
    assert not os.path.exists(folder)


def test_the_directories_of_shards_gone_are_swept_and_no_other(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    for name in (f"{PREFIX}{gone.pid}-a", f"{PREFIX}{os.getpid()}-b", f"{PREFIX}x-c", "other-1"):
        (tmp_path / name).mkdir()
    (tmp_path / f"{PREFIX}{gone.pid}-file").write_text("not a directory")
    assert sweep(str(tmp_path)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{PREFIX}{os.getpid()}-b", f"{PREFIX}x-c", "other-1", f"{PREFIX}{gone.pid}-file"])


async def test_a_shard_serves_its_socket_on_a_cluster_node_only_and_refuses_what_is_no_packed_call():
    class Host:
        def node_id(self) -> str:
            return "node-1"

    assert await shard().socket_endpoint() == ("", "")  # outside a cluster node: through Ray only
    on_node = shard()
    on_node.host = Host()
    node, path = await on_node.socket_endpoint()
    assert node == "node-1" and await on_node.socket_endpoint() == (node, path)  # one socket
    client = await ShardSocketClient.connect(path)
    try:
        assert await client.call(b"not a packed call") == Refused(
            Reason.MALFORMED, "a relay shard takes packed shard calls only")
        assert await client.call(pack(ShardPosts(()))) == Refused(
            Reason.MALFORMED, f"shard posts carry 1 to {MAX_SHARD_BATCHES} post batches")
    finally:
        client.close()
        await on_node._socket.close()


async def test_a_frame_over_the_limit_closes_its_connection_and_no_other(caplog):
    async with served() as (_, client):
        reader, writer = await asyncio.open_unix_connection(client._writer.get_extra_info("peername"))
        with caplog.at_level(logging.WARNING, "chatrelay.actors.shard_socket"):
            writer.write(HEADER.pack(MAX_FRAME + 1, 7))
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, nothing answered
        assert caplog.messages == [
            f"shard socket: a frame of {MAX_FRAME + 1} bytes, over {MAX_FRAME}: connection closed"]
        writer.close()
        assert await client.call(b"still") == b"llits"


async def test_a_frame_cut_short_is_not_served():
    served_payloads = []

    async def record(payload):
        served_payloads.append(payload)
        return payload

    async with served(record) as (_, client):
        reader, writer = await asyncio.open_unix_connection(client._writer.get_extra_info("peername"))
        writer.write(HEADER.pack(100, 1) + b"x" * 10)
        await writer.drain()
        writer.close()
        assert await client.call(b"next") == b"next"
        assert served_payloads == [b"next"]


async def test_a_call_whose_caller_went_away_is_served_to_its_end_as_through_ray():
    finished = asyncio.Event()

    async def slow(payload):
        await asyncio.sleep(0.05)
        finished.set()
        return payload

    async with served(slow) as (_, client):
        reader, writer = await asyncio.open_unix_connection(client._writer.get_extra_info("peername"))
        writer.write(HEADER.pack(4, 1) + b"post")
        await writer.drain()
        writer.close()  # gone before its answer
        await asyncio.wait_for(finished.wait(), 5)
        assert await client.call(b"next") == b"next"


async def test_calls_under_way_when_the_shard_goes_fail_as_gone_and_so_does_every_call_after():
    async with served() as (server, client):
        waiting = asyncio.ensure_future(client.call(b"forever"))
        await asyncio.sleep(0.05)
        await server.close()
        with pytest.raises(SocketGone, match="^shard socket closed: "):
            await asyncio.wait_for(waiting, 5)
        with pytest.raises(SocketGone, match="^shard socket closed: "):
            await client.call(b"again")


@contextlib.asynccontextmanager
async def hostile(answer):
    """A peer posing as a shard: `answer(call_id)` is the bytes it sends back to each call."""
    async def connection(reader, writer):
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                length, call_id = HEADER.unpack(await reader.readexactly(HEADER.size))
                await reader.readexactly(length)
                writer.write(answer(call_id))

    server = ShardSocketServer(echo)
    path = await server.start()
    server._server.close()
    os.unlink(path)
    fake = await asyncio.start_unix_server(connection, path)
    client = await ShardSocketClient.connect(path)
    try:
        yield client
    finally:
        client.close()
        fake.close()
        await server.close()


async def test_an_answer_that_does_not_unpickle_fails_its_call_only():
    def answer(call_id):
        data = b"xgarbage" if call_id == 1 else pickle.dumps((True, "fine"))
        return HEADER.pack(len(data), call_id) + data

    async with hostile(answer) as client:
        with pytest.raises(SocketGone, match=r"^an answer that does not unpickle: invalid load key, 'x'\.$"):
            await client.call(b"first")
        assert await client.call(b"second") == "fine"


async def test_an_answer_for_no_call_is_passed_over_and_one_over_the_limit_ends_the_socket():
    def answer(call_id):
        stray = pickle.dumps((True, "stray"))
        if call_id == 1:
            data = pickle.dumps((True, "mine"))
            return HEADER.pack(len(stray), 999) + stray + HEADER.pack(len(data), call_id) + data
        return HEADER.pack(MAX_FRAME + 1, call_id)

    async with hostile(answer) as client:
        assert await client.call(b"first") == "mine"
        with pytest.raises(SocketGone, match=(
                f"^shard socket closed: an answer of {MAX_FRAME + 1} bytes, over {MAX_FRAME}$")):
            await client.call(b"second")
