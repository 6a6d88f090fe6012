"""What the PostgreSQL message log promises beyond the conformance suite (issue 17, first
part), besides group commit (in the conformance suite): a checked schema name, and a server that is not
there acks nothing and is answered UNAVAILABLE. Fencing, migrations and the relay's
`--store` come next."""

from __future__ import annotations

import pytest

from chatrelay.actors.calls import refusal
from chatrelay.cluster.message_log_postgres import PostgresMessageLog
from chatrelay.errors import Reason


@pytest.fixture
async def log(postgres_server, request):
    log = PostgresMessageLog(postgres_server.dsn, schema="g_" + request.node.name.lower()[:40])
    yield log
    await log.close()


def test_a_schema_name_is_checked():
    with pytest.raises(ValueError) as caught:
        PostgresMessageLog("postgresql://127.0.0.1:1/x", schema="x; DROP TABLE records")
    assert str(caught.value) == "schema name must be lower-case letters, digits and _, got 'x; DROP TABLE records'"


async def test_a_server_that_is_not_there_acks_nothing():
    from chatrelay.cluster.harness import free_port

    log = PostgresMessageLog(f"postgresql://chatrelay@127.0.0.1:{free_port()}/postgres", schema="nowhere")
    try:
        with pytest.raises(OSError) as caught:
            await log.append("g", [b"lost?"])
    finally:
        await log.close()
    answer = refusal(caught.value)  # what a shard answers its gateway, and the client
    assert (answer.reason, answer.message) == (Reason.UNAVAILABLE, "relay storage unavailable: ConnectionRefusedError")


async def test_a_statement_past_its_timeout_writes_nothing_and_says_so(postgres_server):
    """An append that waits past the statement timeout (here: on a lock another session
    holds) is rolled back whole and answered UNAVAILABLE, saying why."""
    import asyncpg

    from chatrelay.actors.calls import StoreUnavailable

    schema = "statement_timeout"
    log = PostgresMessageLog(postgres_server.dsn, schema=schema, statement_timeout_ms=300)
    blocker = await asyncpg.connect(postgres_server.dsn)
    try:
        await log.append("s", [b"kept"])
        async with blocker.transaction():
            await blocker.execute(f"LOCK TABLE {schema}.heads IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(StoreUnavailable) as caught:
                await log.append("s", [b"never"], keys=[b"id-never"])
        answer = refusal(caught.value)
        assert (answer.reason, answer.message) == (Reason.UNAVAILABLE, (
            "relay storage unavailable: a statement ran past the store's statement timeout; "
            "nothing of the request was written"))
        assert [r.data for r in await log.read("s")] == [b"kept"]
        assert await log.find("s", [b"id-never"]) == {}
        assert (await log.append("s", [b"next"])).seqs == (2,)  # gapless
    finally:
        await blocker.close()
        await log.close()


async def test_a_full_disk_writes_nothing_and_says_so(postgres_server):
    """The log's database on a 4 MiB tmpfs (a tablespace there), filled by appends: the
    one that meets the full disk is refused whole, UNAVAILABLE saying why, and every
    append acked before it reads back."""
    import shutil

    import asyncpg

    from realparts import SmallDisk, fill_until_full

    with SmallDisk("4m") as small:
        admin = await asyncpg.connect(postgres_server.dsn)
        try:
            shutil.chown(small, "postgres", "postgres")
            await admin.execute(f"CREATE TABLESPACE full_disk LOCATION '{small}'")
            await admin.execute("CREATE DATABASE full_disk TABLESPACE full_disk")
            log = PostgresMessageLog(postgres_server.dsn.rsplit("/", 1)[0] + "/full_disk", schema="full")
            try:
                await fill_until_full(log, 2000)  # about 4 MiB at most
            finally:
                await log.close()
            await admin.execute("DROP DATABASE full_disk")
            await admin.execute("DROP TABLESPACE full_disk")
        finally:
            await admin.close()


async def test_a_schema_named_like_a_keyword_is_quoted(postgres_server):
    log = PostgresMessageLog(postgres_server.dsn, schema="select")
    try:
        assert (await log.append("s", [b"x"])).seqs == (1,)
        assert [r.data for r in await log.read("s")] == [b"x"]
    finally:
        await log.close()
