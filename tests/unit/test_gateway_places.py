"""Where a relay runs its gateways: --gateways on each relay node, or one per CPU of each."""

from __future__ import annotations

from chatrelay.actors import factory
from chatrelay.actors.config import ClusterConfig
from chatrelay.actors.policy import RelayLimits
from chatrelay.cluster import up


def config(gateways: int) -> ClusterConfig:
    return ClusterConfig(data_dir="", relay_key=b"\x01" * 32, shards=2, etcd=None, listen="127.0.0.1:7223",
                         limits=RelayLimits(), operator_key=None, metrics=None, traces=None, gateways=gateways)


def test_each_node_runs_the_gateways_asked_for():
    assert up._gateway_places(config(1), {"a": 2, "b": 8}) == {("a", 0), ("b", 0)}
    assert up._gateway_places(config(3), {"a": 2}) == {("a", 0), ("a", 1), ("a", 2)}


def test_zero_is_one_per_cpu_of_each_node_and_never_none():
    assert up._gateway_places(config(0), {"a": 2, "b": 1, "c": 0}) == {("a", 0), ("a", 1), ("b", 0), ("c", 0)}
    assert factory.gateways_of(config(0), 1000) == 64  # --gateways' own bound


def test_a_node_s_first_gateway_keeps_the_name_of_its_one_gateway():
    one = config(1)
    assert factory.gateway_name(one, "f" * 56) == f"chatrelay-{factory.relay_tag(one)}-gateway-{'f' * 16}"
    assert factory.gateway_name(one, "f" * 56, 2) == f"chatrelay-{factory.relay_tag(one)}-gateway-{'f' * 16}-2"
