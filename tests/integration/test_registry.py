"""Registry conformance: the same tests against the embedded backend and a real etcd
(the `registry` fixture in conftest.py)."""

from __future__ import annotations

import asyncio

import pytest

from chatrelay.actors.registry import (
    Compare, Delete, EventKind, Get, Put, Target, absent, unchanged_since,
)
from chatrelay.cluster.registry_sqlite import SqliteRegistry


async def test_put_get_delete(registry):
    assert await registry.get(b"a") is None
    rev1 = await registry.put(b"a", b"1")
    entry = await registry.get(b"a")
    assert (entry.key, entry.value, entry.version) == (b"a", b"1", 1)
    assert entry.create_revision == entry.mod_revision == rev1
    rev2 = await registry.put(b"a", b"2")
    entry = await registry.get(b"a")
    assert rev2 > rev1 and entry.version == 2 and entry.create_revision == rev1 and entry.mod_revision == rev2
    assert await registry.delete(b"a") is True
    assert await registry.delete(b"a") is False
    assert await registry.get(b"a") is None


async def test_get_prefix_is_ordered_and_bounded(registry):
    for key in (b"g/2", b"g/1", b"h/1", b"g0"):
        await registry.put(key, key)
    assert [e.key for e in await registry.get_prefix(b"g/")] == [b"g/1", b"g/2"]


async def test_transaction_create_if_absent(registry):
    first = await registry.transaction([absent(b"k")], [Put(b"k", b"mine")], [Get(b"k")])
    second = await registry.transaction([absent(b"k")], [Put(b"k", b"theirs")], [Get(b"k")])
    assert first.succeeded and first.gets == ()
    assert not second.succeeded and second.gets[0].value == b"mine"
    assert (await registry.get(b"k")).value == b"mine"


async def test_concurrent_create_if_absent_has_one_winner(registry):
    async def claim(i):
        result = await registry.transaction(
            [absent(b"claim")], [Put(b"claim", str(i).encode())], [Get(b"claim")]
        )
        return result.succeeded, (await registry.get(b"claim")).value

    results = await asyncio.gather(*(claim(i) for i in range(20)))
    winners = [r for r in results if r[0]]
    assert len(winners) == 1
    assert {value for _, value in results} == {winners[0][1]}


async def test_transaction_compare_on_mod_revision_and_value(registry):
    await registry.put(b"k", b"v1")
    entry = await registry.get(b"k")
    await registry.put(b"k", b"v2")
    stale = await registry.transaction([unchanged_since(b"k", entry.mod_revision)], [Put(b"k", b"x")])
    assert not stale.succeeded and (await registry.get(b"k")).value == b"v2"
    fresh = await registry.get(b"k")
    ok = await registry.transaction(
        [unchanged_since(b"k", fresh.mod_revision), Compare(b"k", Target.VALUE, b"v2")],
        [Put(b"k", b"v3"), Delete(b"other"), Get(b"k")],
    )
    assert ok.succeeded and ok.gets[0].value == b"v3"
    differs = await registry.transaction([Compare(b"k", Target.VALUE, b"v3", equal=False)], [Put(b"k", b"no")])
    assert not differs.succeeded


async def test_lease_expiry_deletes_its_keys(registry):
    lease = await registry.lease_grant(1)
    await registry.put(b"owned", b"x", lease=lease)
    await registry.put(b"kept", b"y")
    assert (await registry.get(b"owned")).lease == lease
    for _ in range(100):  # etcd expires within ttl + its check interval
        if await registry.get(b"owned") is None:
            break
        await asyncio.sleep(0.1)
    assert await registry.get(b"owned") is None
    assert (await registry.get(b"kept")).value == b"y"
    with pytest.raises(LookupError):
        await registry.put(b"late", b"z", lease=lease)


