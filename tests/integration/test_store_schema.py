"""The store's schema versions (cluster/store_schema.py) on both backends: a new store is
made at the newest version, an embedded store of the version before member stores keeps
its posts, relays that open one store together apply each step once, and a store newer
than the relay is refused before anything is read or written."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import threading

import asyncpg
import pytest

from chatrelay.cluster import store_schema
from chatrelay.cluster.member_store_postgres import PostgresMemberStore
from chatrelay.cluster.member_store_sqlite import SqliteMemberStore
from chatrelay.cluster.message_log_postgres import PostgresMessageLog
from chatrelay.cluster.message_log_sqlite import SqliteMessageLog
from chatrelay.cluster.postgres import Pool
from chatrelay.cluster.store_schema import VERSION, SchemaTooNew
from chatrelay.errors import Reason


def versions_sqlite(path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [v for (v,) in conn.execute("SELECT version FROM schema_versions ORDER BY version")]


async def versions_postgres(dsn: str, schema: str) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        return [r["version"] for r in await conn.fetch(f"SELECT version FROM {schema}.schema_versions ORDER BY version")]
    finally:
        await conn.close()


async def test_an_embedded_store_of_the_first_version_keeps_its_posts(tmp_path):
    path = tmp_path / "messages.db"
    with sqlite3.connect(path) as conn:  # as a relay before versions left it: tables, no versions
        conn.executescript(store_schema.SQLITE[0])
        conn.execute("INSERT INTO records VALUES ('posts/g', 1, 5, NULL, x'6869')")
        conn.execute("INSERT INTO heads VALUES ('posts/g', 1, 0)")
    log = SqliteMessageLog(path)
    try:
        assert [r.data for r in await log.read("posts/g")] == [b"hi"]
        assert (await log.append("posts/g", [b"more"])).seqs == (2,)
    finally:
        await log.close()
    assert versions_sqlite(path) == list(range(1, VERSION + 1))


def test_embedded_stores_opened_together_apply_each_step_once(tmp_path):
    path = tmp_path / "messages.db"
    errors: list[BaseException] = []

    def open_one():
        try:
            SqliteMemberStore(path)._conn.close()
        except BaseException as exc:  # reported below
            errors.append(exc)
    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and versions_sqlite(path) == list(range(1, VERSION + 1))


async def test_postgres_stores_opened_together_apply_each_step_once(postgres_server):
    schema = "together"
    pools = [Pool(postgres_server.dsn, schema, size=1) for _ in range(6)]
    try:
        await asyncio.gather(*(p.ready() for p in pools))
    finally:
        await asyncio.gather(*(p.close() for p in pools))
    assert await versions_postgres(postgres_server.dsn, schema) == list(range(1, VERSION + 1))


async def test_an_embedded_store_newer_than_the_relay_is_refused(tmp_path):
    path = tmp_path / "messages.db"
    SqliteMemberStore(path)._conn.close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_versions VALUES (?, 0)", (VERSION + 1,))
    with pytest.raises(SchemaTooNew) as caught:
        SqliteMemberStore(path)
    assert caught.value.reason is Reason.REFUSED
    assert caught.value.message == (
        f"the store at {path} has schema version {VERSION + 1}, newer than this chatrelay knows ({VERSION}): "
        "upgrade chatrelay on every node before starting it against this store")
    with pytest.raises(RuntimeError) as caught:  # the log too: nothing read or written
        SqliteMessageLog(path)
    assert f"has schema version {VERSION + 1}" in str(caught.value)


async def test_a_postgres_store_newer_than_the_relay_is_refused(postgres_server):
    schema = "newer"
    pool = Pool(postgres_server.dsn, schema, size=1)
    await pool.ready()
    await pool.close()
    conn = await asyncpg.connect(postgres_server.dsn)
    try:
        await conn.execute(f"INSERT INTO {schema}.schema_versions VALUES ($1, 0)", VERSION + 1)
    finally:
        await conn.close()
    for opened in (PostgresMessageLog(postgres_server.dsn, schema), PostgresMemberStore(postgres_server.dsn, schema)):
        try:
            with pytest.raises(SchemaTooNew) as caught:
                await opened.statuses("g") if isinstance(opened, PostgresMemberStore) else await opened.last_seq("s")
        finally:
            await opened.close()
        assert caught.value.message == (
            f"the store (PostgreSQL schema {schema}) has schema version {VERSION + 1}, newer than this chatrelay "
            f"knows ({VERSION}): upgrade chatrelay on every node before starting it against this store")


def chatrelay_up(tmp_path, store: str) -> subprocess.CompletedProcess:
    return subprocess.run(["chatrelay", "up", "--data-dir", str(tmp_path / "relay"), "--listen", "127.0.0.1:0",
                           "--store", store], capture_output=True, text=True, timeout=120)


def test_up_against_a_store_that_is_not_there_says_so_in_one_line(tmp_path):
    from chatrelay.cluster.harness import free_port

    port = free_port()
    done = chatrelay_up(tmp_path, f"postgresql://chatrelay:pw@127.0.0.1:{port}/postgres")
    assert done.returncode != 0 and done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"chatrelay: cannot open the store at postgresql://chatrelay:***@127.0.0.1:{port}/postgres: ")
    assert line.endswith(" (unavailable)")
    assert "pw" not in line


def test_up_against_a_newer_store_refuses_to_start(tmp_path, postgres_server):
    from chatrelay.actors.config import ClusterConfig
    from chatrelay.cluster import identity

    key = identity.load_or_create(tmp_path / "relay")  # the relay's schema is named by its key
    schema = ClusterConfig(data_dir="", relay_key=bytes(key.verify_key), shards=1, etcd=None, listen="",
                           limits=None, operator_key=None, metrics=None, traces=None).store_schema

    async def newer():
        pool = Pool(postgres_server.dsn, schema, size=1)
        await pool.ready()
        await pool.close()
        conn = await asyncpg.connect(postgres_server.dsn)
        await conn.execute(f"INSERT INTO {schema}.schema_versions VALUES ($1, 0)", VERSION + 1)
        await conn.close()
    asyncio.run(newer())
    done = chatrelay_up(tmp_path, postgres_server.dsn)
    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr.strip() == (
        f"chatrelay: the store (PostgreSQL schema {schema}) has schema version {VERSION + 1}, newer than this chatrelay "
        f"knows ({VERSION}): upgrade chatrelay on every node before starting it against this store (refused)")
