"""`one_member`: the RelayClients of one member of one group share one channel per
relay (a TLS handshake each was about a third of resolve + join + first delivery);
outside it every client keeps its own, so that no two groups share a connection. A
plaintext grpc.aio server on loopback stands for the relay (the client in insecure mode)."""

from __future__ import annotations

import grpc
import pytest

from chatrelay import connection
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.v1 import relay_pb2, relay_pb2_grpc


class Answering(relay_pb2_grpc.RelayServiceServicer):
    async def ResolveLink(self, request, context):
        return relay_pb2.ResolveLinkResponse(ciphertext=request.lookup_id)


@pytest.fixture
async def server(monkeypatch):
    monkeypatch.setattr(connection, "_insecure", True)
    srv = grpc.aio.server()
    relay_pb2_grpc.add_RelayServiceServicer_to_server(Answering(), srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    srv.target = f"127.0.0.1:{port}"
    yield srv
    await srv.stop(None)


@pytest.fixture
def opened(monkeypatch) -> list:
    """Every channel the clients open, in order."""
    channels = []
    real = connection.open_channel

    async def counting(target, *args):
        channel = await real(target, *args)
        channels.append(channel)
        return channel

    monkeypatch.setattr(connection, "open_channel", counting)
    return channels


async def resolve(client: connection.RelayClient, lookup: bytes = b"x") -> bytes:
    response = await client.call("ResolveLink", relay_pb2.ResolveLinkRequest(lookup_id=lookup))
    return response.ciphertext


async def still_open(channel) -> bool:
    """Whether a call can still start on the channel (a closed one refuses it at once)."""
    try:
        await channel.unary_unary("/chatrelay.v1.RelayService/ResolveLink")(b"", timeout=5)
    except grpc.aio.UsageError:
        return False
    except grpc.aio.AioRpcError:
        pass  # it reached the server: the channel is open
    return True


async def test_clients_outside_one_member_keep_a_channel_each(server, opened):
    async with connection.RelayClient(server.target) as a, connection.RelayClient(server.target) as b:
        assert await resolve(a, b"a") == b"a" and await resolve(b, b"b") == b"b"
        assert len(opened) == 2 and a.channel is not b.channel
    assert [await still_open(c) for c in opened] == [False, False]


async def test_clients_of_one_member_share_one_channel_closed_at_its_end(server, opened):
    async with connection.one_member():
        async with connection.RelayClient(server.target) as a:
            assert await resolve(a, b"a") == b"a"
        assert await still_open(opened[0])  # the client's close leaves it to the next
        b = connection.RelayClient(server.target, stub=relay_pb2_grpc.AdminServiceStub)
        c = connection.RelayClient(server.target)
        assert await resolve(c, b"c") == b"c"
        await b.open()
        assert len(opened) == 1 and b.channel is c.channel is opened[0]
        assert isinstance(b.stub, relay_pb2_grpc.AdminServiceStub)  # each client its own service
        await c.close()
        await b.close()
    assert not await still_open(opened[0])


async def test_a_nested_one_member_keeps_the_outer_channels(server, opened):
    async with connection.one_member():
        async with connection.one_member():
            async with connection.RelayClient(server.target) as a:
                await resolve(a)
        assert await still_open(opened[0])
        async with connection.RelayClient(server.target) as b:
            await resolve(b)
        assert len(opened) == 1
    assert not await still_open(opened[0])


async def test_a_channel_to_an_unreachable_relay_is_left_for_a_new_one(server, opened):
    target = server.target
    await server.stop(None)
    async with connection.one_member():
        with pytest.raises(ChatRelayError) as caught:
            await resolve(connection.RelayClient(target))  # a read: tried again within a second
        assert caught.value.reason is Reason.UNAVAILABLE
        tries = len(opened)
        assert tries >= 2 and len({id(c) for c in opened}) == tries  # each try a new channel
        with pytest.raises(ChatRelayError):
            await resolve(connection.RelayClient(target))
        assert len(opened) > tries  # the broken channel is not handed to the next client
    assert [await still_open(c) for c in opened] == [False] * len(opened)
