"""The ports a relay's gateways listen on: one picked for them where none is given, and
one checked free before the gateways of a node bind it together with SO_REUSEPORT."""

from __future__ import annotations

import random
import socket

from chatrelay.errors import ChatRelayError, Reason

PORT_SPAN = 8000  # how far below the kernel's ephemeral ports a picked port may be
_picked: set[int] = set()  # handed out by this process already: not handed out again


def _socket(host: str) -> socket.socket:
    """A TCP socket of `host`'s family (an IPv6 host is in brackets)."""
    return socket.socket(socket.AF_INET6 if host.startswith("[") else socket.AF_INET)


def pick_port(host: str) -> int:
    """A port free on `host` for a gateway to listen on from now on. Not one the kernel
    picks (`bind(0)`): those come from its ephemeral range, which every outgoing
    connection draws from too, so one may take the port before the gateway binds it.
    A free one just below that range instead, which no outgoing connection takes."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # Linux's default
    candidates = random.SystemRandom().sample(range(max(1024, low - PORT_SPAN), low), 64) if low > 1024 + 64 else []
    for port in candidates:
        if port in _picked:
            continue
        with _socket(host) as s:
            try:
                s.bind((host.strip("[]"), port))
            except OSError:  # taken: the next
                continue
            _picked.add(port)
            return port
    with _socket(host) as s:  # no room below the range: the kernel's pick
        s.bind((host.strip("[]"), 0))
        return s.getsockname()[1]


def refuse_taken(listen: str) -> None:
    """The gateways' port, free on this machine (bound without SO_REUSEPORT for a moment):
    else another relay holds it, perhaps with SO_REUSEPORT too, which would let ours in
    beside it and the kernel hand it part of our clients."""
    host, _, port = listen.rpartition(":")
    with _socket(host) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds: past connections do not count
        try:
            probe.bind((host.strip("[]"), int(port)))
        except OSError:
            raise ChatRelayError(Reason.UNAVAILABLE, f"cannot listen on {listen}: the port is taken") from None
