"""Forwarding for clients of this relay (issue 19; seed: short links, proxied commands): a
client asks its own relay to carry its connection to another relay, so that relay sees
this one's address and never the client's. The carried connection is TLS from the client
to the other relay, pinned by the link the client holds: this relay passes bytes it
cannot read, and keeps nothing of them.

The client speaks TLS to this port (this relay's own certificate), asks `CONNECT
HOST:PORT HTTP/1.1`, and once answered `200` starts its TLS to HOST:PORT inside. What
is refused is answered with a status and a line saying why: 400 a malformed request, 403
a destination the operator does not forward to (loopback, private and link-local
addresses unless `--forward-private`), 429 a source over its rate, 503 too many tunnels,
502 a destination that does not answer. A tunnel whose first byte is not a TLS handshake
is closed, and so is one whose TLS is not for a relay (its server name): no plaintext, and
no TLS to other servers, crosses this relay. Tunnels are counted per source (an IPv4
address, an IPv6 /64); each is closed once neither side sent anything for 5 minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
import time

from chatrelay import tls
from chatrelay.actors.rate_window import RateWindow

log = logging.getLogger(__name__)

HEAD_LIMIT = 4096  # the CONNECT request and its headers, at most
HEAD_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 300.0
CHUNK = 64 * 1024
TLS_HANDSHAKE = 0x16  # the first byte of a TLS record carrying a handshake
MAX_RECORD = 16384 + 2048  # a TLS record's body at most
SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: not global, whatever Python says
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # reaches IPv4 addresses, private ones too


class Forwarder:
    """`per_minute`: tunnels one source address may open in a minute; `per_source`: open at
    once; `most`: open at once in all."""

    def __init__(self, listen: str, tls: tuple[str, str] | None, *, allow_private: bool = False,
                 source: str = "", per_minute: int = 60, per_source: int = 16, most: int = 1024) -> None:
        self.listen, self.tls = listen, tls
        self.allow_private, self.source = allow_private, source
        self.per_minute, self.per_source, self.most = per_minute, per_source, most
        self._opened = RateWindow(60.0, keys=100_000)
        self._open: dict[str, int] = {}
        self._total = 0
        self.server: asyncio.base_events.Server | None = None
        self.tunnels = 0  # opened since start
        self.refused = 0

    async def start(self) -> int:
        host, _, port = self.listen.rpartition(":")
        context = None
        if self.tls is not None:  # (key file, certificate file): the gateway's own
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            key_file, cert_file = self.tls
            context.load_cert_chain(cert_file, key_file)
        self.server = await asyncio.start_server(self._handle, host.strip("[]"), int(port), ssl=context,
                                                 reuse_port=True, limit=HEAD_LIMIT,
                                                 ssl_handshake_timeout=HEAD_TIMEOUT_S if context else None)
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        source = source_of(writer.get_extra_info("peername"))
        self._open[source] = self._open.get(source, 0) + 1
        self._total += 1
        try:
            refusal = self._admit(source)  # before anything is read: a source past its bounds costs nothing more
            if refusal:
                return await self._refuse(reader, writer, *refusal)
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
            except (asyncio.LimitOverrunError, ValueError):
                return await self._refuse(reader, writer, 400, f"the request is over {HEAD_LIMIT} bytes")
            except (asyncio.IncompleteReadError, asyncio.TimeoutError):
                return await self._refuse(reader, writer, 400, "no CONNECT request came")
            target, why = parse_connect(head)
            if target is None:
                return await self._refuse(reader, writer, 400, why)
            host, port = target
            try:
                address = await self._destination(host, port)
            except PermissionError as exc:
                return await self._refuse(reader, writer, 403, str(exc))
            except (OSError, UnicodeError) as exc:
                return await self._refuse(reader, writer, 502, f"cannot resolve {host}: {getattr(exc, 'strerror', None) or exc}")
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_S):  # not wait_for: one made as it is cancelled is closed
                    upstream_reader, upstream_writer = await asyncio.open_connection(
                        address, port, local_addr=(self.source, 0) if self.source else None)
            except (OSError, asyncio.TimeoutError) as exc:
                return await self._refuse(reader, writer, 502, f"{host}:{port} does not answer: {str(exc) or 'timed out'}")
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            self.tunnels += 1
            await self._carry(reader, writer, upstream_reader, upstream_writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the client went away
        finally:
            self._total -= 1
            self._open[source] -= 1
            if not self._open[source]:
                del self._open[source]
            writer.close()

    def _admit(self, source: str) -> tuple[int, str] | None:
        now = time.monotonic()
        if self._opened.count(source, now) >= self.per_minute:
            return 429, f"at most {self.per_minute} tunnels a minute from one address"
        if self._open[source] > self.per_source:  # this one counted already
            return 503, f"at most {self.per_source} tunnels open at once from one address"
        if self._total > self.most:
            return 503, "this relay forwards for too many at once; retry in a moment"
        self._opened.add(source, now)
        return None

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int, why: str) -> None:
        """The status and why, then what the client still sends read away a moment (bounded),
        so closing does not reset the connection before it reads the answer."""
        self.refused += 1
        phrase = {400: "Bad Request", 403: "Forbidden", 429: "Too Many Requests", 502: "Bad Gateway",
                  503: "Service Unavailable"}[status]
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            writer.write(f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
                         f"{why}\n".encode())
            await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
            with contextlib.suppress(asyncio.TimeoutError, asyncio.LimitOverrunError, ValueError):
                for _ in range(16):
                    if not await asyncio.wait_for(reader.read(HEAD_LIMIT), 0.2):
                        break

    async def _destination(self, host: str, port: int) -> str:
        """An address of `host` this relay forwards to, or PermissionError saying why not."""
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [info[4][0] for info in infos]
        for text in addresses:
            ip = ipaddress.ip_address(text.split("%")[0])
            if ip.is_unspecified or ip.is_multicast:
                raise PermissionError(f"{host} is not an address to forward to")
            if not self.allow_private and (not ip.is_global or ip in SHARED or ip in NAT64):
                raise PermissionError(f"this relay does not forward to private addresses such as {host}")
        return addresses[0]

    async def _carry(self, reader, writer, upstream_reader, upstream_writer) -> None:
        """Bytes both ways until one side ends, or neither sends for IDLE_TIMEOUT_S; the
        first record from the client must be a TLS ClientHello for a relay (its server
        name chatrelay's), so nothing in plain, and no TLS to other servers, is carried."""
        try:
            header = await asyncio.wait_for(reader.readexactly(5), HEAD_TIMEOUT_S)
            length = int.from_bytes(header[3:5], "big")
            if header[0] != TLS_HANDSHAKE or header[1] != 3 or not 0 < length <= MAX_RECORD:
                return
            record = await asyncio.wait_for(reader.readexactly(length), HEAD_TIMEOUT_S)
            if server_name(record) != tls.SERVER_NAME:
                return
            upstream_writer.write(header + record)
            await upstream_writer.drain()
            last = [time.monotonic()]
            pipes = [asyncio.create_task(_pipe(reader, upstream_writer, last)),
                     asyncio.create_task(_pipe(upstream_reader, writer, last))]
            while not all(p.done() for p in pipes) and time.monotonic() - last[0] < IDLE_TIMEOUT_S:
                await asyncio.wait(pipes, timeout=max(0.1, IDLE_TIMEOUT_S - (time.monotonic() - last[0])))
            for p in pipes:
                p.cancel()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            upstream_writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, last: list[float]) -> None:
    try:
        while data := await reader.read(CHUNK):
            last[0] = time.monotonic()
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError, RuntimeError, ssl.SSLError):
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()


