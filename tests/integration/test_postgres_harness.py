"""The PostgreSQL the tests and benchmarks use (issue 17, first part): a real server from
the `postgresql` package, on a free loopback port, made and thrown away by the harness.
The store on PostgreSQL is built on this."""

from __future__ import annotations

import os

import asyncpg
import pytest

from chatrelay.cluster.harness import PostgresServer


async def test_a_throwaway_postgres_listens_on_loopback_and_commits():
    with PostgresServer() as server:
        connection = await asyncpg.connect(server.dsn)
        try:
            assert await connection.fetchval("SHOW listen_addresses") == "127.0.0.1"
            await connection.execute("CREATE TABLE posts (stream text, seq bigint, data bytea, PRIMARY KEY (stream, seq))")
            async with connection.transaction():
                await connection.executemany("INSERT INTO posts VALUES ($1, $2, $3)",
                                             [("g", i, bytes([i])) for i in range(1, 4)])
            rows = await connection.fetch("SELECT seq, data FROM posts WHERE stream = 'g' ORDER BY seq")
            assert [(r["seq"], r["data"]) for r in rows] == [(1, b"\x01"), (2, b"\x02"), (3, b"\x03")]
            with pytest.raises(asyncpg.UniqueViolationError):
                async with connection.transaction():  # one row refused: none of them written
                    await connection.executemany("INSERT INTO posts VALUES ($1, $2, $3)",
                                                 [("g", 4, b"x"), ("g", 1, b"again")])
            assert await connection.fetchval("SELECT count(*) FROM posts") == 3
        finally:
            await connection.close()
        data_dir = server.data_dir
    assert not os.path.exists(data_dir)  # thrown away
