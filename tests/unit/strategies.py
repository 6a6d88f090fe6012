"""Hypothesis strategies for the protocol core."""

from hypothesis import strategies as st

from chatrelay.links import LinkKind, ShortLink

_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_name = st.lists(_label, min_size=1, max_size=4).map(".".join)
_ipv6 = st.sampled_from(["[::1]", "[fe80::1]", "[2001:db8::2:1]"])
_port = st.integers(min_value=1, max_value=65535).map(lambda p: f":{p}")
hosts = st.tuples(st.one_of(_name, _ipv6), st.one_of(st.just(""), _port)).map("".join)

@st.composite
def short_links(draw):
    """Links with 1 to 8 hosts, each with a TLS key fingerprint or none."""
    chosen = tuple(draw(st.lists(hosts, min_size=1, max_size=8, unique=True)))
    pins = tuple(draw(st.sampled_from([b"", bytes(32), b"\xff" * 32])) for _ in chosen)
    return ShortLink(
        kind=draw(st.sampled_from(list(LinkKind))), link_key=draw(st.binary(min_size=32, max_size=32)),
        hosts=chosen, scheme=draw(st.sampled_from(["https", "chatrelay"])), pins=pins,
    )


short_links = short_links()
