"""Real parts for integration tests, each started once per session."""

from __future__ import annotations

import uuid

import pytest

from realparts import EtcdServer, start_relay


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory):
    server = EtcdServer(str(tmp_path_factory.mktemp("etcd")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def etcd_namespace() -> bytes:
    """A fresh key space per test: tests never see each other's keys."""
    return f"/test-{uuid.uuid4().hex}/".encode()


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the whole session, on loopback only."""
    import ray

    from chatrelay.cluster.up import init_local_ray

    init_local_ray()
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def relay(ray_session, tmp_path_factory):
    """A relay (2 shards, 1 gateway, embedded registry and log) in the session's Ray."""
    from chatrelay.cluster import up

    running = start_relay(tmp_path_factory.mktemp("relay"))
    yield running
    up.stop(running, ray_shutdown=False)


@pytest.fixture(params=["embedded", "etcd"])
async def registry(request, tmp_path):
    """The embedded registry, then a real etcd (a fresh namespace in the session's etcd)."""
    from chatrelay.actors.registry import Registry
    from chatrelay.cluster.registry_etcd import EtcdRegistry
    from chatrelay.cluster.registry_sqlite import SqliteRegistry

    if request.param == "embedded":
        reg = SqliteRegistry(tmp_path / "registry.db")
    else:
        server = request.getfixturevalue("etcd_server")
        reg = EtcdRegistry(server.url, namespace=request.getfixturevalue("etcd_namespace"))
    assert isinstance(reg, Registry)
    yield reg
    await reg.close()
