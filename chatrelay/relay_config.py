"""The client's own relays (issue 19): the relays an identity chose, kept in its state
file with each relay's identity key and TLS fingerprints, checked when added (the link
data resolves, signed by the relay's key, over TLS pinned to the link's fingerprint).
Groups and channels made without `--relay` are registered with them."""

from __future__ import annotations

from chatrelay import tls
from chatrelay.connection import relay_info
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.links import LinkKind, ShortLink
from chatrelay.state import ConfiguredRelay, State, b64


async def add(st: State, relay_link: str) -> tuple[ConfiguredRelay, bool]:
    """Check the relay and keep it; (its entry, whether it is new). Adding one again
    changes nothing."""
    info = await relay_info(relay_link)
    link = str(info.link)
    for known in st.relays:
        if known.link == link:
            return known, False
    entry = ConfiguredRelay(link=link, name=info.name or info.link.hosts[0], relay_key=b64(info.relay_key),
                            pins=[tls.render_pin(pin) for pin in info.link.pins if pin])
    st.relays.append(entry)
    return entry, True


def remove(st: State, which: str) -> ConfiguredRelay:
    """Forget a configured relay, named by its link or its name."""
    found = st.find_relay(which)
    st.relays.remove(found)
    return found


def chosen(st: State, given: list[str]) -> list[str]:
    """The relays to make a group with: those given, else the configured ones."""
    if given:
        return list(given)
    if not st.relays:
        raise ChatRelayError(Reason.MALFORMED, "no relay given and none configured: pass --relay RELAY_LINK, or add "
                                               "one with `chatrelay relays config add RELAY_LINK`")
    return [r.link for r in st.relays]


def relay_link_of(text: str) -> ShortLink | None:
    """`text` as a relay link (kind r), or None (another kind, or no link)."""
    try:
        link = ShortLink.parse(text)
    except ChatRelayError:
        return None
    return link if link.kind is LinkKind.RELAY else None
