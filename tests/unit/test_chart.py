"""helm/chatrelay, checked without a cluster: `helm lint --strict` and `helm template`
for every value set (helm itself: tests/unit/helm_chart.py), values against
values.schema.json, YAML lint, every manifest the chart can produce against the
Kubernetes schemas (kubernetes-validate) and its custom resources against their own CRDs
(KubeRay's RayCluster, prometheus-operator's PodMonitor: tests/unit/crds/), and the
dashboard against the metrics the gateway exports."""

from __future__ import annotations

import functools
import json
import pathlib
import re

import jsonschema
import kubernetes_validate
import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

import helm_chart
from chart_variants import CHART, ROOT, VARIANTS, manifests, pod_templates, values

K8S_VERSION = "1.30.0"
LINT = YamlLintConfig("extends: default\nrules:\n  line-length: {max: 200}\n  document-start: disable\n")


@pytest.mark.parametrize("name", VARIANTS)
def test_values_fit_the_schema(name):
    jsonschema.validate(values(VARIANTS[name]), json.loads((CHART / "values.schema.json").read_text()))


@pytest.mark.parametrize("overrides, message", [
    ({"relay": {"shards": 0}}, "0 is less than the minimum of 1"),
    ({"relay": {"gateways": 0}}, "0 is less than the minimum of 1"),
    ({"relay": {"gateways": 65}}, "65 is greater than the maximum of 64"),
    ({"relay": {"fanoutLinger": -1}}, "-1 is less than the minimum of 0"),
    ({"relay": {"fanoutLinger": "soon"}}, "'soon' is not of type 'number'"),
    ({"relay": {"advertise": "relay.example.org"}}, "'relay.example.org' does not match"),
    ({"etcd": {"replicas": 2}}, "2 is not one of [1, 3, 5, 7]"),
    ({"etcd": {"antiAffinity": "always"}}, "'always' is not one of ['soft', 'hard']"),
    ({"externalEtcd": {"endpoints": ["etcd:2379"]}}, "'etcd:2379' does not match"),
    ({"relay": {"shardz": 3}}, "Additional properties are not allowed ('shardz' was unexpected)"),
    ({"relay": {"keysSecret": ""}}, "'' should be non-empty"),
    ({"ray": {"authTokenSecret": ""}}, "'' should be non-empty"),
    ({"traces": {"otlp": "otlp://collector:4317"}}, "'otlp://collector:4317' does not match"),
    ({"traces": {"otlp": "collector:0"}}, "'collector:0' does not match"),
    ({"traces": {"otlp": "collector:65536"}}, "'collector:65536' does not match"),
    ({"traces": {"otlp": "collector:4317 --insecure"}}, "'collector:4317 --insecure' does not match"),
    ({"store": {"mode": "sqlite"}}, "'sqlite' is not one of ['cloudnativepg', 'external']"),
    ({"store": {"mode": "external"}}, "'' should be non-empty"),
    ({"store": {"cloudnativepg": {"storage": {"size": "20GB"}}}}, "'20GB' does not match"),
])
def test_bad_values_are_refused_by_the_schema(overrides, message):
    with pytest.raises(jsonschema.ValidationError) as caught:
        jsonschema.validate(values(overrides), json.loads((CHART / "values.schema.json").read_text()))
    assert caught.value.message.startswith(message)


def test_chart_files_pass_yamllint():
    for name in ("Chart.yaml", "values.yaml"):
        problems = list(linter.run((CHART / name).read_text(), LINT))
        assert problems == [], f"{name}: {problems}"


