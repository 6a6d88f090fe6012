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