async def test_lease_refresh_keeps_keys_and_revoke_drops_them(registry):
    lease = await registry.lease_grant(2)
    await registry.put(b"owned", b"x", lease=lease)
    for _ in range(3):
        await asyncio.sleep(1)
        await registry.lease_refresh(lease)
    assert (await registry.get(b"owned")).value == b"x"
    await registry.lease_revoke(lease)
    assert await registry.get(b"owned") is None
    with pytest.raises(LookupError):
        await registry.lease_refresh(lease)


async def test_a_revoked_lease_stays_gone_whatever_is_granted_after(registry):
    """A lease id is never given out again: the holder of a revoked lease (a shard taken
    over) must not keep a newer lease alive by renewing its old id. The embedded registry
    once reused ids."""
    first = await registry.lease_grant(5)
    await registry.lease_revoke(first)
    later = [await registry.lease_grant(5) for _ in range(3)]
    assert first not in later and len(set(later)) == 3
    with pytest.raises(LookupError):
        await registry.lease_refresh(first)
    for lease in later:
        await registry.lease_refresh(lease)


async def test_watch_prefix_sees_puts_and_deletes_in_order(registry):
    events = []

    async def watch():
        async for event in registry.watch_prefix(b"w/"):
            events.append(event)
            if len(events) == 3:
                return

    task = asyncio.create_task(watch())
    await asyncio.sleep(0.3)  # the watch is in place
    await registry.put(b"w/a", b"1")
    await registry.put(b"other", b"ignored")
    await registry.put(b"w/b", b"2")
    await registry.delete(b"w/a")
    await asyncio.wait_for(task, timeout=10)
    assert [(e.kind, e.key, e.value) for e in events] == [
        (EventKind.PUT, b"w/a", b"1"), (EventKind.PUT, b"w/b", b"2"), (EventKind.DELETE, b"w/a", b""),
    ]
    assert events[0].revision < events[1].revision < events[2].revision


async def test_watch_from_a_past_revision_replays(registry):
    rev = await registry.put(b"r/a", b"1")
    await registry.put(b"r/a", b"2")
    seen = []
    async def watch():
        async for event in registry.watch_prefix(b"r/", start_revision=rev):
            seen.append(event.value)
            if len(seen) == 2:
                return
    await asyncio.wait_for(watch(), timeout=10)
    assert seen == [b"1", b"2"]


async def test_embedded_registry_is_shared_by_two_instances(tmp_path):
    """Shards and gateway of one node open the same file from several processes."""
    a, b = SqliteRegistry(tmp_path / "r.db"), SqliteRegistry(tmp_path / "r.db")
    try:
        results = await asyncio.gather(
            *(reg.transaction([absent(b"x")], [Put(b"x", name)]) for reg, name in ((a, b"a"), (b, b"b")) * 5)
        )
        assert sum(r.succeeded for r in results) == 1
        assert (await b.get(b"x")).value == (await a.get(b"x")).value
    finally:
        await a.close()
        await b.close()


async def test_embedded_registry_survives_reopen(tmp_path):
    reg = SqliteRegistry(tmp_path / "r.db")
    rev = await reg.put(b"k", b"v")
    await reg.close()
    reg = SqliteRegistry(tmp_path / "r.db")
    try:
        entry = await reg.get(b"k")
        assert entry.value == b"v" and entry.mod_revision == rev
        assert await reg.put(b"k2", b"v") > rev
    finally:
        await reg.close()


async def test_a_locked_embedded_registry_is_unavailable_and_works_again_once_free(tmp_path):
    """Another process holding the file's write lock longer than a write waits: the
    caller is told to retry (UNAVAILABLE), not handed an internal error."""
    import sqlite3

    from chatrelay.errors import ChatRelayError, Reason

    reg = SqliteRegistry(tmp_path / "r.db", busy_timeout_s=0.2)
    other = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(ChatRelayError) as caught:
            await reg.put(b"k", b"v")
        assert (caught.value.reason, caught.value.message) == (
            Reason.UNAVAILABLE, "the relay's registry is busy (database is locked); retry")
        other.execute("ROLLBACK")
        await reg.put(b"k", b"v")
        assert (await reg.get(b"k")).value == b"v"
    finally:
        other.close()
        await reg.close()
