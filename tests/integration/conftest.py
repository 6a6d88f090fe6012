"""Real parts for integration tests, each started once per session."""

from __future__ import annotations

import re
import uuid

import pytest

from chatrelay.cluster.member_store_postgres import PostgresMemberStore
from chatrelay.cluster.member_store_sqlite import SqliteMemberStore
from chatrelay.cluster.message_log_postgres import PostgresMessageLog
from chatrelay.cluster.message_log_sqlite import SqliteMessageLog

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


@pytest.fixture(scope="session")
def postgres_server():
    """One throwaway PostgreSQL for the session (started at its first use)."""
    from chatrelay.cluster.harness import PostgresServer

    with PostgresServer() as server:
        yield server


def _schema(folder) -> str:
    """A schema of its own for each test, named after its folder (unique in the session)."""
    return "t_" + re.sub(r"[^a-z0-9_]", "_", folder.name.lower())[:60]


# Every store backend: its message log and its member store (in the same database: the
# log claims the groups whose fences the member store's writes carry), opened at a place
# (a folder, or a schema named after it). tests/integration/test_message_log.py and
# test_member_store.py run against each.
def _place(folder, request) -> dict:
    return {"path": folder / "messages.db"} if request.param == "embedded" else {
        "dsn": request.getfixturevalue("postgres_server").dsn, "schema": _schema(folder)}


BACKENDS = {
    "embedded": (lambda place: SqliteMessageLog(place["path"]), lambda place: SqliteMemberStore(place["path"])),
    "postgresql": (lambda place: PostgresMessageLog(place["dsn"], schema=place["schema"]),
                   lambda place: PostgresMemberStore(place["dsn"], schema=place["schema"])),
}


@pytest.fixture(params=sorted(BACKENDS))
async def message_logs(request, tmp_path):
    """Opens the backend's log at one place, as often as a test asks: what one wrote,
    the next one opened there reads."""
    from chatrelay.actors.message_log import MessageLog

    opened = []

    def open_log():
        log = BACKENDS[request.param][0](_place(tmp_path, request))
        assert isinstance(log, MessageLog)
        opened.append(log)
        return log
    yield open_log
    for log in opened:
        await log.close()


@pytest.fixture
def log(message_logs):
    return message_logs()


@pytest.fixture(params=sorted(BACKENDS))
async def store(request, tmp_path):
    """(message log, member store) of one backend, at one place."""
    from chatrelay.actors.member_store import MemberStore

    place = _place(tmp_path, request)
    log, members = (make(place) for make in BACKENDS[request.param])
    assert isinstance(members, MemberStore)
    yield log, members
    await members.close()
    await log.close()