def source_of(peer) -> str:
    """Whom a tunnel is counted against: its IPv4 address, or its IPv6 /64 (one host may
    hold a whole /64)."""
    address = (peer or ("?",))[0]
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return address
    if ip.version == 4:
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.ip_network(f"{ip}/64", strict=False))


def server_name(record: bytes) -> str | None:
    """The server name (SNI) a TLS ClientHello asks for, or None: not a ClientHello, or
    none named."""
    try:
        if record[0] != 1:  # handshake type ClientHello
            return None
        at = 4 + 2 + 32  # type and length, version, random
        at += 1 + record[at]  # session id
        at += 2 + int.from_bytes(record[at:at + 2], "big")  # cipher suites
        at += 1 + record[at]  # compression methods
        end = at + 2 + int.from_bytes(record[at:at + 2], "big")
        at += 2
        while at + 4 <= min(end, len(record)):
            kind, size = int.from_bytes(record[at:at + 2], "big"), int.from_bytes(record[at + 2:at + 4], "big")
            if kind == 0:  # server_name: list length, name type 0, name length, name
                name_size = int.from_bytes(record[at + 7:at + 9], "big")
                return record[at + 9:at + 9 + name_size].decode("ascii") if record[at + 6] == 0 else None
            at += 4 + size
    except (IndexError, UnicodeDecodeError):
        return None
    return None


def parse_connect(head: bytes) -> tuple[tuple[str, int] | None, str]:
    """`CONNECT HOST:PORT HTTP/1.1` -> ((host, port), ""), or (None, why not)."""
    try:
        line = head.split(b"\r\n", 1)[0].decode("ascii")
    except UnicodeDecodeError:
        return None, "the request line is not ASCII"
    parts = line.split(" ")
    if len(parts) != 3 or parts[0] != "CONNECT" or not parts[2].startswith("HTTP/1."):
        return None, "only CONNECT HOST:PORT HTTP/1.1 is forwarded"
    host, sep, port = parts[1].rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or len(host) > 253:
        return None, f"{parts[1][:100]!r} is not HOST:PORT"
    return (host, int(port)), ""
