"""The registry's link to etcd, encrypted and authenticated where the URL asks for it
(issue 15): a real etcd started with --client-cert-auth takes the relay with its client
certificate and refuses it without one; several endpoints fail over."""

from __future__ import annotations

import asyncio

import pytest

from chatrelay.cluster.harness import EtcdServer, free_port
from chatrelay.cluster.registry_etcd import EtcdRegistry, EtcdTls
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.settings import Settings


@pytest.fixture(scope="module")
def tls_etcd():
    with EtcdServer(tls=True, name="tls") as server:
        yield server


def client_tls(server: EtcdServer) -> EtcdTls:
    files = server.tls_files
    return EtcdTls(ca=files["ca"], cert=files["client_cert"], key=files["client_key"])


async def round_trip(registry: EtcdRegistry, value: bytes) -> bytes:
    """Put `value`, read it back, close."""
    try:
        await registry.put(b"k", value)
        return (await registry.get(b"k")).value
    finally:
        await registry.close()


async def test_a_client_certificate_of_the_ca_gets_in(tls_etcd):
    assert tls_etcd.url.startswith("https://")
    registry = EtcdRegistry(tls_etcd.url, namespace=b"/tls-test/", tls=client_tls(tls_etcd))
    assert await round_trip(registry, b"over TLS") == b"over TLS"


@pytest.mark.parametrize("tls", [
    "no client certificate",
    "a client certificate of another CA",
    "plaintext",
])
async def test_without_the_right_certificate_etcd_refuses(tls_etcd, tmp_path, tls):
    from chatrelay.cluster.harness import make_tls_files

    files = tls_etcd.tls_files
    url = tls_etcd.url
    if tls == "no client certificate":
        config = EtcdTls(ca=files["ca"])
    elif tls == "a client certificate of another CA":
        other = make_tls_files(str(tmp_path))
        config = EtcdTls(ca=files["ca"], cert=other["client_cert"], key=other["client_key"])
    else:
        config, url = None, url.replace("https://", "http://")
    registry = EtcdRegistry(url, namespace=b"/tls-test/", timeout=3, tls=config)
    try:
        with pytest.raises(ChatRelayError) as caught:
            await registry.put(b"k", b"stranger")
        assert caught.value.reason is Reason.UNAVAILABLE
        assert caught.value.message.startswith("the relay's registry is unavailable")
    finally:
        await registry.close()


async def test_a_relay_keeps_its_registry_in_an_etcd_over_tls(ray_session, tls_etcd, tmp_path):
    from chatrelay import client
    from chatrelay.cluster import up
    from chatrelay.group import GroupKind

    from realparts import start_relay

    files = tls_etcd.tls_files
    relay = await asyncio.to_thread(
        start_relay, tmp_path / "relay", shards=1, etcd=tls_etcd.url,
        etcd_ca=files["ca"], etcd_cert=files["client_cert"], etcd_key=files["client_key"],
    )
    try:
        assert relay.config.etcd_tls == (files["ca"], files["client_cert"], files["client_key"])  # paths, not keys
        owned = await client.create_group([relay.link], "Over TLS to etcd", GroupKind.CHANNEL)
        assert [ack.seq for ack in await client.post(owned, "stored")] == [1]
    finally:
        await asyncio.to_thread(up.stop, relay, ray_shutdown=False)


async def test_several_endpoints_fail_over_to_one_that_answers(etcd_server, etcd_namespace):
    dead = f"http://127.0.0.1:{free_port()}"
    registry = EtcdRegistry(f"{dead},{etcd_server.url}", namespace=etcd_namespace)
    assert await round_trip(registry, b"through the second member") == b"through the second member"


@pytest.mark.parametrize("values, message", [
    ({"etcd": "http://127.0.0.1:2379", "etcd_ca": "ca.pem"},
     "--etcd-ca, --etcd-cert and --etcd-key are for an https:// --etcd"),
    ({"etcd": "https://127.0.0.1:2379", "etcd_cert": "cert.pem"}, "--etcd-cert and --etcd-key go together"),
    ({"etcd": "https://127.0.0.1:2379", "etcd_ca": "no-such-ca.pem"}, "--etcd-ca: no file no-such-ca.pem"),
    ({"etcd": "https://127.0.0.1:2379,http://127.0.0.1:2380"},
     "--etcd URLs must all be http:// or all https://, got 'https://127.0.0.1:2379,http://127.0.0.1:2380'"),
])
def test_etcd_tls_settings_that_cannot_work_are_refused(values, message):
    with pytest.raises(ChatRelayError) as caught:
        Settings(**values)
    assert (caught.value.reason, caught.value.message) == (Reason.MALFORMED, message)
