"""The message log on PostgreSQL, through asyncpg (issue 17): the interface of
`chatrelay.actors.message_log`, for relays whose shards move between machines.

Appends of many streams wait their turn and commit together in one transaction (group
commit, as the embedded log does, through the gateway's `Coalescer`); `append` returns
only after the commit, so an ack sent after it is never lost. Sequence numbers stay
gapless per stream: a stream's head row is locked for the transaction. A `schema` keeps
one relay's tables (or one test's) apart from another's on the same server; the tables
are made at first use, under an advisory lock, so relays that start together do not
race. What is not built yet: fencing tokens and versioned migrations (issue 17).
"""

from __future__ import annotations

import asyncio
import re
import time

import asyncpg

from chatrelay.actors.message_log import Appended, LogRecord
from chatrelay.cluster.coalescer import Coalescer
from chatrelay.cluster.message_log_sqlite import KEEP_TRIMMED_KEYS_MS, MAX_BATCH

SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
SCHEMA_LOCK = 0x63686174  # the advisory lock held while tables are made ("chat")
TABLES = """
CREATE TABLE IF NOT EXISTS records (
    stream text NOT NULL, seq bigint NOT NULL, ts bigint NOT NULL, key bytea, data bytea NOT NULL,
    PRIMARY KEY (stream, seq)
);
CREATE UNIQUE INDEX IF NOT EXISTS records_key ON records (stream, key) WHERE key IS NOT NULL;
CREATE TABLE IF NOT EXISTS heads (
    stream text PRIMARY KEY, last_seq bigint NOT NULL, trimmed_through bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS trimmed_keys (
    stream text NOT NULL, key bytea NOT NULL, seq bigint NOT NULL, ts bigint NOT NULL,
    PRIMARY KEY (stream, key)
);
CREATE INDEX IF NOT EXISTS trimmed_keys_ts ON trimmed_keys (ts);
"""


