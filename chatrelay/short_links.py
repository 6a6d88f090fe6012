"""The text of a short link: `https://HOST/KIND#KEY?f=PIN&h=PIN@HOST2,…`, its kinds and its
hosts, parsed strictly and rendered in one canonical form (DESIGN.md section 4). What the
link key opens is in `chatrelay.links`."""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass

from chatrelay import codec, tls
from chatrelay.errors import ChatRelayError, MalformedError, Reason, TooLargeError
from chatrelay.v1 import core_pb2

MAX_LINK = 2048
MAX_HOSTS = 8
MAX_HOST = 255
LINK_KEY_SIZE = 32
SCHEMES = ("https", "chatrelay")


class LinkKind(enum.StrEnum):
    RELAY = "r"
    GROUP = "g"
    CHANNEL = "c"
    CONTACT = "a"
    INVITATION = "i"

    @property
    def pb(self) -> int:
        return _KIND_PB[self]

    @classmethod
    def from_pb(cls, value: int) -> "LinkKind":
        for kind, pb in _KIND_PB.items():
            if pb == value:
                return kind
        raise ChatRelayError(Reason.UNKNOWN_LINK_KIND, f"unknown link kind {value} in link data")


_KIND_PB = {
    LinkKind.RELAY: core_pb2.LINK_KIND_RELAY,
    LinkKind.GROUP: core_pb2.LINK_KIND_GROUP,
    LinkKind.CHANNEL: core_pb2.LINK_KIND_CHANNEL,
    LinkKind.CONTACT: core_pb2.LINK_KIND_CONTACT,
    LinkKind.INVITATION: core_pb2.LINK_KIND_INVITATION,
}

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_PORT = re.compile(r"[1-9][0-9]{0,4}")


def check_host(host: str) -> str:
    """Validate `name[:port]` or `[ipv6][:port]`, lower case; returns it unchanged."""
    if not isinstance(host, str) or not host:
        raise ChatRelayError(Reason.BAD_LINK, "link host is empty")
    if len(host) > MAX_HOST:
        raise ChatRelayError(Reason.BAD_LINK, f"link host is longer than {MAX_HOST} characters")
    if host.startswith("["):
        end = host.find("]")
        name, rest = host[1:end], host[end + 1 :]
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            raise ChatRelayError(Reason.BAD_LINK, f"link host {host!r} is not a valid IPv6 address") from None
        if name != name.lower():
            raise ChatRelayError(Reason.BAD_LINK, f"link host {host!r} must be lower case")
    else:
        name, sep, port = host.partition(":")
        rest = sep + port
        if len(name) > 253 or not _HOSTNAME.fullmatch(name):
            raise ChatRelayError(Reason.BAD_LINK, f"link host {host!r} is not a valid host name")
    if rest:
        port = rest[1:]
        if not rest.startswith(":") or not _PORT.fullmatch(port) or int(port) > 65535:
            raise ChatRelayError(Reason.BAD_LINK, f"link host {host!r} has a bad port")
    return host


