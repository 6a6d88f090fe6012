"""The chart's value sets, every branch of its templates, and the manifests helm renders
for them: what tests/unit/test_chart.py and test_chart_state.py check."""

from __future__ import annotations

import pathlib

import yaml

import helm_chart

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "chatrelay"


# Every branch of the templates, by the values that take it.
VARIANTS = {
    "defaults": {},
    "external etcd": {"externalEtcd": {"endpoints": ["http://etcd.example.svc:2379"]}},
    "no metrics, no dashboard": {"metrics": {"enabled": False}, "dashboard": {"enabled": False}},
    "keys from a secret, no volume": {
        "relay": {"keysSecret": "chatrelay-keys", "persistence": {"enabled": False}},
        "imagePullSecrets": [{"name": "registry"}], "nodeSelector": {"pool": "relays"},
        "tolerations": [{"key": "relays", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"podAntiAffinity": {}},
    },
    "etcd over TLS": {"etcdTls": {"secret": "chatrelay-etcd-tls"}},
    "traces to a collector": {"traces": {"otlp": "otel-collector.monitoring:4317"}},
    "three gateways a worker": {"relay": {"gateways": 3}},
    "one etcd, load balancer": {
        "etcd": {"replicas": 1}, "gateway": {"service": {"type": "LoadBalancer", "annotations": {"a": "b"}}},
        "metrics": {"podMonitor": {"enabled": False}},
    },
    "external store": {"store": {"mode": "external", "external": {"secret": "chatrelay-store", "passwordKey": "password"}}},
    "one store instance, its storage class": {
        "store": {"cloudnativepg": {"instances": 1, "synchronousStandbys": 0, "storage": {"storageClassName": "fast"}}},
    },
}


def values(overrides: dict) -> dict:
    return helm_chart.merge(yaml.safe_load((CHART / "values.yaml").read_text()), overrides)


def manifests(overrides: dict) -> list[dict]:
    return helm_chart.render(CHART, overrides)


def pod_templates(doc: dict) -> list[dict]:
    if doc["kind"] == "RayCluster":
        spec = doc["spec"]
        return [spec["headGroupSpec"]["template"], *(g["template"] for g in spec["workerGroupSpecs"])]
    if doc["kind"] == "StatefulSet":
        return [doc["spec"]["template"]]
    return []


def env_of(container: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}
