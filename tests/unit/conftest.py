"""Unit tests are pure: no Ray, no servers, no subprocesses."""

import pytest
from nacl.signing import SigningKey

from chatrelay.actors.group_relay import RelayContext
from chatrelay.actors.policy import RelayLimits
from chatrelay.cluster.member_store_sqlite import SqliteMemberStore
from chatrelay.cluster.message_log_sqlite import SqliteMessageLog
from chatrelay.cluster.registry_sqlite import SqliteRegistry


@pytest.fixture(autouse=True)
def _no_ray(monkeypatch):
    try:
        import ray
    except ImportError:
        return

    def refuse(*args, **kwargs):
        raise AssertionError("unit tests must not start Ray; move this test to tests/integration")

    monkeypatch.setattr(ray, "init", refuse)


@pytest.fixture
async def ctx(tmp_path):
    """A group relay's context on the embedded registry, log and member store in `tmp_path`."""
    registry = SqliteRegistry(tmp_path / "registry.db")
    log = SqliteMessageLog(tmp_path / "messages.db")
    store = SqliteMemberStore(tmp_path / "messages.db")
    yield RelayContext(identity=SigningKey.generate(), registry=registry, log=log, members=store,
                       limits=RelayLimits(mailbox_size=4))
    await store.close()
    await log.close()
    await registry.close()