@dataclass(frozen=True, slots=True)
class ShortLink:
    """`https://host/<kind>#<base64url(link_key)>[?f=PIN][&h=[PIN@]host2,…]`, or scheme
    chatrelay://.

    The first host stands where the app host does (as in SimpleX short links), so one
    relay's data is reachable from the link alone; more hosts give redundancy. A host's
    PIN is the fingerprint of its relay's TLS key (chatrelay.tls): `f=` for the first
    host, `PIN@` before each other one; a client talks to a pinned host only if it holds
    that key. `pins` is empty or one per host, b"" where a host has none.
    """

    kind: LinkKind
    link_key: bytes
    hosts: tuple[str, ...]
    scheme: str = "https"
    pins: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.kind, LinkKind):
            raise ChatRelayError(Reason.UNKNOWN_LINK_KIND, f"unknown link kind {self.kind!r}")
        if len(self.link_key) != LINK_KEY_SIZE:
            raise ChatRelayError(Reason.BAD_LINK, f"link key must be {LINK_KEY_SIZE} bytes")
        if self.scheme not in SCHEMES:
            raise ChatRelayError(Reason.BAD_LINK, "link scheme must be https or chatrelay")
        if not 0 < len(self.hosts) <= MAX_HOSTS:
            raise ChatRelayError(Reason.BAD_LINK, f"a link names 1 to {MAX_HOSTS} hosts")
        for host in self.hosts:
            check_host(host)
        if len(set(self.hosts)) != len(self.hosts):
            raise ChatRelayError(Reason.BAD_LINK, "a link names each host once")
        if self.pins and len(self.pins) != len(self.hosts):
            raise ChatRelayError(Reason.BAD_LINK, "a link has one key fingerprint per host, or none")
        if any(len(pin) not in (0, tls.PIN_SIZE) for pin in self.pins):
            raise ChatRelayError(Reason.BAD_LINK, f"relay key fingerprint must be {tls.PIN_SIZE} bytes")
        if self.pins and not any(self.pins):
            object.__setattr__(self, "pins", ())  # one form for a link without any

    def pin(self, index: int) -> bytes | None:
        return (self.pins[index] or None) if self.pins else None

    def endpoints(self) -> list[tuple[str, bytes | None]]:
        """(host, pin or None) for each host."""
        return [(host, self.pin(i)) for i, host in enumerate(self.hosts)]

    def render(self, pinned: bool = True) -> str:
        """The link; without `pinned`, the short form for clients that know its relays
        (every host checked by name, or by the pins of the client's own relay list)."""
        text = f"{self.scheme}://{self.hosts[0]}/{self.kind.value}#{codec.b64url(self.link_key)}"
        params = []
        if pinned and self.pin(0):
            params.append("f=" + tls.render_pin(self.pin(0)))
        if len(self.hosts) > 1:
            params.append("h=" + ",".join(
                f"{tls.render_pin(pin)}@{host}" if pinned and pin else host for host, pin in self.endpoints()[1:]
            ))
        return text + ("?" + "&".join(params) if params else "")

    __str__ = render

    def to_json(self) -> dict:
        return {
            "kind": self.kind.value,
            "hosts": list(self.hosts),
            "link_key": codec.b64url(self.link_key),
            "pins": [tls.render_pin(pin) if pin else None for _, pin in self.endpoints()],
        }

    @classmethod
    def parse(cls, text: str) -> "ShortLink":
        if not isinstance(text, str):
            raise ChatRelayError(Reason.BAD_LINK, "link must be text")
        text = text.strip()
        if not text:
            raise ChatRelayError(Reason.BAD_LINK, "link is empty")
        if len(text) > MAX_LINK:
            raise TooLargeError("link", len(text), MAX_LINK, unit="characters")
        scheme, sep, rest = text.partition("://")
        scheme = scheme.lower()
        if not sep or scheme not in SCHEMES:
            raise ChatRelayError(Reason.BAD_LINK, "link must start with https:// or chatrelay://")
        before, sep, fragment = rest.partition("#")
        if not sep:
            raise ChatRelayError(Reason.BAD_LINK, "link has no '#' before its key")
        host, sep, kind = before.partition("/")
        if not sep or "/" in kind or "?" in before or "@" in host:
            raise ChatRelayError(Reason.BAD_LINK, "link must look like https://HOST/KIND#KEY")
        if kind not in LinkKind._value2member_map_:
            shown = kind if len(kind) <= 16 else kind[:16] + "…"
            raise ChatRelayError(
                Reason.UNKNOWN_LINK_KIND,
                f"unknown link kind {shown!r}; expected one of r, g, c, a, i",
            )
        key_text, sep, query = fragment.partition("?")
        params: dict[str, str] = {}
        for part in query.split("&") if sep else ():
            name, eq, value = part.partition("=")
            if not eq or name not in ("f", "h") or name in params:
                raise ChatRelayError(Reason.BAD_LINK, "link query must be f=PIN&h=[PIN@]HOST[,…], each once")
            params[name] = value
        hosts, pins = [host.lower()], [tls.parse_pin(params["f"]) if "f" in params else b""]
        for item in params["h"].split(",") if "h" in params else ():
            pin_text, at, extra = item.rpartition("@")
            hosts.append(extra.lower())
            pins.append(tls.parse_pin(pin_text) if at else b"")
        try:
            link_key = codec.unb64url(key_text, "link key")
        except MalformedError:
            raise ChatRelayError(Reason.BAD_LINK, "link key is not base64url") from None
        return cls(kind=LinkKind(kind), link_key=link_key, hosts=tuple(hosts), scheme=scheme, pins=tuple(pins))
