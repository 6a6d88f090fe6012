"""The relay's forwarding port as a stranger meets it (cluster/forwarder.py): real sockets
on loopback. Malformed, oversized and unsupported requests, destinations the operator
does not forward to, a source over its rate, and a tunnel that would carry plaintext are
each refused, saying why; a tunnel that starts TLS carries its bytes both ways."""

from __future__ import annotations

import asyncio

import pytest

from chatrelay.cluster.forwarder import HEAD_LIMIT, Forwarder


@pytest.fixture
async def echo():
    """A server that answers what it reads, and keeps all it read."""
    got: list[bytes] = []

    async def serve(reader, writer):
        while data := await reader.read(1024):
            got.append(data)
            writer.write(data)
            await writer.drain()
        writer.close()
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], got
    server.close()


async def started(**kwargs) -> tuple[Forwarder, int]:
    forwarder = Forwarder("127.0.0.1:0", None, **kwargs)
    return forwarder, await forwarder.start()


async def ask(port: int, request: bytes) -> tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    return head, reader, writer


async def refused(port: int, request: bytes) -> tuple[str, str]:
    head, reader, writer = await ask(port, request)
    why = (await asyncio.wait_for(reader.read(), 5)).decode().strip()
    writer.close()
    return head.split(b"\r\n")[0].decode(), why


@pytest.mark.parametrize("request_bytes, said", [
    (b"GET / HTTP/1.1\r\n\r\n", "only CONNECT HOST:PORT HTTP/1.1 is forwarded"),
    (b"CONNECT nohost HTTP/1.1\r\n\r\n", "'nohost' is not HOST:PORT"),
    (b"CONNECT host:99999 HTTP/1.1\r\n\r\n", "'host:99999' is not HOST:PORT"),
    (b"CONNECT \xff:1 HTTP/1.1\r\n\r\n", "the request line is not ASCII"),
    (b"CONNECT h:1 HTTP/1.1\r\nX: " + b"a" * HEAD_LIMIT + b"\r\n\r\n", f"the request is over {HEAD_LIMIT} bytes"),
])
async def test_malformed_requests_are_refused_saying_why(request_bytes, said):
    forwarder, port = await started()
    try:
        assert await refused(port, request_bytes) == ("HTTP/1.1 400 Bad Request", said)
    finally:
        await forwarder.stop()


async def test_private_destinations_are_refused_unless_the_operator_allows_them(echo):
    echo_port, got = echo
    forwarder, port = await started()
    try:
        for host in ("127.0.0.1", "localhost", "10.1.2.3", "[::1]"):
            line, why = await refused(port, f"CONNECT {host}:{echo_port} HTTP/1.1\r\n\r\n".encode())
            assert line == "HTTP/1.1 403 Forbidden"
            assert why == f"this relay does not forward to private addresses such as {host.strip('[]')}"
        line, why = await refused(port, f"CONNECT 0.0.0.0:{echo_port} HTTP/1.1\r\n\r\n".encode())
        assert (line, why) == ("HTTP/1.1 403 Forbidden", "0.0.0.0 is not an address to forward to")
        assert got == [] and forwarder.tunnels == 0
    finally:
        await forwarder.stop()


async def test_a_tunnel_carries_tls_both_ways_and_plaintext_not_at_all(echo):
    echo_port, got = echo
    forwarder, port = await started(allow_private=True)
    try:
        head, reader, writer = await ask(port, f"CONNECT 127.0.0.1:{echo_port} HTTP/1.1\r\n\r\n".encode())
        assert head == b"HTTP/1.1 200 Connection established\r\n\r\n"
        hello = b"\x16\x03\x01" + b"client hello"  # what a TLS handshake starts with
        writer.write(hello)
        await writer.drain()
        assert await asyncio.wait_for(reader.readexactly(len(hello)), 5) == hello
        writer.close()

        head, reader, writer = await ask(port, f"CONNECT 127.0.0.1:{echo_port} HTTP/1.1\r\n\r\n".encode())
        writer.write(b"GET / HTTP/1.0\r\n\r\n")  # plaintext: closed, nothing carried
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert b"".join(got) == hello and forwarder.tunnels == 2
        line, why = await refused(port, b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n")  # nothing listens there
        assert line == "HTTP/1.1 502 Bad Gateway" and why.startswith("127.0.0.1:1 does not answer: ")
    finally:
        await forwarder.stop()


async def test_a_source_over_its_rate_is_refused_and_others_go_on():
    forwarder, port = await started(per_minute=2)
    try:
        for _ in range(2):
            assert (await refused(port, b"GET / HTTP/1.1\r\n\r\n"))[0] == "HTTP/1.1 400 Bad Request"
        assert await refused(port, b"CONNECT a:1 HTTP/1.1\r\n\r\n") == (
            "HTTP/1.1 429 Too Many Requests", "at most 2 tunnels a minute from one address")
        assert forwarder.refused == 3
    finally:
        await forwarder.stop()
