"""Hypothesis strategies for the protocol core."""

from hypothesis import strategies as st

from chatrelay.links import LinkKind, ShortLink

_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_name = st.lists(_label, min_size=1, max_size=4).map(".".join)
_ipv6 = st.sampled_from(["[::1]", "[fe80::1]", "[2001:db8::2:1]"])
_port = st.integers(min_value=1, max_value=65535).map(lambda p: f":{p}")
hosts = st.tuples(st.one_of(_name, _ipv6), st.one_of(st.just(""), _port)).map("".join)

short_links = st.builds(
    ShortLink,
    kind=st.sampled_from(list(LinkKind)),
    link_key=st.binary(min_size=32, max_size=32),
    hosts=st.lists(hosts, min_size=1, max_size=8, unique=True).map(tuple),
    scheme=st.sampled_from(["https", "chatrelay"]),
)