@pytest.mark.parametrize("name", VARIANTS)
def test_every_manifest_is_valid_kubernetes(name):
    for template, text in helm_chart.render_text(CHART, VARIANTS[name]).items():
        problems = list(linter.run(text, LINT))
        assert problems == [], f"{template}: {problems}"
    docs = manifests(VARIANTS[name])
    kinds = [d["kind"] for d in docs]
    assert "RayCluster" in kinds and "Service" in kinds
    for doc in docs:
        if doc["apiVersion"] in ("ray.io/v1", "monitoring.coreos.com/v1", "postgresql.cnpg.io/v1"):
            # Custom resources: their pod templates are checked as core PodTemplates.
            for template in pod_templates(doc):
                kubernetes_validate.validate(
                    {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": template},
                    K8S_VERSION, strict=True,
                )
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("name", VARIANTS)
def test_helm_lint_strict_passes(name):
    done = helm_chart.lint(CHART, VARIANTS[name])
    assert done.returncode == 0 and "0 chart(s) failed" in done.stdout, done.stdout + done.stderr


def test_helm_lint_holds_values_to_the_schema():
    done = helm_chart.lint(CHART, {"relay": {"shards": 0}})
    assert done.returncode != 0 and "shards: Must be greater than or equal to 1" in done.stdout, done.stdout


CRDS = pathlib.Path(__file__).resolve().parent / "crds"


def strict(schema: dict) -> dict:
    """A CRD's schema as `kubectl --validate=strict` holds an object to it: a field it does
    not know is an error (the API server would drop it silently)."""
    if isinstance(schema, dict):
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        for key in ("properties", "patternProperties"):
            for sub in schema.get(key, {}).values():
                strict(sub)
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                strict(schema[key])
        for key in ("allOf", "anyOf", "oneOf"):
            for sub in schema.get(key, []):
                strict(sub)
    return schema


@functools.cache
def crd_schema(file: str, version: str) -> dict:
    crd = yaml.safe_load((CRDS / file).read_text())
    [served] = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return strict(served["schema"]["openAPIV3Schema"])


CUSTOM = {"RayCluster": ("ray.io_rayclusters.yaml", "v1"),
          "PodMonitor": ("monitoring.coreos.com_podmonitors.yaml", "v1")}


@pytest.mark.parametrize("name", VARIANTS)
def test_custom_resources_fit_their_own_crds(name):
    checked = []
    for doc in manifests(VARIANTS[name]):
        if doc["kind"] in CUSTOM:
            assert doc["apiVersion"].endswith("/" + CUSTOM[doc["kind"]][1])
            jsonschema.validate(doc, crd_schema(*CUSTOM[doc["kind"]]))
            checked.append(doc["kind"])
    assert "RayCluster" in checked


def test_a_field_the_crd_does_not_know_is_caught():
    [ray] = [d for d in manifests({}) if d["kind"] == "RayCluster"]
    ray["spec"]["headGroupSpec"]["replicas"] = 1  # workers have replicas; the head has none
    with pytest.raises(jsonschema.ValidationError) as caught:
        jsonschema.validate(ray, crd_schema(*CUSTOM["RayCluster"]))
    assert "'replicas' was unexpected" in caught.value.message


def test_the_variants_render_what_they_say():
    by_kind = lambda docs: sorted(d["kind"] for d in docs)  # noqa: E731
    assert by_kind(manifests({})) == [
        "Cluster", "ConfigMap", "PersistentVolumeClaim", "PodDisruptionBudget", "PodDisruptionBudget", "PodMonitor",
        "RayCluster", "Service", "Service", "Service", "StatefulSet",
    ]
    assert "Cluster" not in by_kind(manifests(VARIANTS["external store"]))
    external = manifests(VARIANTS["external etcd"])
    assert "StatefulSet" not in by_kind(external) and by_kind(external).count("PodDisruptionBudget") == 1
    [ray] = [d for d in external if d["kind"] == "RayCluster"]
    controller = ray["spec"]["headGroupSpec"]["template"]["spec"]["containers"][1]
    assert "--etcd=http://etcd.example.svc:2379" in controller["args"]
    assert "PodMonitor" not in by_kind(manifests(VARIANTS["no metrics, no dashboard"]))
    assert "ConfigMap" not in by_kind(manifests(VARIANTS["no metrics, no dashboard"]))
    with pytest.raises(helm_chart.Fail) as caught:
        manifests({"etcd": {"enabled": False}})
    assert str(caught.value) == "set etcd.enabled or externalEtcd.endpoints: a relay cluster needs etcd"


def test_the_controller_runs_chatrelay_up_with_flags_it_knows():
    from chatrelay.cli import up

    known = {opt for param in up.params for opt in param.opts}
    [ray] = [d for d in manifests({}) if d["kind"] == "RayCluster"]
    head = ray["spec"]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"  # the head runs no relay actors
    controller = head["template"]["spec"]["containers"][1]
    assert controller["command"] == ["chatrelay", "up"]
    flags = [arg.split("=", 1)[0] for arg in controller["args"]]
    assert set(flags) <= known, set(flags) - known
    # It joins through Ray Client on the head's `client` port: from a container of its
    # own it sees no raylet (tests/integration/test_multinode.py shows both ways).
    assert "--ray-address=ray://127.0.0.1:10001" in controller["args"]
    assert "--fanout-linger=0.25" in controller["args"]  # relay.fanoutLinger, the relay's own default
    head_ports = {p["name"]: p["containerPort"] for p in head["template"]["spec"]["containers"][0]["ports"]}
    assert head_ports["client"] == 10001


def test_traces_go_to_the_collector_the_values_name():
    from chatrelay import settings

    def traces(overrides):
        [ray] = [d for d in manifests(overrides) if d["kind"] == "RayCluster"]
        args = ray["spec"]["headGroupSpec"]["template"]["spec"]["containers"][1]["args"]
        return [a.split("=", 1)[1] for a in args if a.startswith("--traces")]

    assert traces({}) == []  # no traces unless asked
    [flag] = traces(VARIANTS["traces to a collector"])
    assert flag == "otlp://otel-collector.monitoring:4317"
    assert settings.load({"traces": flag}, environ={}).traces == flag  # as chatrelay up reads it


def test_services_probes_and_monitor_point_at_named_ports():
    docs = manifests({})
    [ray] = [d for d in docs if d["kind"] == "RayCluster"]
    [workers] = ray["spec"]["workerGroupSpecs"]
    assert "chatrelay" in workers["rayStartParams"]["resources"]
    container = workers["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": 7223, "metrics": 9464}
    # TLS on the gateway port: the kubelet's gRPC probe speaks none, so a TCP probe.
    assert container["readinessProbe"]["tcpSocket"] == {"port": "grpc"}
    worker_labels = workers["template"]["metadata"]["labels"]
    [gateway] = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"].endswith("-gateway")]
    assert gateway["spec"]["ports"][0]["targetPort"] == "grpc"
    assert gateway["spec"]["selector"].items() <= worker_labels.items()
    [monitor] = [d for d in docs if d["kind"] == "PodMonitor"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= worker_labels.items()
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] in ports
    [dashboard] = [d for d in docs if d["kind"] == "ConfigMap"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["chatrelay.json"])["uid"] == "chatrelay-overview"


def test_each_gateway_of_a_worker_has_its_metrics_port_and_is_scraped():
    from chatrelay import settings

    docs = manifests(VARIANTS["three gateways a worker"])
    [ray] = [d for d in docs if d["kind"] == "RayCluster"]
    assert "--gateways=3" in ray["spec"]["headGroupSpec"]["template"]["spec"]["containers"][1]["args"]
    [workers] = ray["spec"]["workerGroupSpecs"]
    ports = {p["name"]: p["containerPort"] for p in workers["template"]["spec"]["containers"][0]["ports"]}
    assert ports == {"grpc": 7223, "metrics": 9464, "metrics-1": 9465, "metrics-2": 9466}
    # The ports each gateway serves its metrics on, as chatrelay up gives them.
    assert [settings.gateway_addresses("0.0.0.0:7223", "0.0.0.0:9464", {}, i)[1] for i in range(3)] \
        == [f"0.0.0.0:{ports[name]}" for name in ("metrics", "metrics-1", "metrics-2")]
    [monitor] = [d for d in docs if d["kind"] == "PodMonitor"]
    assert [e["port"] for e in monitor["spec"]["podMetricsEndpoints"]] == ["metrics", "metrics-1", "metrics-2"]
    with pytest.raises(helm_chart.Fail) as caught:
        manifests({"relay": {"gateways": 3}, "metrics": {"port": 65534}})
    assert str(caught.value) == ("metrics.port + relay.gateways - 1 is past 65535: each gateway of a worker serves "
                                 "metrics on a port of its own")
    assert manifests({"relay": {"gateways": 2}, "metrics": {"port": 65534}})  # 65534 and 65535


NO_SHARD_CALLS = {"posts": (0, 0), "calls": (0, 0), "checks": (0, 0)}  # as the router's lanes start


def exported_text(shard_figures=None, record=None, shard_calls=lambda: NO_SHARD_CALLS, socket_calls=lambda: 0) -> str:
    """What a gateway's Prometheus endpoint shows, from the real instruments: the shards'
    figures `shard_figures()` (one idle shard by default) and the calls to them
    `shard_calls()` and `socket_calls()` (none yet by default), after `record(metrics)`."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CollectorRegistry, generate_latest

    from chatrelay.actors.figures import ProcessInfo, ShardStats
    from chatrelay.cluster.metrics import GatewayMetrics

    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    try:
        metrics = GatewayMetrics(provider.get_meter("test"), subscribers=lambda: 1,
                                 shard_figures=shard_figures or (lambda: {0: ShardStats(
                                     shard=0, group_count=1, moved_out=0, mailbox_depth=0, posts_accepted=0,
                                     process=ProcessInfo(pid=1, rss_bytes=0))}), shard_calls=shard_calls,
                                 socket_calls=socket_calls)
        if record is not None:
            record(metrics)
        return generate_latest(registry).decode()
    finally:
        provider.shutdown()


def exported_lines(prefix: str, **exported) -> set[str]:
    """The lines of `exported_text(**exported)` of metrics named `prefix`..., without the
    test meter's scope labels."""
    scope = ',otel_scope_name="test",otel_scope_schema_url="",otel_scope_version=""'
    return {line.replace(scope, "") for line in exported_text(**exported).splitlines() if line.startswith(prefix)}


def exported_metric_names() -> set[str]:
    """The names a gateway's Prometheus endpoint shows, from the real instruments."""
    import grpc

    def record(metrics) -> None:
        for method in ("Post", "Join", "RegisterGroup"):
            metrics.finished(f"/chatrelay.v1.RelayService/{method}", 0.01, grpc.StatusCode.OK)
        metrics.deliveries.add(1)
        metrics.cut_off.add(1)

    text = exported_text(record=record)
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_the_dashboard_reads_metrics_the_gateway_exports():
    dashboard = json.loads((CHART / "dashboards" / "chatrelay.json").read_text())
    assert dashboard["uid"] == "chatrelay-overview"
    [variable] = dashboard["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == ("datasource", "datasource", "prometheus")
    exported = exported_metric_names()
    titles = set()
    for panel in dashboard["panels"]:
        titles.add(panel["title"])
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            series = re.sub(r"\{[^}]*\}|\bby \([^)]*\)", "", target["expr"])  # names, not labels
            names = set(re.findall(r"\b(?:chatrelay|messaging|rpc)_[a-z_]+", series))
            assert names and names <= exported, (panel["title"], names - exported)
    assert {"Throughput", "Post latency (arrival to ack)", "Mailbox depth by shard", "Subscribers",
            "Shard placement: groups loaded", "Errors by status"} <= titles


KEY_FILES = ("relay-identity.key", "operator.key", "tls.key", "tls.crt")


@pytest.mark.parametrize("name", VARIANTS)
def test_every_relay_node_reads_the_keys_from_the_secret_and_ray_asks_for_its_token(name):
    """Shards and gateways run on the workers and read the relay's keys there (no key
    travels as a Ray actor argument); the controller on the head reads them too. Ray's
    token authentication stays on, for the controller as well."""
    [ray] = [d for d in manifests(VARIANTS[name]) if d["kind"] == "RayCluster"]
    assert ray["spec"]["authOptions"] == {"mode": "token", "secretName": "chatrelay-ray-token"}
    head = ray["spec"]["headGroupSpec"]["template"]["spec"]
    [workers] = ray["spec"]["workerGroupSpecs"]
    worker = workers["template"]["spec"]
    controller = head["containers"][1]
    for pod, container in ((head, controller), (worker, worker["containers"][0])):
        [keys] = [v for v in pod["volumes"] if v["name"] == "keys"]
        assert keys["secret"] == {"secretName": "chatrelay-keys", "defaultMode": 0o440}
        # As the image's user, whose group the Secret's files (0440) and the data volume get.
        user = re.search(r"^USER (\d+)$", (ROOT / "deploy" / "Containerfile").read_text(), re.MULTILINE).group(1)
        assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": int(user), "runAsGroup": int(user),
                                          "fsGroup": int(user)}
        mounted = {m["subPath"]: m["mountPath"] for m in container["volumeMounts"] if m["name"] == "keys"}
        assert mounted == {f: f"/var/lib/chatrelay/{f}" for f in KEY_FILES}
        assert all(m["readOnly"] for m in container["volumeMounts"] if m["name"] == "keys")
    token = {e["name"]: e for e in controller["env"]}
    assert token["RAY_AUTH_MODE"]["value"] == "token"
    assert token["RAY_AUTH_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "chatrelay-ray-token", "key": "auth_token"}}
