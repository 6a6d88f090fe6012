"""The relay's forwarding port as a stranger meets it (cluster/forwarder.py): real sockets
on loopback. Malformed, oversized and unsupported requests, destinations the operator
does not forward to, a source over its rate, and a tunnel that would carry plaintext are
each refused, saying why; a tunnel that starts TLS carries its bytes both ways."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatrelay import tls
from chatrelay.cluster.forwarder import HEAD_LIMIT, Forwarder, server_name, source_of


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
        for host in ("127.0.0.1", "localhost", "10.1.2.3", "[::1]", "100.100.100.200", "[64:ff9b::a01:203]"):
            line, why = await refused(port, f"CONNECT {host}:{echo_port} HTTP/1.1\r\n\r\n".encode())
            assert line == "HTTP/1.1 403 Forbidden"
            assert why == f"this relay does not forward to private addresses such as {host.strip('[]')}"
        line, why = await refused(port, f"CONNECT 0.0.0.0:{echo_port} HTTP/1.1\r\n\r\n".encode())
        assert (line, why) == ("HTTP/1.1 403 Forbidden", "0.0.0.0 is not an address to forward to")
        assert got == [] and forwarder.tunnels == 0
    finally:
        await forwarder.stop()


def client_hello(server_name: str) -> bytes:
    """The first record a TLS client sends, asking for `server_name`."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    with contextlib.suppress(ssl.SSLWantReadError):
        context.wrap_bio(incoming, outgoing, server_hostname=server_name).do_handshake()
    return outgoing.read()


async def test_a_tunnel_carries_tls_for_a_relay_both_ways_and_nothing_else(echo):
    echo_port, got = echo
    forwarder, port = await started(allow_private=True)
    connect = f"CONNECT 127.0.0.1:{echo_port} HTTP/1.1\r\n\r\n".encode()
    try:
        head, reader, writer = await ask(port, connect)
        assert head == b"HTTP/1.1 200 Connection established\r\n\r\n"
        hello = client_hello(tls.SERVER_NAME)
        assert server_name(hello[5:]) == tls.SERVER_NAME
        writer.write(hello)
        await writer.drain()
        assert await asyncio.wait_for(reader.readexactly(len(hello)), 5) == hello
        writer.close()

        for first in (b"GET / HTTP/1.0\r\n\r\n",  # plaintext
                      b"\x16\x03\x01\x00\x04EHLO",  # looks like TLS for five bytes, then plain
                      client_hello("mail.example.com")):  # TLS, for another server than a relay
            head, reader, writer = await ask(port, connect)
            writer.write(first)
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, nothing carried
        assert b"".join(got) == hello and forwarder.tunnels == 4
        line, why = await refused(port, b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n")  # nothing listens there
        assert line == "HTTP/1.1 502 Bad Gateway" and why.startswith("127.0.0.1:1 does not answer: ")
    finally:
        await forwarder.stop()


@given(st.binary(max_size=300))
def test_no_record_crashes_the_server_name_reader(record):
    assert server_name(record) is None or isinstance(server_name(record), str)


@pytest.mark.parametrize("peer, source", [
    (("192.0.2.7", 5), "192.0.2.7"), (("2001:db8::1:2", 5, 0, 0), "2001:db8::/64"),
    (("2001:db8::ffff:9", 6, 0, 0), "2001:db8::/64"), (("::ffff:192.0.2.7", 5, 0, 0), "192.0.2.7"),
])
def test_tunnels_are_counted_per_address_and_per_ipv6_64(peer, source):
    assert source_of(peer) == source


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
