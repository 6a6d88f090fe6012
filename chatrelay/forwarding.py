"""Reaching a relay through a relay of one's own (issue 19; seed: short links, proxied
commands), so the relay reached sees the forwarding relay's address and never the
client's (the relay side: cluster/forwarder.py).

The client opens TLS to the forwarding relay's forward port, pinned by that relay's link,
asks it to `CONNECT` the other relay, and runs its own TLS to that relay inside, pinned by
the link it resolves or joins: the forwarding relay carries bytes it cannot read, and an
observer of the client sees only its own relay. gRPC cannot dial through such a tunnel by
itself, so each relay reached gets a local bridge (a port on 127.0.0.1 that opens one
tunnel per connection); `RelayClient` dials the bridge while `current` is set
(`connection.forwarded`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ssl

from chatrelay import tls
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.links import ShortLink

CONNECT_TIMEOUT_S = 10.0
CHUNK = 64 * 1024
REFUSALS = {400: Reason.MALFORMED, 403: Reason.NOT_ALLOWED, 429: Reason.RATE_LIMITED, 502: Reason.UNAVAILABLE,
            503: Reason.BUSY}

current: contextvars.ContextVar["Via | None"] = contextvars.ContextVar("via", default=None)


class Via:
    """Tunnels through one forwarding relay, at `[PIN@]HOST:PORT` of its forward port."""

    def __init__(self, forward_target: str, relay_link: str = "") -> None:
        self.forward_target = forward_target
        self.relay_link = relay_link
        self._bridges: dict[str, tuple[asyncio.base_events.Server, str]] = {}
        self._writers: set[asyncio.StreamWriter] = set()  # the connections through the bridges

    def __str__(self) -> str:
        return f"via {self.relay_link or self.forward_target}"

    async def tunnel(self, address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to `address` (HOST:PORT) carried by the forwarding relay."""
        pin, forward = tls.split_target(self.forward_target)
        host, _, port = forward.rpartition(":")
        if pin is None:
            raise ChatRelayError(Reason.TLS_MISMATCH, "forwarding needs TLS to the forwarding relay: its link names no key")
        context = ssl.create_default_context(cadata=(await tls.pinned_root(forward, pin)).decode("ascii"))
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):  # not wait_for: one made as it is cancelled is closed
                reader, writer = await asyncio.open_connection(
                    host.strip("[]"), int(port), ssl=context, server_hostname=tls.SERVER_NAME)
        except (OSError, asyncio.TimeoutError) as exc:
            raise ChatRelayError(Reason.UNAVAILABLE, f"the forwarding relay at {forward} is unreachable: "
                                                     f"{str(exc) or 'timed out'}") from None
        try:
            writer.write(f"CONNECT {address} HTTP/1.1\r\nHost: {address}\r\n\r\n".encode())
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CONNECT_TIMEOUT_S)
            status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.") else 0
            if status != 200:
                why = (await asyncio.wait_for(reader.read(512), CONNECT_TIMEOUT_S)).decode("utf-8", "replace").strip()
                raise ChatRelayError(REFUSALS.get(status, Reason.UNAVAILABLE),
                                     f"the forwarding relay refused to reach {address}: {why or status}")
        except ChatRelayError:
            writer.close()
            raise
        except (OSError, ValueError, IndexError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError) as exc:
            writer.close()
            raise ChatRelayError(Reason.UNAVAILABLE, f"the forwarding relay did not answer as one: {exc}") from None
        return reader, writer

    async def bridge(self, address: str) -> str:
        """HOST:PORT on 127.0.0.1 that reaches `address` through the forwarding relay; the
        first tunnel is opened here, so a refusal is said as it is, not as a timeout."""
        if address.startswith(("ipv4:", "ipv6:")):  # one relay's gateways: the first
            address = address.partition(":")[2].split(",")[0]
        found = self._bridges.get(address)
        if found is not None:
            return found[1]
        _, writer = await self.tunnel(address)
        writer.close()

        async def carry(local_reader, local_writer) -> None:
            ends = [local_writer]
            self._writers.add(local_writer)
            try:
                reader, writer = await self.tunnel(address)
                ends.append(writer)
                self._writers.add(writer)
                await asyncio.gather(_pipe(local_reader, writer), _pipe(reader, local_writer))
            except (ChatRelayError, asyncio.CancelledError):
                pass  # refused, or the command ends: its connections close here
            finally:
                for end in ends:
                    self._writers.discard(end)
                    end.close()
        server = await asyncio.start_server(carry, "127.0.0.1", 0)
        local = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        self._bridges[address] = (server, local)
        return local

    async def close(self) -> None:
        """The bridges and every connection through them closed."""
        for server, _ in self._bridges.values():
            server.close()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        for server, _ in self._bridges.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        self._bridges.clear()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError, RuntimeError, ssl.SSLError):
            writer.close()


def via_of(relay_link: str, name: str, forward_hosts: tuple[str, ...]) -> Via:
    """The forwarding of a relay one uses, as its link data (checked) gives it; a relay
    that does not forward is said so."""
    if not forward_hosts:
        raise ChatRelayError(Reason.NOT_ALLOWED, f"the relay {name or relay_link} does not forward (its operator "
                                                 "has not turned forwarding on)")
    return Via(tls.join_target(ShortLink.parse(relay_link).pin(0), forward_hosts[0]), relay_link)
