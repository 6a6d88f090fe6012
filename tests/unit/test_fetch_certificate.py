"""tls.fetch_certificate against a peer on loopback that takes the connection and never
answers the TLS handshake: a clear refusal once the timeout passes, and the connection
closed, not left open."""

from __future__ import annotations

import asyncio

import pytest

from chatrelay import tls
from chatrelay.errors import ChatRelayError, Reason


async def test_a_silent_peer_is_unreachable_after_the_timeout_and_its_connection_is_closed():
    closed = asyncio.get_running_loop().create_future()

    async def silent(reader, writer):
        await reader.read()  # whatever the client sends, until it closes
        closed.set_result(True)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ChatRelayError) as refused:
            await tls.fetch_certificate(f"127.0.0.1:{port}", timeout=0.2)
        assert (refused.value.reason, refused.value.message) == (
            Reason.UNAVAILABLE, f"relay 127.0.0.1:{port} unreachable: timed out")
        assert await asyncio.wait_for(closed, 5.0)
    finally:
        server.close()
        await server.wait_closed()
