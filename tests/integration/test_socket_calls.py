"""A gateway calls the shards on its node through their Unix sockets (real Ray, the
session's relay): the same outcomes as through Ray, and through Ray again while a shard
restarts, until its new socket is open."""

from __future__ import annotations

import asyncio

import pytest

from chatrelay.actors.calls import ShardPosts
from chatrelay.actors.shard import MAX_SHARD_BATCHES
from chatrelay.cluster.router import ShardRouter
from chatrelay.errors import ChatRelayError, Reason

RESTART_S = 60
REFUSAL = f"shard posts carry 1 to {MAX_SHARD_BATCHES} post batches"


async def refused(router: ShardRouter, index: int) -> str:
    """A call every shard answers the same way, whatever it holds."""
    with pytest.raises(ChatRelayError) as caught:
        await router.call(index, ShardPosts(()))
    assert caught.value.reason == Reason.MALFORMED
    return caught.value.message


async def socket_of(router: ShardRouter, index: int):
    """The shard's socket once open (the call that asks for it goes through Ray)."""
    assert router._socket(index) is None or router.sockets.get(index) is not None
    client = await asyncio.wait_for(router.sockets[index], RESTART_S)
    assert client is not None and client.closed is None
    return client


async def test_the_shards_on_this_node_are_called_through_their_sockets(relay, ray_session):
    router = ShardRouter(None, relay.shards)
    try:
        for index in range(len(relay.shards)):
            assert await refused(router, index) == REFUSAL  # through Ray; the socket is asked for
            client = await socket_of(router, index)
            assert await refused(router, index) == REFUSAL
            assert client.calls == 1
    finally:
        router.close()


async def test_a_gateway_on_another_node_calls_through_ray(relay, ray_session):
    router = ShardRouter(None, relay.shards)
    router.node = "another node"
    try:
        assert await refused(router, 0) == REFUSAL
        assert await asyncio.wait_for(router.sockets[0], RESTART_S) is None
        assert await refused(router, 0) == REFUSAL
        assert 0 not in router.sockets and router._socket(0) is None  # not asked again for a while
    finally:
        router.close()


async def test_a_shard_restarted_is_called_through_ray_then_through_its_new_socket(relay, ray_session):
    router = ShardRouter(None, relay.shards)
    try:
        await refused(router, 1)
        before = await socket_of(router, 1)
        assert router._socket(1) is before
        ray_session.kill(relay.shards[1], no_restart=False)
        for _ in range(RESTART_S * 10):  # the killed process goes, and its socket with it
            if before.closed is not None:
                break
            await asyncio.sleep(0.1)
        assert await refused(router, 1) == REFUSAL  # the socket gone: through Ray, riding out the restart
        assert before.calls == 0
        for _ in range(RESTART_S * 10):  # the next call asks the restarted shard for its socket
            if router.sockets.get(1) is None:
                await refused(router, 1)
            after = await asyncio.wait_for(router.sockets[1], RESTART_S)
            if after is not None:
                break
            router._socket_retry.clear()
            router.sockets.pop(1, None)
            await asyncio.sleep(0.1)
        assert after is not before and after.closed is None
        assert await refused(router, 1) == REFUSAL
        assert after.calls == 1
    finally:
        router.close()
