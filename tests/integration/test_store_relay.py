"""A relay with `--store postgresql://…` (issue 17): posts and members in PostgreSQL,
nothing a member in the registry; PostgreSQL down is UNAVAILABLE with a retry hint, and a
post sent meanwhile is acked once it is back; a crash of PostgreSQL in the middle of a
flood of posts loses none that was acked. The relay runs in the session's Ray, against a
PostgreSQL of this module's own (these tests stop it)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from chatrelay import client, members
from chatrelay.actors.records import MemberStatus
from chatrelay.cluster.harness import PostgresServer
from chatrelay.cluster.registry_sqlite import SqliteRegistry
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.group import GroupKind, JoinPolicy

from realparts import start_relay

RECOVERY_S = 60


@pytest.fixture(scope="module")
def own_postgres():
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="module")
def pg_relay(ray_session, tmp_path_factory, own_postgres):
    from chatrelay.cluster import up

    running = start_relay(tmp_path_factory.mktemp("pg-relay"), store=own_postgres.dsn)
    yield running
    up.stop(running, ray_shutdown=False)


async def in_postgres(server, relay, sql: str, *args) -> list:
    conn = await asyncpg.connect(server.dsn)
    try:
        return await conn.fetch(sql.replace("SCHEMA", relay.config.store_schema), *args)
    finally:
        await conn.close()


async def test_members_are_in_postgresql_and_none_in_the_registry(pg_relay, own_postgres):
    owned = await client.create_group([pg_relay.link], "Kept apart", GroupKind.GROUP, JoinPolicy.APPROVAL)
    waiting = [await client.join(owned.link, f"m{i}") for i in range(3)]
    for request in await client.pending(owned):
        await client.decide(owned, request.request_id.hex(), approve=True)
    await client.post(waiting[0], "hello")
    assert [p.text for p in await client.read_all(waiting[1])] == ["hello"]
    address = owned.relays[0].address
    rows = await in_postgres(own_postgres, pg_relay, "SELECT key, status FROM SCHEMA.members WHERE grp = $1", address)
    assert sorted(bytes(r["key"]) for r in rows) == sorted(bytes(client.reader_key(m).verify_key) for m in waiting)
    assert {r["status"] for r in rows} == {MemberStatus.MEMBER.value}
    posts = await in_postgres(own_postgres, pg_relay, "SELECT count(*) AS n FROM SCHEMA.records WHERE stream = $1",
                              "posts/" + address)
    assert posts[0]["n"] == 1
    registry = SqliteRegistry(f"{pg_relay.config.data_dir}/registry.db")
    try:
        assert await registry.get_prefix(b"members/") == []
        assert await registry.get_prefix(b"invites/") == []
        assert await registry.get_prefix(b"commands/") == []
    finally:
        await registry.close()


async def test_postgresql_down_is_unavailable_with_a_retry_hint(pg_relay, own_postgres):
    owned = await client.create_group([pg_relay.link], "Through an outage", GroupKind.CHANNEL)
    reader = await client.join(owned.link, "reader")
    await client.post(owned, "before")
    entry = owned.relays[0]
    envelope = members.sign_post(client.reader_key(owned), bytes.fromhex(owned.group_id), b"refused")
    await asyncio.to_thread(own_postgres.halt)
    try:
        async with client.RelayClient(entry.target) as relay:
            with pytest.raises(ChatRelayError) as refused:
                await relay.post(entry.address, envelope)
        assert refused.value.reason is Reason.UNAVAILABLE
        assert refused.value.message.startswith("relay storage unavailable: "), refused.value.message
        assert refused.value.retry_after_ms > 0
        sending = asyncio.create_task(client.post(owned, "during", retry_for_s=RECOVERY_S))
        await asyncio.sleep(2.0)
        assert not sending.done()  # sent again, not failed
    finally:
        await asyncio.to_thread(own_postgres.start)
    acks = await asyncio.wait_for(sending, RECOVERY_S)
    assert len(acks) == 1
    assert [p.text for p in await client.read_all(reader)] == ["before", "during"]


async def test_a_postgresql_crash_in_a_flood_loses_no_acknowledged_post(pg_relay, own_postgres):
    """Four channels, each with a poster sending its posts one after another (each the same
    signed post until acked); PostgreSQL crashes (`pg_ctl stop -m immediate`) and comes
    back in the middle. Every acked post is there after, in order, and none twice."""
    channels = [await client.create_group([pg_relay.link], f"Flood {i}", GroupKind.CHANNEL) for i in range(4)]
    readers = [await client.join(c.link, "reader") for c in channels]
    acked: list[list[str]] = [[] for _ in channels]
    posts = 30

    async def poster(i: int) -> None:
        for n in range(posts):
            text = f"c{i} p{n}"
            await client.post(channels[i], text, retry_for_s=RECOVERY_S)
            acked[i].append(text)

    flood = [asyncio.create_task(poster(i)) for i in range(len(channels))]
    for _ in range(200):  # until the flood is well under way, bounded
        if min(len(a) for a in acked) >= 5:
            break
        await asyncio.sleep(0.05)
    await asyncio.to_thread(own_postgres.halt, "immediate")
    await asyncio.sleep(1.0)
    await asyncio.to_thread(own_postgres.start)
    await asyncio.wait_for(asyncio.gather(*flood), RECOVERY_S * 2)
    for i, reader in enumerate(readers):
        assert acked[i] == [f"c{i} p{n}" for n in range(posts)]
        assert [p.text for p in await client.read_all(reader)] == acked[i]


def test_status_says_where_posts_and_members_are(pg_relay):
    import json

    from realparts import ok

    seen = json.loads(ok("status", "--data-dir", pg_relay.config.data_dir, "--json", "--window", "0.2"))
    assert (seen["registry"], seen["store"]) == ("embedded", "postgresql")
    assert "registry embedded, store postgresql" in ok("status", "--data-dir", pg_relay.config.data_dir, "--window", "0.2")
