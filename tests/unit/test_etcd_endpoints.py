"""etcd URLs as the relay reads them (cluster/registry_etcd.py): members of one cluster,
one scheme, and the gRPC target that fails over between them."""

from __future__ import annotations

import pytest

from chatrelay.cluster.registry_etcd import channel_target, parse_endpoints
from chatrelay.errors import ChatRelayError, Reason


@pytest.mark.parametrize("urls, target", [
    ("http://127.0.0.1:2379", "127.0.0.1:2379"),
    ("https://10.0.0.1:2379,https://10.0.0.2", "ipv4:10.0.0.1:2379,10.0.0.2:2379"),
    ("http://[::1]:2379,http://[::1]:2380", "ipv6:[::1]:2379,[::1]:2380"),
    ("https://etcd-0.etcd:2379,https://etcd-1.etcd:2379", "etcd-0.etcd:2379"),
    ("http://[::1]:2379", "[::1]:2379"),
])
def test_members_become_one_target(urls, target):
    assert channel_target(parse_endpoints(urls)[1]) == target


def test_one_scheme_for_all_members():
    with pytest.raises(ChatRelayError) as caught:
        parse_endpoints("https://a:2379,http://b:2379")
    assert (caught.value.reason, caught.value.message) == (
        Reason.MALFORMED, "etcd URLs must all be http:// or all https://, got 'https://a:2379,http://b:2379'")