class PostgresMessageLog:
    def __init__(self, dsn: str, schema: str = "chatrelay", pool_size: int = 4) -> None:
        if not SCHEMA_NAME.fullmatch(schema):
            raise ValueError(f"schema name must be lower-case letters, digits and _, got {schema!r}")
        self.dsn, self.schema, self.pool_size = dsn, schema, pool_size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._closed = False
        self._appends = Coalescer(self._commit, batch=MAX_BATCH)
        self.commits = 0  # transactions committed: group commit at work

    def __str__(self) -> str:
        return f"message log in schema {self.schema} of PostgreSQL"

    async def _ready(self) -> asyncpg.Pool:
        if self._closed:
            raise RuntimeError("message log is closed")
        async with self._opening:
            if self._pool is None:
                setup = await asyncpg.connect(self.dsn)
                try:
                    async with setup.transaction():
                        await setup.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
                        await setup.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
                        await setup.execute(f"SET LOCAL search_path TO {self.schema}")
                        await setup.execute(TABLES)
                finally:
                    await setup.close()
                self._pool = await asyncpg.create_pool(
                    self.dsn, min_size=1, max_size=self.pool_size, server_settings={"search_path": self.schema})
        return self._pool

    # ---- appends: group commit ----------------------------------------------------------

    async def append(
        self, stream: str, records: list[bytes], keys: list[bytes | None] | None = None
    ) -> Appended:
        """Durable when it returns. Records with a key already in the stream (or trimmed
        from it within a day) are not appended again; their first seq is returned, marked
        as a duplicate."""
        keys = list(keys) if keys is not None else [None] * len(records)
        if len(keys) != len(records):
            raise ValueError("one key (or None) per record")
        if not records:
            return Appended(seqs=(), duplicates=())
        await self._ready()
        return await self._appends("log", (stream, list(records), keys))

    async def _commit(self, lane, items: list) -> list[Appended]:
        async with (await self._ready()).acquire() as conn:
            async with conn.transaction():
                heads: dict[str, int] = {}
                results = [await self._apply(conn, item, heads) for item in items]
                await conn.executemany(
                    "UPDATE heads SET last_seq = $2 WHERE stream = $1", list(heads.items()))
        self.commits += 1
        return results

    @staticmethod
    async def _apply(conn, item, heads: dict[str, int]) -> Appended:
        stream, records, keys = item
        if stream not in heads:
            await conn.execute("INSERT INTO heads (stream, last_seq) VALUES ($1, 0) ON CONFLICT DO NOTHING", stream)
            heads[stream] = await conn.fetchval("SELECT last_seq FROM heads WHERE stream = $1 FOR UPDATE", stream)
        wanted = [k for k in keys if k is not None]
        known = dict(await conn.fetch(
            "SELECT key, seq FROM records WHERE stream = $1 AND key = any($2::bytea[]) "
            "UNION SELECT key, seq FROM trimmed_keys WHERE stream = $1 AND key = any($2::bytea[])",
            stream, wanted)) if wanted else {}
        now = int(time.time() * 1000)
        seqs, dups, rows = [], [], []
        for data, key in zip(records, keys):
            if key is not None and key in known:
                seqs.append(known[key])
                dups.append(True)
                continue
            heads[stream] += 1
            rows.append((stream, heads[stream], now, key, data))
            if key is not None:
                known[key] = heads[stream]  # the same key twice in one append lands once
            seqs.append(heads[stream])
            dups.append(False)
        if rows:
            await conn.executemany("INSERT INTO records (stream, seq, ts, key, data) VALUES ($1, $2, $3, $4, $5)", rows)
        return Appended(seqs=tuple(seqs), duplicates=tuple(dups))

    # ---- reads ------------------------------------------------------------------------

    async def _fetch(self, sql: str, *args) -> list:
        return await (await self._ready()).fetch(sql, *args)

    async def read(self, stream: str, after_seq: int = 0, limit: int = 500) -> list[LogRecord]:
        rows = await self._fetch(
            "SELECT seq, data, ts, key FROM records WHERE stream = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            stream, after_seq, limit)
        return [LogRecord(r["seq"], bytes(r["data"]), r["ts"], r["key"]) for r in rows]

    async def read_before(self, stream: str, before_seq: int = 0, limit: int = 100) -> list[LogRecord]:
        """The `limit` records just before `before_seq` (0: the newest), oldest first."""
        bound = before_seq if before_seq > 0 else 2**62
        rows = await self._fetch(
            "SELECT seq, data, ts, key FROM records WHERE stream = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
            stream, bound, limit)
        return [LogRecord(r["seq"], bytes(r["data"]), r["ts"], r["key"]) for r in reversed(rows)]

    async def find(self, stream: str, keys: list[bytes]) -> dict[bytes, int]:
        if not keys:
            return {}
        rows = await self._fetch(
            "SELECT key, seq FROM records WHERE stream = $1 AND key = any($2::bytea[]) "
            "UNION SELECT key, seq FROM trimmed_keys WHERE stream = $1 AND key = any($2::bytea[])",
            stream, list(keys))
        return {bytes(r["key"]): r["seq"] for r in rows}

    async def last_seq(self, stream: str) -> int:
        rows = await self._fetch("SELECT last_seq FROM heads WHERE stream = $1", stream)
        return rows[0]["last_seq"] if rows else 0

    async def usage(self, stream: str, after_seq: int = 0) -> tuple[int, int]:
        [row] = await self._fetch(
            "SELECT count(*) AS n, coalesce(sum(length(data)), 0) AS size FROM records WHERE stream = $1 AND seq > $2",
            stream, after_seq)
        return row["n"], row["size"]

    async def trim(self, stream: str, through_seq: int) -> int:
        """Drop records up to `through_seq`; sequence numbers are never reused, and the
        keys of the dropped records are kept for a day (a record sent again is known)."""
        async with (await self._ready()).acquire() as conn:
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO trimmed_keys (stream, key, seq, ts) SELECT stream, key, seq, ts FROM records "
                    "WHERE stream = $1 AND seq <= $2 AND key IS NOT NULL ON CONFLICT DO NOTHING", stream, through_seq)
                await conn.execute("DELETE FROM trimmed_keys WHERE ts < $1",
                                   int(time.time() * 1000) - KEEP_TRIMMED_KEYS_MS)
                deleted = await conn.execute("DELETE FROM records WHERE stream = $1 AND seq <= $2", stream, through_seq)
                await conn.execute(
                    "UPDATE heads SET trimmed_through = greatest(trimmed_through, $2) WHERE stream = $1",
                    stream, through_seq)
        return int(deleted.split()[-1])  # "DELETE n"

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._appends.close()
        if self._pool is not None:
            await self._pool.close()
