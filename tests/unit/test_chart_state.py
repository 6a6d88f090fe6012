"""helm/chatrelay's stateful parts, as rendered by helm: etcd (over TLS, probed by its own
/livez and /readyz, spread over nodes), the disruption budgets, and the store of posts
and members (CloudNativePG, or a PostgreSQL of the operator's own)."""

from __future__ import annotations

from chart_variants import VARIANTS, env_of, manifests


def test_etcd_over_tls_asks_every_client_for_a_certificate_and_the_relay_has_one_on_every_node():
    docs = manifests(VARIANTS["etcd over TLS"])
    [etcd] = [d for d in docs if d["kind"] == "StatefulSet"]
    container = etcd["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert "--client-cert-auth" in args and "--trusted-ca-file=/etc/etcd/tls/ca.crt" in args
    assert "--listen-client-urls=https://0.0.0.0:2379" in args
    assert container["readinessProbe"]["httpGet"]["port"] == "health"  # not the port that asks for a certificate
    [ray] = [d for d in docs if d["kind"] == "RayCluster"]
    controller = ray["spec"]["headGroupSpec"]["template"]["spec"]["containers"][1]
    assert "--etcd=https://relay-chatrelay-etcd:2379" in controller["args"]
    assert {a for a in controller["args"] if a.startswith("--etcd-")} == {
        "--etcd-ca=/etc/chatrelay/etcd/ca.crt", "--etcd-cert=/etc/chatrelay/etcd/client.crt",
        "--etcd-key=/etc/chatrelay/etcd/client.key"}
    [workers] = ray["spec"]["workerGroupSpecs"]
    head, worker = ray["spec"]["headGroupSpec"]["template"]["spec"], workers["template"]["spec"]
    for pod, container in ((head, controller), (worker, worker["containers"][0])):
        assert {"name": "etcd-tls", "mountPath": "/etc/chatrelay/etcd", "readOnly": True} in container["volumeMounts"]
        assert {"name": "etcd-tls", "secret": {"secretName": "chatrelay-etcd-tls", "defaultMode": 0o440}} in pod["volumes"]
    plain = manifests({})
    [etcd] = [d for d in plain if d["kind"] == "StatefulSet"]
    assert "--client-cert-auth" not in etcd["spec"]["template"]["spec"]["containers"][0]["args"]


def test_etcd_is_probed_by_its_own_livez_and_readyz_and_spread_over_nodes():
    """/livez checks only the member itself: losing quorum restarts no member (the old
    /health did, every member at once); members prefer nodes of their own, or require
    them with etcd.antiAffinity=hard."""
    [etcd] = [d for d in manifests({}) if d["kind"] == "StatefulSet"]
    pod = etcd["spec"]["template"]["spec"]
    [container] = pod["containers"]
    probes = {kind: container[kind]["httpGet"] for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert probes == {"startupProbe": {"path": "/readyz", "port": "health"},
                      "readinessProbe": {"path": "/readyz", "port": "health"},
                      "livenessProbe": {"path": "/livez", "port": "health"}}
    [soft] = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    term = soft["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= etcd["spec"]["template"]["metadata"]["labels"].items()
    [etcd] = [d for d in manifests({"etcd": {"antiAffinity": "hard"}}) if d["kind"] == "StatefulSet"]
    [hard] = etcd["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert hard["labelSelector"] == term["labelSelector"]


def test_disruption_budgets_take_one_relay_worker_and_one_etcd_member_at_a_time():
    docs = manifests({})
    budgets = {d["metadata"]["name"].rsplit("-", 1)[1]: d["spec"] for d in docs if d["kind"] == "PodDisruptionBudget"}
    assert {name: spec["maxUnavailable"] for name, spec in budgets.items()} == {"relays": 1, "etcd": 1}
    [ray] = [d for d in docs if d["kind"] == "RayCluster"]
    [workers] = ray["spec"]["workerGroupSpecs"]
    worker_labels = workers["template"]["metadata"]["labels"]
    head_labels = ray["spec"]["headGroupSpec"]["template"]["metadata"]["labels"]
    relays = budgets["relays"]["selector"]["matchLabels"]
    assert relays.items() <= worker_labels.items() and not relays.items() <= head_labels.items()
    [etcd] = [d for d in docs if d["kind"] == "StatefulSet"]
    assert budgets["etcd"]["selector"]["matchLabels"].items() <= etcd["spec"]["template"]["metadata"]["labels"].items()


def test_the_store_is_the_cloudnativepg_cluster_with_synchronous_standbys():
    """The CloudNativePG Cluster (a custom resource: its fields checked here against what
    the operator documents for postgresql.cnpg.io/v1) and the relay's way to it: the URL
    names the Cluster's read-write Service and the owner of its database, the password
    comes from the Secret the operator makes, on the controller and on every relay node
    (whose shards connect), never in the URL."""
    docs = manifests({})
    [cluster] = [d for d in docs if d["kind"] == "Cluster"]
    name, spec = cluster["metadata"]["name"], cluster["spec"]
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1" and name == "relay-chatrelay-store"
    assert spec["instances"] == 3
    assert spec["postgresql"]["synchronous"] == {"method": "any", "number": 1, "dataDurability": "required"}
    assert spec["bootstrap"] == {"initdb": {"database": "chatrelay", "owner": "chatrelay"}}
    assert spec["storage"] == {"size": "20Gi"}
    assert set(spec) <= {"instances", "postgresql", "bootstrap", "storage", "resources"}
    [ray] = [d for d in docs if d["kind"] == "RayCluster"]
    controller = ray["spec"]["headGroupSpec"]["template"]["spec"]["containers"][1]
    [workers] = ray["spec"]["workerGroupSpecs"]
    worker = workers["template"]["spec"]["containers"][0]
    password = {"secretKeyRef": {"name": f"{name}-app", "key": "password"}}
    assert env_of(controller)["CHATRELAY_STORE"] == f"postgresql://chatrelay@{name}-rw:5432/chatrelay"
    assert env_of(controller)["PGPASSWORD"] == password and env_of(worker) == {"PGPASSWORD": password}
    from chatrelay import settings

    assert settings.env_name(next(f for f in settings.fields() if f.name == "store")) == "CHATRELAY_STORE"
    assert settings.load(environ={"CHATRELAY_STORE": env_of(controller)["CHATRELAY_STORE"]}).store.endswith("/chatrelay")
    single = manifests(VARIANTS["one store instance, its storage class"])
    [cluster] = [d for d in single if d["kind"] == "Cluster"]
    assert "postgresql" not in cluster["spec"] and cluster["spec"]["instances"] == 1
    assert cluster["spec"]["storage"] == {"size": "20Gi", "storageClass": "fast"}


def test_an_external_store_comes_from_a_secret_and_worker_pods_keep_no_state():
    docs = manifests(VARIANTS["external store"])
    [ray] = [d for d in docs if d["kind"] == "RayCluster"]
    controller = ray["spec"]["headGroupSpec"]["template"]["spec"]["containers"][1]
    [workers] = ray["spec"]["workerGroupSpecs"]
    pod = workers["template"]["spec"]
    assert env_of(controller)["CHATRELAY_STORE"] == {"secretKeyRef": {"name": "chatrelay-store", "key": "url"}}
    password = {"secretKeyRef": {"name": "chatrelay-store", "key": "password"}}
    assert env_of(controller)["PGPASSWORD"] == password and env_of(pod["containers"][0]) == {"PGPASSWORD": password}
    assert {"name": "data", "emptyDir": {}} in pod["volumes"]  # nothing on a worker outlives it
    no_password = manifests({"store": {"mode": "external", "external": {"secret": "s"}}})
    [ray] = [d for d in no_password if d["kind"] == "RayCluster"]
    assert "env" not in ray["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
